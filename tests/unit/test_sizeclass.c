/* SPDX-License-Identifier: MIT */
#include "unit.h"

/* Every size maps to the smallest class that holds it, and back. */
START_TEST(test_round_trip) {
  mlc_boot();
  for (size_t size = 0; size <= MLC_SMALL_MAX; size++) {
    unsigned c = mlc_size_class(size);
    ck_assert_uint_ge(c, 1);
    ck_assert_uint_lt(c, MLC_NCLASSES);
    ck_assert_uint_ge(mlc_class_size[c], size);
    if (c > 1) ck_assert_uint_lt(mlc_class_size[c - 1], size);
  }
}
END_TEST

START_TEST(test_classes_ordered_and_aligned) {
  for (unsigned c = 2; c < MLC_NCLASSES; c++) ck_assert_uint_gt(mlc_class_size[c], mlc_class_size[c - 1]);
  for (unsigned c = 1; c < MLC_NCLASSES; c++) ck_assert_uint_eq(mlc_class_size[c] % 16, 0);
  ck_assert_uint_eq(mlc_class_size[MLC_NCLASSES - 1], MLC_SMALL_MAX);
}
END_TEST

/* Internal fragmentation stays under 25% above 128 bytes. */
START_TEST(test_waste_bounded) {
  for (size_t size = 129; size <= MLC_SMALL_MAX; size++) {
    unsigned c = mlc_size_class(size);
    ck_assert_uint_le(mlc_class_size[c] - size, size / 4);
  }
}
END_TEST

/* The reciprocal turns every object offset into its index, for every class. */
START_TEST(test_index_exact) {
  mlc_boot();
  unsigned c = (unsigned)_i;
  uint32_t s = mlc_class_size[c];
  ck_assert_uint_eq(mlc_class_nobjs[c], MLC_MIN(MLC_GRANULE / s, MLC_SLAB_MAX_OBJS));
  ck_assert_uint_le(mlc_class_nobjs[c], MLC_SLAB_MAP_WORDS * 64);
  /* Every offset in the granule, also past the objects (a bad pointer there must get
     an index at or past nobjs to be refused). */
  for (uint32_t i = 0; i < MLC_GRANULE / s; i++) {
    ck_assert_uint_eq(mlc_class_index(c, i * s), i);
    if (s > 1) ck_assert_uint_eq(mlc_class_index(c, i * s + s - 1), i);
  }
}
END_TEST

/* The slot test (free's fast path, from the table and from each thread's copy)
   accepts exactly the multiples of the class size at every offset of a granule, so
   every misaligned or interior pointer goes to the slow path. */
START_TEST(test_slot_test_exact) {
  unsigned c = (unsigned)_i;
  uint32_t s = mlc_class_size[c];
  ck_assert_uint_eq(mlc_class_divmagic[c], UINT64_MAX / s + 1);
  ck_assert_uint_eq(mlc_class_divmagic[0], 0);
  char *granule = (char *)(uintptr_t)(MLC_GRANULE * 4242);
  unsigned yes = 0, wrong = 0;
  uint32_t first_wrong = 0;
  /* One assertion at the end: 65536 of them cost minutes under qemu. */
  for (uint32_t off = 0; off < MLC_GRANULE; off++) {
    bool slot = mlc_class_is_slot(c, granule + off);
    bool ok = slot == (off % s == 0) && mlc_tb_is_slot(mlc_tb_base(), c, granule + off) == slot &&
              !mlc_class_is_slot(0, granule + off);
    if (!ok && wrong++ == 0) first_wrong = off;
    yes += slot;
  }
  ck_assert_msg(wrong == 0, "class %u: %u offsets wrong, the first %u", c, wrong, first_wrong);
  ck_assert_uint_eq(yes, (MLC_GRANULE + s - 1) / s);
}
END_TEST

/* The smallest class that holds the size with every object aligned: none smaller is a
   multiple of the alignment (the search starts at the size rounded up to it). */
START_TEST(test_aligned_class) {
  for (size_t align = 1; align <= MLC_GRANULE; align <<= 1)
    for (size_t size = 0; size <= MLC_SMALL_MAX; size++) {
      unsigned c = mlc_size_class_aligned(size, align);
      if (c == 0) {
        ck_assert(align > MLC_SMALL_MAX || size > MLC_SMALL_MAX);
        continue;
      }
      ck_assert_uint_ge(mlc_class_size[c], size);
      ck_assert_uint_eq(mlc_class_size[c] % align, 0);
      for (unsigned d = mlc_size_class(size); d < c; d++)
        ck_assert_uint_ne(mlc_class_size[d] % align, 0);
    }
}
END_TEST

START_TEST(test_caps) {
  for (unsigned c = 1; c < MLC_NCLASSES; c++) {
    ck_assert_uint_ge(mlc_class_cap[c], 16);
    ck_assert_uint_le(mlc_class_cap[c], 256);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("sizeclass");
  TCase *tc = tcase_create("mapping");
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_classes_ordered_and_aligned);
  tcase_add_test(tc, test_waste_bounded);
  tcase_add_loop_test(tc, test_index_exact, 1, MLC_NCLASSES);
  tcase_add_loop_test(tc, test_slot_test_exact, 1, MLC_NCLASSES);
  tcase_add_test(tc, test_aligned_class);
  tcase_add_test(tc, test_caps);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
