/* SPDX-License-Identifier: MIT */
/* Statistics and settings through the public API: counts that add up exactly after a
   known sequence of allocations, the extensible struct's size contract, the settings by
   name with their errors, settings that take effect (in child processes run with other
   MELLOC_CONF), the collection entry points, the glibc extensions, and the text and JSON
   output.  main() re-executes the test with MELLOC_CONF=gc:false so that no collector
   moves objects between the caches and the bins while it counts; each test runs in its
   own forked process (check's default), on one thread.  Between two snapshots the tests
   call no check macro: those allocate. */
#define _GNU_SOURCE
#include <check.h>

#include "../check_run.h"
#include "../gc_thread.h"
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <melloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TEST_CONF "gc:false"
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define PAGE_UP(n) (((n) + 4095) & ~(size_t)4095)

/* The documented size classes: 16-byte steps to 128, then four per doubling to 16 KiB
   and a fifth at 9/8 of each power of two from 256 to 8192, the first
   MELLOC_STATS_NCLASSES in classes, the others in classes_more. */
#define NCLASSES 42
static melloc_class_stats_t *cls(melloc_stats_t *st, unsigned i) {
  return i < MELLOC_STATS_NCLASSES ? &st->classes[i] : &st->classes_more[i - MELLOC_STATS_NCLASSES];
}

static melloc_stats_t snap(void) {
  melloc_stats_t st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  if (melloc_stats_get(&st) != 0) abort();
  return st;
}

/* ---- Counts that add up ---- */

enum { NOBJ = 300, NFREED = 110 };
static void *objs[NOBJ];

/* NOBJ objects of class _i's exact size, NFREED of them freed: the class's live count
   grows by NOBJ - NFREED, every other class's stays, and the bytes follow. */
START_TEST(test_class_live) {
  melloc_stats_t a = snap();
  size_t size = cls(&a, _i)->size;
  for (int k = 0; k < NOBJ; k++) objs[k] = malloc(size);
  for (int k = 0; k < NFREED; k++) free(objs[k * 2]);
  melloc_stats_t b = snap();
  for (int k = 0; k < NOBJ; k++)
    if (k >= 2 * NFREED || k % 2) ck_assert_ptr_nonnull(objs[k]);
  ck_assert_uint_gt(size, 0);
  for (unsigned c = 0; c < NCLASSES; c++) {
    uint64_t want = c == (unsigned)_i ? NOBJ - NFREED : 0;
    ck_assert_msg(cls(&b, c)->live - cls(&a, c)->live == want,
                  "class %u (%zu bytes): live %llu -> %llu, want +%llu", c, cls(&b, c)->size,
                  (unsigned long long)cls(&a, c)->live, (unsigned long long)cls(&b, c)->live,
                  (unsigned long long)want);
    ck_assert_uint_eq(cls(&b, c)->size, cls(&a, c)->size);
  }
  ck_assert_uint_eq(b.small_allocated - a.small_allocated, (NOBJ - NFREED) * size);
  ck_assert_uint_eq(b.allocated - a.allocated, (NOBJ - NFREED) * size);
  ck_assert_uint_eq(b.large_allocated, a.large_allocated);
  ck_assert_uint_eq(b.huge_allocated, a.huge_allocated);
  /* Objects leave the bins for the caller or a cache, never vanish. */
  ck_assert_uint_ge(cls(&b, _i)->nmalloc - cls(&a, _i)->nmalloc, NOBJ - NFREED);
  ck_assert_uint_eq(b.allocated, b.small_allocated + b.large_allocated + b.huge_allocated);
  for (int k = 0; k < NOBJ; k++)
    if (k >= 2 * NFREED || k % 2) free(objs[k]);
  melloc_stats_t c = snap();
  ck_assert_uint_eq(cls(&c, _i)->live, cls(&a, _i)->live);
  ck_assert_uint_eq(c.allocated, a.allocated);
}
END_TEST

/* The class sizes are the documented ones: 16-byte steps to 128, then four per doubling,
   and 288, 576, ..., 9216. */
START_TEST(test_class_sizes) {
  melloc_stats_t st = snap();
  ck_assert_uint_eq(st.version, MELLOC_STATS_VERSION);
  ck_assert_uint_eq(st.size, sizeof(st));
  ck_assert_uint_eq(st.classes[0].size, 16);
  ck_assert_uint_eq(st.classes[7].size, 128);
  ck_assert_uint_eq(st.classes[12].size, 288);
  ck_assert_uint_eq(st.classes[MELLOC_STATS_NCLASSES - 1].size, 4096);
  ck_assert_uint_eq(st.classes_more[0].size, 4608);
  ck_assert_uint_eq(st.classes_more[5].size, 9216);
  ck_assert_uint_eq(cls(&st, NCLASSES - 1)->size, 16384);
  for (unsigned c = NCLASSES; c < MELLOC_STATS_NCLASSES + MELLOC_STATS_NCLASSES_MORE; c++)
    ck_assert_uint_eq(cls(&st, c)->size, 0);
  /* The kernel's page size, whatever it is (4, 16, 64 KiB); an ordinary kernel refuses
     nothing melloc asks. */
  ck_assert_uint_eq(st.page_size, (size_t)sysconf(_SC_PAGESIZE));
  ck_assert_uint_eq(st.purges_failed, 0);
  for (unsigned c = 1; c < NCLASSES; c++) {
    ck_assert_uint_gt(cls(&st, c)->size, cls(&st, c - 1)->size);
    /* malloc of the class size is that class, one more byte is the next one */
    void *p = malloc(cls(&st, c - 1)->size + 1);
    ck_assert_uint_eq(melloc_usable_size(p), cls(&st, c)->size);
    free(p);
  }
  /* past the last class: whole pages */
  void *p = malloc(16384 + 1);
  ck_assert_uint_eq(melloc_usable_size(p), 20480);
  free(p);
}
END_TEST

/* Large blocks count whole 4 KiB pages, however they were made. */
START_TEST(test_large_bytes) {
  static const size_t sizes[] = {16385, 32768, 100000, 2 * MiB};
  void *p[4];
  melloc_stats_t a = snap();
  for (int k = 0; k < 4; k++) p[k] = malloc(sizes[k]);
  melloc_stats_t b = snap();
  void *q = malloc(17000);
  void *q2 = realloc(q, 30000); /* grows in place, or moves: 32768 bytes either way */
  melloc_stats_t c = snap();
  void *q3 = realloc(q2, 24000); /* shrinks in place */
  melloc_stats_t d = snap();
  for (int k = 0; k < 4; k++) ck_assert_ptr_nonnull(p[k]);
  ck_assert_ptr_nonnull(q3);
  size_t want = 0;
  for (int k = 0; k < 4; k++) {
    want += PAGE_UP(sizes[k]);
    ck_assert_uint_eq(melloc_usable_size(p[k]), PAGE_UP(sizes[k]));
  }
  ck_assert_uint_eq(b.large_allocated - a.large_allocated, want);
  ck_assert_uint_eq(b.small_allocated, a.small_allocated);
  ck_assert_uint_eq(b.huge_allocated, a.huge_allocated);
  ck_assert_uint_eq(b.allocated - a.allocated, want);
  ck_assert_uint_eq(c.large_allocated - b.large_allocated, 32768);
  ck_assert_uint_eq(d.large_allocated - b.large_allocated, 24576);
  for (int k = 0; k < 4; k++) free(p[k]);
  free(q3);
  melloc_stats_t e = snap();
  ck_assert_uint_eq(e.large_allocated, a.large_allocated);
  ck_assert_uint_eq(e.allocated, a.allocated);
}
END_TEST

/* Huge blocks (above 2 MiB) count their pages, through realloc too: whole kernel pages
   (4, 16 or 64 KiB), which is what their mappings hold. */
static size_t kpages(size_t n) {
  size_t kp = (size_t)sysconf(_SC_PAGESIZE);
  return (n + kp - 1) / kp * kp;
}

START_TEST(test_huge_bytes) {
  melloc_stats_t a = snap();
  void *p = malloc(2 * MiB + 1);
  void *q = malloc(5 * MiB + 100);
  melloc_stats_t b = snap();
  void *r = malloc(3 * MiB);
  void *r2 = realloc(r, 9 * MiB + 1); /* grow */
  melloc_stats_t c = snap();
  void *r3 = realloc(r2, 7 * MiB + 5000); /* shrink */
  melloc_stats_t d = snap();
  ck_assert_ptr_nonnull(p);
  ck_assert_ptr_nonnull(q);
  ck_assert_ptr_nonnull(r3);
  size_t pq = kpages(2 * MiB + 1) + kpages(5 * MiB + 100);
  ck_assert_uint_eq(b.huge_allocated - a.huge_allocated, pq);
  ck_assert_uint_eq(b.large_allocated, a.large_allocated);
  ck_assert_uint_eq(b.allocated - a.allocated, pq);
  ck_assert_uint_ge(b.mapped - a.mapped, pq);
  ck_assert_uint_eq(c.huge_allocated - b.huge_allocated, kpages(9 * MiB + 1));
  ck_assert_uint_eq(d.huge_allocated - b.huge_allocated, kpages(7 * MiB + 5000));
  ck_assert_uint_eq(melloc_usable_size(r3), kpages(7 * MiB + 5000));
  free(p);
  free(q);
  free(r3);
  melloc_stats_t e = snap();
  ck_assert_uint_eq(e.huge_allocated, a.huge_allocated);
  ck_assert_uint_eq(e.allocated, a.allocated);
}
END_TEST

/* A huge block made of cached pages counts every page it holds in mapped: a 5 MiB block
   carved from a freed 12 MiB one keeps the pages to the end of its last 4 MiB, which
   nothing else can use while it lives.  Nothing was mapped or given back, so mapped
   stays as it was (it dropped by those 3 MiB when only the block's size counted). */
START_TEST(test_huge_reuse_mapped) {
  void *p = malloc(12 * MiB);
  ck_assert_ptr_nonnull(p);
  memset(p, 1, 12 * MiB);
  free(p);
  melloc_stats_t a = snap();
  void *q = malloc(5 * MiB);
  ck_assert_ptr_nonnull(q);
  melloc_stats_t b = snap();
  ck_assert_uint_eq(b.huge_allocated - a.huge_allocated, 5 * MiB);
  ck_assert_uint_eq(b.mapped, a.mapped);
  free(q);
  melloc_stats_t c = snap();
  ck_assert_uint_eq(c.huge_allocated, a.huge_allocated);
  ck_assert_uint_eq(c.mapped, a.mapped);
}
END_TEST

static bool all_bytes(const void *p, size_t n, unsigned char v) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != v) return false;
  return true;
}

/* Grows *p from *have bytes to at least to by realloc, 1/64 of its size (plus 16) at a
   time, as a program appends to a buffer, writing v into each new byte; no check
   macro (they allocate). */
static void *grow_by_steps(void *p, size_t *have, size_t to, unsigned char v) {
  size_t sz = *have;
  while (sz < to) {
    size_t ns = sz + sz / 64 + 16;
    p = realloc(p, ns);
    if (!p) abort();
    memset((char *)p + sz, v, ns - sz);
    sz = ns;
  }
  *have = sz;
  return p;
}

/* A thread whose block grown by realloc went past 2 MiB moves its next two grown
   blocks to a huge mapping when they pass 256 KiB (alloc.c, mlc_grow_early), copying
   256 KiB rather than 2 MiB when they too pass 2 MiB; before that, and once those two
   are spent, a grown block stays in its run to 2 MiB.  Each keeps its bytes; one that
   moved early stays in its mapping when it shrinks too. */
START_TEST(test_grow_moves_early) {
  size_t s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  melloc_stats_t a = snap();
  char *p1 = grow_by_steps(NULL, &s1, 1 * MiB, 1);
  melloc_stats_t b = snap();
  size_t s1b = s1;
  p1 = grow_by_steps(p1, &s1, 3 * MiB, 1);
  melloc_stats_t c = snap();
  free(p1);
  char *p2 = grow_by_steps(NULL, &s2, 1 * MiB, 2);
  char *p3 = grow_by_steps(NULL, &s3, 1 * MiB, 3);
  melloc_stats_t d = snap();
  size_t s2d = s2;
  char *p4 = grow_by_steps(NULL, &s4, 1 * MiB, 4);
  melloc_stats_t e = snap();
  char *p3s = realloc(p3, s3 - 100 * KiB); /* shrinks in its mapping */
  melloc_stats_t e2 = snap();
  p2 = grow_by_steps(p2, &s2, 3 * MiB, 2);
  melloc_stats_t f = snap();
  ck_assert_uint_eq(b.huge_allocated, a.huge_allocated); /* in its run */
  ck_assert_uint_eq(b.large_allocated - a.large_allocated, PAGE_UP(s1b));
  ck_assert_uint_eq(c.huge_allocated - a.huge_allocated, kpages(s1));
  ck_assert_uint_eq(c.large_allocated, a.large_allocated);
  ck_assert_uint_eq(d.huge_allocated - a.huge_allocated, kpages(s2d) + kpages(s3)); /* early */
  ck_assert_uint_eq(d.large_allocated, a.large_allocated);
  ck_assert_uint_eq(e.huge_allocated, d.huge_allocated); /* no credit left */
  ck_assert_uint_eq(e.large_allocated - d.large_allocated, PAGE_UP(s4));
  ck_assert_ptr_eq(p3s, p3);
  ck_assert_uint_eq(e2.huge_allocated - a.huge_allocated, kpages(s2d) + kpages(s3 - 100 * KiB));
  s3 -= 100 * KiB;
  ck_assert_uint_eq(f.huge_allocated - a.huge_allocated, kpages(s2) + kpages(s3));
  ck_assert_uint_eq(melloc_usable_size(p3), kpages(s3));
  ck_assert_uint_eq(melloc_usable_size(p4), PAGE_UP(s4));
  ck_assert(all_bytes(p2, s2, 2));
  ck_assert(all_bytes(p3, s3, 3));
  ck_assert(all_bytes(p4, s4, 4));
  free(p2);
  free(p3);
  free(p4);
  melloc_stats_t g = snap();
  ck_assert_uint_eq(g.huge_allocated, a.huge_allocated);
  ck_assert_uint_eq(g.large_allocated, a.large_allocated);
}
END_TEST

/* The run a block grew out of past 2 MiB goes back to the kernel at once (alloc.c):
   with the collector off here, its pages read as not resident right after the move. */
START_TEST(test_grow_out_of_run_purged) {
  size_t s = 0;
  char *p = grow_by_steps(NULL, &s, 2 * MiB - 64 * KiB, 5);
  char *run = p;
  size_t len = PAGE_UP(s);
  char *q = realloc(p, 2 * MiB + 1);
  ck_assert_ptr_nonnull(q);
  ck_assert_ptr_ne(q, run); /* a huge block: a mapping of its own */
  ck_assert(all_bytes(q, s, 5));
  size_t kp = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = ((uintptr_t)run + kp - 1) / kp * kp, b = ((uintptr_t)run + len) / kp * kp;
  ck_assert_uint_gt(b, a);
  unsigned char vec[2 * MiB / 4096];
  ck_assert_int_eq(mincore((void *)a, b - a, vec), 0);
  size_t resident = 0;
  for (size_t i = 0; i < (b - a) / kp; i++) resident += vec[i] & 1;
  ck_assert_uint_eq(resident, 0);
  free(q);
}
END_TEST

/* ---- The extensible struct ---- */

struct padded {
  melloc_stats_t st;
  unsigned char after[64];
};

/* A caller that knows fewer fields gets only those: the rest of its buffer is untouched. */
START_TEST(test_stats_smaller_size) {
  static const size_t sizes[] = {offsetof(melloc_stats_t, narenas),
                                 offsetof(melloc_stats_t, mapped),
                                 offsetof(melloc_stats_t, cached),
                                 offsetof(melloc_stats_t, classes),
                                 offsetof(melloc_stats_t, classes[5]),
                                 offsetof(melloc_stats_t, page_size),
                                 offsetof(melloc_stats_t, prof_samples), /* a version 2 caller */
                                 sizeof(melloc_stats_t) - 1};
  for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    struct padded buf;
    memset(&buf, 0xa5, sizeof(buf));
    buf.st.size = sizes[k];
    ck_assert_int_eq(melloc_stats_get(&buf.st), 0);
    ck_assert_uint_eq(buf.st.size, sizes[k]);
    ck_assert_uint_eq(buf.st.version, MELLOC_STATS_VERSION);
    ck_assert_msg(all_bytes((char *)&buf + sizes[k], sizeof(buf) - sizes[k], 0xa5),
                  "bytes written past size %zu", sizes[k]);
    if (sizes[k] > offsetof(melloc_stats_t, narenas)) ck_assert_uint_ge(buf.st.narenas, 1);
  }
}
END_TEST

/* A caller built against a later, larger struct gets this library's size back. */
START_TEST(test_stats_larger_size) {
  struct padded buf;
  memset(&buf, 0xa5, sizeof(buf));
  buf.st.size = sizeof(buf);
  ck_assert_int_eq(melloc_stats_get(&buf.st), 0);
  ck_assert_uint_eq(buf.st.size, sizeof(melloc_stats_t));
  ck_assert(all_bytes(buf.after, sizeof(buf.after), 0xa5));
  ck_assert_uint_eq(buf.st.classes[MELLOC_STATS_NCLASSES - 1].size, 4096);
  ck_assert_uint_eq(cls(&buf.st, NCLASSES - 1)->size, 16384);
}
END_TEST

START_TEST(test_stats_einval) {
  ck_assert_int_eq(melloc_stats_get(NULL), EINVAL);
  static const size_t tiny[] = {0, 1, sizeof(size_t), offsetof(melloc_stats_t, narenas) - 1};
  for (unsigned k = 0; k < sizeof(tiny) / sizeof(tiny[0]); k++) {
    struct padded buf;
    memset(&buf, 0xa5, sizeof(buf));
    buf.st.size = tiny[k];
    ck_assert_int_eq(melloc_stats_get(&buf.st), EINVAL);
    ck_assert_uint_eq(buf.st.size, tiny[k]);
    ck_assert(all_bytes((char *)&buf + sizeof(size_t), sizeof(buf) - sizeof(size_t), 0xa5));
  }
}
END_TEST

/* ---- Settings by name ---- */

static const char *const keys[] = {"narenas",        "tcache",   "tcache_max",
                                   "tcache_swing",   "gc",       "gc_interval_ms", "decay_ms",
                                   "gc_quiet",       "stats_print",    "stats_format",
                                   "trace"};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static bool is_number(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return false;
  return true;
}

/* Every key reads back, in its kind's syntax, with this process's settings. */
START_TEST(test_option_get_all) {
  char v[64];
  for (unsigned k = 0; k < NKEYS; k++) {
    memset(v, 0, sizeof(v));
    ck_assert_msg(melloc_option_get(keys[k], v, sizeof(v)) == 0, "get %s", keys[k]);
    ck_assert_msg(is_number(v) || !strcmp(v, "true") || !strcmp(v, "false") ||
                      !strcmp(v, "text") || !strcmp(v, "json"),
                  "%s = '%s'", keys[k], v);
  }
  /* The defaults (README, melloc(7)) under MELLOC_CONF=gc:false. */
  static const char *const want[][2] = {
      {"tcache", "true"},   {"tcache_max", "16384"},  {"tcache_swing", "1048576"}, {"gc", "false"},
      {"gc_interval_ms", "1000"}, {"decay_ms", "3000"}, {"gc_quiet", "true"}, {"stats_print", "false"},
      {"stats_format", "text"}};
  for (unsigned k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
    ck_assert_int_eq(melloc_option_get(want[k][0], v, sizeof(v)), 0);
    ck_assert_msg(!strcmp(v, want[k][1]), "%s = '%s', want '%s'", want[k][0], v, want[k][1]);
  }
  /* narenas: the arenas in use, the number the statistics give */
  ck_assert_int_eq(melloc_option_get("narenas", v, sizeof(v)), 0);
  melloc_stats_t st = snap();
  ck_assert_uint_eq(strtoul(v, NULL, 10), st.narenas);
  ck_assert_uint_ge(st.narenas, 1);
}
END_TEST

START_TEST(test_option_errors) {
  char v[64] = "untouched";
  ck_assert_int_eq(melloc_option_get("no_such_option", v, sizeof(v)), ENOENT);
  ck_assert_int_eq(melloc_option_get("", v, sizeof(v)), ENOENT);
  ck_assert_int_eq(melloc_option_get(NULL, v, sizeof(v)), ENOENT);
  ck_assert_int_eq(melloc_option_get("gc:false", v, sizeof(v)), ENOENT);
  ck_assert_int_eq(melloc_option_get("GC", v, sizeof(v)), ENOENT);
  ck_assert_str_eq(v, "untouched");
  ck_assert_int_eq(melloc_option_set("no_such_option", "1"), ENOENT);
  ck_assert_int_eq(melloc_option_set(NULL, "1"), ENOENT);
  /* bad values, runtime keys or not */
  static const char *const bad[][2] = {
      {"gc", "maybe"},           {"gc", ""},           {"gc", "true "},
      {"gc_interval_ms", "0"},   {"gc_interval_ms", "3600001"}, {"gc_interval_ms", "12a"},
      {"gc_interval_ms", "-1"},  {"decay_ms", "3600001"},   {"decay_ms", "99999999999999999999"},
      {"stats_format", "xml"},   {"stats_print", "yes"},    {"trace", "2"},
      {"narenas", "0"},          {"narenas", "257"},        {"tcache_max", "16385"},
      {"tcache_swing", "67108865"}, {"tcache_swing", "-1"},
      {"tcache", "off-ish"}};
  for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
    ck_assert_msg(melloc_option_set(bad[k][0], bad[k][1]) == EINVAL, "set %s '%s'", bad[k][0],
                  bad[k][1]);
  ck_assert_int_eq(melloc_option_set("gc", NULL), EINVAL);
  /* a bad value changed nothing */
  ck_assert_int_eq(melloc_option_get("gc_interval_ms", v, sizeof(v)), 0);
  ck_assert_str_eq(v, "1000");
}
END_TEST

/* Settings fixed at start-up refuse another value, and accept their own. */
START_TEST(test_option_eperm) {
  ck_assert_int_eq(melloc_option_set("tcache", "false"), EPERM);
  ck_assert_int_eq(melloc_option_set("tcache_max", "4096"), EPERM);
  ck_assert_int_eq(melloc_option_set("tcache_max", "0"), EPERM);
  ck_assert_int_eq(melloc_option_set("tcache_swing", "0"), EPERM);
  char v[32];
  ck_assert_int_eq(melloc_option_get("narenas", v, sizeof(v)), 0);
  char other[32];
  snprintf(other, sizeof(other), "%lu", strtoul(v, NULL, 10) % 256 + 1);
  ck_assert_int_eq(melloc_option_set("narenas", other), EPERM);
  ck_assert_int_eq(melloc_option_set("tcache", "true"), 0);
  ck_assert_int_eq(melloc_option_set("tcache", "on"), 0);
  ck_assert_int_eq(melloc_option_set("tcache_max", "16384"), 0);
  ck_assert_int_eq(melloc_option_set("tcache_swing", "1048576"), 0);
  /* unchanged */
  ck_assert_int_eq(melloc_option_get("tcache", v, sizeof(v)), 0);
  ck_assert_str_eq(v, "true");
  ck_assert_int_eq(melloc_option_get("tcache_max", v, sizeof(v)), 0);
  ck_assert_str_eq(v, "16384");
}
END_TEST

/* ERANGE exactly when the value and its NUL do not fit; the buffer is untouched then. */
START_TEST(test_option_erange) {
  char v[16];
  memset(v, 'x', sizeof(v));
  ck_assert_int_eq(melloc_option_get("gc_interval_ms", v, 4), ERANGE); /* "1000" + NUL = 5 */
  ck_assert(all_bytes(v, sizeof(v), 'x'));
  ck_assert_int_eq(melloc_option_get("gc_interval_ms", v, 5), 0);
  ck_assert_str_eq(v, "1000");
  ck_assert_int_eq(melloc_option_get("gc", v, 0), ERANGE);
  ck_assert_int_eq(melloc_option_get("gc", v, 5), ERANGE); /* "false" */
  ck_assert_int_eq(melloc_option_get("gc", v, 6), 0);
  ck_assert_str_eq(v, "false");
  ck_assert_int_eq(melloc_option_get("gc", NULL, 0), ERANGE);
}
END_TEST

static void expect_option(const char *name, const char *want) {
  char v[32];
  ck_assert_int_eq(melloc_option_get(name, v, sizeof(v)), 0);
  ck_assert_msg(!strcmp(v, want), "%s = '%s', want '%s'", name, v, want);
}

/* The runtime settings change and read back in the canonical spelling. */
START_TEST(test_option_set_runtime) {
  ck_assert_int_eq(melloc_option_set("gc_interval_ms", "250"), 0);
  expect_option("gc_interval_ms", "250");
  ck_assert_int_eq(melloc_option_set("gc_interval_ms", "3600000"), 0);
  expect_option("gc_interval_ms", "3600000");
  ck_assert_int_eq(melloc_option_set("decay_ms", "0"), 0);
  expect_option("decay_ms", "0");
  ck_assert_int_eq(melloc_option_set("stats_format", "json"), 0);
  expect_option("stats_format", "json");
  ck_assert_int_eq(melloc_option_set("stats_format", "text"), 0);
  expect_option("stats_format", "text");
  ck_assert_int_eq(melloc_option_set("stats_print", "1"), 0);
  expect_option("stats_print", "true");
  ck_assert_int_eq(melloc_option_set("stats_print", "off"), 0);
  expect_option("stats_print", "false");
  ck_assert_int_eq(melloc_option_set("trace", "false"), 0);
  expect_option("trace", "false");
}
END_TEST

/* ---- Collection ---- */

enum { NCHURN = 20000 };
static void *churn_objs[NCHURN];

/* Frees a lot, leaving this thread's cache full and slabs empty. */
static void churn(void) {
  for (int k = 0; k < NCHURN; k++) churn_objs[k] = malloc(16 + (size_t)(k % 64) * 16);
  for (int k = 0; k < NCHURN; k++) free(churn_objs[k]);
}

START_TEST(test_collect) {
  churn();
  melloc_stats_t a = snap();
  size_t purged = melloc_collect();
  melloc_stats_t b = snap();
  size_t again = melloc_collect();
  ck_assert_uint_gt(a.cached, 0);
  ck_assert_uint_gt(purged, 0);
  ck_assert_uint_eq(b.cached, 0);
  ck_assert_uint_eq(b.allocated, a.allocated);
  ck_assert_uint_eq(b.purged - a.purged, purged);
  ck_assert_uint_eq(b.gc_passes - a.gc_passes, 1);
  /* nothing left to give back */
  ck_assert_uint_eq(again, 0);
}
END_TEST

START_TEST(test_malloc_trim) {
  churn();
  melloc_stats_t a = snap();
  int r = malloc_trim(0);
  melloc_stats_t b = snap();
  int again = malloc_trim(0);
  ck_assert_uint_gt(a.cached, 0);
  ck_assert_int_eq(r, 1);
  ck_assert_uint_eq(b.cached, 0);
  ck_assert_uint_eq(b.allocated, a.allocated);
  ck_assert_uint_gt(b.purged, a.purged);
  ck_assert_int_eq(again, 0); /* nothing left */
}
END_TEST

/* ---- glibc extensions ---- */

START_TEST(test_mallinfo2) {
  void *p[3] = {malloc(100), malloc(50000), malloc(3 * MiB)};
  melloc_stats_t a = snap();
  struct mallinfo2 mi = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* the old one is still a name */
  struct mallinfo m1 = mallinfo();
#pragma GCC diagnostic pop
  ck_assert_ptr_nonnull(p[0]);
  ck_assert_uint_eq(mi.uordblks, a.allocated);
  ck_assert_uint_eq(mi.hblkhd, a.huge_allocated);
  ck_assert_uint_ge(a.huge_allocated, 3 * MiB);
  ck_assert_uint_eq(mi.fsmblks, a.cached);
  ck_assert_uint_eq(mi.uordblks + mi.fordblks, a.mapped);
  ck_assert_int_eq(m1.uordblks, (int)a.allocated);
  for (int k = 0; k < 3; k++) free(p[k]);
  ck_assert_int_eq(mallopt(M_TRIM_THRESHOLD, 1 << 20), 1);
}
END_TEST

/* ---- Output ---- */

static char out[64 * 1024];
static size_t out_len;
static int out_calls;

static void collect_out(void *opaque, const char *text) {
  ck_assert_ptr_eq(opaque, out);
  size_t n = strlen(text);
  if (out_len + n < sizeof(out)) {
    memcpy(out + out_len, text, n + 1);
    out_len += n;
  }
  out_calls++;
}

START_TEST(test_print_text) {
  void *p = malloc(640);
  out_len = 0;
  out[0] = '\0';
  ck_assert_int_eq(melloc_stats_print(collect_out, out, "text"), 0);
  free(p);
  char header[64];
  snprintf(header, sizeof(header), "___ melloc %s statistics ___\n", melloc_version());
  ck_assert_msg(strncmp(out, header, strlen(header)) == 0, "text starts: %.80s", out);
  melloc_stats_t st = snap();
  char line[64];
  snprintf(line, sizeof(line), "\narenas:              %u\n", st.narenas);
  ck_assert_ptr_nonnull(strstr(out, line));
  /* the 640-byte class has a row */
  ck_assert_ptr_nonnull(strstr(out, "\n     640 "));
  ck_assert_uint_eq(out[out_len - 1], '\n');
  /* NULL and "text" are the same format: the same lines (the numbers in them may have
     moved in between: resident bytes, the block freed above) */
  unsigned lines = 0;
  for (size_t i = 0; i < out_len; i++) lines += out[i] == '\n';
  out_len = 0;
  ck_assert_int_eq(melloc_stats_print(collect_out, out, NULL), 0);
  unsigned lines2 = 0;
  for (size_t i = 0; i < out_len; i++) lines2 += out[i] == '\n';
  ck_assert_uint_eq(lines2, lines);
  ck_assert_msg(strncmp(out, header, strlen(header)) == 0, "NULL format starts: %.80s", out);
  ck_assert_ptr_nonnull(strstr(out, line));
  ck_assert_int_eq(melloc_stats_print(collect_out, out, "xml"), EINVAL);
  ck_assert_int_eq(melloc_stats_print(collect_out, out, ""), EINVAL);
}
END_TEST

/* The JSON parses, has every field and every class, and says what melloc_stats_get says. */
START_TEST(test_print_json) {
  void *p = malloc(3000);
  out_len = 0;
  out_calls = 0;
  melloc_stats_t st = snap();
  int r = melloc_stats_print(collect_out, out, "json");
  ck_assert_int_eq(r, 0);
  ck_assert_int_gt(out_calls, 1);
  ck_assert_uint_lt(out_len + 1, sizeof(out));
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "python3 -c '"
           "import json, sys\n"
           "d = json.load(sys.stdin)\n"
           "a = [int(x) for x in sys.argv[1:]]\n"
           "keys = {\"version\", \"stats_version\", \"narenas\", \"mapped\", \"resident\", "
           "\"allocated\", \"small_allocated\", \"large_allocated\", \"huge_allocated\", "
           "\"cached\", \"purged\", \"gc\", \"page_size\", \"refused\", \"prof\", \"classes\"}\n"
           "assert set(d) == keys, set(d) ^ keys\n"
           "assert d[\"version\"] == \"%s\", d[\"version\"]\n"
           "assert set(d[\"gc\"]) == {\"passes\", \"objects_returned\"}\n"
           "assert set(d[\"refused\"]) == {\"purges\", \"purges_failed\", \"membarriers\", "
           "\"remaps\"}\n"
           "assert d[\"prof\"] == {\"samples\": 0, \"bytes\": 0}, d[\"prof\"]\n"
           "c = d[\"classes\"]\n"
           "assert len(c) == %d, len(c)\n"
           "assert all(set(x) == {\"size\", \"nmalloc\", \"nfree\", \"live\", \"slabs\"} for x in c)\n"
           "assert [x[\"size\"] for x in c] == sorted(x[\"size\"] for x in c)\n"
           "assert d[\"small_allocated\"] == sum(x[\"size\"] * x[\"live\"] for x in c)\n"
           "got = [d[\"stats_version\"], d[\"narenas\"], d[\"allocated\"], d[\"small_allocated\"], "
           "d[\"large_allocated\"], d[\"huge_allocated\"], d[\"cached\"], d[\"mapped\"], "
           "c[29][\"size\"], c[29][\"live\"], c[29][\"nmalloc\"], d[\"page_size\"]]\n"
           "assert got == a, (got, a)\n"
           "' %u %u %zu %zu %zu %zu %zu %zu %zu %llu %llu %zu",
           melloc_version(), NCLASSES, st.version, st.narenas, st.allocated, st.small_allocated,
           st.large_allocated, st.huge_allocated, st.cached, st.mapped, st.classes[29].size,
           (unsigned long long)st.classes[29].live, (unsigned long long)st.classes[29].nmalloc,
           st.page_size);
  free(p);
  ck_assert_uint_eq(st.classes[29].size, 3072);
  ck_assert_uint_ge(st.classes[29].live, 1);
  FILE *py = popen(cmd, "w");
  ck_assert_ptr_nonnull(py);
  fwrite(out, 1, out_len, py);
  int status = pclose(py);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "python3 rejected: %.200s", out);
  ck_assert_int_eq(melloc_stats_print(collect_out, out, "JSON"), EINVAL);
}
END_TEST

/* ---- Settings that take effect: child processes with other MELLOC_CONF ---- */

/* 1 when a thread of this process is named melloc-gc. */
static bool gc_thread_exists(void) { return mlc_test_gc_thread() != 0; }

/* Waits up to 5 s for the collector thread to appear. */
static bool gc_thread_appears(void) {
  for (int k = 0; k < 500; k++) {
    if (gc_thread_exists()) return true;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return false;
}

static void *thread_allocates(void *arg) {
  (void)arg;
  churn();
  return NULL;
}

#define CHILD_CHECK(e)                                                \
  do {                                                                \
    if (!(e)) {                                                       \
      fprintf(stderr, "%s:%d: child: failed: %s\n", __FILE__, __LINE__, #e); \
      return 1;                                                       \
    }                                                                 \
  } while (0)

static int child_main(const char *what) {
  char v[32];
  if (!strcmp(what, "tcache-off")) {
    melloc_stats_t a = snap();
    churn();
    melloc_stats_t b = snap();
    CHILD_CHECK(melloc_option_get("tcache", v, sizeof(v)) == 0 && !strcmp(v, "false"));
    CHILD_CHECK(b.cached == 0);
    /* every malloc and free went to the bins, one by one */
    uint64_t m = 0, f = 0;
    for (unsigned c = 0; c < NCLASSES; c++) {
      m += cls(&b, c)->nmalloc - cls(&a, c)->nmalloc;
      f += cls(&b, c)->nfree - cls(&a, c)->nfree;
    }
    CHILD_CHECK(m == NCHURN && f == NCHURN);
    CHILD_CHECK(b.allocated == a.allocated);
    return 0;
  }
  if (!strcmp(what, "narenas-1")) {
    melloc_stats_t st = snap();
    CHILD_CHECK(st.narenas == 1);
    CHILD_CHECK(melloc_option_get("narenas", v, sizeof(v)) == 0 && !strcmp(v, "1"));
    CHILD_CHECK(melloc_option_set("narenas", "1") == 0);
    CHILD_CHECK(melloc_option_set("narenas", "2") == EPERM);
    /* a second thread shares the one arena */
    pthread_t t;
    CHILD_CHECK(pthread_create(&t, NULL, thread_allocates, NULL) == 0);
    pthread_join(t, NULL);
    CHILD_CHECK(snap().narenas == 1);
    return 0;
  }
  if (!strcmp(what, "gc-off")) {
    churn();
    pthread_t t;
    CHILD_CHECK(pthread_create(&t, NULL, thread_allocates, NULL) == 0);
    pthread_join(t, NULL);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHILD_CHECK(!gc_thread_exists());
    CHILD_CHECK(snap().gc_passes == 0);
    /* and turning it on at run time starts it */
    CHILD_CHECK(melloc_option_set("gc", "true") == 0);
    CHILD_CHECK(gc_thread_appears());
    return 0;
  }
  if (!strcmp(what, "gc-on")) {
    /* The control for gc-off: the same work shows the thread when the collector is on. */
    churn();
    CHILD_CHECK(gc_thread_appears());
    return 0;
  }
  fprintf(stderr, "child: unknown '%s'\n", what);
  return 2;
}

/* Runs this program as child WHAT with MELLOC_CONF=CONF; its exit status. */
static int run_child(const char *what, const char *conf) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("MELLOC_CONF", conf, 1);
    execl("/proc/self/exe", "test_stats", "--child", what, (char *)NULL);
    _exit(127);
  }
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(test_tcache_off) { ck_assert_int_eq(run_child("tcache-off", "tcache:false,gc:false"), 0); }
END_TEST
START_TEST(test_narenas_one) { ck_assert_int_eq(run_child("narenas-1", "narenas:1"), 0); }
END_TEST
START_TEST(test_gc_off) { ck_assert_int_eq(run_child("gc-off", "gc:false"), 0); }
END_TEST
START_TEST(test_gc_on) { ck_assert_int_eq(run_child("gc-on", "gc:true"), 0); }
END_TEST
START_TEST(test_child_unknown) { ck_assert_int_eq(run_child("no-such-child", "gc:false"), 2); }
END_TEST

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--child")) return child_main(argv[2]);
  const char *conf = getenv("MELLOC_CONF");
  if (!conf || strcmp(conf, TEST_CONF) != 0) {
    setenv("MELLOC_CONF", TEST_CONF, 1);
    execv("/proc/self/exe", argv);
    mlc_check_reexec_failed(TEST_CONF);
  }
  const char *noexec = mlc_check_reexec_refused();
  Suite *s = suite_create("stats");
  TCase *tc = tcase_create("counts");
  tcase_add_loop_test(tc, test_class_live, 0, NCLASSES);
  tcase_add_test(tc, test_class_sizes);
  tcase_add_test(tc, test_large_bytes);
  tcase_add_test(tc, test_huge_bytes);
  tcase_add_test(tc, test_huge_reuse_mapped);
  tcase_add_test(tc, test_grow_moves_early);
  tcase_add_test(tc, test_grow_out_of_run_purged);
  suite_add_tcase(s, tc);
  tc = tcase_create("struct");
  tcase_add_test(tc, test_stats_smaller_size);
  tcase_add_test(tc, test_stats_larger_size);
  tcase_add_test(tc, test_stats_einval);
  suite_add_tcase(s, tc);
  tc = tcase_create("options");
  tcase_add_test(tc, test_option_get_all);
  tcase_add_test(tc, test_option_errors);
  tcase_add_test(tc, test_option_eperm);
  tcase_add_test(tc, test_option_erange);
  tcase_add_test(tc, test_option_set_runtime);
  suite_add_tcase(s, tc);
  tc = tcase_create("collect");
  tcase_add_test(tc, test_collect);
  tcase_add_test(tc, test_malloc_trim);
  tcase_add_test(tc, test_mallinfo2);
  suite_add_tcase(s, tc);
  tc = tcase_create("output");
  tcase_set_timeout(tc, 30); /* runs python3 */
  tcase_add_test(tc, test_print_text);
  /* Without python3 the check is left out and says so (it used to pass unchecked). */
  mlc_tcase_add_test_unless(system("python3 -c pass 2>/dev/null") != 0 ? "no python3 to parse the JSON" : NULL,
                            tc, test_print_json);
  suite_add_tcase(s, tc);
  tc = tcase_create("settings in effect");
  tcase_set_timeout(tc, 30);
  mlc_tcase_add_test_unless(noexec, tc, test_tcache_off);
  mlc_tcase_add_test_unless(noexec, tc, test_narenas_one);
  mlc_tcase_add_test_unless(noexec, tc, test_gc_off);
  mlc_tcase_add_test_unless(noexec, tc, test_gc_on);
  mlc_tcase_add_test_unless(noexec, tc, test_child_unknown);
  suite_add_tcase(s, tc);
  return mlc_check_run(s);
}
