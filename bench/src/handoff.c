/* SPDX-License-Identifier: MIT */
/* handoff: the shape of rpmalloc's rptest (random sizes with a linear falloff,
   scattered replacement, a share of the blocks freed by another thread).  Each of -t
   threads keeps -w blocks of 8..16000 bytes, the smaller more likely (the chance of a
   size falls linearly to 0 at 16000); each round it replaces half of them, in a
   scattered order, and one block in -x of those it takes out goes to the next
   thread's inbox (at most -w blocks; the rest are freed) instead of free(); at the
   start of each round a thread frees what its inbox holds.  -n rounds in all, split between the threads.  Memory is the
   point as much as time: the blocks other threads free, and the slabs half-emptied
   by the scattered frees. */
#include "common.h"
#include <pthread.h>

#define MIN_SIZE 8
#define MAX_SIZE 16000

struct inbox {
  pthread_mutex_t lock;
  size_t n, cap;
  void **p;
};

static int threads;
static long long rounds;
static size_t window;
static long long cross;
static struct inbox *inboxes;

/* Linear falloff: the smaller of two uniform draws has density 2 (1 - x). */
static size_t falloff_size(uint64_t *s) {
  size_t a = rng_range(s, MIN_SIZE, MAX_SIZE), b = rng_range(s, MIN_SIZE, MAX_SIZE);
  return a < b ? a : b;
}

static void *worker(void *arg) {
  int me = (int)(uintptr_t)arg;
  uint64_t seed = 0x51ed2701ull + (uint64_t)me * 0x9e3779b97f4a7c15ull, sum = 0;
  struct inbox *next = &inboxes[(me + 1) % threads], *mine = &inboxes[me];
  void **w = calloc(window, sizeof(void *));
  size_t *sz = calloc(window, sizeof(size_t));
  void **out = malloc(window * sizeof(void *));
  if (!w || !sz || !out) die("calloc");
  for (size_t i = 0; i < window; i++) {
    sz[i] = falloff_size(&seed);
    if (!(w[i] = malloc(sz[i]))) die("malloc");
    touch(w[i], sz[i], i);
  }
  for (long long r = 0; r < rounds; r++) {
    /* What the previous thread handed over (at most the window): freed here. */
    pthread_mutex_lock(&mine->lock);
    size_t got = mine->n;
    memcpy(out, mine->p, got * sizeof(void *));
    mine->n = 0;
    pthread_mutex_unlock(&mine->lock);
    for (size_t k = 0; k < got; k++) free(out[k]);
    /* Half of the window, scattered: a stride prime to the window's size. */
    size_t nout = 0, start = rng_next(&seed) % window;
    for (size_t k = 0; k < window / 2; k++) {
      size_t i = (start + k * 7919) % window;
      sum += peek(w[i], sz[i]);
      if (cross > 0 && rng_next(&seed) % (uint64_t)cross == 0)
        out[nout++] = w[i];
      else
        free(w[i]);
      sz[i] = falloff_size(&seed);
      if (!(w[i] = malloc(sz[i]))) die("malloc");
      touch(w[i], sz[i], (uint64_t)r);
    }
    /* An inbox holds at most the window: a thread that runs ahead frees its own. */
    pthread_mutex_lock(&next->lock);
    size_t room = next->cap - next->n, give = nout < room ? nout : room;
    memcpy(next->p + next->n, out, give * sizeof(void *));
    next->n += give;
    pthread_mutex_unlock(&next->lock);
    for (size_t k = give; k < nout; k++) free(out[k]);
  }
  for (size_t i = 0; i < window; i++) free(w[i]);
  free(w);
  free(sz);
  free(out);
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "tnwx", "[-t threads] [-n rounds] [-w blocks] [-x cross-rate]");
  threads = (int)opt_ll(argc, argv, 't', 2);
  long long n = opt_ll(argc, argv, 'n', 2000);
  window = (size_t)opt_ll(argc, argv, 'w', 1000);
  cross = opt_ll(argc, argv, 'x', 4);
  if (threads < 1 || threads > 256 || n < 1 || window < 2 || cross < 0) die("arguments");
  rounds = n / threads;
  inboxes = calloc((size_t)threads, sizeof *inboxes);
  if (!inboxes) die("calloc");
  for (int i = 0; i < threads; i++) {
    pthread_mutex_init(&inboxes[i].lock, NULL);
    inboxes[i].cap = window;
    if (!(inboxes[i].p = malloc(window * sizeof(void *)))) die("malloc");
  }
  pthread_t t[256];
  for (int i = 0; i < threads; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) die("pthread_create");
  uint64_t sum = 0;
  for (int i = 0; i < threads; i++) {
    void *r;
    pthread_join(t[i], &r);
    sum += (uintptr_t)r;
  }
  for (int i = 0; i < threads; i++) {
    for (size_t k = 0; k < inboxes[i].n; k++) free(inboxes[i].p[k]);
    free(inboxes[i].p);
  }
  free(inboxes);
  sink = sum;
  printf("checksum=%llu\n", (unsigned long long)sum);
  return 0;
}
