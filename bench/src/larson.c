/* SPDX-License-Identifier: MIT */
/* larson: the server simulation of Larson and Krishnan ("Memory allocation for
   long-running server applications", ISMM 1998), as a fixed amount of work.
   Every thread owns a bag of -w slots holding blocks of 8..1000 bytes (as in
   mimalloc-bench's larson-sized run) and replaces random slots with new
   blocks.  After every -r replacements it swaps its bag for one of the bags
   parked in a shared array (an atomic exchange on a random entry), so blocks
   are freed by threads other than the one that allocated them, as when a
   server hands requests between worker threads.  -n is the total number of
   replacements, split between -t threads.  With -g G (thread churn, as in the
   original program and mimalloc-bench's larson), each thread's share is done by a
   chain of G threads in turn: one does its part, starts its successor, which takes
   over its bag and its place, and exits, so that the blocks a thread allocated are
   freed by a thread created after it ended. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define MIN_SIZE 8
#define MAX_SIZE 1000

struct bag {
  size_t n;
  void *slot[];
};

static int threads;
static long long per_thread;
static size_t bag_slots;
static long long round_len;
static _Atomic(struct bag *) *parked; /* threads entries, swapped atomically */

static struct bag *bag_new(uint64_t *seed) {
  struct bag *b = malloc(sizeof *b + bag_slots * sizeof(void *));
  if (!b) die("malloc");
  b->n = bag_slots;
  for (size_t i = 0; i < bag_slots; i++) {
    size_t sz = rng_range(seed, MIN_SIZE, MAX_SIZE);
    b->slot[i] = malloc(sz);
    if (!b->slot[i]) die("malloc");
    touch(b->slot[i], sz, i);
  }
  return b;
}

static void bag_delete(struct bag *b) {
  for (size_t i = 0; i < b->n; i++) free(b->slot[i]);
  free(b);
}

/* A chain of threads doing one share (-g): what a thread hands its successor.  One
   cache line each, so that the chains' state shares none. */
struct chain {
  struct bag *mine;
  uint64_t seed, sum;
  long long done;
  char pad[32];
};
static long long per_gen;
static pthread_mutex_t chains_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t chains_cv = PTHREAD_COND_INITIALIZER;
static int chains_left;

/* Replacements from to to (of the thread's share) in the bag mine: a random slot's
   block freed, a new one put there, and the bag swapped with a parked one every
   round_len.  Returns the bag the thread holds at the end. */
static struct bag *replace(struct bag *mine, long long from, long long to, uint64_t *seed,
                           uint64_t *sum) {
  for (long long i = from; i < to; i++) {
    size_t k = rng_next(seed) % mine->n;
    unsigned char *old = mine->slot[k];
    *sum += old[0];
    free(old);
    size_t sz = rng_range(seed, MIN_SIZE, MAX_SIZE);
    void *p = malloc(sz);
    if (!p) die("malloc");
    touch(p, sz, (uint64_t)i);
    mine->slot[k] = p;
    if ((i + 1) % round_len == 0) mine = atomic_exchange(&parked[rng_next(seed) % threads], mine);
  }
  return mine;
}

static void *link_worker(void *arg);

/* The next thread of chain c, detached (nobody joins a link). */
static void start_link(struct chain *c) {
  pthread_attr_t a;
  pthread_t t;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &a, link_worker, c)) die("pthread_create");
  pthread_attr_destroy(&a);
}

static void *link_worker(void *arg) {
  struct chain *c = arg;
  uint64_t seed = c->seed, sum = c->sum;
  struct bag *mine = c->mine ? c->mine : bag_new(&seed); /* the first of the chain makes it */
  long long end = per_thread < c->done + per_gen ? per_thread : c->done + per_gen;
  mine = replace(mine, c->done, end, &seed, &sum);
  c->mine = mine;
  c->seed = seed;
  c->sum = sum;
  c->done = end;
  if (end < per_thread) {
    start_link(c);
    return NULL;
  }
  bag_delete(mine);
  pthread_mutex_lock(&chains_lock);
  sink += sum;
  if (--chains_left == 0) pthread_cond_signal(&chains_cv);
  pthread_mutex_unlock(&chains_lock);
  return NULL;
}

static void *worker(void *arg) {
  uint64_t seed = 0xabcdefull + (uintptr_t)arg * 0x51ed27ull, sum = 0;
  struct bag *mine = bag_new(&seed);
  mine = replace(mine, 0, per_thread, &seed, &sum);
  bag_delete(mine);
  sink += sum;
  return NULL;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "tnwrg",
            "[-t threads] [-n total-replacements] [-w slots-per-bag] [-r replacements-per-round] "
            "[-g threads-per-chain]");
  threads = (int)opt_ll(argc, argv, 't', 2);
  long long n = opt_ll(argc, argv, 'n', 10000000);
  bag_slots = (size_t)opt_ll(argc, argv, 'w', 1000);
  round_len = opt_ll(argc, argv, 'r', 1000);
  long long gens = opt_ll(argc, argv, 'g', 1);
  if (threads < 1 || bag_slots < 1 || round_len < 1 || n < 0 || gens < 1) die("arguments");
  per_thread = n / threads;
  per_gen = (per_thread + gens - 1) / gens;

  uint64_t seed = 42;
  parked = calloc((size_t)threads, sizeof *parked);
  if (!parked) die("calloc");
  for (int t = 0; t < threads; t++) atomic_init(&parked[t], bag_new(&seed));

  if (gens > 1) {
    struct chain *c = aligned_alloc(64, (size_t)threads * sizeof *c);
    if (!c) die("aligned_alloc");
    chains_left = threads;
    for (int t = 0; t < threads; t++) {
      uint64_t s = 0xabcdefull + (uint64_t)t * 0x51ed27ull; /* as worker's */
      c[t] = (struct chain){.seed = s};
      start_link(&c[t]);
    }
    pthread_mutex_lock(&chains_lock);
    while (chains_left > 0) pthread_cond_wait(&chains_cv, &chains_lock);
    pthread_mutex_unlock(&chains_lock);
    free(c);
  } else {
    pthread_t tid[threads];
    for (int t = 0; t < threads; t++)
      if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t)) die("pthread_create");
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  }
  for (int t = 0; t < threads; t++) bag_delete(atomic_load(&parked[t]));
  free((void *)parked);
  printf("checksum=%llu\n", (unsigned long long)sink);
  return 0;
}
