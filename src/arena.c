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

/* Wholly free chunks an arena keeps before unmapping at once (the collector unmaps the
   rest after the decay delay). */
#define MLC_ARENA_SPARE_MAX 8

mlc_arena_t *mlc_arena_new(unsigned ind) {
  mlc_arena_t *a = mlc_base_alloc(sizeof(mlc_arena_t));
  if (!a) return NULL;
  a->ind = ind;
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

/* ---- Page bitmaps ---- */

static bool mlc_bit_get(const uint64_t *map, size_t i) { return (map[i / 64] >> (i % 64)) & 1; }

static void mlc_bits_set(uint64_t *map, size_t i, size_t n, bool v) {
  while (n) {
    size_t b = i % 64, k = MLC_MIN(n, 64 - b);
    uint64_t mask = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << b;
    if (v) map[i / 64] |= mask;
    else map[i / 64] &= ~mask;
    i += k;
    n -= k;
  }
}

/* First index >= i (and < end) whose bit equals v, or end. */
static size_t mlc_bits_find(const uint64_t *map, size_t i, size_t end, bool v) {
  while (i < end) {
    uint64_t w = v ? map[i / 64] : ~map[i / 64];
    w &= ~(uint64_t)0 << (i % 64);
    if (w) {
      size_t j = (i & ~(size_t)63) + (size_t)__builtin_ctzll(w);
      return j < end ? j : end;
    }
    i = (i & ~(size_t)63) + 64;
  }
  return end;
}

/* One past the last set bit below i, or 0. */
static size_t mlc_bits_rfind_set(const uint64_t *map, size_t i) {
  while (i > 0) {
    size_t b = i % 64;
    uint64_t w = map[(i - 1) / 64];
    if (b) w &= ((uint64_t)1 << b) - 1;
    if (w) return ((i - 1) & ~(size_t)63) + 64 - (size_t)__builtin_clzll(w);
    i = (i - 1) & ~(size_t)63;
  }
  return 0;
}

static bool mlc_bits_any(const uint64_t *map, size_t i, size_t n) {
  return mlc_bits_find(map, i, i + n, true) < i + n;
}

/* ---- Chunks (caller holds arena->lock) ---- */

#define MLC_GRANULE_PAGES (MLC_GRANULE >> MLC_PAGE_SHIFT)
#define MLC_CHUNK_FREE_PAGES ((uint32_t)(MLC_PAGES_PER_CHUNK - MLC_CHUNK_HEADER_PAGES))
_Static_assert(MLC_CHUNK_HEADER_PAGES <= MLC_GRANULE_PAGES, "the header fits in granule 0");
_Static_assert(64 % MLC_GRANULE_PAGES == 0, "a bitmap word holds whole granules");

/* An arena's chunks and spares.  Protected by arena->lock. */
MLC_LIST_DEFINE(chunk, mlc_chunk_t)

/* Recomputes free_granules and dirty_granules for the granules that pages [i, i + n)
   touch. */
static void mlc_chunk_sync(mlc_chunk_t *c, size_t i, size_t n) {
  for (size_t g = i / MLC_GRANULE_PAGES; g <= (i + n - 1) / MLC_GRANULE_PAGES; g++) {
    size_t w = g * MLC_GRANULE_PAGES / 64, sh = g * MLC_GRANULE_PAGES % 64;
    uint64_t m = ((uint64_t)1 << MLC_GRANULE_PAGES) - 1, bit = (uint64_t)1 << g;
    uint64_t used = (c->used[w] >> sh) & m, dirty = (c->dirty[w] >> sh) & m;
    c->free_granules = used ? c->free_granules & ~bit : c->free_granules | bit;
    c->dirty_granules = dirty ? c->dirty_granules | bit : c->dirty_granules & ~bit;
  }
}

/* Free runs are counted by length in buckets: 1..32 pages one bucket each, then four
   buckets per doubling.  A chunk's run_mask says at once whether it has a run that
   holds a request, so that best fit across an arena's chunks looks inside one chunk,
   or the few that tie, instead of walking every run of every chunk. */
static unsigned mlc_run_bucket(size_t len) {
  if (len <= 32) return (unsigned)len - 1;
  unsigned m = 63 - (unsigned)__builtin_clzll(len);
  return 32 + (m - 5) * 4 + (unsigned)((len >> (m - 2)) & 3);
}

_Static_assert(MLC_PAGES_PER_CHUNK <= 1024, "run lengths fit in buckets 0..51");

static void mlc_run_add(mlc_chunk_t *c, size_t len) {
  if (!len) return;
  unsigned b = mlc_run_bucket(len);
  if (c->run_count[b]++ == 0) c->run_mask |= (uint64_t)1 << b;
}

static void mlc_run_del(mlc_chunk_t *c, size_t len) {
  if (!len) return;
  unsigned b = mlc_run_bucket(len);
  mlc_assert(c->run_count[b] > 0);
  if (--c->run_count[b] == 0) c->run_mask &= ~((uint64_t)1 << b);
}

/* Pages [i, i + n) are free: they become a slab or a run.  Returns whether any of them
   may be resident (not known to read as zero). */
static bool mlc_chunk_take(mlc_chunk_t *c, size_t i, size_t n) {
  size_t lo = mlc_bits_rfind_set(c->used, i);
  size_t hi = mlc_bits_find(c->used, i + n, MLC_PAGES_PER_CHUNK, true);
  mlc_run_del(c, hi - lo);
  mlc_run_add(c, i - lo);
  mlc_run_add(c, hi - i - n);
  mlc_bits_set(c->used, i, n, true);
  bool dirty = mlc_bits_any(c->dirty, i, n);
  if (dirty) mlc_bits_set(c->dirty, i, n, false);
  c->nfree -= (uint32_t)n;
  mlc_chunk_sync(c, i, n);
  return dirty;
}

/* Pages [i, i + n) of a slab or a run become free (and dirty), joining the free runs
   on either side. */
static void mlc_chunk_give(mlc_chunk_t *c, size_t i, size_t n) {
  size_t lo = mlc_bits_rfind_set(c->used, i);
  size_t hi = mlc_bits_find(c->used, i + n, MLC_PAGES_PER_CHUNK, true);
  mlc_run_del(c, i - lo);
  mlc_run_del(c, hi - i - n);
  mlc_run_add(c, hi - lo);
  mlc_bits_set(c->used, i, n, false);
  mlc_bits_set(c->dirty, i, n, true);
  c->nfree += (uint32_t)n;
  c->free_ns = mlc_os_now_ns();
  mlc_chunk_sync(c, i, n);
}

/* A chunk with every page free: a spare (their state stays exact while they wait) or a
   new one. */
static mlc_chunk_t *mlc_arena_chunk_get_locked(mlc_arena_t *arena) {
  mlc_assert(mlc_mutex_owned(&arena->lock));
  mlc_chunk_t *c = arena->spare;
  if (c) {
    mlc_list_chunk_remove(&arena->spare, c);
    arena->nspare--;
  } else {
    c = mlc_chunk_new(arena);
    if (!c) return NULL;
    arena->mapped += MLC_CHUNK;
    mlc_trace("arena %u: new chunk at %p", arena->ind, (void *)c);
    mlc_bits_set(c->used, 0, MLC_CHUNK_HEADER_PAGES, true);
    c->nfree = MLC_CHUNK_FREE_PAGES;
    mlc_run_add(c, MLC_CHUNK_FREE_PAGES);
    c->free_granules = ~(uint64_t)1;
  }
  mlc_list_chunk_push(&arena->chunks, c);
  return c;
}

/* After pages of c were freed: a wholly free chunk leaves the arena's list and is kept
   as a spare, or unmapped when there are enough. */
static void mlc_arena_chunk_check_locked(mlc_arena_t *arena, mlc_chunk_t *c) {
  mlc_assert(mlc_mutex_owned(&arena->lock));
  if (c->nfree != MLC_CHUNK_FREE_PAGES) return;
  mlc_list_chunk_remove(&arena->chunks, c);
  if (arena->nspare < MLC_ARENA_SPARE_MAX) {
    mlc_list_chunk_push(&arena->spare, c);
    arena->nspare++;
    return;
  }
  mlc_trace("arena %u: unmapped chunk %p", arena->ind, (void *)c);
  arena->mapped -= MLC_CHUNK;
  mlc_chunk_delete(c);
}

/* ---- Slab granules ---- */

mlc_slab_t *mlc_arena_slab_alloc(mlc_arena_t *arena, mlc_bin_t *bin) {
  mlc_mutex_lock(&arena->lock);
  /* A wholly free granule that is still (partly) resident, in any chunk: no page
     faults and no new RSS.  Else the first chunk with a free granule, else a new one. */
  mlc_chunk_t *c, *any = NULL;
  for (c = arena->chunks; c; c = c->next) {
    if (c->free_granules & c->dirty_granules) break;
    if (!any && c->free_granules) any = c;
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
  mlc_chunk_take(c, (size_t)g * MLC_GRANULE_PAGES, MLC_GRANULE_PAGES);
  mlc_mutex_unlock(&arena->lock);

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
  mlc_trace("arena %u: new slab of class %u (%u bytes x %u) at %p", arena->ind, cls,
            (unsigned)mlc_class_size[cls], n, (void *)((char *)c + (size_t)g * MLC_GRANULE));
  return slab;
}

void mlc_arena_slab_free(mlc_arena_t *arena, mlc_slab_t *slab) {
  mlc_chunk_t *c = (mlc_chunk_t *)((uintptr_t)slab & ~MLC_CHUNK_MASK);
  unsigned g = (unsigned)(slab - c->slabs);
  mlc_pagemap_set_class((char *)c + (size_t)g * MLC_GRANULE, 0);
  mlc_store(&slab->bin, NULL);
  mlc_mutex_lock(&arena->lock);
  mlc_chunk_give(c, (size_t)g * MLC_GRANULE_PAGES, MLC_GRANULE_PAGES);
  mlc_arena_chunk_check_locked(arena, c);
  mlc_mutex_unlock(&arena->lock);
}

/* ---- Large runs ---- */

/* The best fit in c for n free pages starting at a multiple of align_pages: the start
   of the smallest free run that holds them (*waste: its pages left over), or 0.  Best
   fit, not first fit: blocks up to 2 MiB in 4 MiB chunks fragment them quickly, and
   every hole left too small for the next request is resident memory nobody uses
   (large: peak RSS 132 -> 124 MiB, mixed-t1 7.0 -> 6.1 MiB, same speed). */
static size_t mlc_large_find(mlc_chunk_t *c, size_t n, size_t align_pages, size_t *waste) {
  *waste = SIZE_MAX;
  if (!(c->run_mask >> mlc_run_bucket(n))) return 0;
  size_t best = 0, best_waste = SIZE_MAX;
  size_t i = mlc_bits_find(c->used, MLC_CHUNK_HEADER_PAGES, MLC_PAGES_PER_CHUNK, false);
  while (i < MLC_PAGES_PER_CHUNK) {
    size_t end = mlc_bits_find(c->used, i, MLC_PAGES_PER_CHUNK, true);
    size_t start = MLC_ALIGN_UP(i, align_pages);
    if (start + n <= end && end - i - n < best_waste) {
      best = start;
      best_waste = end - i - n;
      if (best_waste == 0) break;
    }
    if (end >= MLC_PAGES_PER_CHUNK) break;
    i = mlc_bits_find(c->used, end, MLC_PAGES_PER_CHUNK, false);
  }
  *waste = best_waste;
  return best;
}

void *mlc_arena_large_alloc(mlc_arena_t *arena, size_t size, size_t align, bool zero) {
  size_t n = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  size_t align_pages = align > MLC_PAGE ? align >> MLC_PAGE_SHIFT : 1;
  mlc_mutex_lock(&arena->lock);
  mlc_chunk_t *c = NULL;
  size_t i = 0, w;
  /* Best fit over the arena's chunks without looking at every run: find the smallest
     bucket b >= n's that some chunk has a run in, and look only inside the chunks whose
     smallest such bucket is b.  Their runs of b all hold n pages unless b is n's own
     bucket and n is not its shortest length (or alignment gets in the way): then go on
     from the next bucket. */
  for (unsigned from = mlc_run_bucket(n); !c && from < 64;) {
    unsigned b = 64;
    mlc_chunk_t *first = NULL; /* the first chunk with b; none before it has b */
    for (mlc_chunk_t *k = arena->chunks; k && b > from; k = k->next) {
      uint64_t m = k->run_mask >> from;
      if (m && from + (unsigned)__builtin_ctzll(m) < b) {
        b = from + (unsigned)__builtin_ctzll(m);
        first = k;
      }
    }
    if (b == 64) break;
    /* Runs of one of the first 32 buckets all have the same length: the first chunk
       with a fit is as good as any. */
    size_t best_waste = SIZE_MAX;
    for (mlc_chunk_t *k = first; k && best_waste > 0; k = k->next) {
      uint64_t m = k->run_mask >> from;
      if (!m || from + (unsigned)__builtin_ctzll(m) != b) continue;
      size_t j = mlc_large_find(k, n, align_pages, &w);
      if (j != 0 && w < best_waste) {
        c = k;
        i = j;
        best_waste = w;
        if (b < 32) break;
      }
    }
    from = b + 1;
  }
  if (!c) {
    c = mlc_arena_chunk_get_locked(arena);
    if (!c) {
      mlc_mutex_unlock(&arena->lock);
      return NULL;
    }
    i = mlc_large_find(c, n, align_pages, &w);
    mlc_assert(i != 0);
  }
  bool dirty = mlc_chunk_take(c, i, n);
  mlc_store(&c->npages[i], (uint16_t)n);
  arena->nlarge_alloc++;
  arena->large_allocated += n << MLC_PAGE_SHIFT;
  mlc_mutex_unlock(&arena->lock);
  char *p = (char *)c + (i << MLC_PAGE_SHIFT);
  if (zero && dirty) memset(p, 0, n << MLC_PAGE_SHIFT);
  return p;
}

/* The first page index of the live run at p, or aborts.  Caller holds arena->lock. */
static size_t mlc_large_run_locked(mlc_chunk_t *c, const void *p, const char *what) {
  mlc_assert(mlc_mutex_owned(&c->arena->lock));
  uintptr_t off = (uintptr_t)p - (uintptr_t)c;
  size_t i = off >> MLC_PAGE_SHIFT;
  if ((off & (MLC_PAGE - 1)) || i < MLC_CHUNK_HEADER_PAGES || c->npages[i] == 0) {
    bool was_run = !(off & (MLC_PAGE - 1)) && i >= MLC_CHUNK_HEADER_PAGES && !mlc_bit_get(c->used, i);
    mlc_mutex_unlock(&c->arena->lock);
    mlc_fatal(was_run ? "double free or invalid pointer" : what, p);
  }
  return i;
}

void mlc_arena_large_free(mlc_chunk_t *c, void *p) {
  mlc_arena_t *arena = c->arena;
  mlc_mutex_lock(&arena->lock);
  size_t i = mlc_large_run_locked(c, p, "invalid free (not the start of a block)");
  size_t n = c->npages[i];
  mlc_store(&c->npages[i], (uint16_t)0);
  mlc_chunk_give(c, i, n);
  arena->nlarge_free++;
  arena->large_allocated -= n << MLC_PAGE_SHIFT;
  mlc_arena_chunk_check_locked(arena, c);
  mlc_mutex_unlock(&arena->lock);
}

size_t mlc_arena_large_usable(mlc_chunk_t *c, const void *p, const char *what) {
  mlc_mutex_lock(&c->arena->lock);
  size_t i = mlc_large_run_locked(c, p, what);
  size_t n = c->npages[i];
  mlc_mutex_unlock(&c->arena->lock);
  return n << MLC_PAGE_SHIFT;
}

bool mlc_arena_large_resize(mlc_chunk_t *c, void *p, size_t size) {
  mlc_arena_t *arena = c->arena;
  size_t want = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  mlc_mutex_lock(&arena->lock);
  size_t i = mlc_large_run_locked(c, p, "invalid realloc");
  size_t n = c->npages[i];
  bool ok = true;
  if (want < n) {
    mlc_chunk_give(c, i + want, n - want);
  } else if (want > n) {
    if (i + want > MLC_PAGES_PER_CHUNK || mlc_bits_any(c->used, i + n, want - n))
      ok = false;
    else
      mlc_chunk_take(c, i + n, want - n);
  }
  if (ok) {
    mlc_store(&c->npages[i], (uint16_t)want);
    arena->large_allocated += (want << MLC_PAGE_SHIFT);
    arena->large_allocated -= (n << MLC_PAGE_SHIFT);
  }
  mlc_mutex_unlock(&arena->lock);
  return ok;
}

/* ---- Checking ---- */

bool mlc_arena_validate(mlc_arena_t *arena) {
  bool ok = true;
  mlc_mutex_lock(&arena->lock);
  for (mlc_chunk_t *c = arena->chunks; c && ok; c = c->next) {
    uint16_t count[64] = {0};
    uint64_t mask = 0, free_g = 0, dirty_g = 0;
    size_t nfree = 0;
    for (size_t i = 0; i < MLC_PAGES_PER_CHUNK;) {
      size_t e = mlc_bits_find(c->used, i, MLC_PAGES_PER_CHUNK, true);
      if (e > i) {
        count[mlc_run_bucket(e - i)]++;
        mask |= (uint64_t)1 << mlc_run_bucket(e - i);
        nfree += e - i;
      }
      i = mlc_bits_find(c->used, e, MLC_PAGES_PER_CHUNK, false);
    }
    for (size_t g = 0; g < MLC_GRANULES_PER_CHUNK; g++) {
      size_t p0 = g * MLC_GRANULE_PAGES;
      if (!mlc_bits_any(c->used, p0, MLC_GRANULE_PAGES)) free_g |= (uint64_t)1 << g;
      if (mlc_bits_any(c->dirty, p0, MLC_GRANULE_PAGES)) dirty_g |= (uint64_t)1 << g;
    }
    for (size_t w = 0; w < MLC_CHUNK_WORDS; w++) ok &= !(c->used[w] & c->dirty[w]);
    ok &= !memcmp(count, c->run_count, sizeof(count)) && mask == c->run_mask &&
          nfree == c->nfree && free_g == c->free_granules && dirty_g == c->dirty_granules;
  }
  mlc_mutex_unlock(&arena->lock);
  return ok;
}

/* ---- Purging ---- */

size_t mlc_arena_purge(mlc_arena_t *arena, uint64_t now, uint64_t decay_ns) {
  size_t purged = 0;
  mlc_mutex_lock(&arena->lock);
  for (mlc_chunk_t *c = arena->chunks; c; c = c->next) {
    if (!c->dirty_granules || (decay_ns && now - c->free_ns < decay_ns)) continue;
    size_t i = mlc_bits_find(c->dirty, 0, MLC_PAGES_PER_CHUNK, true);
    while (i < MLC_PAGES_PER_CHUNK) {
      size_t e = mlc_bits_find(c->dirty, i, MLC_PAGES_PER_CHUNK, false);
      mlc_os_purge((char *)c + (i << MLC_PAGE_SHIFT), (e - i) << MLC_PAGE_SHIFT);
      purged += (e - i) << MLC_PAGE_SHIFT;
      i = mlc_bits_find(c->dirty, e, MLC_PAGES_PER_CHUNK, true);
    }
    memset(c->dirty, 0, sizeof(c->dirty));
    c->dirty_granules = 0;
  }
  mlc_chunk_t *next;
  for (mlc_chunk_t *c = arena->spare; c; c = next) {
    next = c->next;
    if (decay_ns && now - c->free_ns < decay_ns) continue;
    mlc_list_chunk_remove(&arena->spare, c);
    arena->nspare--;
    arena->mapped -= MLC_CHUNK;
    purged += MLC_CHUNK;
    mlc_chunk_delete(c);
  }
  mlc_mutex_unlock(&arena->lock);
  return purged;
}

void mlc_arena_stats(mlc_arena_t *arena, size_t *large_allocated, size_t *mapped) {
  mlc_mutex_lock(&arena->lock);
  *large_allocated = arena->large_allocated;
  *mapped = arena->mapped;
  mlc_mutex_unlock(&arena->lock);
}

bool mlc_arena_purgeable(mlc_arena_t *arena) {
  mlc_mutex_lock(&arena->lock);
  bool any = arena->spare != NULL;
  for (mlc_chunk_t *c = arena->chunks; c && !any; c = c->next) any = c->dirty_granules != 0;
  mlc_mutex_unlock(&arena->lock);
  return any;
}

/* In rank order (mutex.h): every bin of every arena, then every arena. */
void mlc_arena_prefork(void) {
  for (unsigned i = 0; i < mlc_narenas; i++)
    for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_mutex_lock(&mlc_arenas[i]->bins[c].lock);
  for (unsigned i = 0; i < mlc_narenas; i++) mlc_mutex_lock(&mlc_arenas[i]->lock);
}

void mlc_arena_postfork_parent(void) {
  for (unsigned i = 0; i < mlc_narenas; i++) mlc_mutex_unlock(&mlc_arenas[i]->lock);
  for (unsigned i = 0; i < mlc_narenas; i++)
    for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_mutex_unlock(&mlc_arenas[i]->bins[c].lock);
}

void mlc_arena_postfork_child(void) {
  for (unsigned i = 0; i < mlc_narenas; i++) {
    mlc_arena_t *a = mlc_arenas[i];
    mlc_mutex_reset(&a->lock);
    for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_mutex_reset(&a->bins[c].lock);
  }
}
