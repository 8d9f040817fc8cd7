/* SPDX-License-Identifier: MIT */
/* mixed: a live heap under steady churn.  Each thread keeps its own window of
   -w slots filled with blocks from the common long-tailed size mix (mostly
   16-256 bytes, a few up to 64 KiB) and replaces a random slot -n/threads
   times, writing into every new block and reading the one it frees.  The
   total work is fixed, so with more threads than cores the time shows how the
   allocator scales and what contention costs.  -l lo -u hi replace the mix by sizes
   spread evenly on a log scale over [lo, hi]: one part of the mix alone (mixed-t1's
   gap to tcmalloc showed in its 16-256 range alone: a mispredicted size branch). */
#include "common.h"
#include <pthread.h>

static long long ops_per_thread;
static size_t window;
static size_t size_lo, size_hi; /* -l/-u: one range instead of the mix (0: the mix) */

static size_t next_size(uint64_t *seed) {
  return size_lo ? rng_log_range(seed, size_lo, size_hi) : size_mix(seed);
}

struct slot {
  void *p;
  size_t sz;
};

static void *worker(void *arg) {
  uint64_t seed = 0x1234567ull + (uintptr_t)arg * 0x9e3779b9ull, sum = 0;
  struct slot *w = calloc(window, sizeof *w);
  if (!w) die("calloc");
  for (size_t i = 0; i < window; i++) {
    w[i].sz = next_size(&seed);
    w[i].p = malloc(w[i].sz);
    if (!w[i].p) die("malloc");
    touch(w[i].p, w[i].sz, i);
  }
  for (long long i = 0; i < ops_per_thread; i++) {
    struct slot *s = &w[rng_next(&seed) % window];
    sum += peek(s->p, s->sz);
    free(s->p);
    s->sz = next_size(&seed);
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
  opt_check(argc, argv, "tnwlu",
            "[-t threads] [-n total-ops] [-w window-per-thread] [-l min-size -u max-size]");
  int threads = (int)opt_ll(argc, argv, 't', 1);
  long long n = opt_ll(argc, argv, 'n', 4000000);
  window = (size_t)opt_ll(argc, argv, 'w', 2000);
  size_lo = (size_t)opt_ll(argc, argv, 'l', 0);
  size_hi = (size_t)opt_ll(argc, argv, 'u', (long long)size_lo);
  if (threads < 1 || window < 1 || n < 0 || size_hi < size_lo || (size_lo == 0) != (size_hi == 0))
    die("arguments");
  ops_per_thread = n / threads;

  pthread_t tid[threads];
  for (int t = 0; t < threads; t++)
    if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t)) die("pthread_create");
  for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  printf("checksum=%llu\n", (unsigned long long)sink);
  return 0;
}
