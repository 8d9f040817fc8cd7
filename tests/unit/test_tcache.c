/* SPDX-License-Identifier: MIT */
#include "unit.h"

#include <pthread.h>

/* A freed object comes back from the cache on the next malloc of its class: LIFO. */
START_TEST(test_lifo) {
  void *p = malloc(64);
  free(p);
  void *q = malloc(64);
  ck_assert_ptr_eq(p, q);
  ck_assert_ptr_nonnull(mlc_tsd.tc);
  ck_assert_int_eq(mlc_tsd.state, MLC_TSD_CACHED);
  free(q);
}
END_TEST

/* The cache never holds more than its capacity: the oldest half goes to the bins. */
START_TEST(test_capacity) {
  unsigned c = (unsigned)_i;
  size_t size = mlc_class_size[c];
  unsigned cap = mlc_class_cap[c];
  unsigned n = cap * 3;
  void **objs = malloc(n * sizeof(void *));
  for (unsigned i = 0; i < n; i++) objs[i] = malloc(size);
  for (unsigned i = 0; i < n; i++) {
    free(objs[i]);
    ck_assert_uint_le(mlc_unit_cached(c), cap);
  }
  ck_assert_uint_ge(mlc_unit_cached(c), cap / 2);
  free(objs);
}
END_TEST

/* A thread that allocates one object takes only a few from the bins (it keeps little
   it does not use); a thread that allocates many takes them in batches that grow, so
   that almost every allocation is a pop from its cache.  Every object is distinct. */
enum { FILL_N = 600 };
static void *fill_objs[FILL_N];
static void *thread_fill(void *arg) {
  uint64_t *out = arg;
  unsigned c = (unsigned)mlc_size_class(64);
  uint64_t before = mlc_unit_outstanding(c);
  fill_objs[0] = malloc(64); /* creates this thread's cache */
  out[0] = mlc_unit_outstanding(c) - before;
  uint64_t slow = mlc_tsd.tc->slow_events;
  for (int i = 1; i < FILL_N; i++) fill_objs[i] = malloc(64);
  out[1] = mlc_tsd.tc->slow_events - slow;
  out[2] = mlc_unit_outstanding(c) - before;
  return NULL;
}

START_TEST(test_fill_grows) {
  unsigned c = (unsigned)mlc_size_class(64);
  pthread_t t;
  uint64_t out[3];
  pthread_create(&t, NULL, thread_fill, out);
  pthread_join(t, NULL);
  ck_assert_uint_ge(out[0], 1);
  ck_assert_uint_le(out[0], mlc_class_cap[c] / 8); /* a first malloc keeps little */
  ck_assert_uint_le(out[1], FILL_N / 20);          /* few slow paths for 600 */
  ck_assert_uint_ge(out[2], FILL_N);               /* every one came from the bins */
  qsort(fill_objs, FILL_N, sizeof(void *), mlc_unit_cmp_ptr);
  for (int i = 0; i < FILL_N; i++) {
    ck_assert_uint_eq(mlc_pagemap_class(fill_objs[i]), c);
    if (i) ck_assert_ptr_ne(fill_objs[i], fill_objs[i - 1]);
  }
  for (int i = 0; i < FILL_N; i++) free(fill_objs[i]);
}
END_TEST

/* A thread that allocates a little has small stacks, in one page; a class grows to its
   full capacity only when it is used that much. */
static void *thread_small_then_big(void *arg) {
  (void)arg;
  size_t *out = malloc(4 * sizeof(size_t));
  mlc_tcache_t *tc = mlc_tsd.tc;
  out[0] = tc->stack_slots;
  out[1] = tc->cap[9];
  void *objs[600];
  for (int i = 0; i < 600; i++) objs[i] = malloc(64);
  for (int i = 0; i < 600; i++) free(objs[i]);
  out[2] = tc->cap[4];
  out[3] = tc->cap[9];
  return out;
}

START_TEST(test_caches_start_small) {
  pthread_t t;
  void *r;
  pthread_create(&t, NULL, thread_small_then_big, NULL);
  pthread_join(t, &r);
  size_t *out = r;
  ck_assert_uint_le(out[0] * sizeof(void *), 4096); /* all the stacks in one page */
  ck_assert_uint_eq(out[2], mlc_class_cap[4]);      /* grown by use */
  ck_assert_uint_eq(out[3], out[1]);                /* an unused class did not grow */
  ck_assert_uint_lt(out[3], mlc_class_cap[9]);
  free(out);
}
END_TEST

/* One-way traffic is bounded by MLC_TCACHE_BATCH_BYTES (8 KiB) or 16 objects: refill
   batches of a thread that only allocates, and the stack of a class a thread only frees.
   A class the thread also allocates grows to its full capacity. */
enum { ONE_WAY_N = 1000 };
static void *one_way_objs[ONE_WAY_N];

static void *thread_only_allocates(void *arg) {
  unsigned c = *(unsigned *)arg;
  size_t worst = 0;
  for (int i = 0; i < ONE_WAY_N; i++) {
    one_way_objs[i] = malloc(mlc_class_size[c]);
    worst = MLC_MAX(worst, mlc_unit_cached(c));
  }
  return (void *)(uintptr_t)worst;
}

static void *thread_only_frees(void *arg) {
  unsigned c = *(unsigned *)arg;
  size_t worst = 0;
  for (int i = 0; i < ONE_WAY_N; i++) {
    free(one_way_objs[i]);
    worst = MLC_MAX(worst, mlc_unit_cached(c));
  }
  size_t cap_free_only = mlc_tsd.tc->cap[c];
  /* Now both ways: the class may grow. */
  for (int i = 0; i < ONE_WAY_N; i++) one_way_objs[i] = malloc(mlc_class_size[c]);
  for (int i = 0; i < ONE_WAY_N; i++) free(one_way_objs[i]);
  size_t *out = malloc(3 * sizeof(size_t));
  out[0] = worst;
  out[1] = cap_free_only;
  out[2] = mlc_tsd.tc->cap[c];
  return out;
}

START_TEST(test_one_way_bounded) {
  unsigned c = mlc_size_class(512);
  unsigned bound = MLC_MAX(16u, 8192u / mlc_class_size[c]);
  ck_assert_uint_lt(bound, mlc_class_cap[c]); /* or the test shows nothing */
  pthread_t t;
  void *r;
  pthread_create(&t, NULL, thread_only_allocates, &c);
  pthread_join(t, &r);
  ck_assert_uint_gt((uintptr_t)r, 0);
  ck_assert_uint_le((uintptr_t)r, bound);
  pthread_create(&t, NULL, thread_only_frees, &c);
  pthread_join(t, &r);
  size_t *out = r;
  ck_assert_uint_gt(out[0], 0);
  ck_assert_uint_le(out[0], bound);
  ck_assert_uint_le(out[1], bound);
  ck_assert_uint_eq(out[2], mlc_class_cap[c]);
  free(out);
}
END_TEST

/* A thread that allocates only large blocks gets a cache for them too. */
static void *thread_large_only(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++) free(malloc(20000));
  size_t np = (20000 + MLC_PAGE - 1) / MLC_PAGE;
  size_t c = mlc_tclass_large(np);
  uintptr_t got = mlc_tsd.tc ? (uintptr_t)(mlc_tsd.tc->empty[c] - *mlc_tc_head(mlc_tsd.tc, c)) : 99;
  return (void *)got;
}

START_TEST(test_large_only_thread_cached) {
  pthread_t t;
  void *r;
  pthread_create(&t, NULL, thread_large_only, NULL);
  pthread_join(t, &r);
  ck_assert_uint_eq((uintptr_t)r, 1);
}
END_TEST

/* A thread that frees more large blocks of a class than the cache starts with keeps
   them, up to the class's bound in bytes (tcache.c: MLC_LCACHE_CLASS_BYTES): 12 blocks
   of 5 pages, where the cache starts with 8 slots; of 16 pages, MLC_LCACHE_CAP. */
static void *thread_large_burst(void *arg) {
  size_t size = *(size_t *)arg;
  void *v[60];
  for (int i = 0; i < 60; i++) v[i] = malloc(size);
  for (int i = 0; i < 60; i++) free(v[i]);
  size_t c = mlc_tclass_large((size + MLC_PAGE - 1) / MLC_PAGE);
  return (void *)(uintptr_t)(mlc_tsd.tc ? mlc_tsd.tc->empty[c] - *mlc_tc_head(mlc_tsd.tc, c) : 99);
}

START_TEST(test_large_cache_grows) {
  static const size_t sizes[] = {MLC_SMALL_MAX + 1, MLC_LCACHE_MAX_PAGES * MLC_PAGE};
  size_t size = sizes[_i], np = (size + MLC_PAGE - 1) / MLC_PAGE;
  size_t bound = MLC_MAX((size_t)MLC_LCACHE_CAP, MLC_LCACHE_CLASS_BYTES / (np * MLC_PAGE));
  pthread_t t;
  void *r;
  pthread_create(&t, NULL, thread_large_burst, &size);
  pthread_join(t, &r);
  /* Full at its bound, then half of it returned, then the last free: bound / 2 + 1 at
     least, bound at most. */
  ck_assert_uint_ge((uintptr_t)r, bound / 2 + 1);
  ck_assert_uint_le((uintptr_t)r, bound);
  if (np == MLC_LCLASS_MIN_PAGES) ck_assert_uint_gt((uintptr_t)r, 8); /* past the first 8 slots */
}
END_TEST

static void *thread_allocs(void *arg) {
  unsigned c = *(unsigned *)arg;
  void *objs[100];
  for (int i = 0; i < 100; i++) objs[i] = malloc(mlc_class_size[c]);
  for (int i = 0; i < 100; i++) free(objs[i]);
  /* The cache holds them all now; exiting must give them back. */
  return (void *)(uintptr_t)mlc_unit_cached(c);
}

/* Thread exit returns the cache to the arenas. */
START_TEST(test_thread_exit_flushes) {
  unsigned c = 7;
  mlc_unit_warm_thread_cache();
  uint64_t before = mlc_unit_outstanding(c);
  pthread_t t;
  void *cached;
  pthread_create(&t, NULL, thread_allocs, &c);
  pthread_join(t, &cached);
  ck_assert_uint_gt((uintptr_t)cached, 0);
  ck_assert_uint_eq(mlc_unit_outstanding(c), before);
}
END_TEST

/* Frees from another thread land in that thread's cache, then in the owning bin. */
static void *thread_frees(void *arg) {
  void **objs = arg;
  for (int i = 0; i < 50; i++) free(objs[i]);
  return NULL;
}

START_TEST(test_remote_free) {
  unsigned c = 9;
  void *warm = malloc(mlc_class_size[c]); /* this thread's cache exists from here */
  free(warm);
  mlc_unit_warm_thread_cache();
  uint64_t before = mlc_unit_outstanding(c);
  size_t cached_before = mlc_unit_cached(c);
  void *objs[50];
  for (int i = 0; i < 50; i++) objs[i] = malloc(mlc_class_size[c]);
  pthread_t t;
  pthread_create(&t, NULL, thread_frees, objs);
  pthread_join(t, NULL);
  /* The 50 went through the other thread's cache and back to their bins at its exit:
     what the bins count as outstanding changed only by what this thread's cache took. */
  ck_assert_uint_eq(mlc_unit_outstanding(c) - before, mlc_unit_cached(c) - cached_before);
}
END_TEST

/* A thread that only frees gets a cache but no arena: the round-robin is for threads
   that allocate (each is given an arena on its first allocation), so a consumer does
   not leave two producers in one arena.  Its first refill chooses one (what it freed
   serves its allocations of those classes without one). */
struct free_only {
  void **objs;
  bool cached, arena_before, arena_after;
  unsigned ind;
};

static void *frees_then_allocates(void *arg) {
  struct free_only *f = arg;
  for (int i = 0; i < 100; i++) free(f->objs[i]);
  f->cached = mlc_tsd.tc != NULL;
  f->arena_before = mlc_tsd.arena != NULL;
  void *p = malloc(1000); /* a class its cache does not hold: a refill */
  f->arena_after = mlc_tsd.arena != NULL;
  f->ind = f->arena_after ? mlc_tsd.arena->ind : 0;
  free(p);
  return NULL;
}

static void *allocates(void *arg) {
  free(malloc(48));
  *(unsigned *)arg = mlc_tsd.arena->ind;
  return NULL;
}

START_TEST(test_free_only_thread_takes_no_arena) {
  void *objs[100];
  for (int i = 0; i < 100; i++) objs[i] = malloc(48);
  unsigned a = 0, b = 0;
  pthread_t t;
  pthread_create(&t, NULL, allocates, &a);
  pthread_join(t, NULL);
  struct free_only f = {objs, false, true, false, 0};
  pthread_create(&t, NULL, frees_then_allocates, &f);
  pthread_join(t, NULL);
  ck_assert(f.cached);        /* 100 frees made it a cache */
  ck_assert(!f.arena_before); /* ... and no arena */
  ck_assert(f.arena_after);   /* its first allocation chose one */
  /* The round-robin went on from the allocating thread before it: the free-only thread
     took its turn only when it allocated (with one arena this says nothing more). */
  ck_assert_uint_eq(f.ind, (a + 1) % mlc_narenas);
  pthread_create(&t, NULL, allocates, &b);
  pthread_join(t, NULL);
  ck_assert_uint_eq(b, (a + 2) % mlc_narenas);
}
END_TEST

/* Swings (tcache.c, "Swings"): a thread that allocates a class's blocks by the hundred
   and frees them by the hundred, round after round, crosses to the bins more than
   mlc_tcache_swing_rate times a millisecond; the class then grows past its capacity,
   within tcache_swing bytes, until the stack holds the swing and a round needs no slow
   path.  Half a second after, the next trip sends every class back to its capacity:
   the newest blocks stay cached, the oldest go to the bins, the other classes' stacks
   are moved intact, and the room goes back to what all threads may hold together. */
/* 200 blocks of 1 KiB: under the 256 a swinging class of 1 KiB may hold, with room for
   what a refill batch leaves. */
enum { SWING_N = 200, SWING_CAP = 256 };
struct swing {
  size_t budget;             /* tcache_swing for the thread */
  bool whole;                /* whether the room it may take holds the whole swing */
  unsigned rounds;           /* rounds until the class grew (or the time ran out) */
  size_t cap, cached, bytes; /* after the rounds: capacity, blocks cached, room counted */
  unsigned long slow;        /* slow paths of one more round */
  size_t cap_end, cached_end, other_before, other_end;
  uint64_t swinging_end;
  bool lifo, others_intact, distinct;
};

static void swing_round(void **objs, size_t size) {
  for (int i = 0; i < SWING_N; i++) {
    objs[i] = malloc(size);
    memset(objs[i], i, 16);
  }
  for (int i = 0; i < SWING_N; i++) free(objs[i]);
}

static void *thread_swings(void *arg) {
  struct swing *o = arg;
  unsigned c = mlc_size_class(1024), c3 = mlc_size_class(64);
  size_t size = mlc_class_size[c];
  void *objs[SWING_N], *others[40], *more[200];
  free(malloc(size)); /* the cache exists from here */
  mlc_tcache_t *tc = mlc_tsd.tc;
  uint64_t t0 = mlc_os_now_ns();
  o->rounds = 0;
  while (tc->cap[c] <= mlc_class_cap[c] && mlc_os_now_ns() - t0 < (o->budget ? 10 : 0.2) * 1e9) {
    swing_round(objs, size);
    o->rounds++;
  }
  /* Room for the whole swing, where the budget allows: no trip from then on. */
  for (int k = 0; k < 100 || (o->whole && tc->cap[c] < SWING_CAP && mlc_os_now_ns() - t0 < 10e9);
       k++)
    swing_round(objs, size);
  o->cap = tc->cap[c];
  o->cached = mlc_unit_cached(c);
  o->bytes = tc->swing_bytes;
  unsigned long ev = tc->slow_events;
  swing_round(objs, size);
  o->slow = tc->slow_events - ev;
  /* 40 blocks of another class wait in the cache; then nothing for longer than the
     hold, and the next trip (a refill of a third class) ends the swing. */
  for (int i = 0; i < 40; i++) others[i] = malloc(64);
  for (int i = 0; i < 40; i++) free(others[i]);
  o->other_before = mlc_unit_cached(c3);
  mlc_os_sleep_ns(600000000);
  for (int i = 0; i < 200; i++) more[i] = malloc(768);
  for (int i = 0; i < 200; i++) free(more[i]);
  o->cap_end = tc->cap[c];
  o->cached_end = mlc_unit_cached(c);
  o->other_end = mlc_unit_cached(c3);
  o->swinging_end = tc->swinging;
  /* The newest blocks of the swing are the ones still cached, newest first. */
  o->lifo = true;
  size_t keep = o->cached_end;
  for (size_t i = 0; i < keep; i++) {
    void *p = malloc(size);
    if (p != objs[SWING_N - 1 - i] || *(unsigned char *)p != (unsigned char)(SWING_N - 1 - i))
      o->lifo = false;
    objs[SWING_N - 1 - i] = p;
  }
  o->others_intact = true;
  for (int i = 39; i >= 0; i--) {
    void *q = malloc(64);
    if (q != others[i]) o->others_intact = false;
    others[i] = q;
  }
  /* The rest came back from the bins: every block distinct. */
  for (size_t i = 0; i < SWING_N - keep; i++) objs[i] = malloc(size);
  qsort(objs, SWING_N, sizeof(void *), mlc_unit_cmp_ptr);
  o->distinct = true;
  for (int i = 1; i < SWING_N; i++)
    if (objs[i] == objs[i - 1] || mlc_pagemap_class(objs[i]) != c) o->distinct = false;
  for (int i = 0; i < SWING_N; i++) free(objs[i]);
  for (int i = 0; i < 40; i++) free(others[i]);
  return NULL;
}

START_TEST(test_swing) {
  /* The thread's room, and what other threads hold already of the 16 times it that all
     threads may hold together: 1 MiB, none; 96 KiB, none; 0; 1 MiB, all but 96 KiB. */
  static const size_t budgets[] = {(size_t)1 << 20, (size_t)96 << 10, 0, (size_t)1 << 20};
  static const size_t others[] = {0, 0, 0, ((size_t)16 << 20) - ((size_t)96 << 10)};
  unsigned c = mlc_size_class(1024);
  size_t base = mlc_class_cap[c], size = mlc_class_size[c];
  struct swing o = {.budget = budgets[_i], .whole = budgets[_i] >= SWING_N * size && !others[_i]};
  mlc_opt.tcache_swing = o.budget;
  mlc_tcache_swing_rate = 1; /* a round a millisecond swings, under emulation too */
  mlc_tcache_swing_total = others[_i];
  /* No collector pass may take from the cache while the thread sleeps (idle). */
  bool gc_ran = mlc_gc_pause();
  pthread_t t;
  pthread_create(&t, NULL, thread_swings, &o);
  pthread_join(t, NULL);
  mlc_gc_resume(gc_ran);
  /* The thread's room went back when its swing ended. */
  ck_assert_uint_eq(mlc_tcache_swing_total, others[_i]);
  if (others[_i]) {
    /* Grown while the room all threads may hold allowed: 64 KiB past 64 KiB, not the
       128 KiB more a second doubling takes. */
    ck_assert_uint_gt(o.cap, base);
    ck_assert_uint_le(o.bytes, (size_t)96 << 10);
    ck_assert_uint_eq(o.bytes, (o.cap - base) * size);
    o.budget = (size_t)96 << 10; /* the checks below as for a thread room of 96 KiB */
  }
  ck_assert_uint_le(o.bytes, o.budget);
  if (o.budget == 0) {
    /* 0.2 s of swings, and the class kept its capacity. */
    ck_assert_uint_ge(o.rounds, 10);
    ck_assert_uint_eq(o.cap, base);
    ck_assert_uint_le(o.cached, base);
    ck_assert_uint_gt(o.slow, SWING_N / 16);
  } else if (o.budget < SWING_N * size) {
    /* Grown as far as the room allows: 96 KiB past 64 KiB. */
    ck_assert_uint_gt(o.cap, base);
    ck_assert_uint_le(o.cap, base + o.budget / size);
    ck_assert_uint_eq(o.bytes, (o.cap - base) * size);
    ck_assert_uint_le(o.cached, o.cap);
  } else {
    /* Grown to hold the swing (to 256 KiB of 1 KiB blocks): a round is all pops and
       pushes, and the stack ends the round holding every block of it. */
    ck_assert_uint_eq(o.cap, SWING_CAP);
    ck_assert_uint_eq(o.bytes, (SWING_CAP - base) * size);
    ck_assert_uint_ge(o.cached, SWING_N);
    ck_assert_uint_le(o.slow, 2);
  }
  ck_assert_uint_eq(o.cap_end, base);
  ck_assert_uint_eq(o.swinging_end, 0);
  ck_assert_uint_le(o.cached_end, base);
  ck_assert_uint_ge(o.cached_end, MLC_MIN(base, o.cached) / 2);
  ck_assert_uint_ge(o.other_before, 40);
  ck_assert_uint_eq(o.other_end, o.other_before);
  ck_assert(o.lifo);
  ck_assert(o.others_intact);
  ck_assert(o.distinct);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tcache");
  TCase *tc = tcase_create("cache");
  tcase_add_test(tc, test_lifo);
  tcase_add_loop_test(tc, test_capacity, 1, MLC_NCLASSES);
  tcase_add_test(tc, test_fill_grows);
  tcase_add_test(tc, test_caches_start_small);
  tcase_add_test(tc, test_one_way_bounded);
  tcase_add_test(tc, test_large_only_thread_cached);
  tcase_add_loop_test(tc, test_large_cache_grows, 0, 2);
  tcase_add_test(tc, test_thread_exit_flushes);
  tcase_add_test(tc, test_remote_free);
  tcase_add_test(tc, test_free_only_thread_takes_no_arena);
  tcase_add_loop_test(tc, test_swing, 0, 4);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
