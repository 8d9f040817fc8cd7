/* SPDX-License-Identifier: MIT */
/* The collector's policy, driven pass by pass with an injected clock (the background
   collector is off in this process, see main). */
#include "unit.h"

#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

enum { CLS = 4, NOBJ = 200 };

static sem_t go, done;
static sem_t lgo, ldone; /* for the tests with a thread of their own */
static int command; /* 1: burst of malloc/free, 2: exit */
static mlc_tcache_t *worker_tc;

/* Fills the calling thread's cache with NOBJ objects of CLS (freed in the order they
   were allocated) and publishes the cache in worker_tc. */
static void fill_own_cache(void) {
  void *objs[NOBJ];
  for (int i = 0; i < NOBJ; i++) objs[i] = malloc(mlc_class_size[CLS]);
  for (int i = 0; i < NOBJ; i++) free(objs[i]);
  worker_tc = mlc_tsd.tc;
}

static void *worker(void *arg) {
  (void)arg;
  fill_own_cache();
  sem_post(&done);
  for (;;) {
    sem_wait(&go);
    if (command == 2) break;
    for (int i = 0; i < 10; i++) {
      void *p = malloc(mlc_class_size[CLS]);
      free(p);
    }
    sem_post(&done);
  }
  sem_post(&done);
  return NULL;
}

static size_t cached(mlc_tcache_t *tc) {
  return (size_t)(tc->empty[CLS] - mlc_load(&tc->b->head[CLS]));
}

static void burst(void) {
  command = 1;
  sem_post(&go);
  sem_wait(&done);
}

/* Starts fn(arg) on a thread that posts *ready once its cache is filled and then
   waits on *go_sem for each command. */
static pthread_t start_thread(sem_t *go_sem, sem_t *ready, void *(*fn)(void *), void *arg) {
  pthread_t t;
  sem_init(go_sem, 0, 0);
  sem_init(ready, 0, 0);
  pthread_create(&t, NULL, fn, arg);
  sem_wait(ready);
  return t;
}

static pthread_t start_worker(void) { return start_thread(&go, &done, worker, NULL); }

static void stop_worker(pthread_t t) {
  command = 2;
  sem_post(&go);
  pthread_join(t, NULL);
}

/* The tests with a thread of their own use lgo and ldone. */
static pthread_t start_own_worker(void *(*fn)(void *), void *arg) {
  return start_thread(&lgo, &ldone, fn, arg);
}

/* Objects of class c in every thread's cache. */
static uint64_t all_cached(unsigned c) {
  uint64_t cached_all[MLC_NCLASSES];
  mlc_tcache_cached_objects(cached_all);
  return cached_all[c];
}

/* Objects of class c in callers' hands: handed out by the bins and in no cache. */
static uint64_t in_use(unsigned c) { return mlc_unit_outstanding(c) - all_cached(c); }

/* An idle cache goes back to the bins a piece per pass, the pieces growing, until only
   the object at head is left (the collector never takes that one, see gc.c): a short
   pause costs its owner little, a long one gives everything back within a few
   passes.  What leaves the cache is free in the bins at once. */
START_TEST(test_idle_sequence) {
  pthread_t t = start_worker();
  mlc_tcache_t *tc = worker_tc;
  size_t n = cached(tc);
  ck_assert_uint_ge(n, NOBJ / 2);
  uint64_t now = mlc_os_now_ns();
  /* First pass: the owner was active since the cache was made; nothing taken. */
  mlc_gc_pass_at(now, false);
  ck_assert_uint_eq(cached(tc), n);
  size_t last_taken = 0;
  for (unsigned k = 1; k <= 4; k++) {
    uint64_t out = mlc_unit_outstanding(CLS), in_caches = all_cached(CLS);
    mlc_gc_pass_at(now += 1000000000u, false);
    size_t taken = n - cached(tc);
    ck_assert_uint_gt(taken, 0);
    ck_assert_uint_ge(taken, last_taken);
    if (k == 1) ck_assert_uint_le(taken, n / 4); /* one idle pass: a small piece */
    /* (this thread's cache may give some back too) */
    ck_assert_uint_eq(out - mlc_unit_outstanding(CLS), in_caches - all_cached(CLS));
    ck_assert_uint_ge(out - mlc_unit_outstanding(CLS), taken);
    last_taken = taken;
    n -= taken;
  }
  ck_assert_uint_eq(cached(tc), 1);
  stop_worker(t);
}
END_TEST

/* After the collector has taken the oldest objects of a stack, a thread that then only
   frees that class (no refill restarts the stack) still has the whole capacity. */
static void *frees_only_worker(void *arg) {
  void **objs = arg;
  fill_own_cache();
  sem_post(&ldone);
  sem_wait(&lgo);
  for (int i = 0; i < NOBJ; i++) free(objs[i]);
  sem_post(&ldone);
  sem_wait(&lgo);
  return NULL;
}

START_TEST(test_frees_after_collection_keep_capacity) {
  void *objs[NOBJ];
  for (int i = 0; i < NOBJ; i++) objs[i] = malloc(mlc_class_size[CLS]);
  pthread_t t = start_own_worker(frees_only_worker, objs);
  mlc_tcache_t *tc = worker_tc;
  uint64_t now = mlc_os_now_ns();
  for (int k = 0; k < 6; k++) mlc_gc_pass_at(now += 1000000000u, false);
  ck_assert_uint_eq(cached(tc), 1);
  ck_assert_uint_ge(tc->cap[CLS], NOBJ + 1);
  sem_post(&lgo);
  sem_wait(&ldone);
  ck_assert_uint_eq(cached(tc), NOBJ + 1);
  sem_post(&lgo);
  pthread_join(t, NULL);
}
END_TEST

/* Freed large blocks sit on cache stacks of their own and go back to their arenas
   the same way: pieces on idle passes, all but the one at head in the end; the owner
   then takes the rest of its cache back and allocates on. */
enum { LNOBJ = 6, LSIZE = 20000 };

static void *large_worker(void *arg) {
  (void)arg;
  void *objs[LNOBJ];
  for (int i = 0; i < LNOBJ; i++) objs[i] = malloc(LSIZE);
  for (int i = 0; i < LNOBJ; i++) free(objs[i]);
  worker_tc = mlc_tsd.tc;
  sem_post(&ldone);
  sem_wait(&lgo);
  for (int i = 0; i < LNOBJ; i++) objs[i] = malloc(LSIZE);
  for (int i = 0; i < LNOBJ; i++) {
    ck_assert_ptr_nonnull(objs[i]);
    memset(objs[i], i, LSIZE);
  }
  for (int i = 0; i < LNOBJ; i++) free(objs[i]);
  sem_post(&ldone);
  return NULL;
}

START_TEST(test_idle_large_blocks) {
  size_t np = (LSIZE + MLC_PAGE - 1) / MLC_PAGE, block = np * MLC_PAGE;
  pthread_t t = start_own_worker(large_worker, NULL);
  ck_assert_ptr_nonnull(worker_tc);
  ck_assert_uint_eq(mlc_tcache_cached_large_bytes(), LNOBJ * block);
  uint64_t now = mlc_os_now_ns();
  mlc_gc_pass_at(now, false); /* the owner was active: nothing taken */
  ck_assert_uint_eq(mlc_tcache_cached_large_bytes(), LNOBJ * block);
  /* Each idle pass gives some back, and the arenas have it at once. */
  size_t n = LNOBJ;
  for (unsigned k = 1; k <= 4 && n > 1; k++) {
    size_t large_before = 0, large_after = 0, mapped;
    for (unsigned i = 0; i < mlc_narenas; i++) {
      size_t l;
      mlc_arena_stats(mlc_arenas[i], &l, &mapped);
      large_before += l;
    }
    mlc_gc_pass_at(now += 1000000000u, false);
    size_t left = mlc_tcache_cached_large_bytes() / block;
    ck_assert_uint_lt(left, n);
    for (unsigned i = 0; i < mlc_narenas; i++) {
      size_t l;
      mlc_arena_stats(mlc_arenas[i], &l, &mapped);
      large_after += l;
    }
    ck_assert_uint_eq(large_before - large_after, (n - left) * block);
    n = left;
  }
  /* All but the block at head, within four idle passes. */
  ck_assert_uint_eq(mlc_tcache_cached_large_bytes(), block);
  sem_post(&lgo);
  sem_wait(&ldone);
  pthread_join(t, NULL);
}
END_TEST

/* A cache whose owner keeps using it is left alone. */
START_TEST(test_busy_untouched) {
  pthread_t t = start_worker();
  mlc_tcache_t *tc = worker_tc;
  size_t n = cached(tc);
  uint64_t now = mlc_os_now_ns();
  for (int i = 0; i < 5; i++) {
    burst();
    mlc_gc_pass_at(now += 1000000000u, false);
    ck_assert_uint_eq(cached(tc), n);
    ck_assert_uint_eq(tc->gc_idle_passes, 0);
  }
  stop_worker(t);
}
END_TEST

/* Idle, idle, busy, idle: the sequence restarts at 1/8 when the owner comes back. */
START_TEST(test_busy_again_restarts) {
  pthread_t t = start_worker();
  mlc_tcache_t *tc = worker_tc;
  uint64_t now = mlc_os_now_ns();
  mlc_gc_pass_at(now += 1000000000u, false);
  size_t n = cached(tc);
  mlc_gc_pass_at(now += 1000000000u, false);
  size_t first = n - cached(tc);
  mlc_gc_pass_at(now += 1000000000u, false);
  size_t second = n - first - cached(tc);
  ck_assert_uint_gt(first, 0);
  ck_assert_uint_gt(second, first); /* the pieces grow while the owner stays away */
  burst();
  mlc_gc_pass_at(now += 1000000000u, false);
  size_t after_busy = cached(tc);
  /* Busy again: the pass takes at most what the owner did not touch. */
  ck_assert_uint_le(after_busy, n - first - second);
  ck_assert_uint_gt(after_busy, 1);
  mlc_gc_pass_at(now += 1000000000u, false);
  /* Idle again: a small first piece again, not the larger one of the old sequence. */
  size_t again = after_busy - cached(tc);
  ck_assert_uint_gt(again, 0);
  ck_assert_uint_le(again, MLC_MAX(first, (after_busy + 3) / 4));
  ck_assert_uint_lt(cached(tc), after_busy);
  stop_worker(t);
}
END_TEST

/* The objects the collector takes are exactly the oldest ones (those freed first):
   the cache keeps the newest, in their order.  The owner then gets every object it
   asks for, none twice, none still in its cache. */
static void *owner_objs[NOBJ];
static void *oldest_worker(void *arg) {
  (void)arg;
  fill_own_cache();
  sem_post(&ldone);
  sem_wait(&lgo);
  for (int i = 0; i < NOBJ; i++) owner_objs[i] = malloc(mlc_class_size[CLS]);
  sem_post(&ldone);
  sem_wait(&lgo);
  for (int i = 0; i < NOBJ; i++) free(owner_objs[i]);
  return NULL;
}

START_TEST(test_owner_after_collection) {
  pthread_t t = start_own_worker(oldest_worker, NULL);
  mlc_tcache_t *tc = worker_tc;
  /* The stack, newest first: the objects freed last are at head. */
  size_t n = cached(tc);
  void *stack[1024];
  ck_assert_uint_le(n, 1024);
  memcpy(stack, tc->b->head[CLS], n * sizeof(void *));
  uint64_t now = mlc_os_now_ns();
  for (int i = 0; i < 3; i++) mlc_gc_pass_at(now += 1000000000u, false);
  size_t left = cached(tc);
  ck_assert_uint_lt(left, n);
  ck_assert_uint_gt(left, 1);
  /* What is left is the newest `left` objects, in order: the oldest were taken. */
  for (size_t i = 0; i < left; i++) ck_assert_ptr_eq(tc->b->head[CLS][i], stack[i]);
  sem_post(&lgo);
  sem_wait(&ldone);
  /* The owner's next NOBJ allocations: its newest objects first, then from the bins;
     all distinct, all of the class, none still cached. */
  for (size_t i = 0; i < left; i++) ck_assert_ptr_eq(owner_objs[i], stack[i]);
  void *sorted[NOBJ];
  memcpy(sorted, owner_objs, sizeof(sorted));
  qsort(sorted, NOBJ, sizeof(void *), mlc_unit_cmp_ptr);
  for (int i = 0; i < NOBJ; i++) {
    ck_assert_uint_eq(mlc_pagemap_class(sorted[i]), CLS);
    if (i) ck_assert_ptr_ne(sorted[i], sorted[i - 1]);
    for (void **q = tc->b->head[CLS]; q < tc->empty[CLS]; q++) ck_assert_ptr_ne(*q, sorted[i]);
  }
  sem_post(&lgo);
  pthread_join(t, NULL);
}
END_TEST

/* Many idle threads: once their caches are emptied they are parked, and a pass visits
   only the caches that may have something to return. */
enum { MANY = 40 };
static sem_t many_go[MANY], many_done;
static mlc_tcache_t *many_tc[MANY];
static void *many_worker(void *arg) {
  int i = (int)(intptr_t)arg;
  void *objs[50];
  for (int round = 0; round < 2; round++) {
    for (int k = 0; k < 50; k++) objs[k] = malloc(32 + (size_t)(k % 4) * 16);
    for (int k = 0; k < 50; k++) free(objs[k]);
    many_tc[i] = mlc_tsd.tc;
    sem_post(&many_done);
    sem_wait(&many_go[i]);
  }
  return NULL;
}

START_TEST(test_idle_caches_parked) {
  pthread_t t[MANY];
  sem_init(&many_done, 0, 0);
  for (int i = 0; i < MANY; i++) {
    sem_init(&many_go[i], 0, 0);
    pthread_create(&t[i], NULL, many_worker, (void *)(intptr_t)i);
  }
  for (int i = 0; i < MANY; i++) sem_wait(&many_done);
  uint64_t now = mlc_os_now_ns();
  mlc_gc_pass_at(now += 1000000000u, false);
  ck_assert_uint_ge(mlc_gc_caches_visited, MANY);
  for (int k = 0; k < 6; k++) mlc_gc_pass_at(now += 1000000000u, false);
  /* All 40 idle caches are parked: a pass no longer visits them. */
  for (int i = 0; i < MANY; i++) ck_assert(many_tc[i]->parked);
  mlc_gc_pass_at(now += 1000000000u, false);
  uint64_t base = mlc_gc_caches_visited;
  ck_assert_uint_le(base, 2); /* this thread's and check's own, at most */
  /* One owner comes back: its cache is live again, the others stay parked. */
  sem_post(&many_go[7]);
  sem_wait(&many_done);
  ck_assert(!many_tc[7]->parked);
  for (int i = 0; i < MANY; i++)
    if (i != 7) ck_assert(many_tc[i]->parked);
  mlc_gc_pass_at(now += 1000000000u, false);
  ck_assert_uint_ge(mlc_gc_caches_visited, base + 1);
  ck_assert_uint_le(mlc_gc_caches_visited, base + 2);
  for (int i = 0; i < MANY; i++) sem_post(&many_go[i]);
  for (int i = 0; i < MANY; i++)
    if (i != 7) sem_wait(&many_done);
  for (int i = 0; i < MANY; i++) sem_post(&many_go[i]);
  for (int i = 0; i < MANY; i++) pthread_join(t[i], NULL);
}
END_TEST

/* Pages: freed memory stays until the decay delay passes on the clock, then goes. */
START_TEST(test_decay_clock) {
  mlc_boot();
  void *keep = malloc(200000);
  char *p = malloc(400000);
  memset(p, 1, 400000);
  free(p);
  uint64_t now = mlc_os_now_ns();
  uint64_t decay = mlc_opt.decay_ms * 1000000u;
  size_t early = mlc_gc_pass_at(now, false);
  ck_assert_uint_eq(early, 0);
  size_t late = mlc_gc_pass_at(now + decay + 1, false);
  /* Whole kernel pages go back: with 16 or 64 KiB pages, the two at the block's ends
     may be shared with pages in use. */
  size_t kp = MLC_MAX(mlc_os_page_size(), MLC_PAGE);
  ck_assert_uint_ge(late, 400000 / MLC_PAGE * MLC_PAGE - 2 * (kp - MLC_PAGE));
  free(keep);
}
END_TEST

/* The probe a quarter interval after a busy pass: with no cache used since, a full
   collection (what was freed before the pass goes back, decay_ms or not); with
   gc_quiet:false, set after the pass (as melloc_option_set may while the collector
   waits for its probe), nothing -- decay_ms holds in every pass. */
START_TEST(test_probe_follows_gc_quiet) {
  mlc_boot();
  size_t kp = MLC_MAX(mlc_os_page_size(), MLC_PAGE);
  size_t want = 400000 / MLC_PAGE * MLC_PAGE - 2 * (kp - MLC_PAGE);
  void *keep = malloc(200000);
  for (int round = 0; round < 2; round++) {
    char *p = malloc(400000);
    memset(p, 1, 400000);
    free(malloc(48)); /* this thread's cache moves: the pass below is a busy one */
    free(p);
    uint64_t now = mlc_os_now_ns();
    /* No check between the pass and the probe: its asserts allocate (a used cache). */
    size_t passed = mlc_gc_pass_at(now, false);
    int set = mlc_option_set("gc_quiet", round ? "true" : "false");
    size_t probed = mlc_gc_probe_at(now + 1000);
    ck_assert_uint_eq(passed, 0); /* busy: decay_ms holds */
    ck_assert_int_eq(set, 0);
    if (round)
      ck_assert_uint_ge(probed, want);
    else
      ck_assert_uint_eq(probed, 0);
  }
  free(keep);
}
END_TEST

/* A thread that exits while passes run in a loop on another thread. */
static void *short_lived(void *arg) {
  (void)arg;
  void *objs[64];
  for (int i = 0; i < 64; i++) objs[i] = malloc(48);
  for (int i = 0; i < 64; i++) free(objs[i]);
  return NULL;
}

static volatile int stop_passes;
static void *passes(void *arg) {
  (void)arg;
  uint64_t now = mlc_os_now_ns();
  while (!stop_passes) mlc_gc_pass_at(now += 1000000u, false);
  return NULL;
}

/* Every object of the exiting threads goes back to the bins exactly once, whether the
   collector or the exiting thread returns it: none is lost, none returned twice (which
   would show as fewer objects in use than before). */
START_TEST(test_exit_during_passes) {
  unsigned c = (unsigned)mlc_size_class(48);
  mlc_boot();
  uint64_t before = in_use(c);
  uint64_t passes_before = mlc_load(&mlc_gc_passes);
  pthread_t g;
  stop_passes = 0;
  pthread_create(&g, NULL, passes, NULL);
  for (int i = 0; i < 300; i++) {
    pthread_t t;
    pthread_create(&t, NULL, short_lived, NULL);
    pthread_join(t, NULL);
  }
  stop_passes = 1;
  pthread_join(g, NULL);
  ck_assert_uint_gt(mlc_load(&mlc_gc_passes), passes_before); /* they did overlap */
  ck_assert_uint_eq(in_use(c), before);
}
END_TEST

int main(int argc, char **argv) {
  (void)argc;
  if (!getenv("MELLOC_CONF")) {
    setenv("MELLOC_CONF", "gc:false", 1);
    execv("/proc/self/exe", argv);
    mlc_check_reexec_failed("gc:false");
  }
  Suite *s = suite_create("gc");
  TCase *tc = tcase_create("policy");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_idle_sequence);
  tcase_add_test(tc, test_idle_large_blocks);
  tcase_add_test(tc, test_frees_after_collection_keep_capacity);
  tcase_add_test(tc, test_busy_untouched);
  tcase_add_test(tc, test_busy_again_restarts);
  tcase_add_test(tc, test_owner_after_collection);
  tcase_add_test(tc, test_idle_caches_parked);
  tcase_add_test(tc, test_decay_clock);
  tcase_add_test(tc, test_probe_follows_gc_quiet);
  tcase_add_test(tc, test_exit_during_passes);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
