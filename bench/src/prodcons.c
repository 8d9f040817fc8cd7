/* SPDX-License-Identifier: MIT */
/* prodcons: blocks allocated on one thread and freed on another.  Each of -p
   pairs has a producer that mallocs blocks (16..512 bytes, log-uniform), writes
   them and pushes them through a lock-free single-producer/single-consumer
   ring, and a consumer that pops, reads and frees them.  The ring costs two
   uncontended atomics per block, so the time is dominated by the allocator's
   remote-free path.  -n is the number of blocks per pair. */
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define RING 1024 /* power of two */
#define LINE 64

struct ring {
  _Alignas(LINE) _Atomic size_t head; /* Written by the consumer only */
  _Alignas(LINE) _Atomic size_t tail; /* Written by the producer only */
  _Alignas(LINE) void *slot[RING];
  long long count;
};

/* Spin briefly, then yield: with more threads than cores a pure spin would
   burn the time slice of the thread it is waiting for. */
static inline void backoff(unsigned *spins) {
  if (++*spins > 64) {
    *spins = 0;
    sched_yield();
  } else {
    __builtin_ia32_pause();
  }
}

static void *producer(void *arg) {
  struct ring *r = arg;
  uint64_t seed = (uintptr_t)r;
  size_t tail = 0;
  for (long long i = 0; i < r->count; i++) {
    size_t sz = rng_log_range(&seed, 16, 512);
    unsigned char *p = malloc(sz);
    if (!p) die("malloc");
    touch(p, sz, (uint64_t)i);
    p[0] = (unsigned char)(sz >> 4); /* lets the consumer find the size */
    p[sz - 1] = 0x5a;
    unsigned spins = 0;
    while (tail - atomic_load_explicit(&r->head, memory_order_acquire) >= RING) backoff(&spins);
    r->slot[tail & (RING - 1)] = p;
    atomic_store_explicit(&r->tail, ++tail, memory_order_release);
  }
  return NULL;
}

static void *consumer(void *arg) {
  struct ring *r = arg;
  size_t head = 0;
  uint64_t sum = 0;
  for (long long i = 0; i < r->count; i++) {
    unsigned spins = 0;
    while (atomic_load_explicit(&r->tail, memory_order_acquire) == head) backoff(&spins);
    unsigned char *p = r->slot[head & (RING - 1)];
    atomic_store_explicit(&r->head, ++head, memory_order_release);
    sum += p[0];
    free(p);
  }
  sink += sum;
  return NULL;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "pn", "[-p pairs] [-n blocks-per-pair]");
  int pairs = (int)opt_ll(argc, argv, 'p', 1);
  long long n = opt_ll(argc, argv, 'n', 4000000);
  if (pairs < 1 || n < 0) die("arguments");

  /* The rings themselves are the only memory not from malloc, so that they
	   do not sit next to the blocks under test. */
  static struct ring rings[64];
  if (pairs > 64) die("pairs > 64");
  pthread_t tid[2 * pairs];
  for (int i = 0; i < pairs; i++) {
    rings[i].count = n;
    if (pthread_create(&tid[2 * i], NULL, consumer, &rings[i]) ||
        pthread_create(&tid[2 * i + 1], NULL, producer, &rings[i]))
      die("pthread_create");
  }
  for (int i = 0; i < 2 * pairs; i++) pthread_join(tid[i], NULL);
  printf("checksum=%llu\n", (unsigned long long)sink);
  return 0;
}
