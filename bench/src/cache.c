/* SPDX-License-Identifier: MIT */
/* cache-thrash and cache-scratch, after the Hoard benchmarks of the same names
   (Berger et al., ASPLOS 2000): do small blocks given to different threads
   share a cache line?  Every thread repeatedly allocates a block of -s bytes,
   writes each of its bytes -r times through a volatile pointer, and frees it.
     -m thrash   each thread allocates its own blocks (active false sharing:
                 the allocator itself places two threads' blocks on one line)
     -m scratch  the main thread first allocates one block per thread, back to
                 back, and each thread starts by freeing the block it was given
                 (passive false sharing: an allocator that hands a freed block
                 back to the freeing thread keeps the threads on one line)
   -n is the total number of allocations, split between -t threads, as in Hoard. */
#include "common.h"
#include <pthread.h>

static long long per_thread;
static long long reps;
static size_t objsize;

static void *worker(void *given) {
  free(given); /* NULL in thrash mode */
  for (long long i = 0; i < per_thread; i++) {
    volatile unsigned char *p = malloc(objsize);
    if (!p) die("malloc");
    for (long long r = 0; r < reps; r++)
      for (size_t j = 0; j < objsize; j++) p[j]++;
    free((void *)p);
  }
  return NULL;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "mtnrs",
            "[-m thrash|scratch] [-t threads] [-n total-allocs] [-r writes-per-byte] [-s size]");
  const char *mode = opt_str(argc, argv, 'm', "thrash");
  int threads = (int)opt_ll(argc, argv, 't', 2);
  long long n = opt_ll(argc, argv, 'n', 1000);
  reps = opt_ll(argc, argv, 'r', 100000);
  objsize = (size_t)opt_ll(argc, argv, 's', 8);
  int scratch = strcmp(mode, "scratch") == 0;
  if (!scratch && strcmp(mode, "thrash") != 0) die("mode");
  if (threads < 1 || n < 0 || reps < 0 || objsize < 1) die("arguments");
  per_thread = n / threads;

  void *given[threads];
  for (int t = 0; t < threads; t++) {
    given[t] = scratch ? malloc(objsize) : NULL;
    if (scratch && !given[t]) die("malloc");
    escape(given[t]);
  }
  pthread_t tid[threads];
  for (int t = 0; t < threads; t++)
    if (pthread_create(&tid[t], NULL, worker, given[t])) die("pthread_create");
  for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  return 0;
}
