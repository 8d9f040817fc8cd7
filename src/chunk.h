/* SPDX-License-Identifier: MIT */
/*
 * Chunks, huge mappings and the page map that finds them from any pointer.
 *
 * The page map is a two-level radix tree over the user address space (MLC_VA_BITS): on
 * 64-bit targets the top level (a static array) is indexed by address bits 36..47 and a
 * leaf covers 64 GiB; on 32-bit ones the top level is indexed by bits 27..31 and a leaf,
 * one page, covers 128 MiB.  A leaf holds one class byte per 64 KiB granule and one
 * entry per 4 MiB chunk (a chunk header, or a huge descriptor tagged with bit 0).  A
 * pointer melloc does not own reads class 0 and entry NULL.
 *
 * free's fast path reads a second, flat copy of the class bytes instead: the window, one
 * byte per granule over 1 TiB of address space placed around the first chunk (the kernel
 * hands out mappings top-down, so it covers 64 GiB above that chunk and the rest below).
 * Finding a class there is one load whose address depends on the pointer only through a
 * shift, where the radix tree needs two dependent loads; in a malloc/free loop that load
 * chain is the critical path (fastpath-malloc64 18% faster).  The window is placed once and
 * never moves; slabs outside it (a process that maps more than 1 TiB) read class 0 there
 * and their frees take the slow path, which asks the radix tree.  On 32-bit targets the
 * whole 4 GiB address space is 2^16 granules: the window is a 64 KiB array that covers
 * all of it, placed at 0 from the start, and every pointer is in it.
 */
#ifndef MLC_CHUNK_H
#define MLC_CHUNK_H

#include "internal.h"

#include "types.h"

#if MLC_VA_BITS > 32
#define MLC_PM_TOP_SHIFT 36
#else
#define MLC_PM_TOP_SHIFT 27
#endif
#define MLC_PM_TOP_ENTRIES ((size_t)1 << (MLC_VA_BITS - MLC_PM_TOP_SHIFT))
#define MLC_PM_LEAF_GRANULES ((size_t)1 << (MLC_PM_TOP_SHIFT - MLC_GRANULE_SHIFT))
#define MLC_PM_LEAF_CHUNKS ((size_t)1 << (MLC_PM_TOP_SHIFT - MLC_CHUNK_SHIFT))

typedef struct mlc_pmleaf_s {
  uint8_t cls[MLC_PM_LEAF_GRANULES]; /* Atomic (relaxed): class of the slab at a granule */
  void *ent[MLC_PM_LEAF_CHUNKS];     /* Atomic (relaxed): chunk header or huge | 1 */
} mlc_pmleaf_t;

/* Entry i is the leaf for addresses with bits MLC_PM_TOP_SHIFT..MLC_VA_BITS-1 equal to
   i, or NULL.  Zero-filled (.bss): a static initialiser would cost the 4096 relocations
   the dynamic linker applies to every process at load (128 KiB of RSS). */
extern mlc_pmleaf_t *mlc_pagemap_top[MLC_PM_TOP_ENTRIES];

/* The leaf for address a, or NULL.  a must be below 2^MLC_VA_BITS. */
MLC_INLINE mlc_pmleaf_t *mlc_pagemap_leaf(uintptr_t a) {
  return mlc_load(&mlc_pagemap_top[a >> MLC_PM_TOP_SHIFT]);
}

/* The leaf for pointer p, or NULL (none, or p at or above 2^MLC_VA_BITS). */
MLC_INLINE mlc_pmleaf_t *mlc_pagemap_leaf_of(const void *p) {
  uintptr_t a = (uintptr_t)p;
#if MLC_VA_BITS < 8 * __SIZEOF_POINTER__
  return (a >> MLC_VA_BITS) ? NULL : mlc_pagemap_leaf(a);
#else
  return mlc_pagemap_leaf(a);
#endif
}

/* The class byte and the entry for p in its leaf (from mlc_pagemap_leaf_of, not NULL). */
MLC_INLINE size_t mlc_pagemap_leaf_class(mlc_pmleaf_t *leaf, const void *p) {
  return mlc_load(&leaf->cls[((uintptr_t)p >> MLC_GRANULE_SHIFT) & (MLC_PM_LEAF_GRANULES - 1)]);
}
MLC_INLINE void *mlc_pagemap_leaf_entry(mlc_pmleaf_t *leaf, const void *p) {
  return mlc_load(&leaf->ent[((uintptr_t)p >> MLC_CHUNK_SHIFT) & (MLC_PM_LEAF_CHUNKS - 1)]);
}

/* The class of the small object at p, or 0 when p is not in a slab (large, huge, not
   melloc's, NULL, at or above 2^MLC_VA_BITS). */
MLC_INLINE size_t mlc_pagemap_class(const void *p) {
  mlc_pmleaf_t *leaf = mlc_pagemap_leaf_of(p);
  return leaf ? mlc_pagemap_leaf_class(leaf, p) : 0;
}

#if MLC_VA_BITS - MLC_GRANULE_SHIFT > 24
#define MLC_WIN_SHIFT 24 /* 2^24 granules of 64 KiB: 1 TiB */
#define MLC_WIN_ALL 0
#else
#define MLC_WIN_SHIFT (MLC_VA_BITS - MLC_GRANULE_SHIFT) /* every granule there is */
#define MLC_WIN_ALL 1
#endif
#define MLC_WIN ((uintptr_t)1 << MLC_WIN_SHIFT)
/* Granule number (address >> MLC_GRANULE_SHIFT) of the window's first byte; until the
   first chunk, that of 2^63 (no user address is in the window).  0 when MLC_WIN_ALL. */
extern uintptr_t mlc_win_first MLC_HIDDEN;
/* mlc_win_map - mlc_win_first: the class byte of granule g is at mlc_win_biased + g. */
extern uintptr_t mlc_win_biased MLC_HIDDEN;

/* Whether the window covers p (then p is below 2^MLC_VA_BITS). */
MLC_INLINE bool mlc_win_covers(const void *p) {
#if MLC_WIN_ALL
  (void)p;
  return true;
#else
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_THREAD__)
  /* A relaxed load as the subtraction's memory operand (gcc folds no atomic load):
     one instruction fewer on free's fast path. */
  uintptr_t g = (uintptr_t)p >> MLC_GRANULE_SHIFT;
  __asm__("subq %1, %0" : "+r"(g) : "m"(mlc_win_first));
  return g < MLC_WIN;
#else
  return ((uintptr_t)p >> MLC_GRANULE_SHIFT) - mlc_load(&mlc_win_first) < MLC_WIN;
#endif
#endif
}
/* The class byte of p, which the window covers: exact (0 means not a small object). */
MLC_INLINE size_t mlc_win_class_in(const void *p) {
  return *(const uint8_t *)(mlc_load(&mlc_win_biased) + ((uintptr_t)p >> MLC_GRANULE_SHIFT));
}
/* The class of the small object at p as free's fast path sees it: the page map's answer
   inside the window, 0 outside (the caller then asks mlc_pagemap_class).  One load
   depending on p; the bound test and the two globals are off that chain. */
MLC_INLINE size_t mlc_win_class(const void *p) {
  if (MLC_UNLIKELY(!mlc_win_covers(p))) return 0;
  return mlc_win_class_in(p);
}

/* The page-map entry of p: a chunk header, a huge descriptor | 1, or NULL. */
MLC_INLINE void *mlc_pagemap_entry(const void *p) {
  mlc_pmleaf_t *leaf = mlc_pagemap_leaf_of(p);
  return leaf ? mlc_pagemap_leaf_entry(leaf, p) : NULL;
}

/* Records the class of the slab at granule (0 when it stops being a slab).  The leaf
   exists: the chunk was registered first. */
void mlc_pagemap_set_class(void *granule, unsigned cls);
/* Points every 4 MiB of [addr, addr + size) at entry (NULL to clear).  false when a leaf
   could not be allocated. */
bool mlc_pagemap_register(void *addr, size_t size, void *entry);

/* A new chunk: 4 MiB of zeroed memory aligned to 4 MiB, registered in the page map with
   its header's arena filled in.  NULL when the kernel refuses. */
mlc_chunk_t *mlc_chunk_new(mlc_arena_t *arena);
void mlc_chunk_delete(mlc_chunk_t *chunk);
/* Bytes mapped for chunks and huge blocks since start-up or the last fork.  Any thread. */
size_t mlc_chunk_mapped_total(void);

/* Huge allocations, mapped on their own.  Any thread, no lock held. */
void *mlc_huge_alloc(size_t size, size_t align, bool zero);
/* Whether h describes a live huge allocation that starts at p (a cached mapping is not
   live).  Takes the huge lock. */
bool mlc_huge_is_live(mlc_huge_t *h, const void *p);
/* h is the descriptor of a live huge allocation at p. */
void mlc_huge_free(mlc_huge_t *h);
/* Resizes in place or by moving the pages (no copy); NULL when impossible. */
void *mlc_huge_realloc(mlc_huge_t *h, size_t size);
/* Gives back cached mappings freed more than decay_ns ago (all when decay_ns is 0);
   returns bytes given back. */
size_t mlc_huge_purge(uint64_t now, uint64_t decay_ns);
/* Bytes in live huge allocations, their spans (the bytes mapped for them) and the
   bytes in the cache. */
void mlc_huge_stats(size_t *live, size_t *held, size_t *cached);

/* The huge descriptor of p if p is exactly a live huge allocation's address... */
MLC_INLINE mlc_huge_t *mlc_huge_of_entry(void *ent) {
  return ((uintptr_t)ent & 1) ? (mlc_huge_t *)((uintptr_t)ent - 1) : NULL;
}

/* ---- A chunk's page state ----
   Changed only by these functions, each called with c->arena->lock held (the arena
   decides which pages to take and give; mlc_chunk_run_pages reads without it). */

#define MLC_GRANULE_PAGES (MLC_GRANULE >> MLC_PAGE_SHIFT)
/* Pages of a chunk that can be free: all but the header's. */
#define MLC_CHUNK_FREE_PAGES ((uint32_t)(MLC_PAGES_PER_CHUNK - MLC_CHUNK_HEADER_PAGES))

/* A new chunk's state: the header's pages used, every other page free and clean. */
void mlc_chunk_pages_init(mlc_chunk_t *c);
/* Pages [i, i + n) are free: they become a slab or a run.  Returns whether any of them
   may be resident (not known to read as zero). */
bool mlc_chunk_take(mlc_chunk_t *c, size_t i, size_t n);
/* Pages [i, i + n) of a slab or a run become free (and dirty), joining the free runs on
   either side; the chunk's free_ns becomes now and its purge_pending true. */
void mlc_chunk_give(mlc_chunk_t *c, size_t i, size_t n);
/* Free pages [i, i + n), which the caller has given back to the kernel, read as zero:
   no longer dirty. */
void mlc_chunk_clean(mlc_chunk_t *c, size_t i, size_t n);
/* Records n as the length of the run that starts at page i (0: no run starts there,
   and the run that did is no longer a growing block). */
MLC_INLINE void mlc_chunk_run_set(mlc_chunk_t *c, size_t i, size_t n) {
  mlc_store(&c->npages[i], (uint16_t)n);
  if (!n) c->growing[i / 64] &= ~((uint64_t)1 << (i % 64));
}
/* The live run at page i is a growing block (types.h, mlc_chunk_t.growing). */
MLC_INLINE void mlc_chunk_growing_set(mlc_chunk_t *c, size_t i) {
  c->growing[i / 64] |= (uint64_t)1 << (i % 64);
}
/* Whether the live run that ends right before page i is a growing block. */
bool mlc_chunk_after_growing(const mlc_chunk_t *c, size_t i);
/* Whether page i is used (a slab's, a run's or the header's). */
bool mlc_chunk_page_used(const mlc_chunk_t *c, size_t i);
/* Whether pages [i, i + n) are all free. */
bool mlc_chunk_pages_free(const mlc_chunk_t *c, size_t i, size_t n);
/* The bucket of free runs of len pages (run_count, run_mask; len >= 1): 1..32 pages one
   bucket each, then four buckets per doubling. */
MLC_INLINE unsigned mlc_chunk_run_bucket(size_t len) {
  if (len <= 32) return (unsigned)len - 1;
  unsigned m = 63 - (unsigned)__builtin_clzll(len);
  return 32 + (m - 5) * 4 + (unsigned)((len >> (m - 2)) & 3);
}
/* The best fit in c for n free pages starting at a multiple of align_pages: the start
   of the smallest free run that holds them (*waste: its pages left over), or 0. */
size_t mlc_chunk_run_find(mlc_chunk_t *c, size_t n, size_t align_pages, size_t *waste);
/* The start of c's first longest free run (*len: its pages), or 0 (*len 0) when c has
   no free page. */
size_t mlc_chunk_run_longest(const mlc_chunk_t *c, size_t *len);
/* Gives the dirty free pages back to the kernel, in whole kernel pages that hold no
   used page; returns the bytes.  What it cannot give back stays dirty, and
   c->purge_pending is false until the next mlc_chunk_give. */
size_t mlc_chunk_purge(mlc_chunk_t *c);
/* Recounts the state: false when a summary kept for speed (free runs by length, free
   and dirty granules, free pages) disagrees with the bitmaps.  Tests. */
bool mlc_chunk_validate(const mlc_chunk_t *c);

/* The page count of the live large run that starts at p, read without the arena lock
   (a live run's length is stable), or 0 when p is not the start of one (a freed run, a
   slab's page, the header, an address inside a run): the arena's locked functions then
   report it.  p lies in chunk c. */
MLC_INLINE size_t mlc_chunk_run_pages(mlc_chunk_t *c, const void *p) {
  uintptr_t off = (uintptr_t)p - (uintptr_t)c;
  return (off & (MLC_PAGE - 1)) ? 0 : mlc_load(&c->npages[off >> MLC_PAGE_SHIFT]);
}

/* The heap profiler's mark on the live run at p (a page of chunk c): see
   mlc_chunk_t.sampled.  Any thread; the run is the caller's. */
MLC_INLINE void mlc_chunk_sampled_set(mlc_chunk_t *c, const void *p) {
  size_t i = ((uintptr_t)p - (uintptr_t)c) >> MLC_PAGE_SHIFT;
  __atomic_fetch_or(&c->sampled[i / 64], (uint64_t)1 << (i % 64), __ATOMIC_RELAXED);
}
/* Whether the run at p carries the mark. */
MLC_INLINE bool mlc_chunk_sampled_is(mlc_chunk_t *c, const void *p) {
  size_t i = ((uintptr_t)p - (uintptr_t)c) >> MLC_PAGE_SHIFT;
  return (mlc_load(&c->sampled[i / 64]) >> (i % 64)) & 1;
}
/* Clears the mark; whether it was set. */
MLC_INLINE bool mlc_chunk_sampled_take(mlc_chunk_t *c, const void *p) {
  size_t i = ((uintptr_t)p - (uintptr_t)c) >> MLC_PAGE_SHIFT;
  uint64_t bit = (uint64_t)1 << (i % 64);
  if (!(mlc_load(&c->sampled[i / 64]) & bit)) return false;
  return (__atomic_fetch_and(&c->sampled[i / 64], ~bit, __ATOMIC_RELAXED) & bit) != 0;
}

void mlc_chunk_prefork(void);
void mlc_chunk_postfork_parent(void);
void mlc_chunk_postfork_child(void);

#endif /* MLC_CHUNK_H */
