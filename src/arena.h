/* SPDX-License-Identifier: MIT */
/*
 * Arenas: the page-level state.  An arena owns its chunks: it hands out slab granules
 * to its bins and runs of pages to large allocations, gives wholly free chunks to the
 * spares every arena shares and purges what stayed free past the decay delay.  Its lock
 * ranks after the bins' (mutex.h).
 */
#ifndef MLC_ARENA_H
#define MLC_ARENA_H

#include "internal.h"

#include "types.h"

extern mlc_arena_t *mlc_arenas[];
extern unsigned mlc_narenas;
#define MLC_MAX_ARENAS 256

/* A new arena numbered ind, not in mlc_arenas (boot adds it there).  NULL when the
   kernel refuses memory. */
mlc_arena_t *mlc_arena_new(unsigned ind);
/* Creates n arenas (clamped to 1..MLC_MAX_ARENAS); during boot only. */
bool mlc_arena_boot(unsigned n);
/* The next arena in round-robin order, for a thread's first allocation. */
mlc_arena_t *mlc_arena_choose(void);

/* The slab descriptor and the first object of the granule that holds p.  p lies in a
   chunk. */
MLC_INLINE mlc_slab_t *mlc_slab_of(const void *p) {
  mlc_chunk_t *chunk = (mlc_chunk_t *)((uintptr_t)p & ~MLC_CHUNK_MASK);
  return &chunk->slabs[((uintptr_t)p >> MLC_GRANULE_SHIFT) & (MLC_GRANULES_PER_CHUNK - 1)];
}
MLC_INLINE char *mlc_slab_base(const mlc_slab_t *slab) {
  mlc_chunk_t *chunk = (mlc_chunk_t *)((uintptr_t)slab & ~MLC_CHUNK_MASK);
  return (char *)chunk + (size_t)(slab - chunk->slabs) * MLC_GRANULE;
}

/* A granule for a new slab of bin's class, with its descriptor zeroed except for bin
   and cls, and the page map pointing at the class; *dirty tells whether any of its
   pages may be resident (else they all read as zero).  Caller holds bin->lock.  NULL
   when the kernel refuses memory. */
mlc_slab_t *mlc_arena_slab_alloc(mlc_arena_t *arena, mlc_bin_t *bin, bool *dirty);
/* The slab is empty: its granule goes back to its chunk's arena (which may not be its
   bin's: a bin may take a resident free granule of another arena's chunk).  Caller
   holds bin->lock. */
void mlc_arena_slab_free(mlc_slab_t *slab);

/* Free pages, resident or not, past which an arena maps no new chunk for a growing
   block's full room (mlc_arena_large_alloc_room).  Untouched pages cost address space
   only: 1 GiB of it on 64-bit targets (500 blocks growing side by side, each with its
   2 MiB), 64 MiB on 32-bit ones (2% of a 3 GiB address space). */
#if UINTPTR_MAX > 0xffffffffu
#define MLC_ROOM_FREE_BYTES ((size_t)1 << 30)
#else
#define MLC_ROOM_FREE_BYTES ((size_t)64 << 20)
#endif

/* A run of pages for size bytes aligned to align (a power of two up to MLC_CHUNK / 4),
   zeroed when zero is set.  No lock held.  NULL when the kernel refuses memory. */
void *mlc_arena_large_alloc(mlc_arena_t *arena, size_t size, size_t align, bool zero);
/* The same, page-aligned and not zeroed, at the start of a free run with room free
   pages after it (cut to what a chunk holds), so that it can grow in place into them:
   realloc's growing block that its neighbours blocked.  Its chunk marks it as growing
   while it lives: a later allocation that best fits the free run right after it takes
   the end of that run.  A new chunk where no chunk has a free run that long -- until
   the arena's chunks have MLC_ROOM_FREE_BYTES of free pages: then the middle of the
   longest free run (its start where no growing block precedes it), so that blocks
   growing side by side share the rooms, or else room for the block's own size. */
void *mlc_arena_large_alloc_room(mlc_arena_t *arena, size_t size, size_t room);
/* p is in a chunk and not in a slab: frees its run, or reports heap misuse and aborts. */
void mlc_arena_large_free(mlc_chunk_t *chunk, void *p);
/* The same, for a run whose pages nobody is likely to want soon: they go back to the
   kernel first (the whole kernel pages it holds; outside the lock, since the run is
   still the caller's), and join the free pages clean. */
void mlc_arena_large_free_purged(mlc_chunk_t *chunk, void *p);
/* The pages of the live run that starts at p, or 0 (p is no such start), read under
   the arena lock; *freed tells whether p is the start of a free page (a run freed). */
size_t mlc_arena_large_check(mlc_chunk_t *chunk, const void *p, bool *freed);
/* Grows or shrinks the run at p in place; true on success. */
bool mlc_arena_large_resize(mlc_chunk_t *chunk, void *p, size_t size);

/* Recounts the page state of every chunk of the arena: false when a summary kept for
   speed (free runs by length, free and dirty granules, free pages) disagrees.  Tests. */
bool mlc_arena_validate(mlc_arena_t *arena);

/* Gives back to the kernel what stayed free for decay_ns (everything when 0): free
   granules and pages are purged (the shared spares: mlc_arena_spares_purge).  Returns
   the bytes. */
size_t mlc_arena_purge(mlc_arena_t *arena, uint64_t now, uint64_t decay_ns);
/* Unmaps the shared spare chunks that waited decay_ns (all when 0).  Returns the bytes. */
size_t mlc_arena_spares_purge(uint64_t now, uint64_t decay_ns);
/* Bytes of the shared spare chunks.  Takes their lock. */
size_t mlc_arena_spares_mapped(void);
/* True when a later mlc_arena_purge may give something back: spare chunks, or dirty free
   pages in a chunk where pages became free since its last purge (dirty pages a purge
   could not give back do not count: the collector retires rather than retry them).
   Takes the arena lock. */
bool mlc_arena_purgeable(mlc_arena_t *arena);

/* Bytes in the arena's live large runs (thread caches' included) and in its chunks.
   Takes the arena lock. */
void mlc_arena_stats(mlc_arena_t *arena, size_t *large_allocated, size_t *mapped);

void mlc_arena_prefork(void);
void mlc_arena_postfork_parent(void);
void mlc_arena_postfork_child(void);

#endif /* MLC_ARENA_H */
