/* SPDX-License-Identifier: MIT */
#include "unit.h"

static mlc_arena_t *new_arena(void) {
  mlc_boot();
  mlc_arena_t *a = mlc_arena_new(201);
  ck_assert_ptr_nonnull(a);
  return a;
}

/* Threads get arenas round-robin. */
START_TEST(test_round_robin) {
  mlc_boot();
  mlc_arena_t *first = mlc_arena_choose();
  for (unsigned i = 1; i <= 2 * mlc_narenas; i++) {
    mlc_arena_t *a = mlc_arena_choose();
    ck_assert_uint_eq(a->ind, (first->ind + i) % mlc_narenas);
  }
}
END_TEST

/* The arena count follows the CPUs the process may use. */
START_TEST(test_narenas_default) {
  mlc_boot();
  if (mlc_opt.narenas == 0) ck_assert_uint_eq(mlc_narenas, mlc_os_ncpus());
}
END_TEST

START_TEST(test_large_alignment_and_reuse) {
  mlc_arena_t *a = new_arena();
  for (size_t align = MLC_PAGE; align <= MLC_CHUNK / 4; align <<= 1) {
    char *p = mlc_arena_large_alloc(a, 20000, align, false);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % align, 0);
    ck_assert_uint_eq(mlc_arena_large_usable(mlc_pagemap_entry(p), p), 20480);
    mlc_arena_large_free(mlc_pagemap_entry(p), p);
  }
  /* A freed run is reused at once. */
  char *p = mlc_arena_large_alloc(a, 50000, 0, false);
  mlc_arena_large_free(mlc_pagemap_entry(p), p);
  char *q = mlc_arena_large_alloc(a, 50000, 0, false);
  ck_assert_ptr_eq(p, q);
  mlc_arena_large_free(mlc_pagemap_entry(q), q);
}
END_TEST

/* Best fit: of two holes that hold a request, the smaller is used, in whichever chunk
   it is; an exact fit ends the search. */
START_TEST(test_large_best_fit) {
  mlc_arena_t *a = new_arena();
  size_t pg = MLC_PAGE;
  char *big = mlc_arena_large_alloc(a, 10 * pg, 0, false);
  char *sep1 = mlc_arena_large_alloc(a, pg * 3, 0, false);
  char *mid = mlc_arena_large_alloc(a, 5 * pg, 0, false);
  char *sep2 = mlc_arena_large_alloc(a, pg * 3, 0, false);
  ck_assert(big && sep1 && mid && sep2);
  ck_assert_ptr_eq(sep1, big + 10 * pg); /* one chunk, back to back */
  ck_assert_ptr_eq(mid, sep1 + 3 * pg);
  mlc_arena_large_free(mlc_pagemap_entry(big), big);
  mlc_arena_large_free(mlc_pagemap_entry(mid), mid);
  char *q = mlc_arena_large_alloc(a, 4 * pg, 0, false);
  ck_assert_ptr_eq(q, mid); /* the 5-page hole, not the first (10 pages) */
  char *r = mlc_arena_large_alloc(a, 10 * pg, 0, false);
  ck_assert_ptr_eq(r, big); /* exact fit */
  char *blocks[] = {q, r, sep1, sep2};
  for (int i = 0; i < 4; i++) mlc_arena_large_free(mlc_pagemap_entry(blocks[i]), blocks[i]);
}
END_TEST

START_TEST(test_large_resize_in_place) {
  mlc_arena_t *a = new_arena();
  char *p = mlc_arena_large_alloc(a, 3 * MLC_PAGE, 0, false);
  mlc_chunk_t *c = mlc_pagemap_entry(p);
  ck_assert(mlc_arena_large_resize(c, p, 10 * MLC_PAGE));
  ck_assert_uint_eq(mlc_arena_large_usable(c, p), 10 * MLC_PAGE);
  char *q = mlc_arena_large_alloc(a, MLC_PAGE, 0, false);
  ck_assert_ptr_eq(q, p + 10 * MLC_PAGE);
  ck_assert(!mlc_arena_large_resize(c, p, 11 * MLC_PAGE)); /* q is in the way */
  ck_assert(mlc_arena_large_resize(c, p, 2 * MLC_PAGE));
  ck_assert_uint_eq(mlc_arena_large_usable(c, p), 2 * MLC_PAGE);
  mlc_arena_large_free(c, q);
  mlc_arena_large_free(c, p);
}
END_TEST

/* Freed pages stay resident until the decay delay has passed; then a purge gives them
   back and they read as zero (and calloc knows it need not clear them). */
START_TEST(test_purge_after_decay) {
  mlc_arena_t *a = new_arena();
  char *keep = mlc_arena_large_alloc(a, MLC_PAGE, 0, false); /* keeps the chunk in use */
  char *p = mlc_arena_large_alloc(a, 8 * MLC_PAGE, 0, false);
  memset(p, 0x5a, 8 * MLC_PAGE);
  mlc_chunk_t *c = mlc_pagemap_entry(p);
  mlc_arena_large_free(c, p);
  uint64_t t0 = c->free_ns;
  ck_assert_uint_eq(mlc_arena_purge(a, t0 + 1000, 1000000), 0);
  ck_assert_uint_eq((unsigned char)p[100], 0x5a);
  ck_assert_uint_ge(mlc_arena_purge(a, t0 + 2000000, 1000000), 8 * MLC_PAGE);
  ck_assert_uint_eq((unsigned char)p[100], 0);
  char *z = mlc_arena_large_alloc(a, 8 * MLC_PAGE, 0, true);
  ck_assert_ptr_eq(z, p);
  for (size_t i = 0; i < 8 * MLC_PAGE; i++) ck_assert_uint_eq((unsigned char)z[i], 0);
  mlc_arena_large_free(c, z);
  mlc_arena_large_free(c, keep);
}
END_TEST

/* A wholly free chunk becomes a spare; purging with no delay unmaps it. */
START_TEST(test_spare_chunk) {
  mlc_arena_t *a = new_arena();
  char *p = mlc_arena_large_alloc(a, 100 * MLC_PAGE, 0, false);
  ck_assert_uint_eq(a->mapped, MLC_CHUNK);
  mlc_arena_large_free(mlc_pagemap_entry(p), p);
  ck_assert_uint_eq(a->nspare, 1);
  char *q = mlc_arena_large_alloc(a, 100 * MLC_PAGE, 0, false);
  ck_assert_uint_eq(a->nspare, 0);
  ck_assert_uint_eq(a->mapped, MLC_CHUNK);
  mlc_arena_large_free(mlc_pagemap_entry(q), q);
  ck_assert_uint_eq(mlc_arena_purge(a, mlc_os_now_ns(), 0), MLC_CHUNK);
  ck_assert_uint_eq(a->mapped, 0);
  ck_assert_ptr_null(mlc_pagemap_entry(q));
}
END_TEST

/* A slab chunk's granules are reused by another class once free. */
START_TEST(test_granule_reuse_across_classes) {
  mlc_arena_t *a = new_arena();
  void *objs[4096];
  unsigned n = mlc_class_nobjs[1];
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], objs, n), n);
  void *one;
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], &one, 1), 1); /* second slab */
  uintptr_t granule = (uintptr_t)objs[0];
  mlc_bin_free_batch(objs, n, 1); /* first slab empties, goes back */
  void *big;
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[20], &big, 1), 1);
  ck_assert_uint_eq((uintptr_t)big & ~(MLC_GRANULE - 1), granule);
  ck_assert_uint_eq(mlc_pagemap_class(big), 20);
}
END_TEST

int main(void) {
  Suite *s = suite_create("arena");
  TCase *tc = tcase_create("arena");
  tcase_add_test(tc, test_round_robin);
  tcase_add_test(tc, test_narenas_default);
  tcase_add_test(tc, test_large_alignment_and_reuse);
  tcase_add_test(tc, test_large_best_fit);
  tcase_add_test(tc, test_large_resize_in_place);
  tcase_add_test(tc, test_purge_after_decay);
  tcase_add_test(tc, test_spare_chunk);
  tcase_add_test(tc, test_granule_reuse_across_classes);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
