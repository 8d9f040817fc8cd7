/* SPDX-License-Identifier: MIT */
/*
 * Arenas: chunks, slab granules and large runs.  Everything here runs under the arena
 * lock (taken inside a bin lock when a bin needs a slab); nothing here touches a
 * thread cache.
 */
#include "internal.h"

#include "arena.h"
#include "base.h"
#include "bin.h"
#include "chunk.h"
#include "list.h"
#include "os.h"
#include "sizeclass.h"

mlc_arena_t *mlc_arenas[MLC_MAX_ARENAS];
unsigned mlc_narenas;
static unsigned mlc_arena_next; /* Atomic: round-robin cursor */

/* Wholly free chunks, shared by every arena: one whose last block was freed waits here
   for whichever arena next needs a chunk, rather than for its own arena only.  With
   several arenas each one's chunks would otherwise rise to that arena's own high-water
   mark, and their sum is what stays resident: 2 producers (2 arenas) whose blocks wait
   in one queue for 2 consumers, now one thread's share of the queue and now the other's
   (bench's xbatch-w2, xmalloc-test's shape), peaked at 33-47 MiB for 30 MiB of live
   blocks, 30-34 MiB in one arena.  At most MLC_SPARE_PER_ARENA per arena wait, or more
   under the peak below (the rest is unmapped at once; the collector unmaps what waited
   past the decay delay), oldest first (mlc_arena_spare_insert_locked). */
#define MLC_SPARE_PER_ARENA 8
static mlc_mutex_t mlc_spare_lock = MLC_MUTEX_INITIALIZER(MLC_RANK_SPARE);
static mlc_chunk_t *mlc_spares; /* Protected by mlc_spare_lock */
static size_t mlc_nspares;      /* Protected by mlc_spare_lock */
/* Protected by mlc_spare_lock: chunks the arenas hold, and the most they held when one
   was freed in the last one or two decay delays (mlc_peak_t).  Spares are also kept
   while they and the chunks in use stay under that peak: chunks freed together
   (threads that end, a phase that ends) wait for the next phase, which would fault
   them in again, and the peak RSS does not grow.  With one window the collector's
   first pass, a quarter interval in, set the peak to what was in use then, and
   tstress-t2's rounds unmapped 16 chunks each (with the huge cache's rule in chunk.c,
   5 interleaved runs: 0.55 -> 0.52 s, page faults 178k -> 151k). */
static size_t mlc_chunks_used;
static mlc_peak_t mlc_chunks_peak;

mlc_arena_t *mlc_arena_new(unsigned ind) {
  mlc_arena_t *a = mlc_base_alloc(sizeof(mlc_arena_t));
  if (!a) return NULL;
  a->ind = ind;
  a->refs = a->refs_inline;
  a->refs_cap = MLC_ARENA_REFS_INLINE;
  mlc_mutex_init(&a->lock, MLC_RANK_ARENA);
  for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_bin_init(&a->bins[c], a, c);
  return a;
}

bool mlc_arena_boot(unsigned n) {
  if (n < 1) n = 1;
  if (n > MLC_MAX_ARENAS) n = MLC_MAX_ARENAS;
  for (unsigned i = 0; i < n; i++) {
    mlc_arena_t *a = mlc_arena_new(i);
    if (!a) return false;
    mlc_arenas[i] = a;
  }
  mlc_narenas = n;
  return true;
}

mlc_arena_t *mlc_arena_choose(void) {
  unsigned i = __atomic_fetch_add(&mlc_arena_next, 1, __ATOMIC_RELAXED);
  mlc_arena_t *a = mlc_arenas[i % mlc_narenas];
  mlc_trace("arena: thread assigned to arena %u", a->ind);
  return a;
}

/* ---- Chunks (caller holds arena->lock) ---- */

/* An arena's chunks (protected by arena->lock) and the shared spares (by mlc_spare_lock). */
MLC_LIST_DEFINE(chunk, mlc_chunk_t)

/* ---- The refs: an arena's chunks and their run masks, packed ---- */

/* Room for one more ref: the refs move to a mapping twice as large when full, and each
   chunk's ref follows.  false when the mapping fails.  Caller holds the lock. */
static bool mlc_arena_refs_reserve_locked(mlc_arena_t *arena) {
  mlc_assert(mlc_mutex_owned(&arena->lock));
  if (arena->nrefs < arena->refs_cap) return true;
  size_t cap = arena->refs_cap * 2;
  mlc_chunk_ref_t *r = mlc_os_map(MLC_ALIGN_UP(cap * sizeof(*r), MLC_PAGE), MLC_PAGE);
  if (!r) return false;
  for (size_t i = 0; i < arena->nrefs; i++) {
    r[i] = arena->refs[i];
    r[i].chunk->ref = &r[i];
  }
  if (arena->refs != arena->refs_inline)
    mlc_os_unmap(arena->refs, MLC_ALIGN_UP(arena->refs_cap * sizeof(*r), MLC_PAGE));
  arena->refs = r;
  arena->refs_cap = cap;
  return true;
}

/* c joins the refs, newest last (mlc_arena_refs_reserve_locked made room). */
static void mlc_arena_ref_add_locked(mlc_arena_t *arena, mlc_chunk_t *c) {
  mlc_assert(mlc_mutex_owned(&arena->lock) && arena->nrefs < arena->refs_cap);
  mlc_chunk_ref_t *r = &arena->refs[arena->nrefs++];
  r->chunk = c;
  r->run_mask = c->run_mask;
  r->free_granules = c->free_granules;
  r->dirty_granules = c->dirty_granules;
  c->ref = r;
}

/* c leaves the refs; the ones after it move down, in order. */
static void mlc_arena_ref_remove_locked(mlc_arena_t *arena, mlc_chunk_t *c) {
  mlc_assert(mlc_mutex_owned(&arena->lock));
  size_t i = (size_t)(c->ref - arena->refs);
  mlc_assert(i < arena->nrefs && arena->refs[i].chunk == c);
  for (size_t k = i + 1; k < arena->nrefs; k++) {
    arena->refs[k - 1] = arena->refs[k];
    arena->refs[k - 1].chunk->ref = &arena->refs[k - 1];
  }
  arena->nrefs--;
  c->ref = NULL;
}

/* A chunk with every page free: a shared spare (its state stays exact while it waits)
   or a new one. */
static mlc_chunk_t *mlc_arena_chunk_get_locked(mlc_arena_t *arena) {
  mlc_assert(mlc_mutex_owned(&arena->lock));
  if (!mlc_arena_refs_reserve_locked(arena)) return NULL;
  mlc_mutex_lock(&mlc_spare_lock);
  mlc_chunk_t *c = mlc_spares;
  if (c) {
    mlc_list_chunk_remove(&mlc_spares, c);
    mlc_nspares--;
  }
  mlc_chunks_used++; /* a new chunk that cannot be mapped is given back below */
  mlc_mutex_unlock(&mlc_spare_lock);
  if (c) {
    mlc_store(&c->arena, arena);
  } else {
    c = mlc_chunk_new(arena);
    if (!c) {
      mlc_mutex_lock(&mlc_spare_lock);
      mlc_chunks_used--;
      mlc_mutex_unlock(&mlc_spare_lock);
      return NULL;
    }
    mlc_trace("arena %u: new chunk at %p", arena->ind, (void *)c);
    mlc_chunk_pages_init(c);
  }
  arena->mapped += MLC_CHUNK;
  mlc_list_chunk_push(&arena->chunks, c);
  mlc_arena_ref_add_locked(arena, c);
  return c;
}

/* c joins the shared spares, which are kept oldest first (by serial): the next chunk
   an arena takes is the oldest spare.  A program that frees everything and builds it
   again (rounds, phases) then gets its chunks back in the order it first had them,
   and lays its blocks out much as before, over the pages it made resident then.  The
   most recently freed first (before), each round landed on pages the earlier ones had
   left untouched: 1000 buffers grown by turns to 256 KiB, 5 rounds, peak RSS 518 ->
   404 MiB (253 MiB of blocks); bench's grow-turns-t4 85 -> 83, handoff-t2 27.6 ->
   26.7, the others the same.  The walk reads one line of each spare it passes; there
   are few unless a program freed many chunks at once.  Caller holds mlc_spare_lock. */
static void mlc_arena_spare_insert_locked(mlc_chunk_t *c) {
  mlc_assert(mlc_mutex_owned(&mlc_spare_lock));
  if (!mlc_spares || c->serial < mlc_spares->serial) {
    mlc_list_chunk_push(&mlc_spares, c);
    return;
  }
  mlc_chunk_t *at = mlc_spares;
  while (at->next && at->next->serial < c->serial) at = at->next;
  mlc_list_chunk_insert_after(at, c);
}

/* After pages of c were freed: a wholly free chunk leaves the arena for the shared
   spares, or is unmapped when there are enough. */
static void mlc_arena_chunk_check_locked(mlc_arena_t *arena, mlc_chunk_t *c) {
  mlc_assert(mlc_mutex_owned(&arena->lock));
  if (c->nfree != MLC_CHUNK_FREE_PAGES) {
    if (c->free_granules & c->dirty_granules) mlc_store(&arena->granule_hint, true);
    return;
  }
  mlc_list_chunk_remove(&arena->chunks, c);
  mlc_arena_ref_remove_locked(arena, c);
  arena->mapped -= MLC_CHUNK;
  mlc_mutex_lock(&mlc_spare_lock);
  mlc_peak_see(&mlc_chunks_peak, mlc_chunks_used);
  mlc_chunks_used--;
  size_t room = mlc_peak_get(&mlc_chunks_peak) - mlc_chunks_used;
  bool keep = mlc_nspares < MLC_MAX((size_t)MLC_SPARE_PER_ARENA * mlc_narenas, room);
  if (keep) {
    mlc_arena_spare_insert_locked(c);
    mlc_nspares++;
  }
  mlc_mutex_unlock(&mlc_spare_lock);
  if (keep) return;
  mlc_trace("arena %u: unmapped chunk %p", arena->ind, (void *)c);
  mlc_chunk_delete(c);
}

/* ---- Slab granules ---- */

/* A chunk of a with a wholly free granule that is still (partly) resident, else NULL;
   *any (when given): the first chunk with a free granule.  Caller holds a->lock. */
static mlc_chunk_t *mlc_arena_dirty_chunk_locked(mlc_arena_t *a, mlc_chunk_t **any) {
  mlc_assert(mlc_mutex_owned(&a->lock));
  /* Newest first, in the refs (see mlc_arena_run_alloc). */
  for (size_t k = a->nrefs; k > 0; k--) {
    const mlc_chunk_ref_t *r = &a->refs[k - 1];
    if (r->free_granules & r->dirty_granules) return r->chunk;
    if (any && !*any && r->free_granules) *any = r->chunk;
  }
  mlc_store(&a->granule_hint, false);
  return NULL;
}

/* Other arenas an arena with no resident free granule looks at before it touches fresh
   pages: the next few in index order, so that the cost is bounded with many arenas. */
#define MLC_BORROW_ARENAS 4

mlc_slab_t *mlc_arena_slab_alloc(mlc_arena_t *arena, mlc_bin_t *bin, bool *dirty) {
  /* A wholly free granule that is still (partly) resident: no page faults and no new
     RSS.  In this arena's chunks, else in another arena's: each arena's free pages
     otherwise rise to its own high-water mark, and their sum stays resident (bench's
     xbatch-mixed-w2, 2 producers in 2 arenas: median peak RSS 65 -> 61 MiB, the worst
     of 9 runs of xbatch-w2 45 -> 37 MiB; handoff-t2 27.2 -> 26.2 MiB).  The
     granule stays its chunk's: the chunk's arena takes and gives it (under that arena's
     lock) and purges it; only the slab on it belongs to this arena's bin.  Else the
     first chunk of this arena with a free granule, else a new or spare chunk. */
  mlc_mutex_lock(&arena->lock);
  mlc_arena_t *owner = arena;
  mlc_chunk_t *any = NULL, *c = mlc_arena_dirty_chunk_locked(arena, &any);
  /* Only arenas whose last search found something or that have freed pages since: with
     many arenas of many chunks, walking each one's list for every new slab would cost
     more than the page faults it saves.  With none, this arena's lock is kept. */
  unsigned hinted = 0;
  for (unsigned k = 1; !c && k <= MLC_BORROW_ARENAS && k < mlc_narenas; k++)
    if (mlc_load(&mlc_arenas[(arena->ind + k) % mlc_narenas]->granule_hint)) hinted |= 1u << k;
  if (hinted) {
    mlc_mutex_unlock(&arena->lock);
    /* One arena lock at a time (the caller's bin lock ranks below them all). */
    for (unsigned k = 1; k <= MLC_BORROW_ARENAS && !c; k++) {
      if (!(hinted & (1u << k))) continue;
      owner = mlc_arenas[(arena->ind + k) % mlc_narenas];
      mlc_mutex_lock(&owner->lock);
      c = mlc_arena_dirty_chunk_locked(owner, NULL);
      if (!c) mlc_mutex_unlock(&owner->lock);
    }
    if (!c) {
      owner = arena;
      any = NULL;
      mlc_mutex_lock(&arena->lock);
      c = mlc_arena_dirty_chunk_locked(arena, &any);
    }
  }
  uint64_t cand;
  if (c) {
    cand = c->free_granules & c->dirty_granules;
  } else {
    c = any ? any : mlc_arena_chunk_get_locked(arena);
    if (!c) {
      mlc_mutex_unlock(&arena->lock);
      return NULL;
    }
    cand = c->free_granules;
  }
  /* The highest: large runs are placed lowest first. */
  unsigned g = 63 - (unsigned)__builtin_clzll(cand);
  *dirty = mlc_chunk_take(c, (size_t)g * MLC_GRANULE_PAGES, MLC_GRANULE_PAGES);
  owner->used_pages += MLC_GRANULE_PAGES;
  mlc_mutex_unlock(&owner->lock);

  mlc_slab_t *slab = &c->slabs[g];
  unsigned cls = bin->cls;
  unsigned n = mlc_class_nobjs[cls];
  memset(slab, 0, offsetof(mlc_slab_t, freemap));
  mlc_store(&slab->bin, bin);
  slab->cls = (uint16_t)cls;
  slab->nobjs = (uint16_t)n;
  slab->nfree = (uint16_t)n;
  for (unsigned w = 0; w < MLC_SLAB_MAP_WORDS; w++) {
    unsigned lo = w * 64;
    slab->freemap[w] = lo + 64 <= n ? ~(uint64_t)0 : lo < n ? ((uint64_t)1 << (n - lo)) - 1 : 0;
  }
  mlc_pagemap_set_class((char *)c + (size_t)g * MLC_GRANULE, cls);
  mlc_trace("arena %u: new slab of class %u (%u bytes x %u) at %p (arena %u's chunk)", arena->ind, cls,
            (unsigned)mlc_class_size[cls], n, (void *)((char *)c + (size_t)g * MLC_GRANULE), owner->ind);
  return slab;
}

void mlc_arena_slab_free(mlc_slab_t *slab) {
  mlc_chunk_t *c = (mlc_chunk_t *)((uintptr_t)slab & ~MLC_CHUNK_MASK);
  mlc_arena_t *arena = mlc_load(&c->arena); /* the chunk's, perhaps not the bin's */
  unsigned g = (unsigned)(slab - c->slabs);
  mlc_pagemap_set_class((char *)c + (size_t)g * MLC_GRANULE, 0);
  mlc_store(&slab->bin, NULL);
  mlc_mutex_lock(&arena->lock);
  mlc_chunk_give(c, (size_t)g * MLC_GRANULE_PAGES, MLC_GRANULE_PAGES);
  arena->used_pages -= MLC_GRANULE_PAGES;
  mlc_arena_chunk_check_locked(arena, c);
  mlc_mutex_unlock(&arena->lock);
}

/* ---- Large runs ---- */

/* Pages [i, i + n) of c, free, become a live run: a growing block's (mlc_chunk_t.growing)
   where growing is set.  *dirty: whether some of them may be resident. */
static void *mlc_arena_run_take_locked(mlc_arena_t *arena, mlc_chunk_t *c, size_t i, size_t n, bool growing,
                                       bool *dirty) {
  *dirty = mlc_chunk_take(c, i, n);
  mlc_chunk_run_set(c, i, n);
  if (growing) mlc_chunk_growing_set(c, i);
  arena->nlarge_alloc++;
  arena->large_allocated += n << MLC_PAGE_SHIFT;
  arena->used_pages += n;
  return (char *)c + (i << MLC_PAGE_SHIFT);
}

/* A run of n pages in a free run of at least n + room (best fit for that), aligned to
   align_pages: at its start, but at its end where the free run follows a growing block.
   A new chunk when no chunk has such a run, and fresh is set, else NULL.  *dirty:
   whether some of its pages may be resident. */
static void *mlc_arena_run_alloc(mlc_arena_t *arena, size_t n, size_t room, size_t align_pages,
                                 bool fresh, bool *dirty) {
  size_t want = n + room;
  mlc_mutex_lock(&arena->lock);
  mlc_chunk_t *c = NULL;
  size_t i = 0, w, waste = 0;
  /* Best fit over the arena's chunks without looking at every run: find the smallest
     bucket b >= want's that some chunk has a run in, and look only inside the chunks whose
     smallest such bucket is b.  Their runs of b all hold want pages unless b is want's own
     bucket and want is not its shortest length (or alignment gets in the way): then go on
     from the next bucket.  The chunks are looked at newest first, in the refs, where
     their run masks lie packed: walking the chunk list read each chunk's header, a
     cache miss each, for every large block (bench's frag, 70 chunks: 15% of its time
     in this search). */
  const mlc_chunk_ref_t *refs = arena->refs;
  for (unsigned from = mlc_chunk_run_bucket(want); !c && from < 64;) {
    unsigned b = 64;
    size_t first = 0; /* refs[first - 1] is the newest chunk with b; none newer has b */
    for (size_t k = arena->nrefs; k > 0 && b > from; k--) {
      uint64_t m = refs[k - 1].run_mask >> from;
      if (m && from + (unsigned)__builtin_ctzll(m) < b) {
        b = from + (unsigned)__builtin_ctzll(m);
        first = k;
      }
    }
    if (b == 64) break;
    /* Runs of one of the first 32 buckets all have the same length: the first chunk
       with a fit is as good as any. */
    size_t best_waste = SIZE_MAX;
    for (size_t k = first; k > 0 && best_waste > 0; k--) {
      uint64_t m = refs[k - 1].run_mask >> from;
      if (!m || from + (unsigned)__builtin_ctzll(m) != b) continue;
      size_t j = mlc_chunk_run_find(refs[k - 1].chunk, want, align_pages, &w);
      if (j != 0 && w < best_waste) {
        c = refs[k - 1].chunk;
        i = j;
        best_waste = waste = w;
        if (b < 32) break;
      }
    }
    from = b + 1;
  }
  if (!c) {
    c = fresh ? mlc_arena_chunk_get_locked(arena) : NULL;
    if (!c) {
      mlc_mutex_unlock(&arena->lock);
      return NULL;
    }
    i = mlc_chunk_run_find(c, want, align_pages, &w);
    mlc_assert(i != 0);
    waste = w;
  }
  /* Where the free run starts right after a growing block: at the run's end (with room:
     room pages before it), so that the block keeps its room.  A block that grows by
     realloc and the allocations the program makes between its steps, or other blocks
     growing by turns, then do not block each other.  With room, it is marked as
     growing in its chunk (mlc_chunk_t.growing), as long as it lives: a ring of the
     arena's last four such blocks (before) forgot all but four of 1000 buffers grown
     by turns (bench's grow-lots-t1), whose rooms the next blocks then took from their
     start (5 interleaved runs: peak RSS 373 -> 315 MiB, 0.45 -> 0.41 s). */
  if (waste && align_pages == 1 && mlc_chunk_after_growing(c, i)) i += waste;
  void *p = mlc_arena_run_take_locked(arena, c, i, n, room != 0, dirty);
  mlc_mutex_unlock(&arena->lock);
  return p;
}

void *mlc_arena_large_alloc(mlc_arena_t *arena, size_t size, size_t align, bool zero) {
  size_t n = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  bool dirty;
  void *p = mlc_arena_run_alloc(arena, n, 0, align > MLC_PAGE ? align >> MLC_PAGE_SHIFT : 1, true, &dirty);
  if (p && zero && dirty) memset(p, 0, n << MLC_PAGE_SHIFT);
  return p;
}

/* One past the highest bucket of free runs in mask (0: none). */
static unsigned mlc_run_mask_top(uint64_t mask) { return mask ? 64 - (unsigned)__builtin_clzll(mask) : 0; }

/* Past MLC_ROOM_FREE_BYTES: a growing block of n pages in the longest free run of the
   arena's chunks, when that run holds three times n -- in its middle where it is the
   room of another growing block (each keeps half of what is left, at least n pages),
   else at its start.  The longest run is looked for in the newest chunk whose longest
   runs are in the arena's highest bucket (within a fifth of the longest).  NULL when
   no run is that long.  Caller holds arena->lock. */
static void *mlc_arena_room_split_locked(mlc_arena_t *arena, size_t n) {
  unsigned top = 0;
  for (size_t k = 0; k < arena->nrefs; k++) top = MLC_MAX(top, mlc_run_mask_top(arena->refs[k].run_mask));
  for (size_t k = arena->nrefs; k > 0 && top > 0; k--) {
    if (mlc_run_mask_top(arena->refs[k - 1].run_mask) != top) continue;
    mlc_chunk_t *c = arena->refs[k - 1].chunk;
    size_t len, i = mlc_chunk_run_longest(c, &len);
    if (len < 3 * n) return NULL;
    if (mlc_chunk_after_growing(c, i)) i += (len - n) / 2;
    bool dirty;
    return mlc_arena_run_take_locked(arena, c, i, n, true, &dirty);
  }
  return NULL;
}

void *mlc_arena_large_alloc_room(mlc_arena_t *arena, size_t size, size_t room) {
  size_t n = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  if (n >= MLC_CHUNK_FREE_PAGES) room = 0;
  else if (room > MLC_CHUNK_FREE_PAGES - n) room = MLC_CHUNK_FREE_PAGES - n;
  bool dirty;
  void *p = mlc_arena_run_alloc(arena, n, room, 1, false, &dirty);
  if (p) return p;
  /* No chunk has a free run that long: a new chunk, whose untouched pages cost nothing
     -- but blocks growing side by side would each take one (1000 buffers grown by
     turns to 256 KiB: 2 GiB of address space for 0.25 GiB of blocks).  Free pages
     bound it (MLC_ROOM_FREE_BYTES), not the chunks mapped: a program with a large heap
     in use still gives its growing blocks room.  A block with less room than it grows
     into moves at each doubling and leaves its run behind, and later blocks land on the
     pages such runs left untouched: bounded by 64 MiB of chunks (on every target
     before), 50 buffers grown by turns to 600 KiB (bench's grow-many-t1) found room for
     32, and peaked at 73 MiB for 30 MiB of blocks (glibc 41, mimalloc 46); with room
     for all 50, 37 MiB in half the time.  500 buffers to 256 KiB, 5 rounds: 237 -> 147
     MiB (mimalloc 198).  Past the bound the blocks share the rooms they have: a new one
     splits the longest free run (above), so that 1000 buffers grown by turns to 256
     KiB, which fill the bound with 512 rooms, all reach their size without moving
     (their room halved): 3 rounds, peak RSS 335 -> 286 MiB, 0.36 -> 0.29 s; 2000 to 128
     KiB 358 -> 305, 4000 to 64 KiB 393 -> 340.  Before, each block past the bound had
     room for its own size and moved at each doubling, about 1000 moves a round, and
     left 40-70 MiB of runs that no later block was small enough to reuse.  Where no
     run holds three times the block: a run with room for its own size, in a new chunk
     if none has one. */
  mlc_mutex_lock(&arena->lock);
  bool small = ((arena->nrefs * MLC_CHUNK_FREE_PAGES - arena->used_pages) << MLC_PAGE_SHIFT) < MLC_ROOM_FREE_BYTES;
  p = small ? NULL : mlc_arena_room_split_locked(arena, n);
  mlc_mutex_unlock(&arena->lock);
  if (p) return p;
  return mlc_arena_run_alloc(arena, n, small ? room : MLC_MIN(room, n), 1, true, &dirty);
}

/* The first page index of the live run at p, or aborts.  Caller holds arena->lock. */
static size_t mlc_large_run_locked(mlc_chunk_t *c, const void *p, const char *what) {
  mlc_assert(mlc_mutex_owned(&mlc_load(&c->arena)->lock));
  uintptr_t off = (uintptr_t)p - (uintptr_t)c;
  size_t i = off >> MLC_PAGE_SHIFT;
  if ((off & (MLC_PAGE - 1)) || i < MLC_CHUNK_HEADER_PAGES || c->npages[i] == 0) {
    bool was_run = !(off & (MLC_PAGE - 1)) && i >= MLC_CHUNK_HEADER_PAGES && !mlc_chunk_page_used(c, i);
    mlc_mutex_unlock(&mlc_load(&c->arena)->lock);
    mlc_fatal(was_run ? "double free" : what, p);
  }
  return i;
}

/* The run of n pages at page i of c becomes free pages; those of [clean, clean_end),
   which the caller gave back to the kernel, clean.  Caller holds the lock. */
static void mlc_arena_run_free_locked(mlc_arena_t *arena, mlc_chunk_t *c, size_t i, size_t n,
                                      size_t clean, size_t clean_end) {
  mlc_chunk_run_set(c, i, 0);
  mlc_chunk_give(c, i, n);
  if (clean < clean_end) mlc_chunk_clean(c, clean, clean_end - clean);
  arena->nlarge_free++;
  arena->large_allocated -= n << MLC_PAGE_SHIFT;
  arena->used_pages -= n;
  mlc_arena_chunk_check_locked(arena, c);
}

void mlc_arena_large_free(mlc_chunk_t *c, void *p) {
  mlc_arena_t *arena = mlc_load(&c->arena);
  mlc_mutex_lock(&arena->lock);
  size_t i = mlc_large_run_locked(c, p, "invalid pointer (not the start of a block)");
  mlc_arena_run_free_locked(arena, c, i, c->npages[i], 0, 0);
  mlc_mutex_unlock(&arena->lock);
}

void mlc_arena_large_free_purged(mlc_chunk_t *c, void *p) {
  mlc_arena_t *arena = mlc_load(&c->arena);
  mlc_mutex_lock(&arena->lock);
  size_t i = mlc_large_run_locked(c, p, "invalid pointer (not the start of a block)");
  size_t n = c->npages[i];
  mlc_mutex_unlock(&arena->lock);
  size_t up = mlc_os_purge_unit() >> MLC_PAGE_SHIFT; /* 0: purge nothing */
  size_t a = up ? MLC_ALIGN_UP(i, up) : i, b = up ? MLC_ALIGN_DOWN(i + n, up) : i;
  bool purged = a < b && mlc_os_purge((char *)c + (a << MLC_PAGE_SHIFT), (b - a) << MLC_PAGE_SHIFT);
  mlc_mutex_lock(&arena->lock);
  mlc_arena_run_free_locked(arena, c, i, n, a, purged ? b : a);
  mlc_mutex_unlock(&arena->lock);
}

size_t mlc_arena_large_check(mlc_chunk_t *c, const void *p, bool *freed) {
  uintptr_t off = (uintptr_t)p - (uintptr_t)c;
  size_t i = off >> MLC_PAGE_SHIFT;
  *freed = false;
  if ((off & (MLC_PAGE - 1)) || i < MLC_CHUNK_HEADER_PAGES) return 0;
  mlc_mutex_lock(&mlc_load(&c->arena)->lock);
  size_t n = c->npages[i];
  if (n == 0) *freed = !mlc_chunk_page_used(c, i);
  mlc_mutex_unlock(&mlc_load(&c->arena)->lock);
  return n;
}

bool mlc_arena_large_resize(mlc_chunk_t *c, void *p, size_t size) {
  mlc_arena_t *arena = mlc_load(&c->arena);
  size_t want = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  mlc_mutex_lock(&arena->lock);
  size_t i = mlc_large_run_locked(c, p, "invalid pointer (not the start of a block)");
  size_t n = c->npages[i];
  bool ok = true;
  if (want < n) {
    mlc_chunk_give(c, i + want, n - want);
  } else if (want > n) {
    if (i + want > MLC_PAGES_PER_CHUNK || !mlc_chunk_pages_free(c, i + n, want - n))
      ok = false;
    else
      mlc_chunk_take(c, i + n, want - n);
  }
  if (ok) {
    mlc_chunk_run_set(c, i, want);
    arena->large_allocated += (want << MLC_PAGE_SHIFT);
    arena->large_allocated -= (n << MLC_PAGE_SHIFT);
    arena->used_pages += want;
    arena->used_pages -= n;
  }
  mlc_mutex_unlock(&arena->lock);
  return ok;
}

/* ---- Checking ---- */

bool mlc_arena_validate(mlc_arena_t *arena) {
  bool ok = true;
  mlc_mutex_lock(&arena->lock);
  size_t n = 0, used = 0;
  for (mlc_chunk_t *c = arena->chunks; c && ok; c = c->next, n++) {
    used += MLC_CHUNK_FREE_PAGES - c->nfree;
    /* The refs hold the list's chunks in reverse order, each with its masks. */
    const mlc_chunk_ref_t *r = &arena->refs[n < arena->nrefs ? arena->nrefs - 1 - n : 0];
    ok = mlc_chunk_validate(c) && n < arena->nrefs && r->chunk == c && c->ref == r && r->run_mask == c->run_mask &&
         r->free_granules == c->free_granules && r->dirty_granules == c->dirty_granules;
  }
  if (ok && (n != arena->nrefs || used != arena->used_pages)) ok = false;
  mlc_mutex_unlock(&arena->lock);
  return ok;
}

/* ---- Purging ---- */

size_t mlc_arena_purge(mlc_arena_t *arena, uint64_t now, uint64_t decay_ns) {
  size_t purged = 0;
  mlc_mutex_lock(&arena->lock);
  for (mlc_chunk_t *c = arena->chunks; c; c = c->next) {
    if (!c->dirty_granules || !c->purge_pending || !mlc_aged(now, c->free_ns, decay_ns))
      continue;
    purged += mlc_chunk_purge(c);
  }
  mlc_mutex_unlock(&arena->lock);
  return purged;
}

size_t mlc_arena_spares_purge(uint64_t now, uint64_t decay_ns) {
  size_t purged = 0;
  mlc_chunk_t *next;
  mlc_mutex_lock(&mlc_spare_lock);
  /* The bound follows a program whose use shrank for good, one or two delays later. */
  mlc_peak_turn(&mlc_chunks_peak, now, decay_ns, mlc_chunks_used);
  for (mlc_chunk_t *c = mlc_spares; c; c = next) {
    next = c->next;
    if (!mlc_aged(now, c->free_ns, decay_ns)) continue;
    mlc_list_chunk_remove(&mlc_spares, c);
    mlc_nspares--;
    purged += MLC_CHUNK;
    mlc_chunk_delete(c);
  }
  mlc_mutex_unlock(&mlc_spare_lock);
  return purged;
}

size_t mlc_arena_spares_mapped(void) {
  mlc_mutex_lock(&mlc_spare_lock);
  size_t n = mlc_nspares;
  mlc_mutex_unlock(&mlc_spare_lock);
  return n * MLC_CHUNK;
}

void mlc_arena_stats(mlc_arena_t *arena, size_t *large_allocated, size_t *mapped) {
  mlc_mutex_lock(&arena->lock);
  *large_allocated = arena->large_allocated;
  *mapped = arena->mapped;
  mlc_mutex_unlock(&arena->lock);
}

bool mlc_arena_purgeable(mlc_arena_t *arena) {
  bool any = mlc_arena_spares_mapped() != 0;
  mlc_mutex_lock(&arena->lock);
  for (mlc_chunk_t *c = arena->chunks; c && !any; c = c->next)
    any = c->dirty_granules != 0 && c->purge_pending;
  mlc_mutex_unlock(&arena->lock);
  return any;
}

/* In rank order (mutex.h): every bin of every arena, then every arena. */
void mlc_arena_prefork(void) {
  for (unsigned i = 0; i < mlc_narenas; i++)
    for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_mutex_lock(&mlc_arenas[i]->bins[c].lock);
  for (unsigned i = 0; i < mlc_narenas; i++) mlc_mutex_lock(&mlc_arenas[i]->lock);
  mlc_mutex_lock(&mlc_spare_lock);
}

void mlc_arena_postfork_parent(void) {
  mlc_mutex_unlock(&mlc_spare_lock);
  for (unsigned i = 0; i < mlc_narenas; i++) mlc_mutex_unlock(&mlc_arenas[i]->lock);
  for (unsigned i = 0; i < mlc_narenas; i++)
    for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_mutex_unlock(&mlc_arenas[i]->bins[c].lock);
}

void mlc_arena_postfork_child(void) {
  mlc_mutex_reset(&mlc_spare_lock);
  for (unsigned i = 0; i < mlc_narenas; i++) {
    mlc_arena_t *a = mlc_arenas[i];
    mlc_mutex_reset(&a->lock);
    for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_mutex_reset(&a->bins[c].lock);
  }
}
