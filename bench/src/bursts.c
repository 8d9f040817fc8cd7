/* SPDX-License-Identifier: MIT */
/* bursts: a server that works in bursts and then waits.  -t threads, -r rounds; in
   each round every thread builds a working set of -b MiB in blocks of 16..4096 bytes
   (log-uniform), writes them, and frees them in random order (the busy phase); then
   every thread blocks for -q seconds without a call to the allocator (the quiet
   spell), while the main thread reads the resident set size every 50 ms.  Prints
   "busy_s=S quiet_rss_kb=K peak_rss_kb=P": the busy phases' wall time in all, the mean
   RSS over the quiet spells' samples, the highest RSS seen.  What is resident in the
   quiet spells is what an allocator keeps cached for threads that are not running:
   only one that gives memory back on a clock, without a call from the program, can
   make it small. */
#include "common.h"
#include <pthread.h>
#include <time.h>

static int threads, rounds;
static size_t bytes;
static pthread_barrier_t start_bar, done_bar;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg) {
  uint64_t seed = 77 + (uintptr_t)arg * 0x9e3779b97f4a7c15ull, sum = 0;
  size_t cap = bytes / 16 + 1;
  void **v = malloc(cap * sizeof *v);
  if (!v) die("malloc");
  for (int r = 0; r < rounds; r++) {
    pthread_barrier_wait(&start_bar);
    size_t n = 0, total = 0;
    while (total < bytes && n < cap) {
      size_t sz = rng_log_range(&seed, 16, 4096);
      if (!(v[n] = malloc(sz))) die("malloc");
      touch(v[n], sz, n);
      n++;
      total += sz;
    }
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = rng_next(&seed) % (i + 1);
      void *t = v[i];
      v[i] = v[j];
      v[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
      sum += peek(v[i], 1);
      free(v[i]);
    }
    pthread_barrier_wait(&done_bar); /* then blocked until the next round's start */
  }
  free(v);
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "tbrq", "[-t threads] [-b MiB per thread] [-r rounds] [-q quiet-seconds]");
  threads = (int)opt_ll(argc, argv, 't', 4);
  long long mib = opt_ll(argc, argv, 'b', 32);
  rounds = (int)opt_ll(argc, argv, 'r', 4);
  double quiet = (double)opt_ll(argc, argv, 'q', 3);
  if (threads < 1 || threads > 256 || mib < 1 || rounds < 1 || quiet < 0) die("arguments");
  bytes = (size_t)mib << 20;
  pthread_barrier_init(&start_bar, NULL, (unsigned)threads + 1);
  pthread_barrier_init(&done_bar, NULL, (unsigned)threads + 1);
  pthread_t t[256];
  for (int i = 0; i < threads; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) die("pthread_create");
  double busy = 0, rss_sum = 0;
  long samples = 0, peak = 0;
  for (int r = 0; r < rounds; r++) {
    double t0 = now_s();
    pthread_barrier_wait(&start_bar);
    pthread_barrier_wait(&done_bar);
    busy += now_s() - t0;
    long k = rss_kb();
    if (k > peak) peak = k;
    /* The quiet spell: samples every 50 ms, the first right away. */
    double end = now_s() + quiet;
    for (;;) {
      k = rss_kb();
      rss_sum += (double)k;
      samples++;
      if (k > peak) peak = k;
      if (now_s() >= end) break;
      struct timespec ts = {0, 50000000};
      nanosleep(&ts, NULL);
    }
  }
  uint64_t sum = 0;
  for (int i = 0; i < threads; i++) {
    void *res;
    pthread_join(t[i], &res);
    sum += (uintptr_t)res;
  }
  sink = sum;
  printf("busy_s=%.4f quiet_rss_kb=%.0f peak_rss_kb=%ld\n", busy, samples ? rss_sum / (double)samples : 0.0,
         peak);
  return 0;
}
