/* SPDX-License-Identifier: MIT */
/*
 * The default allocator's entry points without the hardened layer, for harden.c.
 */
#ifndef MLC_ALLOC_H
#define MLC_ALLOC_H

#include "internal.h"

/* malloc, an aligned allocation (align a power of two) and free, as the public
   functions of the default build do them.  Any thread, no lock held. */
void *mlc_malloc_plain(size_t size);
void *mlc_aligned_plain(size_t align, size_t size);
void mlc_free_plain(void *p);
/* A zeroed block of size > MLC_SMALL_MAX bytes, as calloc does it: pages the kernel
   has just given are not written again.  Any thread, no lock held. */
void *mlc_zalloc_big_plain(size_t size);
/* A block of size > MLC_SMALL_MAX bytes (a large run or a huge mapping) aligned to
   align (0 or a power of two), zeroed when zero: what malloc, calloc and the aligned
   functions do above MLC_SMALL_MAX, without the heap profiler's count.  NULL with
   errno ENOMEM.  Any thread, no lock held. */
void *mlc_alloc_big_plain(size_t size, size_t align, bool zero);
/* A large block of size bytes (above MLC_SMALL_MAX, at most MLC_LARGE_MAX) with room
   for it to grow in place to MLC_LARGE_MAX (arena.h: mlc_arena_large_alloc_room), for
   realloc; not zeroed, its free key clear.  NULL when memory is short. */
void *mlc_alloc_grow_plain(size_t size);
/* The same, counted (and perhaps sampled) by the heap profiler while it runs. */
void *mlc_alloc_grow(size_t size);

#endif /* MLC_ALLOC_H */
