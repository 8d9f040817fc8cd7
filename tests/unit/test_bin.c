/* SPDX-License-Identifier: MIT */
#include "unit.h"

/* A private arena, so the counts below are exactly this test's. */
static mlc_arena_t *new_arena(void) {
  mlc_boot();
  mlc_arena_t *a = mlc_arena_new(200);
  ck_assert_ptr_nonnull(a);
  return a;
}

/* A slab is carved into exactly nobjs distinct objects at class boundaries, lowest
   address first; then the bin takes a second slab. */
START_TEST(test_slab_carving) {
  unsigned c = (unsigned)_i;
  mlc_arena_t *a = new_arena();
  mlc_bin_t *bin = &a->bins[c];
  unsigned n = mlc_class_nobjs[c];
  size_t size = mlc_class_size[c];
  void **objs = calloc(n + 1, sizeof(void *));
  ck_assert_uint_eq(mlc_bin_alloc_batch(bin, objs, n), n);
  char *base = (char *)objs[0];
  ck_assert_uint_eq((uintptr_t)base % MLC_GRANULE, 0);
  for (unsigned i = 0; i < n; i++) {
    ck_assert_ptr_eq(objs[i], base + (size_t)i * size);
    ck_assert_uint_eq(mlc_pagemap_class(objs[i]), c);
    memset(objs[i], 0xab, size);
  }
  ck_assert_uint_eq(bin->nslabs, 1);
  ck_assert_uint_eq(mlc_bin_alloc_batch(bin, &objs[n], 1), 1);
  ck_assert_uint_eq(bin->nslabs, 2);
  ck_assert((char *)objs[n] < base || (char *)objs[n] >= base + MLC_GRANULE);
  ck_assert_uint_eq(bin->nmalloc, n + 1);
  /* All back: the first slab empties and goes back to the arena (another remains). */
  mlc_bin_free_batch(objs, n, c);
  ck_assert_uint_eq(bin->nslabs, 1);
  ck_assert_uint_eq(mlc_pagemap_class(base), 0);
  mlc_bin_free_batch(&objs[n], 1, c);
  ck_assert_uint_eq(bin->nfree, n + 1);
  ck_assert_uint_eq(bin->nslabs, 1); /* the last slab stays for the next refill */
  free(objs);
}
END_TEST

/* Freed objects are handed out again, lowest address first (a class of 128 bytes or
   more: smaller ones prefer wholly free 128-byte blocks, below). */
START_TEST(test_reuse) {
  mlc_arena_t *a = new_arena();
  unsigned c = mlc_size_class(128);
  mlc_bin_t *bin = &a->bins[c];
  void *objs[64], *again[3];
  ck_assert_uint_eq(mlc_bin_alloc_batch(bin, objs, 64), 64);
  void *f[3] = {objs[40], objs[7], objs[63]};
  mlc_bin_free_batch(f, 3, c);
  ck_assert_uint_eq(mlc_bin_alloc_batch(bin, again, 3), 3);
  ck_assert_ptr_eq(again[0], objs[7]);
  ck_assert_ptr_eq(again[1], objs[40]);
  ck_assert_ptr_eq(again[2], objs[63]);
}
END_TEST

/* Classes smaller than 128 bytes: a refill takes objects from wholly free 128-byte
   blocks first, so a hole another thread's free left in a block still in use is not
   handed to a second thread; holes go out once no whole block is left. */
START_TEST(test_refill_avoids_shared_blocks) {
  size_t size = (size_t)16 << _i; /* 16, 32, 64 */
  unsigned c = mlc_size_class(size);
  ck_assert_uint_eq(mlc_class_size[c], size);
  unsigned k = (unsigned)(MLC_DESTRUCTIVE / size), n = mlc_class_nobjs[c];
  mlc_arena_t *a = new_arena();
  mlc_bin_t *bin = &a->bins[c];
  void **objs = calloc(n, sizeof(void *));
  ck_assert_uint_eq(mlc_bin_alloc_batch(bin, objs, 2 * k), 2 * k);
  char *base = objs[0];
  ck_assert_uint_eq((uintptr_t)base % MLC_DESTRUCTIVE, 0);
  /* A hole in block 0 and one in block 1. */
  void *holes[2] = {objs[1], objs[k + k - 1]};
  mlc_bin_free_batch(holes, 2, c);
  void *got[3];
  ck_assert_uint_eq(mlc_bin_alloc_batch(bin, got, 3), 3);
  for (int i = 0; i < 3; i++) {
    ck_assert((char *)got[i] >= base + 2 * MLC_DESTRUCTIVE);
    ck_assert_ptr_ne(got[i], holes[0]);
    ck_assert_ptr_ne(got[i], holes[1]);
  }
  /* The rest of the slab, holes included: nothing is lost. */
  unsigned rest = n - 2 * k + 2 - 3;
  ck_assert_uint_eq(mlc_bin_alloc_batch(bin, objs, rest), rest);
  bool saw0 = false, saw1 = false;
  for (unsigned i = 0; i < rest; i++) {
    ck_assert((char *)objs[i] >= base && (char *)objs[i] < base + MLC_GRANULE);
    saw0 |= objs[i] == holes[0];
    saw1 |= objs[i] == holes[1];
  }
  ck_assert(saw0 && saw1);
  ck_assert_uint_eq(bin->nslabs, 1);
  free(objs);
}
END_TEST

/* A batch mixing two arenas' objects goes back to each owning bin. */
START_TEST(test_remote_batch) {
  mlc_arena_t *a = new_arena(), *b = new_arena();
  void *objs[20];
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[2], objs, 10), 10);
  ck_assert_uint_eq(mlc_bin_alloc_batch(&b->bins[2], objs + 10, 10), 10);
  void *mixed[20];
  for (int i = 0; i < 10; i++) {
    mixed[2 * i] = objs[i];
    mixed[2 * i + 1] = objs[10 + i];
  }
  mlc_bin_free_batch(mixed, 20, 2);
  ck_assert_uint_eq(a->bins[2].nfree, 10);
  ck_assert_uint_eq(b->bins[2].nfree, 10);
}
END_TEST

START_TEST(test_double_free_aborts) {
  mlc_arena_t *a = new_arena();
  void *objs[2];
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[3], objs, 2), 2);
  void *twice[2] = {objs[0], objs[0]};
  mlc_bin_free_batch(twice, 2, 3);
}
END_TEST

START_TEST(test_interior_pointer_aborts) {
  mlc_arena_t *a = new_arena();
  void *objs[1];
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[3], objs, 1), 1);
  void *bad = (char *)objs[0] + 8;
  mlc_bin_free_batch(&bad, 1, 3);
}
END_TEST

/* The 16-byte class uses only the first MLC_SLAB_MAX_OBJS objects' room of its granule:
   a pointer past them is refused, not taken for an object. */
START_TEST(test_past_last_object_aborts) {
  mlc_arena_t *a = new_arena();
  void *objs[1];
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], objs, 1), 1);
  ck_assert_uint_lt(mlc_class_nobjs[1] * 16u, MLC_GRANULE);
  void *bad = (char *)((uintptr_t)objs[0] & ~(MLC_GRANULE - 1)) + mlc_class_nobjs[1] * 16u;
  mlc_bin_free_batch(&bad, 1, 1);
}
END_TEST

int main(void) {
  Suite *s = suite_create("bin");
  TCase *tc = tcase_create("carving");
  tcase_add_loop_test(tc, test_slab_carving, 1, MLC_NCLASSES);
  tcase_add_test(tc, test_reuse);
  tcase_add_loop_test(tc, test_refill_avoids_shared_blocks, 0, 3);
  tcase_add_test(tc, test_remote_batch);
  suite_add_tcase(s, tc);
  TCase *te = tcase_create("misuse");
  tcase_add_test_raise_signal(te, test_double_free_aborts, SIGABRT);
  tcase_add_test_raise_signal(te, test_interior_pointer_aborts, SIGABRT);
  tcase_add_test_raise_signal(te, test_past_last_object_aborts, SIGABRT);
  suite_add_tcase(s, te);
  return mlc_unit_run(s);
}
