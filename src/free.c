/* SPDX-License-Identifier: MIT */
/*
 * free's slow path and the one check of a pointer handed back to melloc (free,
 * realloc, malloc_usable_size).  Top-down: this module asks the page map what a pointer
 * is, checks it, and gives the block to the thread cache (tcache.c), its arena
 * (arena.c) or the huge mappings (chunk.c); none of them calls back here.  It never
 * lets a misused pointer reach a cache or a bin.
 */
#include "internal.h"

#include "arena.h"
#include "bin.h"
#include "chunk.h"
#include "free.h"
#include "prof.h"
#include "sizeclass.h"
#include "tcache.h"

static const char *const mlc_call_names[] = {
    [MLC_CALL_FREE] = "free",
    [MLC_CALL_REALLOC] = "realloc",
    [MLC_CALL_USABLE_SIZE] = "malloc_usable_size",
};

void mlc_misuse(mlc_call_t call, const char *problem, const void *p) {
  mlc_fatal_in(mlc_call_names[call], problem, p);
}

const char *mlc_misuse_freed(mlc_call_t call) {
  return call == MLC_CALL_FREE ? "double free" : "block already freed";
}

#define MLC_NOT_A_START "invalid pointer (not the start of a block)"
#define MLC_NOT_MELLOCS "invalid pointer (not allocated by melloc)"

/* The small object p (a slot start) holds the free key: whether it is free indeed, in
   a thread cache or in its bin.  The caches first: the collector puts what it takes
   from a cache in the bin before it takes it off the cache's stack, so an object that
   moves between the two looks has been in the bin since the first one. */
static bool mlc_free_small_is_free(const void *p, unsigned cls) {
  return mlc_tcache_holds(p, cls) || mlc_bin_holds(p, cls);
}

void mlc_block_check_slow(const void *p, mlc_call_t call, mlc_block_t *b) {
  mlc_pmleaf_t *leaf = mlc_pagemap_leaf_of(p);
  unsigned cls = leaf ? (unsigned)mlc_pagemap_leaf_class(leaf, p) : 0;
  if (cls) {
    uint32_t off = (uint32_t)((uintptr_t)p & (MLC_GRANULE - 1));
    if (!mlc_class_is_slot(cls, p) || mlc_class_index(cls, off) >= mlc_class_nobjs[cls])
      mlc_misuse(call, MLC_NOT_A_START, p);
    if (mlc_free_key_is_set(p) && mlc_free_small_is_free(p, cls))
      mlc_misuse(call, mlc_misuse_freed(call), p);
    b->kind = MLC_BLOCK_SMALL;
    b->cls = cls;
    b->size = mlc_class_size[cls];
    return;
  }
  void *ent = leaf ? mlc_pagemap_leaf_entry(leaf, p) : NULL;
  if (!ent) mlc_misuse(call, MLC_NOT_MELLOCS, p);
  mlc_huge_t *h = mlc_huge_of_entry(ent);
  if (h) {
    if (!mlc_huge_is_live(h, p))
      mlc_misuse(call, mlc_load(&h->addr) == p ? mlc_misuse_freed(call) : MLC_NOT_A_START, p);
    b->kind = MLC_BLOCK_HUGE;
    b->huge = h;
    b->size = h->size;
    return;
  }
  mlc_chunk_t *c = ent;
  size_t np = mlc_chunk_run_pages(c, p);
  if (np == 0) {
    /* Not the start of a live run, or a run being changed: ask under the arena lock. */
    bool freed;
    np = mlc_arena_large_check(c, p, &freed);
    if (np == 0) mlc_misuse(call, freed ? mlc_misuse_freed(call) : MLC_NOT_A_START, p);
  }
  /* A live run for the arena; a block in a thread cache is one too. */
  if (np >= MLC_LCLASS_MIN_PAGES && np <= MLC_LCACHE_MAX_PAGES && mlc_free_key_is_set(p) &&
      mlc_tcache_holds(p, (unsigned)mlc_tclass_large(np)))
    mlc_misuse(call, mlc_misuse_freed(call), p);
  b->kind = MLC_BLOCK_LARGE;
  b->chunk = c;
  b->pages = np;
  b->size = np << MLC_PAGE_SHIFT;
}

void mlc_free_slow(void *p) {
  if (!p) return;
  /* A large block the thread cache keeps, checked on the way: the start of a live run
     (its length, read without the lock), and not in a cache already (no free key). */
  mlc_pmleaf_t *leaf = mlc_pagemap_leaf_of(p);
  if (MLC_LIKELY(leaf && mlc_pagemap_leaf_class(leaf, p) == 0)) {
    void *ent = mlc_pagemap_leaf_entry(leaf, p);
    if (ent && !mlc_huge_of_entry(ent)) {
      size_t np = mlc_chunk_run_pages(ent, p);
      /* A heap profiler's sample (prof.h): the mark is taken before the block can be
         handed out again.  Only a live run's start carries one. */
      if (MLC_UNLIKELY(np != 0 && mlc_chunk_sampled_take(ent, p))) mlc_prof_free_sampled(p);
      if (np >= MLC_LCLASS_MIN_PAGES && np <= MLC_LCACHE_MAX_PAGES && mlc_tcache_large_push(p, np))
        return;
    }
  }
  int saved = errno; /* creating a cache, unmapping: free() keeps errno */
  mlc_block_t b;
  mlc_block_check(p, MLC_CALL_FREE, &b);
  switch (b.kind) {
    case MLC_BLOCK_SMALL:
      mlc_tcache_free_small(p, b.cls);
      break;
    case MLC_BLOCK_LARGE:
      if (b.pages >= MLC_LCLASS_MIN_PAGES && b.pages <= MLC_LCACHE_MAX_PAGES)
        mlc_tcache_large_free_slow(p, b.pages);
      else
        mlc_arena_large_free(b.chunk, p);
      break;
    case MLC_BLOCK_HUGE:
      mlc_prof_free_huge(p);
      mlc_huge_free(b.huge);
      break;
  }
  errno = saved;
}

void mlc_free_uncached(void *p) {
  int saved = errno;
  mlc_block_t b;
  mlc_block_check(p, MLC_CALL_FREE, &b);
  switch (b.kind) {
    case MLC_BLOCK_SMALL:
      mlc_free_key_set(p); /* as a cache's flush leaves it: a second free sees it freed */
      mlc_bin_free_batch(&p, 1, b.cls);
      break;
    case MLC_BLOCK_LARGE:
      if (MLC_UNLIKELY(mlc_chunk_sampled_take(b.chunk, p))) mlc_prof_free_sampled(p);
      mlc_arena_large_free(b.chunk, p);
      break;
    case MLC_BLOCK_HUGE:
      mlc_prof_free_huge(p);
      mlc_huge_free(b.huge);
      break;
  }
  errno = saved;
}
