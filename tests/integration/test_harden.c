/* SPDX-License-Identifier: MIT */
/*
 * The hardened library (libmelloc-hardened, built with -DMLC_HARDENED=1): each defence
 * catches what it is there to catch.  Like test_errors, the misuses re-execute this
 * program (/proc/self/exe --misuse NAME), which prints the pointer it is about to
 * misuse on stdout; the parent asserts SIGABRT and exactly the line
 * "melloc: <call>(): <what>: pointer 0x<hex>\n" on stderr.  The other cases run in
 * check's forked processes.  Against the default library every case fails.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>

#include "../check_run.h"
#include "../misuse.h"
#include <errno.h>
#include <malloc.h>
#include <melloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

/* More frees of blocks of one size than a thread's quarantine holds (1024 blocks). */
enum { PUSH = 3000 };
static void *push_blocks[PUSH];

static void push_through(size_t size) {
  for (int i = 0; i < PUSH; i++)
    if (!(push_blocks[i] = malloc(size))) _exit(4);
  for (int i = 0; i < PUSH; i++) free(push_blocks[i]);
}

/* ---- The misuses ---- */

static void misuse_overflow_small(void) {
  char *p = malloc(24);
  if (!p) _exit(4);
  report(p);
  memset(hide(p), 'x', 25); /* one byte too many */
  free(p);
}

/* The off-by-one NUL of a string copy: the first canary byte is never zero. */
static void misuse_overflow_nul(void) {
  char *p = malloc(40);
  if (!p) _exit(4);
  memset(p, 'a', 40);
  report(p);
  ((char *)hide(p))[40] = '\0';
  free(p);
}

/* Rewrites the last 16 bytes of the object (a size/check trailer), leaving the byte
   right after the request as it was: the trailer's keyed check catches it. */
static void misuse_overwrite_trailer(void) {
  char *p = malloc(20); /* a 32-byte object: canary 20..23, trailer 24..31 */
  if (!p) _exit(4);
  report(p);
  memset((char *)hide(p) + 24, 0, 8);
  free(p);
}

static void misuse_overflow_realloc(void) {
  char *p = malloc(100);
  if (!p) _exit(4);
  report(p);
  memset(hide(p), 'y', 104);
  if (realloc(p, 5000)) _exit(5);
}

static void misuse_overflow_large(void) {
  char *p = malloc(100000);
  if (!p) _exit(4);
  report(p);
  ((char *)hide(p))[100000] ^= 1; /* a byte of the canary, changed whatever it was */
  free(p);
}

/* A block grown by realloc in place (a page run) or by moving its pages (huge) has its
   canary at its new size. */
static void misuse_overflow_grown(size_t from, size_t to) {
  char *p = malloc(from);
  if (!p) _exit(4);
  for (size_t n = from + 4096; n < to; n += 4096)
    if (!(p = realloc(p, n))) _exit(4);
  if (!(p = realloc(p, to))) _exit(4);
  report(p);
  ((char *)hide(p))[to] ^= 1;
  free(p);
}
static void misuse_overflow_grown_large(void) { misuse_overflow_grown(20000, 200000); }
static void misuse_overflow_grown_huge(void) { misuse_overflow_grown(3 * MiB, 5 * MiB); }

static void misuse_overflow_usable_size(void) {
  char *p = malloc(300);
  if (!p) _exit(4);
  report(p);
  ((char *)hide(p))[300] ^= 1;
  if (malloc_usable_size(p) == 12345) _exit(5);
}

static void misuse_double_free_small(void) {
  void *p = malloc(64);
  if (!p) _exit(4);
  report(p);
  free(p);
  free(hide(p));
}

/* Out of the quarantine and back in the thread cache, still not handed out again. */
static void misuse_double_free_small_late(void) {
  void *p = malloc(64);
  if (!p) _exit(4);
  free(p);
  push_through(200); /* another class: p stays free */
  report(p);
  free(hide(p));
}

static void misuse_double_free_large(void) {
  void *p = malloc(40000);
  if (!p) _exit(4);
  report(p);
  free(p);
  free(hide(p));
}

static void misuse_realloc_freed(void) {
  void *p = malloc(64);
  if (!p) _exit(4);
  report(p);
  free(p);
  if (realloc(hide(p), 10)) _exit(5);
}

/* A write to a freed small block is found by the malloc that would hand it out again:
   push it out of the quarantine with frees of another size (its slab keeps live
   neighbours, so it stays a slab), then it is the cache's next block of its size. */
static void *live_blocks[PUSH];

/* A write after free into a block that has left the quarantine: the malloc that would
   hand the block out again reports it. */
static void misuse_write_after_free(void) {
  char *p = malloc(64);
  if (!p) _exit(4);
  for (int i = 0; i < PUSH; i++)
    if (!(live_blocks[i] = malloc(64))) _exit(4);
  report(p);
  free(p);
  push_through(64); /* p leaves the quarantine, unwritten */
  ((char *)hide(p))[40] = 1;
  for (int i = 0; i < 100000; i++) {
    void *q = malloc(64);
    if (q == p) _exit(6); /* handed out without a word */
  }
  _exit(7);
}

/* ... the same through memalign: its message names memalign. */
static void misuse_write_after_free_memalign(void) {
  char *p = memalign(64, 100);
  if (!p) _exit(4);
  for (int i = 0; i < PUSH; i++)
    if (!(live_blocks[i] = memalign(64, 100))) _exit(4);
  report(p);
  free(p);
  /* p leaves the quarantine, unwritten; the live blocks keep its slab in use. */
  for (int i = 0; i < PUSH; i++)
    if (!(push_blocks[i] = memalign(64, 100))) _exit(4);
  for (int i = 0; i < PUSH; i++) free(push_blocks[i]);
  ((char *)hide(p))[40] = 1;
  for (int i = 0; i < 100000; i++) {
    void *q = memalign(64, 100);
    if (q == p) _exit(6);
  }
  _exit(7);
}

/* ... into a block still in the quarantine, in a program that frees nothing more: an
   allocation's slow path (here the first of a new size) looks at the quarantine. */
static void misuse_write_after_free_quarantined(void) {
  char *p = malloc(64);
  if (!p) _exit(4);
  report(p);
  free(p);
  ((char *)hide(p))[40] = 1;
  for (int i = 0; i < 1000; i++)
    if (!malloc(200)) _exit(4);
  _exit(7);
}

/* ... into the first word (where a free list would be), found when the block leaves the
   quarantine: frees only, so that no allocation looks at it first. */
enum { EVICT = 1100 };
static void *evict_blocks[EVICT];
static void misuse_write_after_free_first_word(void) {
  for (int i = 0; i < EVICT; i++)
    if (!(evict_blocks[i] = malloc(64))) _exit(4);
  long *p = malloc(64);
  if (!p) _exit(4);
  report(p);
  free(p);
  ((long *)hide(p))[0] = 42;
  for (int i = 0; i < EVICT; i++) free(evict_blocks[i]);
  _exit(7);
}

/* ... into a block in the quarantine of a thread that then sleeps without a call to
   the allocator: the collector finds it when it drains the idle quarantine. */
static void misuse_write_after_free_idle(void) {
  if (melloc_option_set("gc_interval_ms", "5") != 0 || melloc_option_set("gc", "true") != 0)
    _exit(4);
  long *p = malloc(64);
  if (!p) _exit(4);
  report(p);
  free(p);
  ((long *)hide(p))[0] = 42;
  for (int i = 0; i < 100; i++) usleep(50000); /* 5 s: 1000 passes */
  _exit(7);
}

#if UINTPTR_MAX > 0xffffffffu
/* A byte before a small block, found at its free (and at realloc): the previous slot's
   trailer.  Not the first object of its slab (a 64 KiB granule), which has no slot
   before it.  64-bit builds only (harden.c: mlc_harden_check_before). */
static char *block_not_first(size_t n) {
  char *p;
  do
    if (!(p = malloc(n))) _exit(4);
  while (((uintptr_t)p & 0xffff) == 0);
  return p;
}

static void misuse_underflow(void) {
  char *p = block_not_first(64);
  report(p);
  ((char *)hide(p))[-1] ^= 1;
  free(p);
  _exit(7);
}

static void misuse_underflow_realloc(void) {
  char *p = block_not_first(1000);
  report(p);
  for (int i = 1; i <= 4; i++) ((char *)hide(p))[-i] ^= (char)0x80;
  p = realloc(p, 2000);
  _exit(p ? 7 : 4);
}
#endif

static void misuse_free_interior(void) {
  char *p = malloc(64);
  if (!p) _exit(4);
  report(p + 16);
  free(hide(p + 16));
}

static void misuse_free_stack(void) {
  char buf[64];
  memset(buf, 1, sizeof(buf));
  report(buf);
  free(hide(buf));
}

struct misuse {
  const char *name;
  void (*fn)(void);
  const char *what;
};

static const struct misuse misuses[] = {
    {"overflow-small", misuse_overflow_small, "free(): heap overflow (canary overwritten)"},
    {"overflow-nul", misuse_overflow_nul, "free(): heap overflow (canary overwritten)"},
    {"overwrite-trailer", misuse_overwrite_trailer, "free(): heap overflow (canary overwritten)"},
    {"overflow-realloc", misuse_overflow_realloc, "realloc(): heap overflow (canary overwritten)"},
    {"overflow-large", misuse_overflow_large, "free(): heap overflow (canary overwritten)"},
    {"overflow-grown-large", misuse_overflow_grown_large, "free(): heap overflow (canary overwritten)"},
    {"overflow-grown-huge", misuse_overflow_grown_huge, "free(): heap overflow (canary overwritten)"},
    {"overflow-usable-size", misuse_overflow_usable_size,
     "malloc_usable_size(): heap overflow (canary overwritten)"},
    {"double-free-small", misuse_double_free_small, "free(): double free"},
    {"double-free-small-late", misuse_double_free_small_late, "free(): double free"},
    {"double-free-large", misuse_double_free_large, "free(): double free"},
    {"realloc-freed", misuse_realloc_freed, "realloc(): block already freed"},
    {"write-after-free", misuse_write_after_free, "malloc(): write after free"},
    {"write-after-free-memalign", misuse_write_after_free_memalign, "memalign(): write after free"},
    {"write-after-free-quarantined", misuse_write_after_free_quarantined,
     "malloc(): write after free (block in quarantine)"},
    {"write-after-free-first-word", misuse_write_after_free_first_word,
     "free(): write after free (block in quarantine)"},
    {"write-after-free-idle", misuse_write_after_free_idle,
     "free(): write after free (block in quarantine)"},
#if UINTPTR_MAX > 0xffffffffu
    {"underflow", misuse_underflow, "free(): heap underflow (the 8 bytes before the block overwritten)"},
    {"underflow-realloc", misuse_underflow_realloc,
     "realloc(): heap underflow (the 8 bytes before the block overwritten)"},
#endif
    {"free-interior", misuse_free_interior, "free(): invalid pointer (not the start of a block)"},
    {"free-stack", misuse_free_stack, "free(): invalid pointer (not allocated by melloc)"},
};
#define NMISUSES ((int)(sizeof(misuses) / sizeof(misuses[0])))

START_TEST(test_misuse_message) {
  const struct misuse *m = &misuses[_i];
  struct child_result res;
  run_child("test_harden", m->name, NULL, &res);
  ck_assert_msg(WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGABRT,
                "%s: child did not abort (status 0x%x), stderr: %s", m->name, res.status, res.err);
  child_pointer(&res, m->name);
  char want[512];
  snprintf(want, sizeof(want), "melloc: %s: pointer %s\n", m->what, res.out);
  ck_assert_msg(strcmp(res.err, want) == 0, "%s: stderr is\n'%s'\nwant\n'%s'", m->name, res.err,
                want);
}
END_TEST

/* ---- In-process ---- */

/* malloc_usable_size is the request, and all of it may be written. */
static const size_t usable_sizes[] = {0,     1,     7,     8,     15,     16,     100,   1000,
                                      8192,  12288, 16375, 16376, 16384, 100000, (3 * MiB) + 1};
START_TEST(test_usable_is_request) {
  size_t n = usable_sizes[_i];
  for (int r = 0; r < 3; r++) {
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(malloc_usable_size(p), n);
    memset(p, 0xee, n);
    char *q = realloc(p, n + 1);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(malloc_usable_size(q), n + 1);
    size_t bad = n; /* one assertion: one per byte of a huge block takes seconds */
    for (size_t i = 0; i < n && bad == n; i++)
      if ((unsigned char)q[i] != 0xee) bad = i;
    ck_assert_msg(bad == n, "size %zu: byte %zu lost by realloc", n, bad);
    /* Grown where it was: the byte at n was the canary's first (never zero), and the
       program must not see it (the secret it is derived from would leak). */
    if (q == p) ck_assert_msg(q[n] == 0, "size %zu: canary byte %#x left in the grown block", n,
                              (unsigned)(unsigned char)q[n]);
    memset(q, 0xdd, n + 1);
    q = realloc(q, n / 2 + 1);
    ck_assert_uint_eq(malloc_usable_size(q), n / 2 + 1);
    free(q);
  }
}
END_TEST

/* Quarantine: a freed block is not handed out by the next allocations of its size
   (the default library hands it out by the very next malloc). */
START_TEST(test_quarantine_delays_reuse) {
  size_t size = (size_t)16 << (_i * 3); /* 16, 128, 1024 bytes */
  void *p = malloc(size);
  ck_assert_ptr_nonnull(p);
  free(p);
  void *v[500];
  for (int i = 0; i < 500; i++) {
    v[i] = malloc(size);
    ck_assert_ptr_ne(v[i], p);
  }
  for (int i = 0; i < 500; i++) free(v[i]);
}
END_TEST

/* Freed memory is zeroed: every small block's first 256 bytes come back zero, after
   many rounds of blocks filled and freed (zero-on-free, checked at allocation; past
   256 bytes a block holds what its last owner left, as harden.c says). */
START_TEST(test_blocks_come_back_zero) {
  enum { N = 2000 };
  static unsigned char *v[N];
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < N; i++) {
      size_t n = 1 + (size_t)(i * 37 + round * 11) % 3000;
      v[i] = malloc(n);
      ck_assert_ptr_nonnull(v[i]);
      for (size_t k = 0; k < n && k < 256; k++)
        ck_assert_msg(v[i][k] == 0, "size %zu byte %zu", n, k);
      memset(v[i], 0xa5, n);
    }
    for (int i = 0; i < N; i++) free(v[i]);
  }
}
END_TEST

/* Randomised slots: consecutive allocations of one size are not at consecutive
   addresses (the default library hands a new slab out in address order). */
START_TEST(test_slots_random) {
  enum { N = 200 };
  char *v[N];
  int sequential = 0;
  for (int i = 0; i < N; i++) v[i] = malloc(48);
  for (int i = 1; i < N; i++) {
    ptrdiff_t d = v[i] - v[i - 1];
    if (d > 0 && d <= 64) sequential++;
  }
  for (int i = 0; i < N; i++) free(v[i]);
  ck_assert_msg(sequential < N / 4, "%d of %d neighbours in address order", sequential, N);
}
END_TEST

/* Guard pages: the page before and the page after a huge block fault. */
START_TEST(test_huge_guard_after) {
  size_t n = 8 * MiB;
  char *p = malloc(n);
  ck_assert_ptr_nonnull(p);
  p[n - 1] = 1; /* the block itself is writable, its canary page too */
  long pg = sysconf(_SC_PAGESIZE);
  size_t end = (n + 9 + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
  ((volatile char *)hide(p))[end] = 1; /* SIGSEGV */
}
END_TEST

START_TEST(test_huge_guard_before) {
  char *p = malloc(8 * MiB);
  ck_assert_ptr_nonnull(p);
  ((volatile char *)hide(p))[-1] = 1; /* SIGSEGV */
}
END_TEST

/* A freed huge block is unmapped, or cached with its first page PROT_NONE: a later read
   there faults. */
START_TEST(test_huge_use_after_free_faults) {
  char *p = malloc(8 * MiB);
  ck_assert_ptr_nonnull(p);
  p[100] = 1;
  free(p);
  (void)((volatile char *)hide(p))[100]; /* SIGSEGV */
}
END_TEST

/* A cached huge mapping handed out again for a smaller block: the upper guard moves
   to the new block's end. */
START_TEST(test_huge_reuse_smaller_guard) {
  char *p = malloc(8 * MiB);
  ck_assert_ptr_nonnull(p);
  free(p);
  size_t n = 5 * MiB;
  char *q = malloc(n);
  ck_assert_ptr_nonnull(q);
  memset(q, 1, n); /* every byte of the new block is writable */
  long pg = sysconf(_SC_PAGESIZE);
  size_t end = (n + 9 + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
  ((volatile char *)hide(q))[end] = 1; /* SIGSEGV */
}
END_TEST

/* ... and then for a larger one again: all of it is writable, its first page too. */
START_TEST(test_huge_reuse_larger_writable) {
  char *p = malloc(8 * MiB);
  ck_assert_ptr_nonnull(p);
  free(p);
  char *q = malloc(5 * MiB);
  ck_assert_ptr_nonnull(q);
  free(q);
  size_t n = 7 * MiB;
  char *r = malloc(n);
  ck_assert_ptr_nonnull(r);
  memset(r, 2, n);
  ck_assert_int_eq(r[0], 2);
  ck_assert_int_eq(r[n - 1], 2);
  free(r);
}
END_TEST

/* A huge block grown by realloc in small steps keeps its bytes and mostly stays where it
   is: its pages grow in place or move (mremap), 4 MiB at a time; the hardened library
   copied it on every step (bench's grow-t4: 170 times glibc's time). */
static char *grow_huge(size_t from, size_t to, size_t step, int *moves) {
  char *p = malloc(from);
  ck_assert_ptr_nonnull(p);
  memset(p, 0x5a, from);
  *moves = 0;
  size_t n = from;
  for (; n + step <= to; n += step) {
    char *q = realloc(p, n + step);
    ck_assert_ptr_nonnull(q);
    if (q != p) ++*moves;
    p = q;
    /* The old bytes (a few: checking every one each step takes seconds), the new ones
       writable. */
    ck_assert_int_eq(p[0], 0x5a);
    ck_assert_int_eq(p[n / 2], 0x5a);
    ck_assert_int_eq(p[n - 1], 0x5a);
    memset(p + n, 0x5a, step);
  }
  ck_assert_uint_eq(malloc_usable_size(p), n);
  size_t bad = n;
  for (size_t i = 0; i < n && bad == n; i++)
    if ((unsigned char)p[i] != 0x5a) bad = i;
  ck_assert_msg(bad == n, "byte %zu of %zu lost by realloc", bad, n);
  return p;
}

START_TEST(test_huge_realloc_grows) {
  int moves;
  char *p = grow_huge(3 * MiB, 12 * MiB, 64 << 10, &moves);
  /* 144 steps; the block moves when it outgrows 4, 8 (and 12) MiB: at most 4 times with
     the first step. */
  ck_assert_msg(moves <= 4, "the block moved %d times in 144 steps", moves);
  free(p);
}
END_TEST

/* ... and the page after it still faults. */
START_TEST(test_huge_realloc_guard_after) {
  int moves;
  size_t n = 6 * MiB + (64 << 10);
  char *p = grow_huge(3 * MiB, n, 64 << 10, &moves);
  long pg = sysconf(_SC_PAGESIZE);
  size_t end = (n + 9 + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
  p[end - 1] = 1; /* the canary's page */
  ((volatile char *)hide(p))[end] = 1; /* SIGSEGV */
}
END_TEST

/* A thread's quarantine is flushed when it ends: its blocks are allocated again
   (by address) once enough other threads have come and gone. */
static void *free_in_thread(void *arg) {
  void **v = arg;
  for (int i = 0; i < 64; i++) free(v[i]);
  return NULL;
}

START_TEST(test_thread_exit_flushes) {
  melloc_stats_t s0, s1;
  void *v[64];
  for (int i = 0; i < 64; i++) v[i] = malloc(1000);
  s0.size = sizeof(s0);
  ck_assert_int_eq(melloc_stats_get(&s0), 0);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, free_in_thread, v), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  s1.size = sizeof(s1);
  ck_assert_int_eq(melloc_stats_get(&s1), 0);
  /* The objects are no longer counted live (most of them: stats are approximate). */
  ck_assert_msg(s1.small_allocated + 32 * 1024 <= s0.small_allocated, "small_allocated %zu -> %zu",
                s0.small_allocated, s1.small_allocated);
}
END_TEST

/* An idle thread's quarantine goes back with its cache: the collector drains it while
   the thread sleeps (it frees and then blocks, without ending), and the blocks are no
   longer counted allocated.  Before the collector runs they still are: the quarantine
   holds them. */
enum { IDLE_BLOCKS = 200 };
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;
static int idle_state; /* 1: the thread freed its blocks; 2: it may end */

static size_t small_allocated(void) {
  melloc_stats_t s;
  s.size = sizeof(s);
  ck_assert_int_eq(melloc_stats_get(&s), 0);
  return s.small_allocated;
}

static void *free_then_sleep(void *arg) {
  void **v = arg;
  for (int i = 0; i < IDLE_BLOCKS; i++) free(v[i]);
  pthread_mutex_lock(&idle_lock);
  idle_state = 1;
  pthread_cond_broadcast(&idle_cond);
  while (idle_state != 2) pthread_cond_wait(&idle_cond, &idle_lock);
  pthread_mutex_unlock(&idle_lock);
  return NULL;
}

START_TEST(test_idle_quarantine_drained) {
  ck_assert_int_eq(melloc_option_set("gc", "false"), 0); /* until the blocks are freed */
  void *v[IDLE_BLOCKS];
  for (int i = 0; i < IDLE_BLOCKS; i++) ck_assert_ptr_nonnull(v[i] = malloc(1000));
  size_t before = small_allocated();
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, free_then_sleep, v), 0);
  pthread_mutex_lock(&idle_lock);
  while (idle_state != 1) pthread_cond_wait(&idle_cond, &idle_lock);
  pthread_mutex_unlock(&idle_lock);
  /* In the quarantine: still allocated for the default allocator. */
  size_t held = small_allocated();
  ck_assert_msg(held + 16 * 1024 > before, "small_allocated %zu -> %zu before any pass", before,
                held);
  ck_assert_int_eq(melloc_option_set("gc_interval_ms", "5"), 0);
  ck_assert_int_eq(melloc_option_set("gc", "true"), 0); /* starts the collector now */
  size_t now = held;
  for (int i = 0; i < 400 && now + 150 * 1024 > before; i++) {
    usleep(10000);
    now = small_allocated();
  }
  ck_assert_msg(now + 150 * 1024 <= before, "small_allocated %zu -> %zu after 4 s of idleness",
                before, now);
  pthread_mutex_lock(&idle_lock);
  idle_state = 2;
  pthread_cond_broadcast(&idle_cond);
  pthread_mutex_unlock(&idle_lock);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
}
END_TEST

static int run_misuse(const char *name) {
  no_core();
  for (int i = 0; i < NMISUSES; i++)
    if (strcmp(misuses[i].name, name) == 0) {
      report_fd = 1;
      misuses[i].fn();
      return 1;
    }
  return 2;
}

static Suite *harden_suite(void) {
  const char *noexec = mlc_check_reexec_refused();
  Suite *s = suite_create("harden");
  TCase *tc = tcase_create("message");
  tcase_set_timeout(tc, 30);
  mlc_tcase_add_loop_test_unless(noexec, tc, test_misuse_message, 0, NMISUSES);
  suite_add_tcase(s, tc);

  tc = tcase_create("layout");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, test_usable_is_request, 0,
                      (int)(sizeof(usable_sizes) / sizeof(usable_sizes[0])));
  tcase_add_loop_test(tc, test_quarantine_delays_reuse, 0, 3);
  tcase_add_test(tc, test_blocks_come_back_zero);
  tcase_add_test(tc, test_slots_random);
  tcase_add_test(tc, test_thread_exit_flushes);
  tcase_add_test(tc, test_idle_quarantine_drained);
  tcase_add_test_raise_signal(tc, test_huge_guard_after, SIGSEGV);
  tcase_add_test_raise_signal(tc, test_huge_guard_before, SIGSEGV);
  tcase_add_test_raise_signal(tc, test_huge_use_after_free_faults, SIGSEGV);
  tcase_add_test_raise_signal(tc, test_huge_reuse_smaller_guard, SIGSEGV);
  tcase_add_test(tc, test_huge_reuse_larger_writable);
  tcase_add_test(tc, test_huge_realloc_grows);
  tcase_add_test_raise_signal(tc, test_huge_realloc_guard_after, SIGSEGV);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--misuse") == 0) return run_misuse(argv[2]);
  SRunner *sr = srunner_create(harden_suite());
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int ran = srunner_ntests_run(sr);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return mlc_check_finish(ran, failed);
}
