/* SPDX-License-Identifier: MIT */
/*
 * Size classes and the arithmetic on them.  The layout (16-byte steps to 128, then four
 * classes per doubling to 16 KiB) keeps internal fragmentation under 20% and makes every
 * class a multiple of 16, so every small object is 16-byte aligned, and power-of-two
 * classes are aligned to their size (slabs are aligned to 64 KiB).  A fifth class at
 * 9/8 of each power of two from 256 to 8192 (288, 576, ..., 9216) takes the commonest
 * request that wastes the most: a power of two and a header (SQLite's 4 KiB pages with
 * theirs, 4104-4368 bytes, were 5120-byte objects: its peak RSS in bench's sqlite-index
 * 29.2 -> 27.2 MiB, glibc 25.3; jq-objects 104.9 -> 101.7, glibc 90.3; mixed-t8, whose
 * sizes are spread evenly, 24.4 -> 25.3 with more classes partly used).
 */
#include "internal.h"

#include "sizeclass.h"
#include "types.h"

const uint32_t mlc_class_size[MLC_NCLASSES] = MLC_CLASS_SIZES;
const uint8_t mlc_class_table[MLC_SMALL_MAX + 1] = MLC_CLASS_TABLE;
const uint16_t mlc_class_cap[MLC_NCLASSES] = MLC_CLASS_CAPS;
uint16_t mlc_class_nobjs[MLC_NCLASSES];
uint32_t mlc_class_recip[MLC_NCLASSES];
const uint64_t mlc_class_divmagic[MLC_NCLASSES] = MLC_CLASS_DIVMAGIC;

void mlc_sizeclass_boot(void) {
  for (unsigned c = 1; c < MLC_NCLASSES; c++) {
    uint32_t s = mlc_class_size[c];
    mlc_class_nobjs[c] = (uint16_t)MLC_MIN(MLC_GRANULE / s, MLC_SLAB_MAX_OBJS);
    /* ceil(2^32 / s): exact for offsets below 2^16 because s <= 2^14. */
    mlc_class_recip[c] = (uint32_t)((((uint64_t)1 << 32) + s - 1) / s);
  }
}

unsigned mlc_size_class_aligned(size_t size, size_t align) {
  if (size > MLC_SMALL_MAX || align > MLC_GRANULE) return 0;
  /* No class below the size rounded up to align is a multiple of it, and the class of
     that size nearly always is: the search starts there and tests with a mask (align is
     a power of two), not a division per class. */
  size_t r = MLC_ALIGN_UP(size, align);
  if (r > MLC_SMALL_MAX) return 0;
  for (unsigned c = mlc_size_class(r); c < MLC_NCLASSES; c++)
    if ((mlc_class_size[c] & (align - 1)) == 0) return c;
  return 0;
}
