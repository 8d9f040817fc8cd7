/* SPDX-License-Identifier: MIT */
/* xbatch: xmalloc-test's shape (Lever and Boreham, "malloc() Performance in a
   Multithreaded Linux Environment", USENIX 2000).  -w producers each malloc a
   batch record and 4096 blocks (-s bytes, or with -s 0 a size drawn from
   8..2048 in half-power-of-two steps), write the first 128 bytes of each and
   push the batch on one shared stack (a mutex and two condition variables, at
   most 100 batches queued); -w consumers pop batches and free every block.
   So every block is freed by a thread other than the one that allocated it,
   in bursts of 4096, and up to 100 x 4096 blocks wait in the queue.  -n
   batches in all, split among the producers (the original runs for a fixed
   time; a fixed amount of work is what our harness times). */
#include "common.h"
#include <pthread.h>

#define PER_BATCH 4096
#define QUEUE_MAX 100

struct batch {
  struct batch *next;
  void *obj[PER_BATCH];
};

static const size_t sizes[] = {8,   12,  16,  24,  32,  48,   64,   96,  128,
                               192, 256, 384, 512, 768, 1024, 1536, 2048};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nonempty = PTHREAD_COND_INITIALIZER, nonfull = PTHREAD_COND_INITIALIZER;
static struct batch *stack;
static int queued, producers_left;
static long long per_producer;
static int obj_size;

static void *producer(void *arg) {
  uint64_t seed = 0x51ed27ull + (uintptr_t)arg * 0x9e3779b9ull;
  for (long long b = 0; b < per_producer; b++) {
    struct batch *bt = malloc(sizeof *bt);
    if (!bt) die("malloc");
    for (int i = 0; i < PER_BATCH; i++) {
      size_t sz = obj_size > 0 ? (size_t)obj_size : sizes[rng_next(&seed) % (sizeof sizes / sizeof *sizes)];
      unsigned char *p = malloc(sz);
      if (!p) die("malloc");
      memset(p, i & 0xff, sz < 128 ? sz : 128);
      bt->obj[i] = p;
    }
    pthread_mutex_lock(&lock);
    while (queued >= QUEUE_MAX) pthread_cond_wait(&nonfull, &lock);
    bt->next = stack;
    stack = bt;
    queued++;
    pthread_cond_signal(&nonempty);
    pthread_mutex_unlock(&lock);
  }
  pthread_mutex_lock(&lock);
  if (--producers_left == 0) pthread_cond_broadcast(&nonempty);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void *consumer(void *arg) {
  uint64_t sum = 0;
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&lock);
    while (!stack && producers_left > 0) pthread_cond_wait(&nonempty, &lock);
    struct batch *bt = stack;
    if (bt) {
      stack = bt->next;
      queued--;
      pthread_cond_signal(&nonfull);
    }
    pthread_mutex_unlock(&lock);
    if (!bt) break;
    for (int i = 0; i < PER_BATCH; i++) {
      sum += *(unsigned char *)bt->obj[i];
      free(bt->obj[i]);
    }
    free(bt);
  }
  sink += sum;
  return NULL;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "wns", "[-w producers (and as many consumers)] [-n batches] [-s size, 0: mixed]");
  int w = (int)opt_ll(argc, argv, 'w', 1);
  long long n = opt_ll(argc, argv, 'n', 2000);
  obj_size = (int)opt_ll(argc, argv, 's', 64);
  if (w < 1 || w > 64 || n < 0 || obj_size < 0) die("arguments");
  per_producer = n / w;
  producers_left = w;
  pthread_t tid[2 * w];
  for (int i = 0; i < w; i++)
    if (pthread_create(&tid[2 * i], NULL, consumer, NULL) ||
        pthread_create(&tid[2 * i + 1], NULL, producer, (void *)(uintptr_t)i))
      die("pthread_create");
  for (int i = 0; i < 2 * w; i++) pthread_join(tid[i], NULL);
  printf("checksum=%llu\n", (unsigned long long)sink);
  return 0;
}
