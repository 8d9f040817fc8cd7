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

/* ---- Chunk lists (caller holds arena->lock) ---- */

static void mlc_list_push(mlc_chunk_t **head, mlc_chunk_t *c) {
  c->prev = NULL;
  c->next = *head;
  if (*head) (*head)->prev = c;
  *head = c;
}

static void mlc_list_remove(mlc_chunk_t **head, mlc_chunk_t *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    *head = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

/* A chunk of the given kind: a spare (reinitialised if it was of the other kind) or a
   new one.  Caller holds arena->lock. */
static mlc_chunk_t *mlc_arena_chunk_get_locked(mlc_arena_t *arena, uint32_t kind) {
  mlc_chunk_t *c = arena->spare;
  for (; c; c = c->next)
    if (c->kind == kind) break;
  if (!c) c = arena->spare;
  bool fresh = false;
  if (c) {
    mlc_list_remove(&arena->spare, c);
    arena->nspare--;
    if (c->kind == kind) return c;
    memset(&c->s, 0, MLC_MAX(sizeof(c->s), sizeof(c->l)));
  } else {
    c = mlc_chunk_new(arena, kind);
    if (!c) return NULL;
    fresh = true;
    arena->mapped += MLC_CHUNK;
    mlc_trace("arena %u: new %s chunk at %p", arena->ind,
              kind == MLC_CHUNK_SLAB ? "slab" : "large", (void *)c);
  }
  c->kind = kind;
  c->listed = 0;
  if (kind == MLC_CHUNK_SLAB) {
    c->s.free_mask = ~(uint64_t)1;
    /* Memory that held the other kind's data is dirty; a new chunk is clean. */
    c->s.dirty_mask = fresh ? 0 : ~(uint64_t)1;
  } else {
    for (size_t p = 0; p < MLC_LARGE_HEADER_PAGES; p++) c->l.used[p / 64] |= (uint64_t)1 << (p % 64);
    c->l.nfree = (uint32_t)(MLC_PAGES_PER_CHUNK - MLC_LARGE_HEADER_PAGES);
    if (!fresh)
      for (size_t w = 0; w < MLC_CHUNK_WORDS; w++) c->l.dirty[w] = ~c->l.used[w];
  }
  return c;
}

/* The chunk is wholly free: keep it as a spare, or unmap it when there are enough.
   Caller holds arena->lock. */
static void mlc_arena_chunk_release_locked(mlc_arena_t *arena, mlc_chunk_t *c) {
  c->free_ns = mlc_os_now_ns();
  if (arena->nspare < MLC_ARENA_SPARE_MAX) {
    mlc_list_push(&arena->spare, c);
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
  mlc_chunk_t *c = arena->slab_chunks;
  if (!c) {
    c = mlc_arena_chunk_get_locked(arena, MLC_CHUNK_SLAB);
    if (!c) {
      mlc_mutex_unlock(&arena->lock);
      return NULL;
    }
    mlc_list_push(&arena->slab_chunks, c);
    c->listed = 1;
  }
  /* Prefer a granule that is still resident: no page faults. */
  uint64_t dirty = c->s.free_mask & c->s.dirty_mask;
  unsigned g = (unsigned)__builtin_ctzll(dirty ? dirty : c->s.free_mask);
  c->s.free_mask &= ~((uint64_t)1 << g);
  c->s.dirty_mask &= ~((uint64_t)1 << g);
  if (c->s.free_mask == 0) {
    mlc_list_remove(&arena->slab_chunks, c);
    c->listed = 0;
  }
  mlc_mutex_unlock(&arena->lock);

  mlc_slab_t *slab = &c->s.slabs[g];
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
  unsigned g = (unsigned)(slab - c->s.slabs);
  mlc_pagemap_set_class((char *)c + (size_t)g * MLC_GRANULE, 0);
  mlc_store(&slab->bin, NULL);
  mlc_mutex_lock(&arena->lock);
  c->s.free_mask |= (uint64_t)1 << g;
  c->s.dirty_mask |= (uint64_t)1 << g;
  c->free_ns = mlc_os_now_ns();
  if (c->s.free_mask == ~(uint64_t)1) {
    if (c->listed) mlc_list_remove(&arena->slab_chunks, c);
    c->listed = 0;
    mlc_arena_chunk_release_locked(arena, c);
  } else if (!c->listed) {
    mlc_list_push(&arena->slab_chunks, c);
    c->listed = 1;
  }
  mlc_mutex_unlock(&arena->lock);
}

/* ---- Large runs ---- */

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

static bool mlc_bits_any(const uint64_t *map, size_t i, size_t n) {
  return mlc_bits_find(map, i, i + n, true) < i + n;
}

/* The best fit in c for n free pages starting at a multiple of align_pages: the start
   of the smallest free run that holds them (*waste: its pages left over), or 0.  Best
   fit, not first fit: blocks up to 2 MiB in 4 MiB chunks fragment them quickly, and
   every hole left too small for the next request is resident memory nobody uses
   (large: peak RSS 132 -> 124 MiB, mixed-t1 7.0 -> 6.1 MiB, same speed). */
static size_t mlc_large_find(mlc_chunk_t *c, size_t n, size_t align_pages, size_t *waste) {
  if (c->l.nfree < n) return 0;
  size_t best = 0, best_waste = SIZE_MAX;
  size_t i = mlc_bits_find(c->l.used, MLC_LARGE_HEADER_PAGES, MLC_PAGES_PER_CHUNK, false);
  while (i + n <= MLC_PAGES_PER_CHUNK) {
    size_t end = mlc_bits_find(c->l.used, i, MLC_PAGES_PER_CHUNK, true);
    size_t start = MLC_ALIGN_UP(i, align_pages);
    if (start + n <= end && end - i - n < best_waste) {
      best = start;
      best_waste = end - i - n;
      if (best_waste == 0) break;
    }
    if (end >= MLC_PAGES_PER_CHUNK) break;
    i = mlc_bits_find(c->l.used, end, MLC_PAGES_PER_CHUNK, false);
  }
  *waste = best_waste;
  return best;
}

void *mlc_arena_large_alloc(mlc_arena_t *arena, size_t size, size_t align, bool zero) {
  size_t n = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  size_t align_pages = align > MLC_PAGE ? align >> MLC_PAGE_SHIFT : 1;
  mlc_mutex_lock(&arena->lock);
  mlc_chunk_t *c = NULL;
  size_t i = 0, best_waste = SIZE_MAX;
  for (mlc_chunk_t *k = arena->large_chunks; k && best_waste > 0; k = k->next) {
    size_t w, j = mlc_large_find(k, n, align_pages, &w);
    if (j != 0 && w < best_waste) {
      c = k;
      i = j;
      best_waste = w;
    }
  }
  if (!c) {
    c = mlc_arena_chunk_get_locked(arena, MLC_CHUNK_LARGE);
    if (!c) {
      mlc_mutex_unlock(&arena->lock);
      return NULL;
    }
    mlc_list_push(&arena->large_chunks, c);
    size_t w;
    i = mlc_large_find(c, n, align_pages, &w);
    mlc_assert(i != 0);
  }
  mlc_bits_set(c->l.used, i, n, true);
  bool dirty = mlc_bits_any(c->l.dirty, i, n);
  if (dirty) mlc_bits_set(c->l.dirty, i, n, false);
  mlc_store(&c->l.npages[i], (uint16_t)n);
  c->l.nfree -= (uint32_t)n;
  arena->nlarge_alloc++;
  arena->large_allocated += n << MLC_PAGE_SHIFT;
  mlc_mutex_unlock(&arena->lock);
  char *p = (char *)c + (i << MLC_PAGE_SHIFT);
  if (zero && dirty) memset(p, 0, n << MLC_PAGE_SHIFT);
  return p;
}

/* The first page index of the live run at p, or aborts.  Caller holds arena->lock. */
static size_t mlc_large_run_locked(mlc_chunk_t *c, const void *p, const char *what) {
  uintptr_t off = (uintptr_t)p - (uintptr_t)c;
  size_t i = off >> MLC_PAGE_SHIFT;
  if ((off & (MLC_PAGE - 1)) || i < MLC_LARGE_HEADER_PAGES || c->l.npages[i] == 0) {
    bool was_run = !(off & (MLC_PAGE - 1)) && i >= MLC_LARGE_HEADER_PAGES && !mlc_bit_get(c->l.used, i);
    mlc_mutex_unlock(&c->arena->lock);
    mlc_fatal(was_run ? "double free or invalid pointer" : what, p);
  }
  return i;
}

void mlc_arena_large_free(mlc_chunk_t *c, void *p) {
  mlc_arena_t *arena = c->arena;
  mlc_mutex_lock(&arena->lock);
  size_t i = mlc_large_run_locked(c, p, "invalid free (not the start of a block)");
  size_t n = c->l.npages[i];
  mlc_store(&c->l.npages[i], (uint16_t)0);
  mlc_bits_set(c->l.used, i, n, false);
  mlc_bits_set(c->l.dirty, i, n, true);
  c->l.nfree += (uint32_t)n;
  c->free_ns = mlc_os_now_ns();
  arena->nlarge_free++;
  arena->large_allocated -= n << MLC_PAGE_SHIFT;
  if (c->l.nfree == MLC_PAGES_PER_CHUNK - MLC_LARGE_HEADER_PAGES) {
    mlc_list_remove(&arena->large_chunks, c);
    mlc_arena_chunk_release_locked(arena, c);
  }
  mlc_mutex_unlock(&arena->lock);
}

size_t mlc_arena_large_usable(mlc_chunk_t *c, const void *p) {
  mlc_mutex_lock(&c->arena->lock);
  size_t i = mlc_large_run_locked(c, p, "invalid pointer");
  size_t n = c->l.npages[i];
  mlc_mutex_unlock(&c->arena->lock);
  return n << MLC_PAGE_SHIFT;
}

bool mlc_arena_large_resize(mlc_chunk_t *c, void *p, size_t size) {
  mlc_arena_t *arena = c->arena;
  size_t want = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  mlc_mutex_lock(&arena->lock);
  size_t i = mlc_large_run_locked(c, p, "invalid realloc");
  size_t n = c->l.npages[i];
  bool ok = true;
  if (want < n) {
    mlc_bits_set(c->l.used, i + want, n - want, false);
    mlc_bits_set(c->l.dirty, i + want, n - want, true);
    c->l.nfree += (uint32_t)(n - want);
    c->free_ns = mlc_os_now_ns();
  } else if (want > n) {
    if (i + want > MLC_PAGES_PER_CHUNK || mlc_bits_any(c->l.used, i + n, want - n)) {
      ok = false;
    } else {
      mlc_bits_set(c->l.used, i + n, want - n, true);
      mlc_bits_set(c->l.dirty, i + n, want - n, false);
      c->l.nfree -= (uint32_t)(want - n);
    }
  }
  if (ok) {
    mlc_store(&c->l.npages[i], (uint16_t)want);
    arena->large_allocated += (want << MLC_PAGE_SHIFT);
    arena->large_allocated -= (n << MLC_PAGE_SHIFT);
  }
  mlc_mutex_unlock(&arena->lock);
  return ok;
}

/* ---- Purging ---- */

size_t mlc_arena_purge(mlc_arena_t *arena, uint64_t now, uint64_t decay_ns) {
  size_t purged = 0;
  mlc_mutex_lock(&arena->lock);
  for (mlc_chunk_t *c = arena->slab_chunks; c; c = c->next) {
    if (decay_ns && now - c->free_ns < decay_ns) continue;
    uint64_t d = c->s.free_mask & c->s.dirty_mask;
    while (d) {
      unsigned g = (unsigned)__builtin_ctzll(d);
      unsigned e = g;
      while (e < 64 && ((d >> e) & 1)) e++;
      mlc_os_purge((char *)c + (size_t)g * MLC_GRANULE, (size_t)(e - g) * MLC_GRANULE);
      purged += (size_t)(e - g) * MLC_GRANULE;
      d &= e < 64 ? ~((((uint64_t)1 << e) - 1)) : 0;
    }
    c->s.dirty_mask = 0;
  }
  for (mlc_chunk_t *c = arena->large_chunks; c; c = c->next) {
    if (decay_ns && now - c->free_ns < decay_ns) continue;
    size_t i = mlc_bits_find(c->l.dirty, 0, MLC_PAGES_PER_CHUNK, true);
    while (i < MLC_PAGES_PER_CHUNK) {
      size_t e = mlc_bits_find(c->l.dirty, i, MLC_PAGES_PER_CHUNK, false);
      mlc_os_purge((char *)c + (i << MLC_PAGE_SHIFT), (e - i) << MLC_PAGE_SHIFT);
      purged += (e - i) << MLC_PAGE_SHIFT;
      i = mlc_bits_find(c->l.dirty, e, MLC_PAGES_PER_CHUNK, true);
    }
    memset(c->l.dirty, 0, sizeof(c->l.dirty));
  }
  mlc_chunk_t *next;
  for (mlc_chunk_t *c = arena->spare; c; c = next) {
    next = c->next;
    if (decay_ns && now - c->free_ns < decay_ns) continue;
    mlc_list_remove(&arena->spare, c);
    arena->nspare--;
    arena->mapped -= MLC_CHUNK;
    purged += MLC_CHUNK;
    mlc_chunk_delete(c);
  }
  mlc_mutex_unlock(&arena->lock);
  return purged;
}

void mlc_arena_prefork(void) {
  for (unsigned i = 0; i < mlc_narenas; i++) {
    mlc_arena_t *a = mlc_arenas[i];
    for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_mutex_lock(&a->bins[c].lock);
    mlc_mutex_lock(&a->lock);
  }
}

void mlc_arena_postfork_parent(void) {
  for (unsigned i = 0; i < mlc_narenas; i++) {
    mlc_arena_t *a = mlc_arenas[i];
    mlc_mutex_unlock(&a->lock);
    for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_mutex_unlock(&a->bins[c].lock);
  }
}

void mlc_arena_postfork_child(void) {
  for (unsigned i = 0; i < mlc_narenas; i++) {
    mlc_arena_t *a = mlc_arenas[i];
    mlc_mutex_reset(&a->lock);
    for (unsigned c = 0; c < MLC_NCLASSES; c++) mlc_mutex_reset(&a->bins[c].lock);
  }
}
