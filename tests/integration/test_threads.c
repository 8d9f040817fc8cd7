/* SPDX-License-Identifier: MIT */
/* Threads through the public API: mixed sizes with cross-thread frees and stamped
   contents, thread churn without memory growth, fork while other threads allocate. */
#define _GNU_SOURCE
#include <check.h>

#include "../check_run.h"
#include "../rss.h"
#include <malloc.h>
#include <melloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t rss_kb(void) { return mlc_test_rss_kb(); }

static uint32_t xorshift(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* Every block carries a pattern derived from its size and a tag that travels with it
   (through realloc and from thread to thread): two live blocks that overlap, or a block
   handed out twice, show up as a wrong pattern. */
static unsigned tag_of(size_t n) { return (unsigned)(n * 7); }
static void stamp_tag(unsigned char *p, size_t n, unsigned tag) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + tag + (i >> 8));
}
static int check_tag(const unsigned char *p, size_t n, unsigned tag) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(i * 31 + tag + (i >> 8))) return 0;
  return 1;
}
static void stamp(unsigned char *p, size_t n) { stamp_tag(p, n, tag_of(n)); }
static int check_stamp(const unsigned char *p, size_t n) { return check_tag(p, n, tag_of(n)); }

enum { NTHREADS = 8, SLOTS = 512, ROUNDS = 25000 };

typedef struct {
  unsigned char *p;
  size_t n;
  unsigned tag;
} block_t;

/* A shared exchange: threads swap blocks through it, so most frees are remote. */
static block_t exchange[NTHREADS * 64];
static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;
static int corrupt;

static size_t pick_size(uint32_t *s) {
  uint32_t r = xorshift(s) % 1000;
  if (r < 700) return 1 + xorshift(s) % 256;
  if (r < 950) return 257 + xorshift(s) % 8000;
  if (r < 995) return 8193 + xorshift(s) % 200000;
  return 2100000 + xorshift(s) % 1000000; /* huge */
}

static void *mixed_worker(void *arg) {
  uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
  block_t mine[SLOTS];
  memset(mine, 0, sizeof(mine));
  for (int r = 0; r < ROUNDS; r++) {
    unsigned i = xorshift(&seed) % SLOTS;
    if (mine[i].p) {
      if (!check_tag(mine[i].p, mine[i].n, mine[i].tag)) __atomic_store_n(&corrupt, 1, __ATOMIC_RELAXED);
      if (xorshift(&seed) % 4 == 0) {
        /* Hand it to the exchange and take whatever was there. */
        unsigned e = xorshift(&seed) % (NTHREADS * 64);
        pthread_mutex_lock(&exchange_lock);
        block_t t = exchange[e];
        exchange[e] = mine[i];
        pthread_mutex_unlock(&exchange_lock);
        mine[i] = t;
        if (mine[i].p && !check_tag(mine[i].p, mine[i].n, mine[i].tag))
          __atomic_store_n(&corrupt, 1, __ATOMIC_RELAXED);
      }
      free(mine[i].p);
      mine[i].p = NULL;
    }
    size_t n = pick_size(&seed);
    if (xorshift(&seed) % 16 == 0 && mine[i].p == NULL) {
      unsigned char *q = malloc(n / 2 + 1);
      if (!q) continue;
      stamp(q, n / 2 + 1);
      unsigned char *g = realloc(q, n);
      if (!g) {
        free(q);
        continue;
      }
      if (!check_stamp(g, n / 2 + 1)) __atomic_store_n(&corrupt, 1, __ATOMIC_RELAXED);
      mine[i].p = g;
      mine[i].n = n;
      mine[i].tag = xorshift(&seed);
      stamp_tag(g, n, mine[i].tag);
      continue;
    } else {
      mine[i].p = malloc(n);
    }
    if (!mine[i].p) continue;
    mine[i].n = n;
    mine[i].tag = xorshift(&seed);
    stamp_tag(mine[i].p, n, mine[i].tag);
  }
  for (unsigned i = 0; i < SLOTS; i++)
    if (mine[i].p) {
      if (!check_tag(mine[i].p, mine[i].n, mine[i].tag)) __atomic_store_n(&corrupt, 1, __ATOMIC_RELAXED);
      free(mine[i].p);
    }
  return NULL;
}

START_TEST(test_mixed_cross_thread) {
  pthread_t t[NTHREADS];
  corrupt = 0;
  for (int i = 0; i < NTHREADS; i++) pthread_create(&t[i], NULL, mixed_worker, (void *)(uintptr_t)(i + 1));
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  for (unsigned e = 0; e < NTHREADS * 64; e++)
    if (exchange[e].p) {
      ck_assert(check_tag(exchange[e].p, exchange[e].n, exchange[e].tag));
      free(exchange[e].p);
      exchange[e].p = NULL;
    }
  ck_assert_int_eq(corrupt, 0);
}
END_TEST

/* Producer/consumer: every free is remote. */
enum { QN = 1024, PC_ITEMS = 200000 };
static void *queue[QN];
static unsigned qhead, qtail; /* Atomic */

static void *producer(void *arg) {
  (void)arg;
  for (unsigned i = 0; i < PC_ITEMS; i++) {
    size_t n = 16 + (i % 48) * 16;
    unsigned char *p = malloc(n);
    stamp(p, n);
    while (__atomic_load_n(&qtail, __ATOMIC_ACQUIRE) - __atomic_load_n(&qhead, __ATOMIC_ACQUIRE) == QN)
      sched_yield();
    queue[qtail % QN] = p;
    __atomic_store_n(&qtail, qtail + 1, __ATOMIC_RELEASE);
  }
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  int bad = 0;
  for (unsigned i = 0; i < PC_ITEMS; i++) {
    while (__atomic_load_n(&qhead, __ATOMIC_ACQUIRE) == __atomic_load_n(&qtail, __ATOMIC_ACQUIRE))
      sched_yield();
    unsigned char *p = queue[qhead % QN];
    size_t n = 16 + (i % 48) * 16;
    if (!check_stamp(p, n)) bad = 1;
    free(p);
    __atomic_store_n(&qhead, qhead + 1, __ATOMIC_RELEASE);
  }
  return (void *)(uintptr_t)bad;
}

START_TEST(test_producer_consumer) {
  pthread_t p, c;
  void *bad;
  qhead = qtail = 0;
  size_t before = rss_kb();
  pthread_create(&p, NULL, producer, NULL);
  pthread_create(&c, NULL, consumer, NULL);
  pthread_join(p, NULL);
  pthread_join(c, &bad);
  ck_assert_ptr_null(bad);
  /* Remote frees went back to their bins: memory did not grow with the item count. */
  ck_assert_uint_lt(rss_kb(), before + 64 * 1024);
}
END_TEST

/* 20,000 short-lived threads: caches are recycled, memory does not grow. */
static void *short_thread(void *arg) {
  void *p[32];
  for (int i = 0; i < 32; i++) p[i] = malloc(16 + (size_t)(uintptr_t)arg % 2000);
  for (int i = 0; i < 32; i++) free(p[i]);
  return NULL;
}

static void *nothing(void *arg) { return arg; }

START_TEST(test_thread_churn) {
  size_t rss_after_warmup = 0;
  for (int i = 0; i < 20000; i++) {
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, short_thread, (void *)(uintptr_t)i), 0);
    pthread_join(t, NULL);
    if (i == 1000) rss_after_warmup = rss_kb();
  }
  ck_assert_uint_lt(rss_kb(), rss_after_warmup + 4096);
}
END_TEST

/* fork() while other threads allocate: the child can allocate at once, from any class,
   and exits cleanly. */
static volatile int stop_bg;
/* Huge blocks (2-30 MiB) allocated, grown, shrunk and freed by 4 threads at once: the
   free ranges are carved, merged and grown by one thread while others map, unmap and
   look up theirs.  Each block's first, middle and last bytes are checked before it
   changes.  (A shrink or a move that unmapped pages before clearing their page-map
   entries let another thread's new block there lose its entries: "invalid pointer".) */
#define HUGE_SLOTS 6
static void *huge_worker(void *arg) {
  const size_t mib = (size_t)1 << 20, span = sizeof(void *) > 4 ? 28 * mib : 10 * mib;
  uint64_t s = (uintptr_t)arg * 7919 + 1;
  char *b[HUGE_SLOTS] = {0};
  size_t n[HUGE_SLOTS] = {0};
  for (int it = 0; it < 1500; it++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    int k = (int)((s >> 33) % HUGE_SLOTS);
    size_t sz = 2 * mib + 1 + (size_t)((s >> 13) % span);
    if (b[k]) {
      if (b[k][0] != (char)k || b[k][n[k] / 2] != (char)(k + 2) || b[k][n[k] - 1] != (char)(k + 1))
        return (void *)"a huge block's bytes changed";
      if ((s >> 40) & 1) {
        free(b[k]);
        b[k] = NULL;
        continue;
      }
      char *q = realloc(b[k], sz);
      if (!q) return (void *)"realloc of a huge block failed";
      if (q[0] != (char)k) return (void *)"realloc lost a huge block's first byte";
      b[k] = q;
    } else if (!(b[k] = malloc(sz))) {
      return (void *)"malloc of a huge block failed";
    }
    n[k] = sz;
    if (malloc_usable_size(b[k]) < sz) return (void *)"usable size below the request";
    b[k][0] = (char)k;
    b[k][sz / 2] = (char)(k + 2);
    b[k][sz - 1] = (char)(k + 1);
  }
  for (int k = 0; k < HUGE_SLOTS; k++) free(b[k]);
  return NULL;
}

START_TEST(test_huge_threads) {
  pthread_t t[4];
  for (long i = 0; i < 4; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, huge_worker, (void *)i), 0);
  for (int i = 0; i < 4; i++) {
    void *why;
    ck_assert_int_eq(pthread_join(t[i], &why), 0);
    ck_assert_msg(why == NULL, "thread %d: %s", i, why ? (const char *)why : "");
  }
}
END_TEST

static void *background(void *arg) {
  uint32_t seed = (uint32_t)(uintptr_t)arg;
  while (!stop_bg) {
    void *p = malloc(pick_size(&seed) % 100000 + 1);
    free(p);
  }
  return NULL;
}

START_TEST(test_fork_while_allocating) {
  pthread_t t[4];
  stop_bg = 0;
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, background, (void *)(uintptr_t)(i + 7));
  for (int k = 0; k < 50; k++) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
      uint32_t seed = 99;
      for (int i = 0; i < 2000; i++) {
        size_t n = pick_size(&seed);
        unsigned char *p = malloc(n);
        if (!p) _exit(2);
        stamp(p, n);
        if (!check_stamp(p, n)) _exit(3);
        free(p);
      }
      pthread_t c;
      if (pthread_create(&c, NULL, short_thread, NULL) != 0) _exit(4);
      pthread_join(c, NULL);
      _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
  }
  stop_bg = 1;
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
}
END_TEST

/* Why resident memory cannot show the allocator's growth over many threads here, or
   NULL: threads that never allocate, created and joined one after another, already
   grow it.  Natively they do not: glibc reuses the first one's stack (and its DTV, so
   that pthread_create does not allocate either).  qemu-user keeps memory of its own
   for every thread it has run (about 3 KiB on s390x, 45 KiB on ppc64el, 280 KiB on
   arm64), where test_thread_churn allows 0.2 KiB. */
static const char *rss_grows_per_thread(void) {
  static char why[200];
  enum { WARM = 8, N = 200 };
  pthread_t t;
  size_t before = 0;
  for (int i = 0; i < WARM + N; i++) {
    if (i == WARM) {
      rss_kb(); /* its own first allocations */
      before = rss_kb();
    }
    if (pthread_create(&t, NULL, nothing, NULL) != 0) return "cannot create a thread";
    pthread_join(t, NULL);
  }
  size_t after = rss_kb();
  if (after < before + 128) return NULL;
  snprintf(why, sizeof(why),
           "%d threads that do not allocate grew resident memory by %zu KiB (an emulator's "
           "own, as qemu-user's): it cannot measure the allocator's growth",
           N, after - before);
  return why;
}

int main(void) {
  const char *rss_useless = rss_grows_per_thread();
  Suite *s = suite_create("threads");
  TCase *tc = tcase_create("threads");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_mixed_cross_thread);
  tcase_add_test(tc, test_producer_consumer);
  mlc_tcase_add_test_unless(rss_useless, tc, test_thread_churn);
  tcase_add_test(tc, test_fork_while_allocating);
  tcase_add_test(tc, test_huge_threads);
  suite_add_tcase(s, tc);
  return mlc_check_run(s);
}
