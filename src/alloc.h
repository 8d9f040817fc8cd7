/* SPDX-License-Identifier: MIT */
/*
 * The allocation entry points' internal helpers, shared with the thread cache's slow
 * paths.
 */
#ifndef MLC_ALLOC_H
#define MLC_ALLOC_H

#include "internal.h"

/* free() of a pointer whose page-map class is 0: NULL, large, huge, or not melloc's
   (which aborts with a message); ent is its page-map entry.  Preserves errno. */
MLC_NOINLINE void mlc_free_nonsmall(void *p, void *ent);

/* The default allocator without the hardened layer (harden.c wraps these): malloc,
   an aligned allocation (align a power of two) and free, as the public functions of the
   default build do them.  Any thread, no lock held. */
void *mlc_malloc_plain(size_t size);
void *mlc_aligned_plain(size_t align, size_t size);
void mlc_free_plain(void *p);

#endif /* MLC_ALLOC_H */
