/* SPDX-License-Identifier: MIT */
#include "unit.h"


static mlc_arena_t *new_arena(void) {
  mlc_boot();
  mlc_arena_t *a = mlc_arena_new(202);
  ck_assert_ptr_nonnull(a);
  return a;
}

START_TEST(test_map_aligned) {
  for (size_t align = MLC_PAGE; align <= ((size_t)64 << 20); align <<= 1) {
    void *p = mlc_os_map(3 * MLC_PAGE, align);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % align, 0);
    ((char *)p)[3 * MLC_PAGE - 1] = 1;
    mlc_os_unmap(p, 3 * MLC_PAGE);
  }
}
END_TEST

/* Purges work in whole kernel pages (4, 16 or 64 KiB): the purged ones read as zero,
   their neighbours keep their bytes, and errno is the program's. */
START_TEST(test_purge_zeroes) {
  size_t pg = mlc_os_page_size();
  ck_assert_uint_eq(pg, (size_t)sysconf(_SC_PAGESIZE));
  ck_assert_uint_eq(pg & (pg - 1), 0);
  ck_assert_uint_eq(mlc_os_purge_unit(), pg <= MLC_GRANULE ? MLC_MAX(pg, MLC_PAGE) : 0);
  char *p = mlc_os_map(4 * pg, pg);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq((uintptr_t)p % pg, 0);
  memset(p, 7, 4 * pg);
  errno = 1234;
  ck_assert(mlc_os_purge(p + pg, 2 * pg));
  ck_assert_int_eq(errno, 1234);
  ck_assert_int_eq(p[pg - 1], 7);
  ck_assert_int_eq(p[pg], 0);
  ck_assert_int_eq(p[3 * pg - 1], 0);
  ck_assert_int_eq(p[3 * pg], 7);
  mlc_os_unmap(p, 4 * pg);
}
END_TEST

/* A kernel that refuses madvise: the purge maps fresh pages over the range instead; when
   that is refused too the purge reports failure and the bytes stay.  Each is counted,
   and errno never changes. */
START_TEST(test_purge_refused) {
  size_t pg = mlc_os_page_size();
  char *p = mlc_os_map(3 * pg, pg);
  memset(p, 7, 3 * pg);
  mlc_os_counts_t a, b;
  mlc_os_counts(&a);
  mlc_os_refuse(MLC_OS_REFUSE_MADVISE);
  errno = 1234;
  ck_assert(mlc_os_purge(p + pg, pg));
  ck_assert_int_eq(errno, 1234);
  ck_assert_int_eq(p[pg], 0);
  ck_assert_int_eq(p[2 * pg - 1], 0);
  ck_assert_int_eq(p[pg - 1], 7);
  ck_assert_int_eq(p[2 * pg], 7);
  mlc_os_counts(&b);
  ck_assert_uint_eq(b.purge_refused, a.purge_refused + 1);
  ck_assert_uint_eq(b.purge_failed, a.purge_failed);
  memset(p, 7, 3 * pg);
  mlc_os_refuse(MLC_OS_REFUSE_MADVISE | MLC_OS_REFUSE_MAP_FIXED);
  ck_assert(!mlc_os_purge(p + pg, pg));
  ck_assert_int_eq(errno, 1234);
  ck_assert_int_eq(p[pg], 7);
  mlc_os_counts(&a);
  ck_assert_uint_eq(a.purge_refused, b.purge_refused + 1);
  ck_assert_uint_eq(a.purge_failed, b.purge_failed + 1);
  mlc_os_refuse(0);
  mlc_os_unmap(p, 3 * pg);
}
END_TEST

/* Refused mremap and membarrier are counted and reported as failures; shrinking in
   place needs no mremap.  errno never changes. */
START_TEST(test_remap_membarrier_refused) {
  size_t pg = mlc_os_page_size();
  char *p = mlc_os_map(8 * pg, MLC_CHUNK);
  mlc_os_counts_t a, b;
  mlc_os_counts(&a);
  mlc_os_refuse(MLC_OS_REFUSE_MREMAP | MLC_OS_REFUSE_MEMBARRIER);
  errno = 1234;
  ck_assert(!mlc_os_resize_in_place(p, 8 * pg, 16 * pg));
  ck_assert(mlc_os_resize_in_place(p, 8 * pg, 4 * pg));
  ck_assert(!mlc_os_move(p, 4 * pg, p + MLC_CHUNK / 2, 4 * pg));
  ck_assert(!mlc_os_membarrier_register());
  ck_assert(!mlc_os_membarrier());
  ck_assert_int_eq(errno, 1234);
  mlc_os_counts(&b);
  ck_assert_uint_eq(b.remap_refused, a.remap_refused + 2);
  ck_assert_uint_eq(b.membarrier_refused, a.membarrier_refused + 2);
  mlc_os_refuse(0);
  p[4 * pg - 1] = 1;
  mlc_os_unmap(p, 4 * pg);
}
END_TEST

START_TEST(test_ncpus_matches_affinity) {
  cpu_set_t set;
  ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
  ck_assert_uint_eq(mlc_os_ncpus(), (unsigned)CPU_COUNT(&set));
}
END_TEST

/* When the kernel refuses memory, every path returns NULL with ENOMEM and the allocator
   stays usable: the same calls succeed once memory is available again. */
START_TEST(test_fault_injection) {
  mlc_arena_t *a = new_arena();
  void *obj;
  mlc_os_fail_after(0);
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[5], &obj, 1), 0);
  ck_assert_ptr_null(mlc_arena_large_alloc(a, 100000, 0, false));
  errno = 0;
  ck_assert_ptr_null(malloc(64 << 20));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(calloc(1, 40 << 20));
  ck_assert_int_eq(errno, ENOMEM);
  /* realloc that must move a huge block into a new mapping fails and keeps the old. */
  mlc_os_fail_after(-1);
  char *h = malloc(5 << 20);
  memset(h, 3, 5 << 20);
  mlc_os_fail_after(0);
  errno = 0;
  char *h2 = realloc(h, 200 << 20);
  if (!h2) {
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_int_eq(h[(5 << 20) - 1], 3);
  } else {
    h = h2; /* grown in place: mremap needs no new mapping */
  }
  mlc_os_fail_after(-1);
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[5], &obj, 1), 1);
  ck_assert_uint_eq(mlc_pagemap_class(obj), 5);
  void *l = mlc_arena_large_alloc(a, 100000, 0, false);
  ck_assert_ptr_nonnull(l);
  void *big = malloc(64 << 20);
  ck_assert_ptr_nonnull(big);
  free(big);
  free(h);
  mlc_arena_large_free(mlc_pagemap_entry(l), l);
  mlc_bin_free_batch(&obj, 1, 5);
}
END_TEST

/* The countdown lets some calls through first: failure in the middle of a multi-step
   operation (a chunk mapped, its page-map leaf not) leaves nothing half-registered. */
START_TEST(test_fault_midway) {
  for (long n = 0; n < 4; n++) {
    mlc_arena_t *a = new_arena();
    mlc_os_fail_after(n);
    void *objs[4096];
    unsigned got = mlc_bin_alloc_batch(&a->bins[1], objs, 10);
    mlc_os_fail_after(-1);
    for (unsigned i = 0; i < got; i++) ck_assert_uint_eq(mlc_pagemap_class(objs[i]), 1);
    if (got) mlc_bin_free_batch(objs, got, 1);
    ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], objs, 10), 10);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("os");
  TCase *tc = tcase_create("os");
  tcase_add_test(tc, test_map_aligned);
  tcase_add_test(tc, test_purge_zeroes);
  tcase_add_test(tc, test_purge_refused);
  tcase_add_test(tc, test_remap_membarrier_refused);
  tcase_add_test(tc, test_ncpus_matches_affinity);
  tcase_add_test(tc, test_fault_injection);
  tcase_add_test(tc, test_fault_midway);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
