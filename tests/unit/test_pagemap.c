/* SPDX-License-Identifier: MIT */
#include "unit.h"

#include "../rss.h"

#include <melloc.h>
#include <sys/mman.h>

static int not_ours_static;

/* A pointer melloc does not own reads class 0 and entry NULL. */
START_TEST(test_foreign_pointers) {
  int local;
  ck_assert_uint_eq(mlc_pagemap_class(&local), 0);
  ck_assert_ptr_null(mlc_pagemap_entry(&local));
  ck_assert_uint_eq(mlc_pagemap_class(&not_ours_static), 0);
  ck_assert_ptr_null(mlc_pagemap_entry(&not_ours_static));
  ck_assert_uint_eq(mlc_pagemap_class(NULL), 0);
  ck_assert_ptr_null(mlc_pagemap_entry((void *)~(uintptr_t)0));
}
END_TEST

/* Every small class: the page map gives the class of each object, and the entry is the
   chunk that holds it. */
START_TEST(test_small_lookup) {
  unsigned c = (unsigned)_i;
  void *p = malloc(mlc_class_size[c]);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(mlc_pagemap_class(p), c);
  mlc_chunk_t *chunk = mlc_pagemap_entry(p);
  ck_assert_ptr_eq(chunk, (void *)((uintptr_t)p & ~MLC_CHUNK_MASK));
  size_t pg = ((uintptr_t)p & MLC_CHUNK_MASK) >> MLC_PAGE_SHIFT;
  ck_assert_uint_eq((chunk->used[pg / 64] >> (pg % 64)) & 1, 1); /* a page in use */
  ck_assert_uint_eq(chunk->npages[pg], 0);                        /* not a large run */
  ck_assert_uint_eq(mlc_slab_of(p)->cls, c);
  free(p);
}
END_TEST

START_TEST(test_large_and_huge_lookup) {
  void *l = malloc(100000);
  ck_assert_uint_eq(mlc_pagemap_class(l), 0);
  mlc_chunk_t *chunk = mlc_pagemap_entry(l);
  ck_assert_ptr_eq(chunk, (void *)((uintptr_t)l & ~MLC_CHUNK_MASK));
  ck_assert_uint_eq(chunk->npages[((uintptr_t)l & MLC_CHUNK_MASK) >> MLC_PAGE_SHIFT], 25);
  void *h = malloc(9 << 20);
  ck_assert_uint_eq(mlc_pagemap_class(h), 0);
  mlc_huge_t *d = mlc_huge_of_entry(mlc_pagemap_entry(h));
  ck_assert_ptr_nonnull(d);
  ck_assert_ptr_eq(d->addr, h);
  /* Every 4 MiB of the mapping points at the descriptor. */
  ck_assert_ptr_eq(mlc_huge_of_entry(mlc_pagemap_entry((char *)h + (8 << 20))), d);
  free(h);
  free(l);
}
END_TEST

START_TEST(test_register_clear) {
  void *addr = mlc_os_reserve(MLC_CHUNK, MLC_CHUNK);
  ck_assert_ptr_nonnull(addr);
  ck_assert(mlc_pagemap_register(addr, MLC_CHUNK, (void *)0x1001));
  ck_assert_ptr_eq(mlc_pagemap_entry((char *)addr + 12345), (void *)0x1001);
  ck_assert(mlc_pagemap_register(addr, MLC_CHUNK, NULL));
  ck_assert_ptr_null(mlc_pagemap_entry((char *)addr + 12345));
  mlc_os_unmap(addr, MLC_CHUNK);
}
END_TEST

/* free's window agrees with the radix tree for every class, and reads 0 for pointers
   that are not small objects. */
START_TEST(test_window_matches) {
  int local;
  void *objs[MLC_NCLASSES];
  for (unsigned c = 1; c < MLC_NCLASSES; c++) {
    objs[c] = malloc(mlc_class_size[c]);
    ck_assert_ptr_nonnull(objs[c]);
    ck_assert_uint_eq(mlc_win_class(objs[c]), c);
    ck_assert_uint_eq(mlc_win_class((char *)objs[c] + mlc_class_size[c] - 1), c);
  }
  void *l = malloc(100000), *h = malloc(9 << 20);
  ck_assert_uint_eq(mlc_win_class(l), 0);
  ck_assert_uint_eq(mlc_win_class(h), 0);
  ck_assert_uint_eq(mlc_win_class(&local), 0);
  ck_assert_uint_eq(mlc_win_class(&not_ours_static), 0);
  ck_assert_uint_eq(mlc_win_class(NULL), 0);
  ck_assert_uint_eq(mlc_win_class((void *)~(uintptr_t)0), 0);
#if !MLC_WIN_ALL
  /* One past each end of the window. */
  uintptr_t first = mlc_win_first << MLC_GRANULE_SHIFT;
  ck_assert_uint_eq(mlc_win_class((void *)(first - 1)), 0);
  ck_assert_uint_eq(mlc_win_class((void *)(first + (MLC_WIN << MLC_GRANULE_SHIFT))), 0);
#endif
  for (unsigned c = 1; c < MLC_NCLASSES; c++) free(objs[c]);
  free(h);
  free(l);
}
END_TEST

#if !MLC_WIN_ALL
/* A process that maps more than the window (here: 2 TiB of PROT_NONE reservation, as a
   runtime with large virtual reservations does) gets slabs outside it.  Their objects
   read class 0 in the window; free takes the slow path, which must still cache them and
   hand them back, and the bins must account for them. */
START_TEST(test_outside_window) {
  size_t resv = (size_t)2 << 40;
  void *r = mmap(NULL, resv, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ck_assert_ptr_ne(r, MAP_FAILED);
  unsigned c = mlc_size_class(4096);
  melloc_stats_t st = {.size = sizeof(st)};
  mlc_tcache_flush_self();
  ck_assert_int_eq(melloc_stats_get(&st), 0);
  uint64_t live0 = st.classes[c].live;
  enum { MAX = 1 << 16 };
  void **objs = malloc(MAX * sizeof(void *));
  ck_assert_ptr_nonnull(objs);
  size_t n = 0;
  void *out = NULL;
  while (n < MAX && !out) {
    void *p = malloc(4096);
    ck_assert_ptr_nonnull(p);
    objs[n++] = p;
    ck_assert_uint_eq(mlc_pagemap_class(p), c);
    if (mlc_win_class(p) == 0) out = p;
  }
  ck_assert_msg(out != NULL, "no slab outside the window after %zu objects", n);
  /* Cached by the slow path: the next allocation of the class returns it. */
  free(out);
  ck_assert_ptr_eq(malloc(4096), out);
  memset(out, 0xa5, 4096);
  for (size_t i = 0; i < n; i++) free(objs[i]);
  free(objs);
  mlc_tcache_flush_self();
  ck_assert_int_eq(melloc_stats_get(&st), 0);
  ck_assert_uint_eq(st.classes[c].live, live0);
  munmap(r, resv);
}
END_TEST
#else
/* On 32-bit targets the window is the whole address space: it starts at 0, ends at the
   top, and every slab reads its class there, wherever the kernel placed it (here:
   after 1 GiB of reservation has pushed new mappings down). */
START_TEST(test_window_covers_all) {
  ck_assert_uint_eq(mlc_win_first, 0);
  ck_assert_uint_eq(MLC_WIN - 1, UINTPTR_MAX >> MLC_GRANULE_SHIFT);
  ck_assert(mlc_win_covers(NULL));
  ck_assert(mlc_win_covers((void *)UINTPTR_MAX));
  size_t resv = (size_t)1 << 30;
  void *r = mmap(NULL, resv, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ck_assert_ptr_ne(r, MAP_FAILED);
  unsigned c = mlc_size_class(4096);
  enum { N = 2048 }; /* 8 MiB: slabs in more than one chunk */
  static void *objs[N];
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (size_t i = 0; i < N; i++) {
    objs[i] = malloc(4096);
    ck_assert_ptr_nonnull(objs[i]);
    ck_assert_uint_eq(mlc_pagemap_class(objs[i]), c);
    ck_assert_uint_eq(mlc_win_class(objs[i]), c);
    lo = MLC_MIN(lo, (uintptr_t)objs[i]);
    hi = MLC_MAX(hi, (uintptr_t)objs[i]);
  }
  ck_assert_uint_ge(hi - lo, MLC_CHUNK);
  for (size_t i = 0; i < N; i++) free(objs[i]);
  munmap(r, resv);
}
END_TEST
#endif

#if !MLC_WIN_ALL
static size_t rss_kb(void) { return mlc_test_rss_kb(); }

/* Why test_outside_window cannot run here, or NULL: reserving address space costs
   memory in proportion (qemu-user keeps flags for every page it maps, about 24 MiB for
   4 GiB of PROT_NONE: 2 TiB would take 12 GiB).  Natively it costs nothing. */
static const char *reserving_costs_memory(void) {
  static char why[200];
  size_t resv = (size_t)4 << 30, before = rss_kb();
  void *r = mmap(NULL, resv, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return NULL; /* the test says what fails */
  size_t after = rss_kb();
  munmap(r, resv);
  if (after < before + 4096) return NULL;
  snprintf(why, sizeof(why),
           "reserving 4 GiB of address space takes %zu MiB of memory here (an emulator's "
           "page flags, as qemu-user's): the 2 TiB of this case would take 512 times that",
           (after - before) / 1024);
  return why;
}
#endif

int main(void) {
  Suite *s = suite_create("pagemap");
  TCase *tc = tcase_create("lookup");
  tcase_add_test(tc, test_foreign_pointers);
  tcase_add_loop_test(tc, test_small_lookup, 1, MLC_NCLASSES);
  tcase_add_test(tc, test_large_and_huge_lookup);
  tcase_add_test(tc, test_register_clear);
  tcase_add_test(tc, test_window_matches);
#if !MLC_WIN_ALL
  mlc_tcase_add_test_unless(reserving_costs_memory(), tc, test_outside_window);
#else
  tcase_add_test(tc, test_window_covers_all);
#endif
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
