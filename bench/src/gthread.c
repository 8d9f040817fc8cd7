/* SPDX-License-Identifier: MIT */
/* gthread: glibc's benchtests/bench-malloc-thread shape.  Each of -t threads
   keeps 1024 slots; -n times it frees a slot picked at random and mallocs a
   new block of 4..32768 bytes drawn from an inverse-square distribution
   (half the requests under 8 bytes, one in 16 over 64, one in 512 over
   2 KiB), writing every byte of it.  The slot and size sequences are the same
   for every thread (glibc's are tables filled once by rand()), so the threads
   run in step on the same classes.  The original runs for a fixed time; a
   fixed number of operations per thread is what our harness times. */
#include "common.h"
#include <pthread.h>

#define SLOTS 1024
#define NSIZES 8000
#define NOFFS (SLOTS * 4)

static unsigned sizes[NSIZES], offs[NOFFS];
static long long iters;

static void *worker(void *arg) {
  (void)arg;
  void *slot[SLOTS] = {0};
  unsigned si = 0, oi = 0;
  uint64_t sum = 0;
  for (long long i = 0; i < iters; i++) {
    unsigned o = offs[oi], sz = sizes[si];
    oi = oi + 1 == NOFFS ? 0 : oi + 1;
    si = si + 1 == NSIZES ? 0 : si + 1;
    if (slot[o]) sum += *(unsigned char *)slot[o];
    free(slot[o]);
    unsigned char *p = slot[o] = malloc(sz);
    if (!p) die("malloc");
    for (unsigned k = 0; k < sz; k++) p[k] = (unsigned char)k;
  }
  for (int k = 0; k < SLOTS; k++) free(slot[k]);
  sink += sum;
  return NULL;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "tn", "[-t threads] [-n operations-per-thread]");
  int threads = (int)opt_ll(argc, argv, 't', 1);
  iters = opt_ll(argc, argv, 'n', 10000000);
  if (threads < 1 || iters < 0) die("arguments");
  /* Inverse square on [4, 32768]: invert the CDF of p(x) ~ x^-2. */
  uint64_t seed = 88;
  const double lo = 1.0 / 4, hi = 1.0 / 32768;
  for (int i = 0; i < NSIZES; i++) {
    double r = (double)(rng_next(&seed) >> 11) / 9007199254740992.0;
    sizes[i] = (unsigned)(1.0 / (lo + (hi - lo) * r));
  }
  for (int i = 0; i < NOFFS; i++) offs[i] = (unsigned)(rng_next(&seed) % SLOTS);
  pthread_t tid[threads];
  for (int t = 0; t < threads; t++)
    if (pthread_create(&tid[t], NULL, worker, NULL)) die("pthread_create");
  for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  printf("checksum=%llu\n", (unsigned long long)sink);
  return 0;
}
