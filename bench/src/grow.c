/* SPDX-License-Identifier: MIT */
/* grow: buffers grown by realloc in small steps, as a program appends to a string
   or a vector that reallocs by a little each time.  -t threads each grow a buffer
   from 16 bytes to -m MiB, 1/64 of its size (plus 16 bytes) at a time, writing every
   new byte, then free it; -r times.  What it measures is mostly memory: the pages a
   moved block leaves behind, and what the allocator keeps of the freed buffers while
   the other threads still grow theirs (glibc moves its mmapped chunks with mremap
   and unmaps them when freed). */
#include "common.h"
#include <pthread.h>

static size_t max_size;
static long long reps;

static void *worker(void *arg) {
  uint64_t sum = (uintptr_t)arg;
  for (long long r = 0; r < reps; r++) {
    unsigned char *p = NULL;
    size_t old = 0;
    for (size_t sz = 16; sz < max_size; sz += sz / 64 + 16) {
      p = realloc(p, sz);
      if (!p) die("realloc");
      memset(p + old, (int)(sz & 0xff), sz - old);
      old = sz;
      sum += p[sz / 2];
    }
    free(p);
  }
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "tmr", "[-t threads] [-m max-MiB] [-r repetitions]");
  int threads = (int)opt_ll(argc, argv, 't', 4);
  long long mib = opt_ll(argc, argv, 'm', 16);
  reps = opt_ll(argc, argv, 'r', 3);
  if (threads < 1 || threads > 256 || mib < 1 || reps < 1) die("arguments");
  max_size = (size_t)mib << 20;
  pthread_t t[256];
  for (int i = 0; i < threads; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) die("pthread_create");
  uint64_t sum = 0;
  for (int i = 0; i < threads; i++) {
    void *r;
    pthread_join(t[i], &r);
    sum += (uintptr_t)r;
  }
  sink = sum;
  printf("checksum=%llu\n", (unsigned long long)sum);
  return 0;
}
