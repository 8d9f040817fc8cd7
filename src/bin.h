/* SPDX-License-Identifier: MIT */
/*
 * Bins: one per arena and size class.  A bin carves slabs into objects and takes them
 * back, in batches, under its own lock.  It validates every pointer that comes back
 * (right slab, object boundary, not already free) and aborts on heap misuse.
 */
#ifndef MLC_BIN_H
#define MLC_BIN_H

#include "internal.h"

#include "types.h"

void mlc_bin_init(mlc_bin_t *bin, mlc_arena_t *arena, unsigned cls);

/* Fills out[0..n-1] with up to n free objects, lowest addresses first, under one lock
   acquisition.  Returns how many; fewer than n only when the kernel refuses memory. */
unsigned mlc_bin_alloc_batch(mlc_bin_t *bin, void **out, unsigned n);

/* Gives back n objects of class cls, which may belong to any arena's bins; one lock
   acquisition per bin met.  Aborts on a pointer that is not a live object of class cls. */
void mlc_bin_free_batch(void **ptrs, unsigned n, unsigned cls);

/* Whether p is a free object of class cls in its slab's bitmap (false also when p's
   granule is no slab of class cls any more).  Takes the bin lock. */
bool mlc_bin_holds(const void *p, unsigned cls);

/* Counters, read under the bin lock. */
void mlc_bin_stats(mlc_bin_t *bin, uint64_t *nmalloc, uint64_t *nfree, size_t *nslabs);

#endif /* MLC_BIN_H */
