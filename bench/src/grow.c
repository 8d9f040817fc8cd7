/* SPDX-License-Identifier: MIT */
/* grow: buffers grown by realloc in small steps, as a program appends to a string
   or a vector that reallocs by a little each time.  -t threads each grow a buffer
   from 16 bytes to -m MiB, 1/64 of its size (plus 16 bytes) at a time, writing every
   new byte, then free it; -r times.  What it measures is mostly memory: the pages a
   moved block leaves behind, and what the allocator keeps of the freed buffers while
   the other threads still grow theirs (glibc moves its mmapped chunks with mremap
   and unmaps them when freed).  With -b, each thread grows that many buffers by turns
   (a step of each in order, as a program filling several strings or vectors at once),
   to -k KiB where that is given instead of -m: the blocks stand in each other's way. */
#include "common.h"
#include <pthread.h>

#define MAX_BUFS 1024

static size_t max_size;
static long long reps;
static int nbufs;

static void *worker(void *arg) {
  uint64_t sum = (uintptr_t)arg;
  unsigned char *p[MAX_BUFS] = {NULL};
  size_t have[MAX_BUFS] = {0};
  for (long long r = 0; r < reps; r++) {
    for (int growing = 1; growing;) {
      growing = 0;
      for (int i = 0; i < nbufs; i++) {
        size_t old = have[i], sz = old ? old + old / 64 + 16 : 16;
        if (sz >= max_size) continue;
        growing = 1;
        p[i] = realloc(p[i], sz);
        if (!p[i]) die("realloc");
        memset(p[i] + old, (int)(sz & 0xff), sz - old);
        have[i] = sz;
        sum += p[i][sz / 2];
      }
    }
    for (int i = 0; i < nbufs; i++) {
      free(p[i]);
      p[i] = NULL;
      have[i] = 0;
    }
  }
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "tmkrb",
            "[-t threads] [-m max-MiB | -k max-KiB] [-r repetitions] [-b buffers per thread]");
  int threads = (int)opt_ll(argc, argv, 't', 4);
  long long mib = opt_ll(argc, argv, 'm', 16);
  long long kib = opt_ll(argc, argv, 'k', mib << 10);
  reps = opt_ll(argc, argv, 'r', 3);
  nbufs = (int)opt_ll(argc, argv, 'b', 1);
  if (threads < 1 || threads > 256 || mib < 1 || kib < 1 || reps < 1 || nbufs < 1 || nbufs > MAX_BUFS)
    die("arguments");
  max_size = (size_t)kib << 10;
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
