/* SPDX-License-Identifier: MIT */
/*
 * The public API as a program sees it: the melloc_* names and the standard names that
 * libmelloc replaces for the whole process.  Sizes across the three tiers (small slabs,
 * large runs, huge mappings), alignments, zeroing, realloc, the error returns and errno.
 * Heap misuse (aborts) is tested in test_errors.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>

#include "../check_run.h"
#include "../rss.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <melloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* 1 in test_api_hardened, the same tests linked against libmelloc-hardened.so.0. */
#ifndef MELLOC_TEST_HARDENED
#define MELLOC_TEST_HARDENED 0
#endif

/* C23 names that older headers do not declare. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define PAGE ((size_t)4096)
#define SMALL_MAX ((size_t)16384)
#define LARGE_MAX ((size_t)2 << 20)
/* Freed huge blocks above this size are unmapped at once rather than cached. */
#define HUGE_UNMAPPED_SIZE (100 * MiB)

/* Hide a value from the compiler so that it neither folds the call nor warns about a
   size it can see is impossible or a pointer it can see was freed. */
static void *hide(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}
static size_t hide_size(size_t n) {
  __asm__ volatile("" : "+r"(n));
  return n;
}

/* A byte pattern that differs between blocks (seed) and along a block, so that a block
   overwritten by a neighbour or by another block's copy is noticed. */
static unsigned char pattern(unsigned seed, size_t i) {
  return (unsigned char)((seed * 131u) ^ (unsigned)(i * 7u) ^ (unsigned)(i >> 9) ^ 0x5au);
}

static void fill(void *p, size_t n, unsigned seed) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++) b[i] = pattern(seed, i);
}

/* The first index in [0, n) whose byte is not the pattern, or n. */
static size_t check_fill(const void *p, size_t n, unsigned seed) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != pattern(seed, i)) return i;
  return n;
}

/* For blocks of many MiB: the first and last byte of every page in the first 16 MiB
   and of every 16th page after.  The positions depend on the offset only, so a block
   filled at one size can be checked at any smaller size. */
static int sparse_page(size_t page) { return page < 4096 || page % 16 == 0; }

static void fill_sparse(void *p, size_t n, unsigned seed) {
  unsigned char *b = p;
  for (size_t pg = 0; pg * PAGE < n; pg++) {
    if (!sparse_page(pg)) continue;
    size_t i = pg * PAGE, last = i + PAGE - 1;
    b[i] = pattern(seed, i);
    if (last < n) b[last] = pattern(seed, last);
  }
}

static size_t check_sparse(const void *p, size_t n, unsigned seed) {
  const unsigned char *b = p;
  for (size_t pg = 0; pg * PAGE < n; pg++) {
    if (!sparse_page(pg)) continue;
    size_t i = pg * PAGE, last = i + PAGE - 1;
    if (b[i] != pattern(seed, i)) return i;
    if (last < n && b[last] != pattern(seed, last)) return last;
  }
  return n;
}

/* Every byte up to 4 MiB, sampled above. */
#define FULL_FILL_MAX (4 * MiB)

static void fill_any(void *p, size_t n, unsigned seed) {
  if (n <= FULL_FILL_MAX)
    fill(p, n, seed);
  else
    fill_sparse(p, n, seed);
}

/* Checks the first n bytes of a block that fill_any filled with filled bytes. */
static size_t check_any(const void *p, size_t n, size_t filled, unsigned seed) {
  return filled <= FULL_FILL_MAX ? check_fill(p, n, seed) : check_sparse(p, n, seed);
}

static int is_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

/* Whether any page of [p, p + n) is still mapped: mincore fails with ENOMEM on a range
   that holds unmapped pages. */
static int is_unmapped(void *p, size_t n) {
  unsigned char vec[64];
  uintptr_t a = (uintptr_t)p & ~(PAGE - 1);
  for (size_t off = 0; off < n; off += 64 * PAGE) {
    size_t len = n - off < 64 * PAGE ? n - off : 64 * PAGE;
    if (mincore((void *)(a + off), len, vec) == 0) return 0;
    if (errno != ENOMEM) return 0;
  }
  return 1;
}

#if !MELLOC_TEST_HARDENED
/* How many of the pages of [p, p + n) are resident (mincore), -1 if one is unmapped. */
static long resident_pages(void *p, size_t n) {
  unsigned char vec[256];
  uintptr_t a = (uintptr_t)p & ~(PAGE - 1);
  long count = 0;
  for (size_t off = 0; off < n; off += 256 * PAGE) {
    size_t len = n - off < 256 * PAGE ? n - off : 256 * PAGE;
    if (mincore((void *)(a + off), len, vec) != 0) return -1;
    for (size_t i = 0; i < (len + PAGE - 1) / PAGE; i++) count += vec[i] & 1;
  }
  return count;
}
#endif

/* ---- Version ---- */

START_TEST(test_version) {
  const char *v = melloc_version();
  ck_assert_ptr_nonnull(v);
  ck_assert_str_eq(v, MELLOC_VERSION_STRING);
  int major = -1, minor = -1, patch = -1, used = 0;
  ck_assert_int_eq(sscanf(v, "%d.%d.%d%n", &major, &minor, &patch, &used), 3);
  ck_assert_uint_eq((size_t)used, strlen(v));
  ck_assert_int_eq(major, MELLOC_VERSION_MAJOR);
  ck_assert_int_eq(minor, MELLOC_VERSION_MINOR);
  ck_assert_int_eq(patch, MELLOC_VERSION_PATCH);
  ck_assert_int_eq(melloc_version_number(), MELLOC_VERSION_NUMBER);
  ck_assert_int_eq(melloc_version_number(), major * 10000 + minor * 100 + patch);
}
END_TEST

struct text_s {
  char buf[4096];
  size_t len;
};

static void text_append(void *opaque, const char *piece) {
  struct text_s *t = opaque;
  size_t n = strlen(piece);
  if (n > sizeof(t->buf) - 1 - t->len) n = sizeof(t->buf) - 1 - t->len;
  memcpy(t->buf + t->len, piece, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

/* The program runs on the library its build linked: the hardened one says so in its
   statistics header, and (when linked dynamically) is the file of that soname. */
START_TEST(test_library_identity) {
  static struct text_s text;
  const char *header = MELLOC_TEST_HARDENED
                           ? "___ melloc " MELLOC_VERSION_STRING " hardened statistics ___\n"
                           : "___ melloc " MELLOC_VERSION_STRING " statistics ___\n";
  ck_assert_int_eq(melloc_stats_print(text_append, &text, "text"), 0);
  ck_assert_msg(strncmp(text.buf, header, strlen(header)) == 0, "statistics start with '%.60s'",
                text.buf);

  Dl_info info;
  ck_assert_int_ne(dladdr((void *)melloc_malloc, &info), 0);
  ck_assert_ptr_nonnull(info.dli_fname);
  const char *file = strrchr(info.dli_fname, '/');
  file = file ? file + 1 : info.dli_fname;
  /* Linked statically (configure --disable-shared), melloc_malloc is the program's own. */
  if (strncmp(file, "libmelloc", 9) == 0)
    ck_assert_str_eq(file, MELLOC_TEST_HARDENED ? "libmelloc-hardened.so.0" : "libmelloc.so.0");
}
END_TEST

/* ---- Basics ---- */

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
  return x < y ? -1 : x > y;
}

/* malloc(0) (and calloc of zero bytes) returns distinct pointers that can be freed. */
START_TEST(test_malloc_zero_unique) {
  enum { N = 600 };
  static void *p[N];
  for (int i = 0; i < N; i++) {
    switch (i % 5) {
      case 0: p[i] = malloc(0); break;
      case 1: p[i] = melloc_malloc(0); break;
      case 2: p[i] = calloc(0, 0); break;
      case 3: p[i] = calloc(0, 32); break;
      default: p[i] = realloc(NULL, 0); break;
    }
    ck_assert_msg(p[i] != NULL, "zero-byte allocation %d returned NULL", i);
  }
  qsort(p, N, sizeof(p[0]), cmp_ptr);
  for (int i = 1; i < N; i++) ck_assert_msg(p[i] != p[i - 1], "pointer %p returned twice", p[i]);
  for (int i = 0; i < N; i++) free(p[i]);
}
END_TEST

/* free(NULL) and its variants do nothing: errno untouched, the heap still works. */
START_TEST(test_free_null) {
  errno = EXDEV;
  free(NULL);
  melloc_free(NULL);
  free_sized(NULL, 0);
  free_sized(NULL, 100);
  melloc_free_sized(NULL, 100);
  free_aligned_sized(NULL, 64, 128);
  ck_assert_int_eq(errno, EXDEV);
  char *p = malloc(100);
  ck_assert_ptr_nonnull(p);
  fill(p, 100, 1);
  ck_assert_uint_eq(check_fill(p, 100, 1), 100);
  free(p);
}
END_TEST

/* realloc(NULL, n) is malloc(n), for every tier. */
START_TEST(test_realloc_null_is_malloc) {
  static const size_t sizes[] = {0, 1, 100, 5000, SMALL_MAX, 100000, LARGE_MAX, 3 * MiB};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t n = sizes[i];
    char *p = realloc(NULL, n);
    ck_assert_msg(p != NULL, "realloc(NULL, %zu) returned NULL", n);
    ck_assert_uint_ge(malloc_usable_size(p), n);
    fill(p, n, (unsigned)i);
    ck_assert_uint_eq(check_fill(p, n, (unsigned)i), n);
    char *q = melloc_realloc(NULL, n);
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_ne(p, q);
    ck_assert_uint_ge(melloc_usable_size(q), n);
    free(q);
    free(p);
  }
}
END_TEST

/* The melloc_* names and the standard names are one allocator: blocks pass freely
   between them. */
START_TEST(test_prefixed_and_standard_interoperate) {
  static const size_t sizes[] = {24, 3000, 70000, 5 * MiB};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t n = sizes[i];
    char *a = melloc_malloc(n);
    char *b = malloc(n);
    char *c = melloc_calloc(1, n);
    ck_assert(a && b && c);
    ck_assert(is_zero(c, n));
    ck_assert_uint_eq(melloc_usable_size(a), malloc_usable_size(a));
    ck_assert_uint_eq(melloc_usable_size(b), malloc_usable_size(b));
    ck_assert_uint_ge(melloc_usable_size(a), n);
    fill(a, n, 1);
    fill(b, n, 2);
    a = realloc(a, 2 * n);
    b = melloc_realloc(b, 2 * n);
    ck_assert(a && b);
    ck_assert_uint_eq(check_fill(a, n, 1), n);
    ck_assert_uint_eq(check_fill(b, n, 2), n);
    void *d = NULL;
    ck_assert_int_eq(melloc_posix_memalign(&d, 256, n), 0);
    ck_assert_uint_eq((uintptr_t)d % 256, 0);
    void *e = melloc_aligned_alloc(512, n);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq((uintptr_t)e % 512, 0);
    free(a);
    melloc_free(b);
    melloc_free_sized(c, n);
    free(d);
    melloc_free(e);
  }
}
END_TEST

/* ---- Usable size ---- */

enum { USABLE_SLICES = 10, USABLE_LAST = 9000, USABLE_BLOCKS = 6 };

/* Blocks of one size, each filled over its whole usable size: none reports less than
   was asked, and none overlaps another (a neighbour's fill would show). */
static void check_usable_blocks(size_t n, int nblocks, int sparse) {
  void *p[USABLE_BLOCKS];
  size_t u[USABLE_BLOCKS];
  for (int k = 0; k < nblocks; k++) {
    p[k] = malloc(n);
    ck_assert_msg(p[k] != NULL, "malloc(%zu) returned NULL", n);
    u[k] = malloc_usable_size(p[k]);
    ck_assert_msg(u[k] >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u[k]);
    if (sparse)
      fill_sparse(p[k], u[k], (unsigned)(n * 8 + (size_t)k));
    else
      fill(p[k], u[k], (unsigned)(n * 8 + (size_t)k));
  }
  for (int k = 0; k < nblocks; k++) {
    size_t bad = sparse ? check_sparse(p[k], u[k], (unsigned)(n * 8 + (size_t)k))
                        : check_fill(p[k], u[k], (unsigned)(n * 8 + (size_t)k));
    ck_assert_msg(bad == u[k], "size %zu block %d: byte %zu of %zu overwritten", n, k, bad, u[k]);
    ck_assert_uint_eq(malloc_usable_size(p[k]), u[k]);
  }
  for (int k = 0; k < nblocks; k++) free(p[k]);
}

/* Every size from 0 to 9000, a slice per iteration. */
START_TEST(test_usable_small_sizes) {
  size_t per = (USABLE_LAST + USABLE_SLICES) / USABLE_SLICES;
  size_t lo = (size_t)_i * per, hi = lo + per;
  if (hi > USABLE_LAST + 1) hi = USABLE_LAST + 1;
  for (size_t n = lo; n < hi; n++) check_usable_blocks(n, USABLE_BLOCKS, 0);
}
END_TEST

static const size_t big_sizes[] = {
    9001,        12345,          16384,           65536,           100000,
    MiB,         LARGE_MAX - 1,  LARGE_MAX,       LARGE_MAX + 1,   3 * MiB,
    5 * MiB + 123, 16 * MiB + 1, 40 * MiB - 4097,
};

START_TEST(test_usable_big_sizes) {
  size_t n = big_sizes[_i];
  check_usable_blocks(n, n > 4 * MiB ? 2 : 4, n > 4 * MiB);
}
END_TEST

/* ---- Alignment ---- */

enum { ALIGN_NSIZES = 7 };

/* Sizes below, at and above the alignment. */
static void align_sizes(size_t align, size_t out[ALIGN_NSIZES]) {
  out[0] = 0;
  out[1] = 1;
  out[2] = align / 2;
  out[3] = align - 1;
  out[4] = align;
  out[5] = align + 1;
  out[6] = 3 * align;
}

enum { ALIGN_POSIX, ALIGN_C11, ALIGN_MEMALIGN, ALIGN_MELLOC_POSIX, ALIGN_MELLOC_C11 };

static void *aligned_by(int how, size_t align, size_t n) {
  void *p = (void *)0x1;
  int ret;
  switch (how) {
    case ALIGN_POSIX:
      ret = posix_memalign(&p, align, n);
      ck_assert_msg(ret == 0, "posix_memalign(%zu, %zu) = %d", align, n, ret);
      return p;
    case ALIGN_MELLOC_POSIX:
      ret = melloc_posix_memalign(&p, align, n);
      ck_assert_msg(ret == 0, "melloc_posix_memalign(%zu, %zu) = %d", align, n, ret);
      return p;
    case ALIGN_C11: return aligned_alloc(align, n);
    case ALIGN_MELLOC_C11: return melloc_aligned_alloc(align, n);
    default: return memalign(align, n);
  }
}

/* All the sizes for one alignment live at once, each filled, so that an aligned block
   that overlaps another (or is shorter than asked) is noticed. */
static void check_alignment(int how, size_t align) {
  size_t sizes[ALIGN_NSIZES];
  void *p[ALIGN_NSIZES];
  align_sizes(align, sizes);
  for (int k = 0; k < ALIGN_NSIZES; k++) {
    p[k] = aligned_by(how, align, sizes[k]);
    ck_assert_msg(p[k] != NULL, "method %d: alignment %zu size %zu returned NULL", how, align,
                  sizes[k]);
    ck_assert_msg((uintptr_t)p[k] % align == 0, "method %d: alignment %zu size %zu: %p", how,
                  align, sizes[k], p[k]);
    ck_assert_msg(malloc_usable_size(p[k]) >= sizes[k], "alignment %zu size %zu: usable %zu",
                  align, sizes[k], malloc_usable_size(p[k]));
    fill_any(p[k], sizes[k], (unsigned)(align + (size_t)k));
  }
  for (int k = 0; k < ALIGN_NSIZES; k++) {
    size_t bad = check_any(p[k], sizes[k], sizes[k], (unsigned)(align + (size_t)k));
    ck_assert_msg(bad == sizes[k], "method %d: alignment %zu size %zu: byte %zu overwritten", how,
                  align, sizes[k], bad);
  }
  for (int k = 0; k < ALIGN_NSIZES; k++) free(p[k]);
}

/* _i is log2 of the alignment: sizeof(void *) up to 4 MiB (16 MiB for posix_memalign). */
START_TEST(test_posix_memalign_alignments) { check_alignment(ALIGN_POSIX, (size_t)1 << _i); }
END_TEST

START_TEST(test_aligned_alloc_alignments) { check_alignment(ALIGN_C11, (size_t)1 << _i); }
END_TEST

START_TEST(test_memalign_alignments) { check_alignment(ALIGN_MEMALIGN, (size_t)1 << _i); }
END_TEST

START_TEST(test_melloc_aligned_alignments) {
  check_alignment(ALIGN_MELLOC_POSIX, (size_t)1 << _i);
  check_alignment(ALIGN_MELLOC_C11, (size_t)1 << _i);
}
END_TEST

/* Many blocks of one aligned kind at once: every one aligned (the reuse of a freed
   slot must keep the alignment too). */
START_TEST(test_aligned_many) {
  enum { N = 200 };
  static void *p[N];
  size_t align = (size_t)1 << _i;
  for (int round = 0; round < 2; round++) {
    for (int k = 0; k < N; k++) {
      p[k] = aligned_alloc(align, 48 + (size_t)k);
      ck_assert_ptr_nonnull(p[k]);
      ck_assert_msg((uintptr_t)p[k] % align == 0, "aligned_alloc(%zu, %d) = %p", align, 48 + k,
                    p[k]);
      fill(p[k], 48 + (size_t)k, (unsigned)k);
    }
    for (int k = 0; k < N; k++) ck_assert_uint_eq(check_fill(p[k], 48 + (size_t)k, (unsigned)k), 48 + (size_t)k);
    for (int k = 0; k < N; k += 2) free(p[k]);
    for (int k = 1; k < N; k += 2) free(p[k]);
  }
}
END_TEST

/* memalign, as in glibc, rounds an alignment that is not a power of two up to one. */
START_TEST(test_memalign_rounds_alignment) {
  static const size_t aligns[][2] = {{0, 8}, {1, 8}, {3, 8}, {24, 32}, {48, 64}, {100, 128},
                                      {3000, 4096}, {5000, 8192}, {40000, 65536},
                                      {3 * MiB, 4 * MiB}};
  for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
    void *p = memalign(aligns[i][0], 100);
    ck_assert_msg(p != NULL, "memalign(%zu, 100) returned NULL", aligns[i][0]);
    ck_assert_msg((uintptr_t)p % aligns[i][1] == 0, "memalign(%zu, 100) = %p, not %zu-aligned",
                  aligns[i][0], p, aligns[i][1]);
    ck_assert_uint_ge(malloc_usable_size(p), 100);
    free(p);
  }
}
END_TEST

/* Sizes around melloc's 4 KiB unit; the kernel's page size (4, 16 or 64 KiB, which
   valloc and pvalloc align to) and its neighbours are added at run time. */
static const size_t page_sizes[] = {0, 1, 100, PAGE - 1, PAGE, PAGE + 1, 10000, SMALL_MAX + 1,
                                    100000, LARGE_MAX, 3 * MiB + 5};
#define NVSIZES (sizeof(page_sizes) / sizeof(page_sizes[0]) + 3)

static size_t kernel_page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static size_t vsize(size_t i) {
  size_t n0 = sizeof(page_sizes) / sizeof(page_sizes[0]);
  return i < n0 ? page_sizes[i] : kernel_page() - 1 + (i - n0);
}

START_TEST(test_valloc) {
  size_t kp = kernel_page();
  void *p[NVSIZES];
  for (size_t i = 0; i < NVSIZES; i++) {
    size_t n = vsize(i);
    p[i] = valloc(n);
    ck_assert_msg(p[i] != NULL, "valloc(%zu) returned NULL", n);
    ck_assert_msg((uintptr_t)p[i] % kp == 0, "valloc(%zu) = %p, page %zu", n, p[i], kp);
    ck_assert_uint_ge(malloc_usable_size(p[i]), n);
    fill(p[i], n, (unsigned)i);
  }
  for (size_t i = 0; i < NVSIZES; i++) {
    ck_assert_uint_eq(check_fill(p[i], vsize(i), (unsigned)i), vsize(i));
    free(p[i]);
  }
}
END_TEST

/* pvalloc rounds the size up to whole kernel pages (at least one page, for 0 too) and
   the rounded size is usable. */
START_TEST(test_pvalloc) {
  size_t kp = kernel_page();
  void *p[NVSIZES];
  size_t r[NVSIZES];
  for (size_t i = 0; i < NVSIZES; i++) {
    size_t n = vsize(i);
    r[i] = n == 0 ? kp : (n + kp - 1) / kp * kp;
    p[i] = pvalloc(n);
    ck_assert_msg(p[i] != NULL, "pvalloc(%zu) returned NULL", n);
    ck_assert_msg((uintptr_t)p[i] % kp == 0, "pvalloc(%zu) = %p, page %zu", n, p[i], kp);
    ck_assert_msg(malloc_usable_size(p[i]) >= r[i], "pvalloc(%zu): usable %zu < %zu", n,
                  malloc_usable_size(p[i]), r[i]);
    fill(p[i], r[i], (unsigned)i);
  }
  for (size_t i = 0; i < NVSIZES; i++) {
    ck_assert_uint_eq(check_fill(p[i], r[i], (unsigned)i), r[i]);
    free(p[i]);
  }
}
END_TEST

/* ---- calloc ---- */

static const size_t calloc_sizes[] = {
    1,     16,     100,    1000,   4096,  SMALL_MAX,  /* small */
    SMALL_MAX + 1, 50000,  MiB,    LARGE_MAX,         /* large */
    LARGE_MAX + 1, 3 * MiB, 9 * MiB,                  /* huge */
};

/* Blocks are dirtied and freed, then calloc'ed again at the same size: the memory is
   reused (else the test proves nothing) and every byte reads zero. */
START_TEST(test_calloc_zeroes_reused_memory) {
  enum { N = 24 };
  size_t n = calloc_sizes[_i];
  int count = n > LARGE_MAX ? 3 : N;
  void *old[N], *p[N];
  for (int round = 0; round < 3; round++) {
    for (int k = 0; k < count; k++) {
      old[k] = malloc(n);
      ck_assert_ptr_nonnull(old[k]);
      memset(old[k], 0xa5, malloc_usable_size(old[k]));
    }
    for (int k = 0; k < count; k++) free(old[k]);
    int reused = 0;
    for (int k = 0; k < count; k++) {
      p[k] = (k + round) % 2 ? calloc(1, n) : calloc(n, 1);
      if (k % 3 == 2) {
        free(p[k]);
        p[k] = melloc_calloc(1, n);
      }
      ck_assert_ptr_nonnull(p[k]);
      ck_assert_msg(is_zero(p[k], n), "calloc(%zu) round %d block %d is not zeroed", n, round, k);
      for (int j = 0; j < count; j++) reused += p[k] == old[j];
      /* Dirty it again: the next round's frees give back non-zero memory too. */
      memset(p[k], 0x5a, n);
    }
#if MELLOC_TEST_HARDENED
    /* The hardened library's quarantine delays reuse: each free below pushes the oldest
       block out of it, until one of old comes back. */
    for (int k = 0; k < 4000 && reused == 0; k++) {
      char *q = calloc(1, n);
      ck_assert_ptr_nonnull(q);
      ck_assert_msg(is_zero(q, n), "calloc(%zu) after the quarantine is not zeroed", n);
      for (int j = 0; j < count; j++) reused += q == old[j];
      memset(q, 0x5a, n);
      free(q);
    }
#endif
    ck_assert_msg(reused > 0, "calloc(%zu) never reused a freed block", n);
    for (int k = 0; k < count; k++) free(p[k]);
  }
}
END_TEST

/* calloc of a count and a size whose product fits. */
START_TEST(test_calloc_count_times_size) {
  static const size_t cs[][2] = {{3, 5}, {100, 100}, {1000, 9}, {7, 300000}, {1024, 4096}};
  for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
    size_t n = cs[i][0] * cs[i][1];
    char *p = calloc(cs[i][0], cs[i][1]);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(malloc_usable_size(p), n);
    ck_assert(is_zero(p, n));
    free(p);
  }
}
END_TEST

/* ---- realloc ---- */

/* Growing and shrinking one small block a few bytes at a time keeps its contents. */
START_TEST(test_realloc_small_steps) {
  size_t n = 1;
  char *p = malloc(n);
  ck_assert_ptr_nonnull(p);
  fill(p, n, 7);
  for (size_t m = 2; m <= SMALL_MAX + 300; m += 37) {
    p = realloc(p, m);
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(check_fill(p, n, 7) == n, "grow %zu -> %zu lost data", n, m);
    ck_assert_uint_ge(malloc_usable_size(p), m);
    fill(p, m, 7);
    n = m;
  }
  for (size_t m = n; m > 1; m = m * 3 / 4) {
    p = realloc(p, m);
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(check_fill(p, m, 7) == m, "shrink to %zu lost data", m);
  }
  free(p);
}
END_TEST

/* A large block grown a little at a time (1/64 of its size, as a string builder or a
   vector that reallocs by a little) while the program allocates blocks of its own
   between the steps: it moves only a few times on its way to MLC_LARGE_MAX, and keeps
   its contents.  A block that moved went to a run of exactly its size, the next
   allocation took the pages right after it, and it moved again at nearly every step
   (29 times here; the contents were copied 1.3 GB per 2 MiB in bench's grow). */
START_TEST(test_realloc_growth_moves_rarely) {
  enum { NKEEP = 400 };
  char *keep[NKEEP];
  size_t nkeep = 0, moves = 0, n = SMALL_MAX + 1, steps = 0;
  char *p = malloc(n);
  ck_assert_ptr_nonnull(p);
  fill(p, n, 3);
  while (n < ((size_t)2 << 20) - ((size_t)2 << 20) / 64) {
    size_t m = n + n / 64 + 16;
    char *q = realloc(p, m);
    ck_assert_ptr_nonnull(q);
    ck_assert_msg(check_fill(q, n, 3) == n, "grow %zu -> %zu lost data", n, m);
    fill(q, m, 3);
    if (q != p) moves++;
    p = q;
    n = m;
    steps++;
    /* Something of the program's own after each step, large enough to take pages. */
    if (nkeep < NKEEP) ck_assert_ptr_nonnull(keep[nkeep++] = malloc(3 * 4096 + 1));
  }
  ck_assert_uint_ge(steps, 300);
  ck_assert_msg(moves <= 4, "%zu moves in %zu steps", moves, steps);
  free(p);
  for (size_t i = 0; i < nkeep; i++) free(keep[i]);
}
END_TEST

/* Buffers grown side by side (a step of each in turn, 1/64 of its size at a time), as a
   program filling many strings or vectors at once: each moves once, to a run with room
   to MLC_LARGE_MAX, and grows in place from there.  With new chunks for room bounded
   by 64 MiB of chunks, 18 of 48 buffers found none and moved at every doubling
   (peak RSS 2.4x their bytes in bench's grow-many-t1). */
START_TEST(test_realloc_growth_side_by_side) {
  enum { NBUF = sizeof(void *) == 8 ? 48 : 24 };
  char *p[NBUF];
  size_t n[NBUF], moves = 0, steps = 0;
  for (int i = 0; i < NBUF; i++) {
    n[i] = SMALL_MAX + 1;
    ck_assert_ptr_nonnull(p[i] = malloc(n[i]));
    fill(p[i], n[i], (unsigned char)i);
  }
  for (int growing = 1; growing;) {
    growing = 0;
    for (int i = 0; i < NBUF; i++) {
      size_t m = n[i] + n[i] / 64 + 16;
      if (m > 600 * KiB) continue;
      growing = 1;
      char *q = realloc(p[i], m);
      ck_assert_ptr_nonnull(q);
      ck_assert_msg(check_fill(q, n[i], (unsigned char)i) == n[i], "buffer %d: grow %zu -> %zu lost data", i,
                    n[i], m);
      fill(q, m, (unsigned char)i);
      moves += q != p[i];
      p[i] = q;
      n[i] = m;
      steps++;
    }
  }
  ck_assert_uint_ge(steps, NBUF * 150);
  ck_assert_msg(moves <= NBUF + NBUF / 8, "%zu moves in %zu steps of %d buffers", moves, steps, NBUF);
  for (int i = 0; i < NBUF; i++) free(p[i]);
}
END_TEST

/* ... but room is address space, and it is bounded: 1000 buffers grown side by side to
   32 KiB would hold 2 GiB of chunks with 2 MiB of room each; past the arena's bound on
   free pages (1 GiB on 64-bit targets, 64 MiB on 32-bit ones) each has its own size in
   room. */
START_TEST(test_realloc_growth_room_bounded) {
  enum { NBUF = 1000 };
  const size_t bound = sizeof(void *) == 8 ? 1024 * MiB : 64 * MiB;
  char **p = calloc(NBUF, sizeof(*p));
  ck_assert_ptr_nonnull(p);
  size_t size = SMALL_MAX + 1;
  for (; size <= 32 * KiB; size += size / 64 + 16)
    for (int i = 0; i < NBUF; i++) {
      ck_assert_ptr_nonnull(p[i] = realloc(p[i], size));
      p[i][size - 1] = (char)i;
    }
  melloc_stats_t st;
  st.size = sizeof(st);
  ck_assert_int_eq(melloc_stats_get(&st), 0);
  size_t live = (size_t)NBUF * 32 * KiB;
  ck_assert_msg(st.mapped <= bound + 4 * live + 64 * MiB, "%zu MiB mapped for %zu MiB of buffers", st.mapped / MiB,
                live / MiB);
  for (int i = 0; i < NBUF; i++) free(p[i]);
  free(p);
}
END_TEST

/* Past that bound the blocks share the rooms there are: a new growing block takes the
   middle of the longest free run (another block's room) instead of room for its own
   size only.  600 buffers grown by turns to 64 KiB: the last 88 (on 64-bit targets;
   most of them on 32-bit ones, whose bound is 64 MiB) moved from their first runs, 72
   times past 24 KiB; none now.  (A heap profiler's sample of a small block is a run
   of 5 pages of its own, which it leaves once past 20 KiB.) */
START_TEST(test_realloc_growth_past_bound) {
  enum { NBUF = 600 };
  char **p = calloc(NBUF, sizeof(*p));
  size_t *n = calloc(NBUF, sizeof(*n)), moves = 0;
  ck_assert(p && n);
  for (int growing = 1; growing;) {
    growing = 0;
    for (int i = 0; i < NBUF; i++) {
      size_t m = n[i] + n[i] / 64 + 16;
      if (m > 64 * KiB) continue;
      growing = 1;
      char *q = realloc(p[i], m);
      ck_assert_ptr_nonnull(q);
      if (q != p[i] && n[i] > 24 * KiB) {
        moves++;
        ck_assert_msg(check_fill(q, n[i], (unsigned)i) == n[i], "buffer %d: grow %zu -> %zu lost data", i, n[i], m);
      }
      for (size_t j = n[i]; j < m; j++) q[j] = (char)pattern((unsigned)i, j);
      p[i] = q;
      n[i] = m;
    }
  }
  for (int i = 0; i < NBUF; i++) {
    ck_assert_uint_eq(check_fill(p[i], n[i], (unsigned)i), n[i]);
    free(p[i]);
  }
  ck_assert_msg(moves <= NBUF / 20, "%zu moves of large buffers", moves);
  free(p);
  free(n);
}
END_TEST

/* Each step moves the block to another tier; the contents common to both sizes survive.
   _i picks the chain. */
static const size_t realloc_chains[][6] = {
    {24, 100000, 5 * MiB, 40, 0, 0},
    {8 * MiB, LARGE_MAX, 3000, 9 * MiB, 16, 0},
    {SMALL_MAX, SMALL_MAX + 1, LARGE_MAX, LARGE_MAX + 1, SMALL_MAX, 1},
    {1, 3 * MiB, 1, 300000, 20 * MiB, 100},
};

START_TEST(test_realloc_tier_chain) {
  const size_t *chain = realloc_chains[_i];
  size_t n = chain[0];
  char *p = malloc(n);
  ck_assert_ptr_nonnull(p);
  fill_any(p, n, 11);
  for (int k = 1; k < 6 && chain[k]; k++) {
    size_t m = chain[k], keep = n < m ? n : m;
    p = realloc(p, m);
    ck_assert_msg(p != NULL, "realloc %zu -> %zu returned NULL", n, m);
    ck_assert_uint_ge(malloc_usable_size(p), m);
    size_t bad = check_any(p, keep, n, 11);
    ck_assert_msg(bad == keep, "realloc %zu -> %zu: byte %zu lost", n, m, bad);
    fill_any(p, m, 11);
    n = m;
  }
  free(p);
}
END_TEST

/* Huge blocks grow and shrink (by mremap) with their contents; a shrink that stays huge
   keeps the address. */
START_TEST(test_realloc_huge_grow_shrink) {
  static const size_t steps[] = {3 * MiB,   64 * MiB,      8 * MiB,       LARGE_MAX + 1,
                                 200 * MiB, 5 * MiB + 7,   6 * MiB,       12 * MiB,
                                 24 * MiB,  48 * MiB + 13, 4 * MiB + 4096};
  size_t n = steps[0];
  char *p = malloc(n);
  ck_assert_ptr_nonnull(p);
  fill_sparse(p, n, 3);
  for (size_t k = 1; k < sizeof(steps) / sizeof(steps[0]); k++) {
    size_t m = steps[k], keep = n < m ? n : m;
    char *q = realloc(p, m);
    ck_assert_msg(q != NULL, "realloc %zu -> %zu returned NULL", n, m);
    ck_assert_uint_ge(malloc_usable_size(q), m);
#if !MELLOC_TEST_HARDENED /* there, guard pages may make a shrink move the block */
    if (m < n) ck_assert_msg(q == p, "huge shrink %zu -> %zu moved the block", n, m);
#endif
    size_t bad = check_sparse(q, keep, 3);
    ck_assert_msg(bad == keep, "realloc %zu -> %zu: byte %zu lost", n, m, bad);
    /* The grown tail is writable and independent of the old part. */
    fill_sparse(q, m, 3);
    p = q;
    n = m;
  }
  ck_assert_uint_eq(check_sparse(p, n, 3), n);
  free(p);
}
END_TEST

/* A huge block grows while another huge block sits after it (so it may have to move). */
START_TEST(test_realloc_huge_grow_with_neighbour) {
  char *a = malloc(4 * MiB + PAGE);
  char *b = malloc(4 * MiB + PAGE);
  ck_assert(a && b);
  fill_sparse(a, 4 * MiB + PAGE, 1);
  fill_sparse(b, 4 * MiB + PAGE, 2);
  a = realloc(a, 30 * MiB);
  ck_assert_ptr_nonnull(a);
  ck_assert_uint_eq(check_sparse(a, 4 * MiB + PAGE, 1), 4 * MiB + PAGE);
  ck_assert_uint_eq(check_sparse(b, 4 * MiB + PAGE, 2), 4 * MiB + PAGE);
  fill_sparse(a, 30 * MiB, 5);
  b = realloc(b, 30 * MiB);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq(check_sparse(b, 4 * MiB + PAGE, 2), 4 * MiB + PAGE);
  ck_assert_uint_eq(check_sparse(a, 30 * MiB, 5), 30 * MiB);
  free(a);
  free(b);
}
END_TEST

#if !MELLOC_TEST_HARDENED /* there, a cached mapping is reused whole, never split */
/* The huge-cache tests keep what they free: decay_ms raised, and gc_quiet off (a thread
   that allocates nothing but huge blocks does not use its cache, so the process looks
   quiet); the settings are put back at the end. */
struct huge_keep {
  char decay[32];
  char quiet[8];
};

static void huge_keep_begin(struct huge_keep *k) {
  ck_assert_int_eq(melloc_option_get("decay_ms", k->decay, sizeof(k->decay)), 0);
  ck_assert_int_eq(melloc_option_get("gc_quiet", k->quiet, sizeof(k->quiet)), 0);
  ck_assert_int_eq(melloc_option_set("decay_ms", "3600000"), 0);
  ck_assert_int_eq(melloc_option_set("gc_quiet", "false"), 0);
}

static void huge_keep_end(const struct huge_keep *k) {
  ck_assert_int_eq(melloc_option_set("decay_ms", k->decay), 0);
  ck_assert_int_eq(melloc_option_set("gc_quiet", k->quiet), 0);
}

/* A freed huge block's pages serve the huge blocks that come next, with no new mapping
   and no page faulted in again (bench's bigbuf): a smaller block starts where it did,
   the next one past the first one's last 4 MiB; a block grows in place into the rest
   of its last 4 MiB; freed neighbours serve together a block none of them holds alone.
   decay_ms is raised for the test, and gc_quiet off (a thread that allocates nothing
   but huge blocks does not use its cache, so the process looks quiet): the collector
   must not hand the pages back between the calls (the suite is also run with
   gc_interval_ms:1,decay_ms:0). */
START_TEST(test_huge_ranges_reused) {
  struct huge_keep keep;
  huge_keep_begin(&keep);
  char *a = malloc(20 * MiB);
  ck_assert_ptr_nonnull(a);
  memset(hide(a), 4, 20 * MiB); /* every page resident (hide: not a dead store) */
  free(a);
  char *b = malloc(5 * MiB);
  char *c = malloc(6 * MiB);
  ck_assert_ptr_eq(b, a);
  ck_assert_ptr_eq(c, a + 8 * MiB);
  /* a's pages, not new ones: resident before the program touches them. */
  ck_assert_int_eq(resident_pages(b, 5 * MiB), (long)(5 * MiB / PAGE));
  ck_assert_int_eq(resident_pages(c, 6 * MiB), (long)(6 * MiB / PAGE));
  ck_assert_uint_ge(malloc_usable_size(b), 5 * MiB);
  ck_assert_uint_lt(malloc_usable_size(b), 6 * MiB);
  fill_sparse(b, 5 * MiB, 6);
  fill_sparse(c, 6 * MiB, 7);
  char *b2 = realloc(b, 8 * MiB);
  ck_assert_ptr_eq(b2, b);
  ck_assert_uint_eq(check_sparse(b2, 5 * MiB, 6), 5 * MiB);
  fill_sparse(b2, 8 * MiB, 8);
  ck_assert_uint_eq(check_sparse(c, 6 * MiB, 7), 6 * MiB);
  /* Past its last 4 MiB, c's growth cannot be in place (b2's pages do not move). */
  char *c2 = realloc(c, 13 * MiB);
  ck_assert_ptr_nonnull(c2);
  ck_assert_uint_eq(check_sparse(c2, 6 * MiB, 7), 6 * MiB);
  ck_assert_uint_eq(check_sparse(b2, 8 * MiB, 8), 8 * MiB);
  free(c2);
  free(b2);
  /* [a, a + 8 MiB) and what follows it, if c2 grew in place: 20 MiB from a again. */
  char *d = malloc(18 * MiB);
  ck_assert_ptr_nonnull(d);
  if (c2 == a + 8 * MiB) ck_assert_ptr_eq(d, a);
  fill_sparse(d, 18 * MiB, 9);
  ck_assert_uint_eq(check_sparse(d, 18 * MiB, 9), 18 * MiB);
  free(d);
  huge_keep_end(&keep);
}
END_TEST

/* No cached range holds the request: the block's new pages are filled with the cached
   ranges' (chunk.c's gather), here the part a smaller block left of a freed one; the
   block grows by realloc and keeps its bytes. */
START_TEST(test_huge_range_grown) {
  struct huge_keep keep;
  huge_keep_begin(&keep);
  /* x right below w (the kernel maps top-down), w unmapped when freed (too big for the
     cache): free address space after x, for the growth to be in place. */
  char *w = malloc(HUGE_UNMAPPED_SIZE);
  char *x = malloc(20 * MiB);
  ck_assert(w && x);
  free(w);
  free(x);
  char *y = malloc(5 * MiB);
  ck_assert_ptr_eq(y, x);
  char *z = malloc(40 * MiB); /* from [x + 8 MiB, x + 20 MiB) */
  ck_assert_ptr_nonnull(z);
  ck_assert_uint_ge(malloc_usable_size(z), 40 * MiB);
  fill_sparse(z, 40 * MiB, 3);
  fill_sparse(y, 5 * MiB, 4);
  ck_assert_uint_eq(check_sparse(z, 40 * MiB, 3), 40 * MiB);
  z = realloc(z, 41 * MiB);
  ck_assert_ptr_nonnull(z);
  ck_assert_uint_eq(check_sparse(z, 40 * MiB, 3), 40 * MiB);
  free(z);
  ck_assert_uint_eq(check_sparse(y, 5 * MiB, 4), 5 * MiB);
  free(y);
  huge_keep_end(&keep);
}
END_TEST

/* Freed blocks that no request fits alone serve it together: their pages move into
   the new block (mremap, no copy, no fault), so it is resident before the program
   touches it, and the cache does not keep them besides (bench's bigbuf faulted 1.5 GiB
   in 2000 replacements and peaked at 1.35x its live bytes).  calloc's block reads zero
   although the moved pages held data; the block, several kernel mappings now, grows by
   realloc and keeps its bytes. */
START_TEST(test_huge_gathered) {
  struct huge_keep keep;
  huge_keep_begin(&keep);
  /* Three 8 MiB blocks, a live one between each two, so that no two are adjacent. */
  char *f[3], *sep[3];
  for (int i = 0; i < 3; i++) {
    f[i] = malloc(8 * MiB);
    sep[i] = malloc(5 * MiB);
    ck_assert(f[i] && sep[i]);
    memset(hide(f[i]), 0xab, 8 * MiB);
  }
  for (int i = 0; i < 3; i++) free(f[i]);
  size_t rss0 = mlc_test_rss_kb();
  char *p = calloc(1, 20 * MiB);
  ck_assert_ptr_nonnull(p);
  /* The pages were there: all of them resident (the old code grew one 8 MiB range and
     left 12 MiB to be faulted), and the process no bigger for it.  On 32-bit targets,
     where glibc maps every block above 512 KiB afresh, calloc gives them back instead
     (test_huge_calloc_not_resident): none resident. */
  if (sizeof(long) >= 8)
    ck_assert_int_eq(resident_pages(p, 20 * MiB), (long)(20 * MiB / PAGE));
  else
    ck_assert_int_lt(resident_pages(p, 20 * MiB), (long)(20 * MiB / PAGE / 100));
  size_t rss1 = mlc_test_rss_kb();
  if (rss0 && rss1) ck_assert_uint_lt(rss1, rss0 + 2 * 1024);
  for (size_t i = 0; i < 20 * MiB; i += 64) ck_assert_msg(p[i] == 0, "calloc'd byte %zu is %d", i, p[i]);
  fill_sparse(p, 20 * MiB, 3);
  char *q = realloc(p, 30 * MiB);
  ck_assert_ptr_nonnull(q);
  ck_assert_uint_ge(malloc_usable_size(q), 30 * MiB);
  ck_assert_uint_eq(check_sparse(q, 20 * MiB, 3), 20 * MiB);
  fill_sparse(q, 30 * MiB, 5);
  ck_assert_uint_eq(check_sparse(q, 30 * MiB, 5), 30 * MiB);
  free(q);
  for (int i = 0; i < 3; i++) free(sep[i]);
  huge_keep_end(&keep);
}
END_TEST

/* calloc of a block above glibc's largest mmap threshold (32 MiB; 512 KiB on 32-bit
   targets) on the pages of a freed block: the old bytes go with the pages
   (MADV_DONTNEED) instead of being cleared, so the pages the program does not touch
   cost no memory, as they cost none in glibc's fresh mapping (a loop of calloc(64 MiB)
   that touched two pages of each kept 65.6 MiB resident).  The block reads zero all
   through, and holds what is written to it.  Below that size (test_huge_gathered) the
   pages are cleared and stay resident. */
START_TEST(test_huge_calloc_not_resident) {
  struct huge_keep keep;
  huge_keep_begin(&keep);
  size_t n = 48 * MiB;
  char *a = malloc(n);
  ck_assert_ptr_nonnull(a);
  memset(hide(a), 0xcd, n);
  ck_assert_int_eq(resident_pages(a, n), (long)(n / PAGE));
  free(a);
  char *p = calloc(1, n);
  ck_assert_ptr_eq(p, a); /* the same pages: else the test proves nothing */
  long res = resident_pages(p, n);
  ck_assert_int_ge(res, 0);
  ck_assert_msg(res < (long)(n / PAGE / 100), "%ld of %zu pages resident", res, n / PAGE);
  for (size_t i = 0; i < n; i += 64) ck_assert_msg(p[i] == 0, "calloc'd byte %zu is %d", i, p[i]);
  ck_assert_int_eq(p[n - 1], 0);
  fill_sparse(p, n, 9);
  ck_assert_uint_eq(check_sparse(p, n, 9), n);
  free(p);
  huge_keep_end(&keep);
}
END_TEST

/* Huge blocks freed as a phase ends (live huge bytes fall under half their recent
   peak) stay cached past the fixed bound (104 MiB) while live and cached bytes stay
   under that peak, and serve the next phase with resident pages; while live bytes
   stay above half the peak (a program that replaces its buffers), the fixed bound
   holds and the oldest range is unmapped (bench's tstress: the next round faulted in
   again what its threads freed at exit; bigbuf: its peak RSS must not grow). */
START_TEST(test_huge_phase_end_kept) {
  struct huge_keep keep;
  huge_keep_begin(&keep);
  enum { N = 30, FIRST = 14 };
  char *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(8 * MiB);
    ck_assert_ptr_nonnull(p[i]);
    memset(hide(p[i]), 0x5c, 8 * MiB);
  }
  /* 112 MiB freed, 128 of 240 still live: over the fixed bound, the oldest goes (the
     blocks are whole 4 MiB pieces: no slack beside them). */
  for (int i = 0; i < FIRST; i++) free(p[i]);
  ck_assert_int_eq(resident_pages(p[0], 8 * MiB), -1); /* unmapped */
  for (int i = 1; i < FIRST; i++) ck_assert_int_eq(resident_pages(p[i], 8 * MiB), (long)(8 * MiB / PAGE));
  /* The phase ends.  The next free leaves 120 MiB live, half the peak: the bound holds
     and p[1] goes; from the one after on, every block stays cached (224 MiB in the
     end, under the 240 of the peak). */
  for (int i = FIRST; i < N; i++) free(p[i]);
  ck_assert_int_eq(resident_pages(p[1], 8 * MiB), -1);
  for (int i = 2; i < N; i++) ck_assert_int_eq(resident_pages(p[i], 8 * MiB), (long)(8 * MiB / PAGE));
  size_t rss0 = mlc_test_rss_kb();
  long resident = 0;
  for (int i = 2; i < N; i++) {
    p[i] = malloc(8 * MiB);
    ck_assert_ptr_nonnull(p[i]);
    resident += resident_pages(p[i], 8 * MiB);
  }
  ck_assert_int_eq(resident, (long)((N - 2) * 8 * MiB / PAGE));
  size_t rss1 = mlc_test_rss_kb();
  if (rss0 && rss1) ck_assert_uint_lt(rss1, rss0 + 2 * 1024);
  for (int i = 2; i < N; i++) {
    fill_sparse(p[i], 8 * MiB, (unsigned)i);
    ck_assert_uint_eq(check_sparse(p[i], 8 * MiB, (unsigned)i), 8 * MiB);
    free(p[i]);
  }
  huge_keep_end(&keep);
}
END_TEST

/* The bound on the cached ranges (104 MiB) counts the slack beside live blocks: the
   pages from a block carved out of a cached range to the end of its last 4 MiB, which
   only that block can use.  Six 5 MiB blocks carved from freed 8 MiB ones hold 18 MiB
   of it; of twelve 8 MiB blocks freed next (96 MiB, under the bound alone), the two
   oldest go back to the kernel.  Live bytes stay above half their peak (126 of 240
   MiB): the fixed bound, not the phase's end (test_huge_phase_end_kept).  Nothing is
   written: the bound counts bytes, and mincore tells a mapped range from an unmapped
   one. */
START_TEST(test_huge_slack_counted) {
  struct huge_keep keep;
  huge_keep_begin(&keep);
  enum { N = 30, SLACKED = 6, FREED = 12 };
  char *p[N], *q[SLACKED];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(8 * MiB);
    ck_assert_ptr_nonnull(p[i]);
  }
  for (int i = 0; i < SLACKED; i++) {
    free(p[i]);
    q[i] = malloc(5 * MiB); /* the freed block's pages: 3 MiB of slack after it */
    ck_assert_ptr_eq(q[i], p[i]);
    ck_assert_int_eq(resident_pages(q[i] + 5 * MiB, 3 * MiB), 0); /* mapped, the block's */
  }
  for (int i = SLACKED; i < SLACKED + FREED; i++) free(p[i]);
  ck_assert_int_eq(resident_pages(p[SLACKED], 8 * MiB), -1);
  ck_assert_int_eq(resident_pages(p[SLACKED + 1], 8 * MiB), -1);
  for (int i = SLACKED + 2; i < SLACKED + FREED; i++) ck_assert_int_ge(resident_pages(p[i], 8 * MiB), 0);
  /* The slack goes with its block: freed, each is an 8 MiB range again. */
  for (int i = 0; i < SLACKED; i++) free(q[i]);
  for (int i = SLACKED + FREED; i < N; i++) free(p[i]);
  huge_keep_end(&keep);
}
END_TEST

/* The process's kernel mappings (lines of /proc/self/maps), read without allocating. */
static size_t count_maps(void) {
  char buf[4096];
  size_t lines = 0;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0)
    for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
  close(fd);
  return lines;
}

/* Big buffers replaced at random, as bench's bigbuf (smaller): each keeps its bytes
   while the others come and go through the cache, made of several freed ones' pages,
   grown and shrunk by realloc; and the process's mappings stay within what the gather
   may add (at most 1024: chunk.c's borders). */
START_TEST(test_huge_churn) {
  struct huge_keep keep;
  huge_keep_begin(&keep);
  enum { N = 12 };
  char *w[N] = {0};
  size_t sz[N] = {0};
  unsigned seed[N] = {0};
  uint64_t r = 0x5eed;
  size_t maps0 = count_maps();
  for (unsigned i = 0; i < 600; i++) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    unsigned k = i < N ? i : (unsigned)(r >> 33) % N;
    if (w[k]) {
      ck_assert_uint_eq(check_sparse(w[k], sz[k], seed[k]), sz[k]);
      free(w[k]);
    }
    size_t n = 2 * MiB + (size_t)(r >> 20) % (10 * MiB);
    char *p = (i % 7 == 0) ? calloc(1, n) : malloc(n);
    ck_assert_ptr_nonnull(p);
    if (i % 7 == 0) {
      for (size_t off = 0; off < n; off += PAGE / 2) ck_assert_int_eq(p[off], 0);
      ck_assert_int_eq(p[n - 1], 0);
    }
    if (i % 5 == 0) {
      /* Grown (in place, by a mapping after it, or moved) or shrunk, bytes kept. */
      fill_sparse(p, n, 1);
      size_t m = (i % 10 == 0) ? n + n / 3 : n - n / 3, kept = n < m ? n : m;
      char *q = realloc(p, m);
      ck_assert_ptr_nonnull(q);
      ck_assert_uint_eq(check_sparse(q, kept, 1), kept);
      p = q;
      n = m;
    }
    w[k] = p;
    sz[k] = n;
    seed[k] = i + 2;
    fill_sparse(p, n, seed[k]);
  }
  ck_assert_uint_lt(count_maps(), maps0 + 1024 + 64 + 2 * N);
  for (unsigned k = 0; k < N; k++) {
    ck_assert_uint_eq(check_sparse(w[k], sz[k], seed[k]), sz[k]);
    free(w[k]);
  }
  huge_keep_end(&keep);
}
END_TEST

/* A block carved from a cached range is followed by the range's tail: realloc grows
   it there, into pages already resident (no move, no fault), and an allocation takes
   another range before such a tail. */
START_TEST(test_huge_grows_into_cache) {
  struct huge_keep keep;
  huge_keep_begin(&keep);
  char *x = malloc(20 * MiB), *y = malloc(14 * MiB);
  ck_assert(x && y);
  memset(hide(x), 4, 20 * MiB);
  memset(hide(y), 5, 14 * MiB);
  free(x);
  free(y);
  char *b = malloc(5 * MiB); /* [y, y + 8 MiB); the tail [y + 8 MiB, y + 14 MiB) cached */
  ck_assert_ptr_eq(b, y);
  fill_sparse(b, 5 * MiB, 6);
  /* The tail is the smallest range that holds 5 MiB; x's is taken instead. */
  char *c = malloc(5 * MiB);
  ck_assert_ptr_eq(c, x);
  char *b2 = realloc(b, 12 * MiB);
  ck_assert_ptr_eq(b2, b);
  ck_assert_int_eq(resident_pages(b2 + 8 * MiB, 4 * MiB), (long)(4 * MiB / PAGE));
  ck_assert_uint_eq(check_sparse(b2, 5 * MiB, 6), 5 * MiB);
  fill_sparse(b2, 12 * MiB, 7);
  ck_assert_uint_eq(check_sparse(b2, 12 * MiB, 7), 12 * MiB);
  free(c);
  free(b2);
  huge_keep_end(&keep);
}
END_TEST

/* A carved range's tail stays for its block to grow into while a whole freed range
   holds the request, wherever that range lies.  Linux maps a new mapping right below
   the last one, so a freed block's range often follows a live block's, and it was taken
   for a tail: then the smaller real tail lost to it (bench's grow, 4 threads to 16 MiB,
   took each other's tails and moved: 108-174 MiB of peak RSS, 81-87 after). */
START_TEST(test_huge_whole_range_not_tail) {
  struct huge_keep keep;
  huge_keep_begin(&keep);
  char *x = malloc(20 * MiB), *a = malloc(14 * MiB), *b = malloc(14 * MiB);
  ck_assert(x && a && b);
  memset(hide(x), 1, 20 * MiB);
  free(x);
  char *t = malloc(5 * MiB); /* [x, x + 8 MiB); the tail [x + 8 MiB, x + 20 MiB) cached */
  ck_assert_ptr_eq(t, x);
  /* Free the later of a and b (right after the other where the kernel put them so). */
  char *w = a > b ? a : b, *live = a > b ? b : a;
  memset(hide(w), 2, 14 * MiB);
  free(w);
  char *c = malloc(5 * MiB);
  ck_assert_msg(c == w, "took %p, not the whole range %p (the tail is %p, the other block %p%s)",
                (void *)c, (void *)w, (void *)(x + 8 * MiB), (void *)live,
                live + 16 * MiB == w ? ", right before it" : "");
  char *t2 = realloc(t, 12 * MiB);
  ck_assert_ptr_eq(t2, t);
  free(t2);
  free(c);
  free(live);
  huge_keep_end(&keep);
}
END_TEST
#endif

/* Large blocks resize in place when they can, and keep their contents either way. */
START_TEST(test_realloc_large) {
  static const size_t steps[] = {20000, 30000, 100000, 16384, SMALL_MAX + 1, 700000, LARGE_MAX,
                                 12000};
  /* A neighbour after the block, so some growth cannot be in place. */
  char *n1 = malloc(20000);
  char *p = malloc(steps[0]);
  char *n2 = malloc(20000);
  ck_assert(n1 && p && n2);
  fill(n1, 20000, 91);
  fill(n2, 20000, 92);
  size_t n = steps[0];
  fill(p, n, 9);
  for (size_t k = 1; k < sizeof(steps) / sizeof(steps[0]); k++) {
    size_t m = steps[k], keep = n < m ? n : m;
    p = realloc(p, m);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(malloc_usable_size(p), m);
    ck_assert_msg(check_fill(p, keep, 9) == keep, "realloc %zu -> %zu lost data", n, m);
    fill(p, m, 9);
    n = m;
  }
  ck_assert_uint_eq(check_fill(n1, 20000, 91), 20000);
  ck_assert_uint_eq(check_fill(n2, 20000, 92), 20000);
  free(p);
  free(n1);
  free(n2);
}
END_TEST

/* realloc to the block's own usable size keeps it where it is. */
START_TEST(test_realloc_same_size_in_place) {
  static const size_t sizes[] = {1, 100, 8000, 20000, 1000000, 6 * MiB};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    char *p = malloc(sizes[i]);
    ck_assert_ptr_nonnull(p);
    size_t u = malloc_usable_size(p);
    fill_any(p, u, 4);
    ck_assert_ptr_eq(realloc(p, u), p);
    ck_assert_ptr_eq(realloc(p, sizes[i]), p);
    ck_assert_uint_eq(check_any(p, sizes[i], u, 4), sizes[i]);
    free(p);
  }
}
END_TEST

/* realloc(p, 0) frees p and returns NULL (glibc's behaviour).  For a block big enough to
   be unmapped at once, the freeing is visible. */
START_TEST(test_realloc_zero_frees) {
  static const size_t sizes[] = {1, 100, 5000, 100000, 3 * MiB};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    void *p = malloc(sizes[i]);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(realloc(p, 0));
  }
  void *p = malloc(HUGE_UNMAPPED_SIZE);
  ck_assert_ptr_nonnull(p);
  memset(p, 1, PAGE);
  ck_assert(!is_unmapped(p, HUGE_UNMAPPED_SIZE));
  ck_assert_ptr_null(melloc_realloc(p, 0));
  ck_assert_msg(is_unmapped(hide(p), HUGE_UNMAPPED_SIZE), "realloc(p, 0) kept %p mapped", p);
}
END_TEST

START_TEST(test_reallocarray) {
  int *p = reallocarray(NULL, 10, sizeof(int));
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_ge(malloc_usable_size(p), 10 * sizeof(int));
  for (int i = 0; i < 10; i++) p[i] = i * 3;
  p = reallocarray(p, 100000, sizeof(int));
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_ge(malloc_usable_size(p), 100000 * sizeof(int));
  for (int i = 0; i < 10; i++) ck_assert_int_eq(p[i], i * 3);
  p[99999] = 5;
  p = reallocarray(p, 5, sizeof(int));
  ck_assert_ptr_nonnull(p);
  for (int i = 0; i < 5; i++) ck_assert_int_eq(p[i], i * 3);
  free(p);
}
END_TEST

/* free_sized and free_aligned_sized free: a block big enough to be unmapped at once is
   unmapped. */
START_TEST(test_free_sized_frees) {
  void *p = malloc(HUGE_UNMAPPED_SIZE);
  ck_assert_ptr_nonnull(p);
  memset(p, 1, PAGE);
  free_sized(p, HUGE_UNMAPPED_SIZE);
  ck_assert(is_unmapped(hide(p), HUGE_UNMAPPED_SIZE));
  p = aligned_alloc(8 * MiB, HUGE_UNMAPPED_SIZE);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq((uintptr_t)p % (8 * MiB), 0);
  memset(p, 1, PAGE);
  free_aligned_sized(p, 8 * MiB, HUGE_UNMAPPED_SIZE);
  ck_assert(is_unmapped(hide(p), HUGE_UNMAPPED_SIZE));
  p = melloc_malloc(HUGE_UNMAPPED_SIZE);
  ck_assert_ptr_nonnull(p);
  memset(p, 1, PAGE);
  melloc_free_sized(p, HUGE_UNMAPPED_SIZE);
  ck_assert(is_unmapped(hide(p), HUGE_UNMAPPED_SIZE));
  /* Every tier, with the size and alignment they were asked with. */
  static const size_t sizes[] = {0, 16, 1000, 8192, 9000, 300000, 3 * MiB};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    void *a = malloc(sizes[i]);
    void *b = aligned_alloc(256, sizes[i]);
    ck_assert(a && b);
    free_sized(a, sizes[i]);
    free_aligned_sized(b, 256, sizes[i]);
  }
  /* The heap still works. */
  p = malloc(1000);
  ck_assert_ptr_nonnull(p);
  free(p);
}
END_TEST

/* ---- Error returns ---- */

/* Above PTRDIFF_MAX no object may exist (pointer differences must fit); at or just
   below it, once rounded to pages, neither.  On 64-bit targets PTRDIFF_MAX - 2 pages is
   also larger than any address space (at most 2^57 bytes); on 32-bit ones it fits in
   the 4 GiB a process may have under a 64-bit kernel, and may be granted. */
static const size_t impossible_sizes[] = {
    SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - PAGE, (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX,
#if SIZE_MAX > 0xffffffffu
    (size_t)PTRDIFF_MAX - PAGE * 2,
#endif
};

#define EXPECT_ENOMEM(call, what, n)                                                       \
  do {                                                                                     \
    errno = 0;                                                                             \
    void *r_ = (call);                                                                     \
    ck_assert_msg(r_ == NULL, "%s(%zu) = %p, want NULL", what, (size_t)(n), r_);           \
    ck_assert_msg(errno == ENOMEM, "%s(%zu): errno %d, want ENOMEM", what, (size_t)(n),    \
                  errno);                                                                  \
  } while (0)

START_TEST(test_impossible_sizes_enomem) {
  size_t n = hide_size(impossible_sizes[_i]);
  EXPECT_ENOMEM(malloc(n), "malloc", n);
  EXPECT_ENOMEM(melloc_malloc(n), "melloc_malloc", n);
  EXPECT_ENOMEM(calloc(1, n), "calloc(1, n)", n);
  EXPECT_ENOMEM(calloc(n, 1), "calloc(n, 1)", n);
  EXPECT_ENOMEM(melloc_calloc(n, 1), "melloc_calloc", n);
  EXPECT_ENOMEM(realloc(NULL, n), "realloc(NULL)", n);
  EXPECT_ENOMEM(reallocarray(NULL, 1, n), "reallocarray(NULL, 1)", n);
  EXPECT_ENOMEM(aligned_alloc(64, n), "aligned_alloc(64)", n);
  EXPECT_ENOMEM(aligned_alloc(4 * MiB, n), "aligned_alloc(4 MiB)", n);
  EXPECT_ENOMEM(melloc_aligned_alloc(128, n), "melloc_aligned_alloc(128)", n);
  EXPECT_ENOMEM(memalign(64, n), "memalign(64)", n);
  EXPECT_ENOMEM(valloc(n), "valloc", n);
  EXPECT_ENOMEM(pvalloc(n), "pvalloc", n);
  static const size_t aligns[] = {8, 16, 64, PAGE, MiB, 16 * MiB};
  for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
    void *sentinel = (void *)0x5e5e;
    void *p = sentinel;
    errno = EXDEV;
    ck_assert_int_eq(posix_memalign(&p, aligns[i], n), ENOMEM);
    ck_assert_ptr_eq(p, sentinel);
    ck_assert_int_eq(melloc_posix_memalign(&p, aligns[i], n), ENOMEM);
    ck_assert_ptr_eq(p, sentinel);
    ck_assert_int_eq(errno, EXDEV);
  }
}
END_TEST

#if SIZE_MAX > 0xffffffffu
START_TEST(test_huge_alignment_enomem) {
  /* The largest power of two: valid, but no mapping can be that aligned (2^63 is above
     every 64-bit address space). */
  size_t a = hide_size((size_t)1 << (sizeof(size_t) * 8 - 1));
  void *sentinel = (void *)0x5e5e, *p = sentinel;
  ck_assert_int_eq(posix_memalign(&p, a, 1), ENOMEM);
  ck_assert_ptr_eq(p, sentinel);
  EXPECT_ENOMEM(aligned_alloc(a, 1), "aligned_alloc(2^63)", 1);
  EXPECT_ENOMEM(memalign(a, 100), "memalign(2^63)", 100);
}
END_TEST
#else
/* NULL and ENOMEM, or a usable block at an address aligned to a. */
static void expect_aligned_or_enomem(void *p, int err, size_t a, size_t n, const char *what) {
  if (!p) {
    ck_assert_msg(err == ENOMEM, "%s: NULL with errno %d, want ENOMEM", what, err);
    return;
  }
  ck_assert_msg((uintptr_t)p % a == 0, "%s = %p, not aligned to %zu", what, p, a);
  ck_assert_uint_ge(malloc_usable_size(p), n);
  memset(p, 0x5a, n);
  free(p);
}

START_TEST(test_huge_alignment_enomem) {
  /* The largest power of two, 2^31: 0x80000000 is an address a 32-bit process may have
     (4 GiB of address space under a 64-bit kernel), so the block may be granted; it is
     then aligned, else refused with ENOMEM. */
  size_t a = hide_size((size_t)1 << (sizeof(size_t) * 8 - 1));
  void *sentinel = (void *)0x5e5e, *p = sentinel;
  int r = posix_memalign(&p, a, 1);
  if (r == 0) expect_aligned_or_enomem(p, 0, a, 1, "posix_memalign(2^31)");
  else ck_assert_msg(r == ENOMEM && p == sentinel, "posix_memalign(2^31): %d, %p", r, p);
  errno = 0;
  p = aligned_alloc(a, 1);
  expect_aligned_or_enomem(p, errno, a, 1, "aligned_alloc(2^31)");
  errno = 0;
  p = memalign(a, 100);
  expect_aligned_or_enomem(p, errno, a, 100, "memalign(2^31)");
}
END_TEST
#endif

/* 2^32 on 64-bit targets, 2^16 on 32-bit ones: its square just overflows. */
#define HALF_WIDTH ((size_t)1 << (sizeof(size_t) * 4))

START_TEST(test_calloc_overflow) {
  static const size_t pairs[][2] = {
      {SIZE_MAX / 2 + 1, 3}, {3, SIZE_MAX / 2 + 1}, {SIZE_MAX / 2 + 1, 2}, {SIZE_MAX, SIZE_MAX},
      {HALF_WIDTH, HALF_WIDTH}, {SIZE_MAX / 16 + 1, 16}, {2, SIZE_MAX}};
  for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
    size_t a = hide_size(pairs[i][0]), b = hide_size(pairs[i][1]);
    EXPECT_ENOMEM(calloc(a, b), "calloc", i);
    EXPECT_ENOMEM(melloc_calloc(a, b), "melloc_calloc", i);
    EXPECT_ENOMEM(reallocarray(NULL, a, b), "reallocarray(NULL)", i);
  }
}
END_TEST

/* A failed realloc (or reallocarray) leaves the old block as it was. */
static const size_t realloc_fail_from[] = {100, SMALL_MAX, 100000, LARGE_MAX, 5 * MiB};

START_TEST(test_failed_realloc_keeps_block) {
  size_t n = realloc_fail_from[_i];
  char *p = malloc(n);
  ck_assert_ptr_nonnull(p);
  size_t u = malloc_usable_size(p);
  fill_any(p, n, 21);
  static const size_t bad[] = {SIZE_MAX, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX + 1,
#if SIZE_MAX > 0xffffffffu
                               (size_t)PTRDIFF_MAX - 2 * PAGE /* impossible_sizes */
#endif
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t m = hide_size(bad[i]);
    EXPECT_ENOMEM(realloc(p, m), "realloc", m);
    EXPECT_ENOMEM(melloc_realloc(p, m), "melloc_realloc", m);
    ck_assert_uint_eq(malloc_usable_size(p), u);
    ck_assert_msg(check_any(p, n, n, 21) == n, "failed realloc to %zu damaged the block", m);
  }
  EXPECT_ENOMEM(reallocarray(p, hide_size(SIZE_MAX / 2 + 1), 3), "reallocarray overflow", n);
  EXPECT_ENOMEM(reallocarray(p, 3, hide_size(SIZE_MAX / 2 + 1)), "reallocarray overflow", n);
  EXPECT_ENOMEM(reallocarray(p, hide_size(SIZE_MAX / 2), 2), "reallocarray too big", n);
  ck_assert_uint_eq(check_any(p, n, n, 21), n);
  /* Still a live block: it can grow, and be freed. */
  p = realloc(p, n + 1000);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(check_any(p, n, n, 21), n);
  free(p);
}
END_TEST

/* Alignments that are not a power of two multiple of sizeof(void *). */
static const size_t bad_posix_aligns[] = {
    0, 1, 2, 3, sizeof(void *) / 2, 12, 24, 48, 100, 4097, SIZE_MAX,
    ((size_t)1 << (sizeof(size_t) == 8 ? 40 : 30)) + 8};

START_TEST(test_posix_memalign_einval) {
  size_t a = hide_size(bad_posix_aligns[_i]);
  static const size_t sizes[] = {0, 16, 100000, 5 * MiB};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    void *sentinel = (void *)0xdeadbeef, *p = sentinel;
    errno = EXDEV;
    ck_assert_int_eq(posix_memalign(&p, a, sizes[i]), EINVAL);
    ck_assert_ptr_eq(p, sentinel);
    ck_assert_int_eq(melloc_posix_memalign(&p, a, sizes[i]), EINVAL);
    ck_assert_ptr_eq(p, sentinel);
    ck_assert_int_eq(errno, EXDEV);
  }
}
END_TEST

START_TEST(test_aligned_alloc_einval) {
  static const size_t aligns[] = {0, 3, 5, 24, 48, 100, 4097, SIZE_MAX};
  for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
    size_t a = hide_size(aligns[i]);
    errno = 0;
    ck_assert_ptr_null(aligned_alloc(a, 16));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(melloc_aligned_alloc(a, 64));
    ck_assert_int_eq(errno, EINVAL);
  }
  /* glibc's memalign refuses only alignments above the largest power of two. */
  errno = 0;
  ck_assert_ptr_null(memalign(hide_size(SIZE_MAX), 16));
  ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* ---- errno ---- */

/* free never changes errno, whatever it frees (a huge block is unmapped at once). */
START_TEST(test_free_preserves_errno) {
  static const int values[] = {ENOENT, EXDEV, 12345};
  for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
    void *small = malloc(16), *small2 = malloc(8000), *large = malloc(100000);
    void *huge = malloc(8 * MiB), *unmapped = malloc(HUGE_UNMAPPED_SIZE);
    void *aligned = aligned_alloc(MiB, 3 * MiB), *z = malloc(0);
    ck_assert(small && small2 && large && huge && unmapped && aligned && z);
    memset(unmapped, 1, PAGE);
    void *blocks[] = {small, small2, large, huge, unmapped, aligned, z, NULL};
    for (size_t k = 0; k < sizeof(blocks) / sizeof(blocks[0]); k++) {
      errno = values[v];
      if (k % 3 == 1)
        melloc_free(blocks[k]);
      else
        free(blocks[k]);
      ck_assert_msg(errno == values[v], "free of block %zu changed errno to %d", k, errno);
    }
    ck_assert(is_unmapped(hide(unmapped), HUGE_UNMAPPED_SIZE));
  }
  /* Enough small frees to overflow the thread cache and flush to the bins. */
  enum { N = 2000 };
  static void *p[N];
  for (int k = 0; k < N; k++) {
    p[k] = malloc(48);
    ck_assert_ptr_nonnull(p[k]);
  }
  for (int k = 0; k < N; k++) {
    errno = ENOTDIR;
    free(p[k]);
    ck_assert_msg(errno == ENOTDIR, "free of small block %d changed errno to %d", k, errno);
  }
}
END_TEST

/* free preserves errno while other threads contend for the same bins: a free that
   flushes its cache to a contended bin waits on a futex, whose EAGAIN must not leak
   into errno (this caught exactly that bug). */
enum { CONTEND_THREADS = 8, CONTEND_BLOCKS = 2048, CONTEND_ITERS = 300 };
static void *contend_pool[CONTEND_THREADS][CONTEND_BLOCKS];
static pthread_barrier_t contend_barrier;

struct contend_result {
  long changed;
  int last;
};

static void *contend_thread(void *arg) {
  int me = (int)(intptr_t)arg;
  struct contend_result *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  for (int it = 0; it < CONTEND_ITERS; it++) {
    for (int i = 0; i < CONTEND_BLOCKS; i++) contend_pool[me][i] = malloc(64);
    pthread_barrier_wait(&contend_barrier);
    /* Another thread's blocks: their bins belong to its arena, shared with others. */
    int from = (me + 1 + it % (CONTEND_THREADS - 1)) % CONTEND_THREADS;
    for (int i = 0; i < CONTEND_BLOCKS; i++) {
      errno = ENOTDIR;
      free(contend_pool[from][i]);
      if (errno != ENOTDIR) {
        r->changed++;
        r->last = errno;
      }
    }
    pthread_barrier_wait(&contend_barrier);
  }
  return r;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

START_TEST(test_free_preserves_errno_contended) {
  double start = now_s();
  long changed = 0;
  int last = 0, rounds = 0;
  /* Rounds of fresh threads (fresh arena assignments) for up to two seconds. */
  while (changed == 0 && now_s() - start < 2.0) {
    pthread_t t[CONTEND_THREADS];
    ck_assert_int_eq(pthread_barrier_init(&contend_barrier, NULL, CONTEND_THREADS), 0);
    for (int i = 0; i < CONTEND_THREADS; i++)
      ck_assert_int_eq(pthread_create(&t[i], NULL, contend_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < CONTEND_THREADS; i++) {
      void *ret = NULL;
      ck_assert_int_eq(pthread_join(t[i], &ret), 0);
      ck_assert_ptr_nonnull(ret);
      struct contend_result *r = ret;
      changed += r->changed;
      if (r->changed) last = r->last;
      free(r);
    }
    pthread_barrier_destroy(&contend_barrier);
    rounds++;
  }
  ck_assert_msg(changed == 0, "%ld contended frees changed errno (last to %d) in %d rounds",
                changed, last, rounds);
}
END_TEST

/* ---- Out of memory ---- */

static size_t vm_size(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f) {
    if (fscanf(f, "%lu", &pages) != 1) pages = 0;
    fclose(f);
  }
  return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

enum { OOM_MAX_BLOCKS = 1 << 16 };
static void *oom_blocks[OOM_MAX_BLOCKS];

/* Allocates blocks of n bytes until the address-space limit refuses; returns how many. */
static size_t exhaust(size_t n, size_t *count) {
  size_t got = 0;
  for (;;) {
    ck_assert_msg(*count < OOM_MAX_BLOCKS, "no ENOMEM after %zu blocks", *count);
    errno = 0;
    void *p = malloc(n);
    if (!p) {
      ck_assert_msg(errno == ENOMEM, "malloc(%zu) failed with errno %d", n, errno);
      return got;
    }
    *(volatile char *)p = 1;
    oom_blocks[(*count)++] = p;
    got++;
  }
}

/* Running out of address space gives NULL with ENOMEM in every tier, and leaves the
   allocator working: the freed memory is reused at the same limit, and with the limit
   raised again, new memory is used. */
START_TEST(test_out_of_memory_recovers) {
  struct rlimit old, lim;
  ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
  size_t vm = vm_size();
  ck_assert_uint_gt(vm, 0);
  lim = old;
  lim.rlim_cur = vm + 96 * MiB;
  if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < lim.rlim_cur) lim.rlim_cur = old.rlim_cur;
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);

  size_t count = 0;
  size_t huge = exhaust(8 * MiB, &count);
  size_t large = exhaust(256 * KiB, &count);
  size_t small = exhaust(2048, &count);
  ck_assert_msg(huge + large + small > 0, "nothing could be allocated under the limit");
  void *sentinel = (void *)0x77, *p = sentinel;
  ck_assert_int_eq(posix_memalign(&p, MiB, 8 * MiB), ENOMEM);
  ck_assert_ptr_eq(p, sentinel);
  EXPECT_ENOMEM(calloc(1, 8 * MiB), "calloc at the limit", 8 * MiB);
  EXPECT_ENOMEM(aligned_alloc(4 * MiB, 16 * MiB), "aligned_alloc at the limit", 16 * MiB);

  while (count > 0) free(oom_blocks[--count]);

  /* Same limit: what was freed is usable again. */
  void *a = malloc(8 * MiB), *b = malloc(256 * KiB), *c = malloc(2048), *d = calloc(1, 100000);
  ck_assert_msg(a && b && c && d, "allocation failed after freeing at the same limit: %p %p %p %p",
                a, b, c, d);
  memset(a, 1, 8 * MiB);
  ck_assert(is_zero(d, 100000));
  free(a);
  free(b);
  free(c);
  free(d);

  ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
  char *big = malloc(128 * MiB);
  ck_assert_ptr_nonnull(big);
  fill_sparse(big, 128 * MiB, 8);
  ck_assert_uint_eq(check_sparse(big, 128 * MiB, 8), 128 * MiB);
  free(big);
  for (int k = 0; k < 1000; k++) {
    oom_blocks[k] = malloc(100 + (size_t)k * 37);
    ck_assert_ptr_nonnull(oom_blocks[k]);
  }
  for (int k = 0; k < 1000; k++) free(oom_blocks[k]);
}
END_TEST

/* Freed huge blocks stay mapped in a cache for a while; at the address-space limit that
   cache must give way to the chunks that large and small objects need, without waiting
   for the collector. */
START_TEST(test_out_of_memory_huge_cache_gives_way) {
  struct rlimit old, lim;
  ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
  lim = old;
  lim.rlim_cur = vm_size() + 96 * MiB;
  if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < lim.rlim_cur) lim.rlim_cur = old.rlim_cur;
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);

  size_t count = 0;
  size_t huge = exhaust(8 * MiB, &count);
  ck_assert_uint_ge(huge, 6);
  while (count > 0) free(oom_blocks[--count]);
  /* Everything freed is cached now; large blocks need new chunks. */
  size_t large = exhaust(256 * KiB, &count);
  ck_assert_msg(large * 256 * KiB >= (huge - 2) * 8 * MiB,
                "%zu large blocks after freeing %zu huge ones", large, huge);
  while (count > 0) free(oom_blocks[--count]);
  size_t small = exhaust(2048, &count);
  ck_assert_msg(small * 2048 >= 32 * MiB, "%zu small blocks at the limit", small);
  while (count > 0) free(oom_blocks[--count]);
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
}
END_TEST

/* Whether setrlimit(RLIMIT_AS) is enforced here: NULL when it is, else the reason the
   cases above cannot run.  qemu-user accepts the call and ignores it (its own mappings
   share the address space), so a mapping far over the limit still succeeds.  Probed in
   a child, which keeps the limit to itself. */
static const char *rlimit_as_ignored(void) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit lim = {16 * MiB, RLIM_INFINITY};
    if (getrlimit(RLIMIT_AS, &lim) != 0) _exit(2);
    lim.rlim_cur = 16 * MiB;
    if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(2);
    void *p = mmap(NULL, 64 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    _exit(p == MAP_FAILED ? 0 : 1);
  }
  int st = -1;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return "cannot fork to probe RLIMIT_AS";
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return NULL;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 1)
    return "RLIMIT_AS is not enforced here: a 64 MiB mmap succeeded under a 16 MiB limit "
           "(qemu-user ignores it)";
  return "cannot set RLIMIT_AS";
}

/* ---- Suite ---- */

#define NELEMS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- Early and unusual callers ---- */

/* A constructor of the program runs before main, possibly before anything else has
   called malloc. */
static char *from_constructor;
static size_t from_constructor_usable;
__attribute__((constructor)) static void early_allocation(void) {
  from_constructor = malloc(100);
  if (from_constructor) {
    memset(from_constructor, 0x42, 100);
    from_constructor_usable = malloc_usable_size(from_constructor);
  }
}

START_TEST(test_malloc_from_constructor) {
  ck_assert_ptr_nonnull(from_constructor);
  ck_assert_uint_ge(from_constructor_usable, 100);
  for (int i = 0; i < 100; i++) ck_assert_int_eq(from_constructor[i], 0x42);
  /* It is melloc's: the prefixed API knows it, and it frees cleanly. */
  ck_assert_uint_eq(melloc_usable_size(from_constructor), from_constructor_usable);
  free(from_constructor);
}
END_TEST

/* dlsym allocates (calloc) on first use in a thread; with melloc as the allocator that
   must neither recurse nor deadlock, including in a thread's very first call. */
static void *dlsym_thread(void *arg) {
  (void)arg;
  void *f = dlsym(RTLD_DEFAULT, "melloc_malloc");
  void *g = dlsym(RTLD_NEXT, "no_such_symbol_anywhere");
  return (f != NULL && g == NULL) ? f : NULL;
}

START_TEST(test_dlsym_in_new_thread) {
  pthread_t t;
  void *r;
  ck_assert_int_eq(pthread_create(&t, NULL, dlsym_thread, NULL), 0);
  ck_assert_int_eq(pthread_join(t, &r), 0);
  ck_assert_ptr_eq(r, (void *)melloc_malloc);
}
END_TEST

static Suite *api_suite(void) {
  Suite *s = suite_create("api");
  TCase *tc;

  tc = tcase_create("version");
  tcase_add_test(tc, test_version);
  tcase_add_test(tc, test_library_identity);
  suite_add_tcase(s, tc);

  tc = tcase_create("early");
  tcase_add_test(tc, test_malloc_from_constructor);
  tcase_add_test(tc, test_dlsym_in_new_thread);
  suite_add_tcase(s, tc);

  tc = tcase_create("basics");
  tcase_add_test(tc, test_malloc_zero_unique);
  tcase_add_test(tc, test_free_null);
  tcase_add_test(tc, test_realloc_null_is_malloc);
  tcase_add_test(tc, test_prefixed_and_standard_interoperate);
  tcase_add_test(tc, test_free_sized_frees);
  suite_add_tcase(s, tc);

  tc = tcase_create("usable_size");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, test_usable_small_sizes, 0, USABLE_SLICES);
  tcase_add_loop_test(tc, test_usable_big_sizes, 0, NELEMS(big_sizes));
  suite_add_tcase(s, tc);

  tc = tcase_create("alignment");
  tcase_set_timeout(tc, 30);
  /* log2 of sizeof(void *) .. 4 MiB, and to 16 MiB for posix_memalign. */
  tcase_add_loop_test(tc, test_posix_memalign_alignments, 3, 25);
  tcase_add_loop_test(tc, test_aligned_alloc_alignments, 3, 23);
  tcase_add_loop_test(tc, test_memalign_alignments, 3, 23);
  tcase_add_loop_test(tc, test_melloc_aligned_alignments, 3, 23);
  tcase_add_loop_test(tc, test_aligned_many, 5, 14);
  tcase_add_test(tc, test_memalign_rounds_alignment);
  tcase_add_test(tc, test_valloc);
  tcase_add_test(tc, test_pvalloc);
  suite_add_tcase(s, tc);

  tc = tcase_create("calloc");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, test_calloc_zeroes_reused_memory, 0, NELEMS(calloc_sizes));
  tcase_add_test(tc, test_calloc_count_times_size);
  suite_add_tcase(s, tc);

  tc = tcase_create("realloc");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_realloc_small_steps);
  tcase_add_test(tc, test_realloc_growth_moves_rarely);
  tcase_add_test(tc, test_realloc_growth_side_by_side);
  tcase_add_test(tc, test_realloc_growth_room_bounded);
  tcase_add_test(tc, test_realloc_growth_past_bound);
  tcase_add_loop_test(tc, test_realloc_tier_chain, 0, NELEMS(realloc_chains));
  tcase_add_test(tc, test_realloc_huge_grow_shrink);
  tcase_add_test(tc, test_realloc_huge_grow_with_neighbour);
#if !MELLOC_TEST_HARDENED
  tcase_add_test(tc, test_huge_ranges_reused);
  tcase_add_test(tc, test_huge_range_grown);
  tcase_add_test(tc, test_huge_grows_into_cache);
  tcase_add_test(tc, test_huge_gathered);
  tcase_add_test(tc, test_huge_calloc_not_resident);
  tcase_add_test(tc, test_huge_phase_end_kept);
  tcase_add_test(tc, test_huge_slack_counted);
  tcase_add_test(tc, test_huge_churn);
  tcase_add_test(tc, test_huge_whole_range_not_tail);
#endif
  tcase_add_test(tc, test_realloc_large);
  tcase_add_test(tc, test_realloc_same_size_in_place);
  tcase_add_test(tc, test_realloc_zero_frees);
  tcase_add_test(tc, test_reallocarray);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_loop_test(tc, test_impossible_sizes_enomem, 0, NELEMS(impossible_sizes));
  tcase_add_test(tc, test_huge_alignment_enomem);
  tcase_add_test(tc, test_calloc_overflow);
  tcase_add_loop_test(tc, test_failed_realloc_keeps_block, 0, NELEMS(realloc_fail_from));
  tcase_add_loop_test(tc, test_posix_memalign_einval, 0, NELEMS(bad_posix_aligns));
  tcase_add_test(tc, test_aligned_alloc_einval);
  suite_add_tcase(s, tc);

  tc = tcase_create("errno");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_free_preserves_errno);
  tcase_add_test(tc, test_free_preserves_errno_contended);
  suite_add_tcase(s, tc);

  tc = tcase_create("out_of_memory");
  tcase_set_timeout(tc, 30);
  const char *no_as_limit = rlimit_as_ignored();
  mlc_tcase_add_test_unless(no_as_limit, tc, test_out_of_memory_recovers);
  mlc_tcase_add_test_unless(no_as_limit, tc, test_out_of_memory_huge_cache_gives_way);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return mlc_check_run(api_suite());
}
