/* SPDX-License-Identifier: MIT */
/* mixed: a live heap under steady churn.  Each thread keeps its own window of
   -w slots filled with blocks from the common long-tailed size mix (mostly
   16-256 bytes, a few up to 64 KiB) and replaces a random slot -n/threads
   times, writing into every new block and reading the one it frees.  The
   total work is fixed, so with more threads than cores the time shows how the
   allocator scales and what contention costs. */
#include "common.h"
#include <pthread.h>

static long long ops_per_thread;
static size_t window;

struct slot {
  void *p;
  size_t sz;
};

static void *worker(void *arg) {
  uint64_t seed = 0x1234567ull + (uintptr_t)arg * 0x9e3779b9ull, sum = 0;
  struct slot *w = calloc(window, sizeof *w);
  if (!w) die("calloc");
  for (size_t i = 0; i < window; i++) {
    w[i].sz = size_mix(&seed);
    w[i].p = malloc(w[i].sz);
    if (!w[i].p) die("malloc");
    touch(w[i].p, w[i].sz, i);
  }
  for (long long i = 0; i < ops_per_thread; i++) {
    struct slot *s = &w[rng_next(&seed) % window];
    sum += peek(s->p, s->sz);
    free(s->p);
    s->sz = size_mix(&seed);
    s->p = malloc(s->sz);
    if (!s->p) die("malloc");
    touch(s->p, s->sz, (uint64_t)i);
  }
  for (size_t i = 0; i < window; i++) free(w[i].p);
  free(w);
  sink += sum;
  return NULL;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "tnw", "[-t threads] [-n total-ops] [-w window-per-thread]");
  int threads = (int)opt_ll(argc, argv, 't', 1);
  long long n = opt_ll(argc, argv, 'n', 4000000);
  window = (size_t)opt_ll(argc, argv, 'w', 2000);
  if (threads < 1 || window < 1 || n < 0) die("arguments");
  ops_per_thread = n / threads;

  pthread_t tid[threads];
  for (int t = 0; t < threads; t++)
    if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t)) die("pthread_create");
  for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  printf("checksum=%llu\n", (unsigned long long)sink);
  return 0;
}
