/* SPDX-License-Identifier: MIT */
/*
 * Size classes: sizes 16..128 in steps of 16, then four classes per doubling up to
 * MLC_SMALL_MAX (16 KiB), and a fifth at 9/8 of each power of two from 256 to 8192.
 * The tables are constants (sizeclass_tables.h), so the fast path can use them before
 * initialisation.
 */
#ifndef MLC_SIZECLASS_H
#define MLC_SIZECLASS_H

#include "internal.h"

#include "sizeclass_tables.h"

extern const uint32_t mlc_class_size[MLC_NCLASSES];
/* The class of each size 0..MLC_SMALL_MAX, indexed by the size itself: malloc's fast
   path finds it with one load and no arithmetic (16 KiB of read-only data, of which a
   program touches the lines of the sizes it asks for). */
extern const uint8_t mlc_class_table[MLC_SMALL_MAX + 1] MLC_HIDDEN;
/* Thread-cache capacity per class. */
extern const uint16_t mlc_class_cap[MLC_NCLASSES];
/* Objects per slab, and the reciprocal that turns an offset in a slab into an index. */
extern uint16_t mlc_class_nobjs[MLC_NCLASSES];
extern uint32_t mlc_class_recip[MLC_NCLASSES];
/* floor((2^64 - 1) / size) + 1 per class, 0 for class 0: an offset off < 2^32 is a
   multiple of the size exactly when off * magic (mod 2^64) < magic (Lemire, Kaser and
   Kurz, "Faster remainder by direct computation", 2019). */
extern const uint64_t mlc_class_divmagic[MLC_NCLASSES];

void mlc_sizeclass_boot(void);

/* The class of a small size (size <= MLC_SMALL_MAX); size 0 is class 1. */
MLC_INLINE unsigned mlc_size_class(size_t size) {
  mlc_assert(size <= MLC_SMALL_MAX);
  unsigned c = mlc_class_table[size];
  return c;
}

/* The index of the object at offset off of a slab of class cls (exact for off < 64 KiB). */
MLC_INLINE uint32_t mlc_class_index(unsigned cls, uint32_t off) {
  return (uint32_t)(((uint64_t)off * mlc_class_recip[cls]) >> 32);
}

/* Whether p is at the start of a slot of a slab of class cls: its offset in its 64 KiB
   granule is a multiple of the class's size (every slab is one granule, objects from
   its start).  Misaligned and interior pointers fail; class 0 fails everything.  (An
   offset at or past the slab's last object passes: such a pointer is no block's at all,
   and the bin reports it when the cache gives it back.) */
MLC_INLINE bool mlc_class_is_slot(size_t cls, const void *p) {
  uint64_t m = mlc_class_divmagic[cls];
  return (uint64_t)((uintptr_t)p & (MLC_GRANULE - 1)) * m < m;
}

/* The smallest class that holds size bytes with every object aligned to align
   (align <= MLC_GRANULE), or 0 when no small class does. */
unsigned mlc_size_class_aligned(size_t size, size_t align);

#endif /* MLC_SIZECLASS_H */
