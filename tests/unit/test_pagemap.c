/* SPDX-License-Identifier: MIT */
#include "unit.h"

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
   slab chunk that holds it. */
START_TEST(test_small_lookup) {
  unsigned c = (unsigned)_i;
  void *p = malloc(mlc_class_size[c]);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(mlc_pagemap_class(p), c);
  mlc_chunk_t *chunk = mlc_pagemap_entry(p);
  ck_assert_ptr_eq(chunk, (void *)((uintptr_t)p & ~MLC_CHUNK_MASK));
  ck_assert_uint_eq(chunk->kind, MLC_CHUNK_SLAB);
  ck_assert_uint_eq(mlc_slab_of(p)->cls, c);
  free(p);
}
END_TEST

START_TEST(test_large_and_huge_lookup) {
  void *l = malloc(100000);
  ck_assert_uint_eq(mlc_pagemap_class(l), 0);
  mlc_chunk_t *chunk = mlc_pagemap_entry(l);
  ck_assert_ptr_nonnull(chunk);
  ck_assert_uint_eq(chunk->kind, MLC_CHUNK_LARGE);
  void *h = malloc(9 << 20);
  ck_assert_uint_eq(mlc_pagemap_class(h), 0);
  mlc_huge_t *d = mlc_entry_huge(mlc_pagemap_entry(h));
  ck_assert_ptr_nonnull(d);
  ck_assert_ptr_eq(d->addr, h);
  /* Every 4 MiB of the mapping points at the descriptor. */
  ck_assert_ptr_eq(mlc_entry_huge(mlc_pagemap_entry((char *)h + (8 << 20))), d);
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

int main(void) {
  Suite *s = suite_create("pagemap");
  TCase *tc = tcase_create("lookup");
  tcase_add_test(tc, test_foreign_pointers);
  tcase_add_loop_test(tc, test_small_lookup, 1, MLC_NCLASSES);
  tcase_add_test(tc, test_large_and_huge_lookup);
  tcase_add_test(tc, test_register_clear);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
