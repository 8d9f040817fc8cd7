/* SPDX-License-Identifier: MIT */
/* Multithreaded stress through the prefixed API (so it also runs under ThreadSanitizer,
   which replaces the standard names): mixed sizes, cross-thread frees through a shared
   exchange, realloc, batches built and torn down, every block stamped and verified before
   it is freed, thread churn.
   Usage: stress_mt [threads] [seconds] [largest size] */
#include <melloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SLOTS = 256, XCHG = 1024 };

typedef struct {
  unsigned char *p;
  size_t n;
  unsigned tag;
} block_t;

static block_t xchg[XCHG];
static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;
static int stop; /* Atomic */
static unsigned long errors, ops; /* Atomic */

static uint32_t rnd(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void stamp(block_t *b) {
  for (size_t i = 0; i < b->n; i++) b->p[i] = (unsigned char)(i * 13 + b->tag);
}

static void verify(const block_t *b) {
  for (size_t i = 0; i < b->n; i++)
    if (b->p[i] != (unsigned char)(i * 13 + b->tag)) {
      __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
      return;
    }
}

static size_t big_max = 3000000; /* largest size drawn, from the command line */

static size_t pick(uint32_t *s) {
  uint32_t r = rnd(s) % 1000;
  if (r < 800) return rnd(s) % 512;
  if (r < 990 || big_max <= 16384) return 512 + rnd(s) % 16000;
  return 16384 + rnd(s) % big_max;
}

/* A batch built and torn down: BURST blocks of one size, stamped, then verified and
   freed newest first (a class that swings through the thread cache: tcache.c,
   "Swings"). */
enum { BURST = 200 };
static void burst(uint32_t *s) {
  block_t b[BURST];
  size_t n = 64 + rnd(s) % 960;
  for (unsigned k = 0; k < BURST; k++) {
    b[k] = (block_t){melloc_malloc(n), n, rnd(s)};
    if (b[k].p) stamp(&b[k]);
  }
  for (unsigned k = BURST; k-- > 0;)
    if (b[k].p) {
      verify(&b[k]);
      melloc_free(b[k].p);
    }
}

static void *worker(void *arg) {
  uint32_t s = (uint32_t)(uintptr_t)arg * 7919u + 13;
  block_t mine[SLOTS];
  memset(mine, 0, sizeof(mine));
  unsigned long n = 0;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    if (rnd(&s) % 256 == 0) {
      burst(&s);
      n += 2 * BURST;
    }
    unsigned i = rnd(&s) % SLOTS;
    if (mine[i].p) {
      verify(&mine[i]);
      if (rnd(&s) % 3 == 0) {
        unsigned e = rnd(&s) % XCHG;
        pthread_mutex_lock(&xlock);
        block_t t = xchg[e];
        xchg[e] = mine[i];
        pthread_mutex_unlock(&xlock);
        mine[i] = t;
        if (!mine[i].p) continue;
        verify(&mine[i]);
      }
      if (rnd(&s) % 8 == 0) {
        size_t nn = pick(&s);
        unsigned char *q = melloc_realloc(mine[i].p, nn ? nn : 1);
        if (q) {
          size_t keep = mine[i].n < nn ? mine[i].n : nn;
          for (size_t k = 0; k < keep; k++)
            if (q[k] != (unsigned char)(k * 13 + mine[i].tag)) {
              __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
              break;
            }
          mine[i].p = q;
          mine[i].n = nn;
          stamp(&mine[i]);
          n++;
          continue;
        }
      }
      melloc_free(mine[i].p);
      mine[i].p = NULL;
    }
    block_t b = {NULL, pick(&s), rnd(&s)};
    b.p = rnd(&s) % 10 == 0 ? melloc_calloc(1, b.n) : melloc_malloc(b.n);
    if (!b.p) continue;
    stamp(&b);
    mine[i] = b;
    n++;
  }
  for (unsigned i = 0; i < SLOTS; i++)
    if (mine[i].p) {
      verify(&mine[i]);
      melloc_free(mine[i].p);
    }
  __atomic_fetch_add(&ops, n, __ATOMIC_RELAXED);
  return NULL;
}

static void *short_lived(void *arg) {
  (void)arg;
  void *p[16];
  for (int i = 0; i < 16; i++) p[i] = melloc_malloc((size_t)i * 100 + 1);
  for (int i = 0; i < 16; i++) melloc_free(p[i]);
  return NULL;
}

static void *churner(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, NULL) == 0) pthread_join(t, NULL);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int nthreads = argc > 1 ? atoi(argv[1]) : 8;
  int seconds = argc > 2 ? atoi(argv[2]) : 10;
  if (argc > 3) big_max = (size_t)atol(argv[3]);
  if (nthreads < 1) nthreads = 1;
  pthread_t *t = melloc_malloc(sizeof(pthread_t) * (size_t)(nthreads + 1));
  for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
  pthread_create(&t[nthreads], NULL, churner, NULL);
  struct timespec ts = {seconds, 0};
  nanosleep(&ts, NULL);
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i <= nthreads; i++) pthread_join(t[i], NULL);
  for (unsigned e = 0; e < XCHG; e++)
    if (xchg[e].p) {
      verify(&xchg[e]);
      melloc_free(xchg[e].p);
    }
  melloc_free(t);
  printf("stress_mt: %d threads, %d s, %lu operations, %lu corrupted blocks\n", nthreads, seconds,
         ops, errors);
  return errors ? 1 : 0;
}
