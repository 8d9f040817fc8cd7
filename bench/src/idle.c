/* SPDX-License-Identifier: MIT */
/* idle: does freed memory go back to the OS when the program stops calling
   the allocator?  Allocate -b MiB in blocks of 16..1024 bytes, write them,
   free them all in random order, then make no allocator call for -s seconds
   and read the resident set size again.
     -m main    the work and the wait happen on the main thread
     -m thread  a worker thread does the work, then blocks forever in
                pthread_cond_wait while the main thread waits and measures
                (memory cached for a thread that never runs again)
   Prints "rss_peak_kb=N rss_freed_kb=N rss_after_kb=N": after the allocation,
   right after the frees, and after the wait.  The pointer array comes from
   mmap and is unmapped before the frees, so only the allocator's memory is
   resident at the end. */
#include "common.h"
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

static size_t bytes;
static long peak_kb, freed_kb;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int done;

static void work(void) {
  uint64_t seed = 2024;
  size_t cap = bytes / 16 + 1, n = 0, total = 0;
  void **v =
      mmap(NULL, cap * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (v == MAP_FAILED) die("mmap");
  while (total < bytes) {
    size_t sz = rng_range(&seed, 16, 1024);
    v[n] = malloc(sz);
    if (!v[n]) die("malloc");
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
  peak_kb = rss_kb();
  for (size_t i = 0; i < n; i++) free(v[i]);
  munmap(v, cap * sizeof *v);
  freed_kb = rss_kb();
}

static void *worker(void *arg) {
  (void)arg;
  work();
  pthread_mutex_lock(&lock);
  done = 1;
  pthread_cond_broadcast(&cond);
  while (1) /* never woken: this thread stays idle until exit */
    pthread_cond_wait(&cond, &lock);
  return NULL;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "mbs", "[-m main|thread] [-b MiB] [-s seconds]");
  const char *mode = opt_str(argc, argv, 'm', "main");
  bytes = (size_t)opt_ll(argc, argv, 'b', 256) << 20;
  /* Seconds, fractions allowed (-s 0.5). */
  double secs = strtod(opt_str(argc, argv, 's', "10"), NULL);
  if (bytes == 0 || secs < 0) die("arguments");

  if (strcmp(mode, "main") == 0) {
    work();
  } else if (strcmp(mode, "thread") == 0) {
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL)) die("pthread_create");
    pthread_mutex_lock(&lock);
    while (!done) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
  } else {
    die("mode");
  }
  struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) != 0)
    ;
  printf("rss_peak_kb=%ld rss_freed_kb=%ld rss_after_kb=%ld\n", peak_kb, freed_kb, rss_kb());
  fflush(stdout);
  _exit(0);
}
