/* SPDX-License-Identifier: MIT */
/* sh8: the shape of MicroQuill's SmartHeap benchmark sh8bench (mimalloc-bench's
   sh8benchN): threads that allocate and free as much as each other, and hand
   whole batches across.  Each of -t threads runs -r rounds; a round allocates
   -n blocks whose sizes walk up from 1 byte in steps of 17 to 1000 and start
   again (so every size class up to 1 KiB gets its share), writes the first
   bytes of each, frees every other one and allocates it again at another size;
   then, every other round, the thread hands the whole batch to the next thread
   (a slot guarded by a mutex), frees the batch the previous thread handed to it,
   newest first, and takes a fresh array; in the other rounds it frees its own
   batch, newest first.  What it measures: remote frees that come back as
   allocations of the same classes in the freeing thread, the swing of a few
   hundred blocks per class through the thread caches each round. */
#include "common.h"
#include <pthread.h>

static int threads;
static long long rounds;
static size_t nblocks;

struct slot {
  pthread_mutex_t lock;
  void **batch; /* handed to this thread, not yet freed */
};
static struct slot *slots;

static void free_batch(void **a) {
  for (size_t i = nblocks; i-- > 0;) free(a[i]);
  free(a);
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t seed = 0x5eed + (uint64_t)id, sum = 0;
  void **a = malloc(nblocks * sizeof(void *));
  if (!a) die("malloc");
  for (long long r = 0; r < rounds; r++) {
    size_t size = 1;
    for (size_t i = 0; i < nblocks; i++) {
      a[i] = malloc(size);
      if (!a[i]) die("malloc");
      memset(a[i], (int)i, size < 16 ? size : 16);
      size += 17;
      if (size > 1000) size = 1 + rng_next(&seed) % 7;
    }
    for (size_t i = 0; i < nblocks; i += 2) {
      sum += *(unsigned char *)a[i];
      free(a[i]);
      size_t s = 1 + (i * 7) % 1000;
      a[i] = malloc(s);
      if (!a[i]) die("malloc");
      memset(a[i], (int)i, s < 16 ? s : 16);
    }
    if (threads > 1 && (r & 1)) {
      struct slot *to = &slots[(id + 1) % threads], *mine = &slots[id];
      pthread_mutex_lock(&to->lock);
      void **old = to->batch; /* not taken yet: freed here */
      to->batch = a;
      pthread_mutex_unlock(&to->lock);
      if (old) free_batch(old);
      pthread_mutex_lock(&mine->lock);
      void **in = mine->batch;
      mine->batch = NULL;
      pthread_mutex_unlock(&mine->lock);
      if (in) free_batch(in);
      a = malloc(nblocks * sizeof(void *));
      if (!a) die("malloc");
    } else {
      for (size_t i = nblocks; i-- > 0;) free(a[i]);
    }
  }
  free(a);
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "trn", "[-t threads] [-r rounds] [-n blocks per round]");
  threads = (int)opt_ll(argc, argv, 't', 2);
  rounds = opt_ll(argc, argv, 'r', 5000);
  nblocks = (size_t)opt_ll(argc, argv, 'n', 2000);
  if (threads < 1 || threads > 256 || rounds < 0 || nblocks < 2) die("arguments");
  slots = calloc((size_t)threads, sizeof *slots);
  pthread_t *tid = malloc((size_t)threads * sizeof *tid);
  if (!slots || !tid) die("malloc");
  for (int i = 0; i < threads; i++) pthread_mutex_init(&slots[i].lock, NULL);
  for (int i = 0; i < threads; i++)
    if (pthread_create(&tid[i], NULL, worker, (void *)(intptr_t)i) != 0) die("pthread_create");
  uint64_t sum = 0;
  for (int i = 0; i < threads; i++) {
    void *r;
    pthread_join(tid[i], &r);
    sum += (uintptr_t)r;
  }
  for (int i = 0; i < threads; i++)
    if (slots[i].batch) free_batch(slots[i].batch);
  free(slots);
  free(tid);
  printf("checksum=%llu\n", (unsigned long long)sum);
  return 0;
}
