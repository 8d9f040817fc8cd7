/* SPDX-License-Identifier: MIT */
/* tstress: the shape of mimalloc's stress test (mimalloc-bench's mstress).  Each of
   -t threads does 80 * -n * (id % 8 + 1) steps (later threads do more); a step mallocs
   a short-lived block of 1..128 words (1 in 100 of them 100 times that) into a growing
   array (grown by realloc, 100000 pointers at a time) or, otherwise, a retained block of
   10..12800 words kept until the thread ends; then, 2 times in 3, frees a random entry
   of the array (NULL once freed), and 1 time in 4 swaps a random entry with one of 1000
   shared slots (atomic exchange), so blocks move between threads and outlive them.
   Every block is filled with a pattern and checked word by word before it is freed.
   -r rounds: the threads are created anew each round; the shared slots persist. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define SLOTS 1000

static _Atomic(uintptr_t *) shared[SLOTS];
static long long scale;
static const uintptr_t cookie = (uintptr_t)0xbf58476d1ce4e5b9ull;

static int chance(uint64_t *s, unsigned pct) { return rng_next(s) % 100 < pct; }

static uintptr_t *make(size_t words, uint64_t *s) {
  if (chance(s, 1)) words *= 100;
  uintptr_t *p = malloc(words * sizeof *p);
  if (!p) die("malloc");
  for (size_t i = 0; i < words; i++) p[i] = (words - i) ^ cookie;
  return p;
}

static void drop(uintptr_t *p) {
  if (p) {
    uintptr_t words = p[0] ^ cookie;
    for (uintptr_t i = 0; i < words; i++)
      if ((p[i] ^ cookie) != words - i) {
        fprintf(stderr, "tstress: block %p corrupted at word %zu\n", (void *)p, (size_t)i);
        abort();
      }
  }
  free(p);
}

static void *worker(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  uint64_t s = 0x5eed0000ull + id * 0x9e3779b97f4a7c15ull;
  size_t allocs = (size_t)(80 * scale) * (id % 8 + 1), retain = allocs / 2;
  uintptr_t **data = NULL, **kept = malloc(retain * sizeof *kept);
  size_t cap = 0, top = 0, ktop = 0;
  if (!kept && retain) die("malloc");
  while (allocs > 0 || retain > 0) {
    if (retain == 0 || (allocs > 0 && chance(&s, 50))) {
      allocs--;
      if (top == cap) {
        cap += 100000;
        data = realloc(data, cap * sizeof *data);
        if (!data) die("realloc");
      }
      data[top++] = make(rng_next(&s) % 128 + 1, &s);
    } else {
      kept[ktop++] = make(10 * (rng_next(&s) % 1280 + 1), &s);
      retain--;
    }
    if (top > 0 && chance(&s, 66)) {
      size_t i = rng_next(&s) % top;
      drop(data[i]);
      data[i] = NULL;
    }
    if (top > 0 && chance(&s, 25)) {
      size_t i = rng_next(&s) % top;
      data[i] = atomic_exchange(&shared[rng_next(&s) % SLOTS], data[i]);
    }
  }
  for (size_t i = 0; i < ktop; i++) drop(kept[i]);
  for (size_t i = 0; i < top; i++) drop(data[i]);
  free(kept);
  free(data);
  return NULL;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "tnr", "[-t threads] [-n scale] [-r rounds]");
  int threads = (int)opt_ll(argc, argv, 't', 4);
  scale = opt_ll(argc, argv, 'n', 50);
  long long rounds = opt_ll(argc, argv, 'r', 10);
  if (threads < 1 || threads > 256 || scale < 1 || rounds < 1) die("arguments");
  for (long long r = 0; r < rounds; r++) {
    pthread_t tid[threads];
    for (int t = 0; t < threads; t++)
      if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)(t + r * threads))) die("pthread_create");
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  }
  for (int i = 0; i < SLOTS; i++) drop(atomic_load(&shared[i]));
  printf("checksum=%d\n", threads);
  return 0;
}
