/* SPDX-License-Identifier: MIT */
/*
 * Chunks, the page map and huge mappings.  This module decides how address space is
 * laid out, and owns a chunk header's page state (which pages are used, dirty, the
 * free runs by length, the run length at a run's first page): only the functions
 * here change it, the arena deciding which pages to take and give while it holds the
 * chunk's arena lock.
 */
#include "internal.h"

#include "base.h"
#include "chunk.h"
#include "harden.h"
#include "os.h"

mlc_pmleaf_t *mlc_pagemap_top[MLC_PM_TOP_ENTRIES];

static mlc_mutex_t mlc_pagemap_lock = MLC_MUTEX_INITIALIZER(MLC_RANK_PAGEMAP);

/* Never-touched pages of the window cost address space only. */
static uint8_t mlc_win_map[MLC_WIN];
#if MLC_WIN_ALL
#define MLC_WIN_UNPLACED 0 /* placed at 0 from the start: it covers everything */
#else
#define MLC_WIN_UNPLACED (((uintptr_t)1 << 63) >> MLC_GRANULE_SHIFT)
#endif
uintptr_t mlc_win_first = MLC_WIN_UNPLACED;
uintptr_t mlc_win_biased = (uintptr_t)mlc_win_map - MLC_WIN_UNPLACED;

/* Places the window around the chunk at a, once.  Caller holds mlc_pagemap_lock. */
static void mlc_win_place_locked(uintptr_t a) {
  mlc_assert(mlc_mutex_owned(&mlc_pagemap_lock));
#if MLC_WIN_ALL
  (void)a;
#else
  if (mlc_load(&mlc_win_first) != MLC_WIN_UNPLACED) return;
  uintptr_t end = (a >> MLC_GRANULE_SHIFT) + (((uintptr_t)64 << 30) >> MLC_GRANULE_SHIFT);
  uintptr_t first = end > MLC_WIN ? end - MLC_WIN : 0;
  /* Relaxed stores, read with relaxed loads by free's fast path (chunk.h): a free of a
     pointer melloc handed out happens after this placement in C11's happens-before
     order (the placement, the chunk's registration and the slab's creation are ordered
     by this lock and the arena and bin locks' acquire/release; the pointer reached the
     freeing thread through the program's own synchronisation), so each of the two loads
     reads the value stored here (read-write coherence), whatever the order in which
     they run.  The window never moves again. */
  mlc_store(&mlc_win_biased, (uintptr_t)mlc_win_map - first);
  mlc_store(&mlc_win_first, first);
#endif
}

/* Caller holds mlc_pagemap_lock. */
static mlc_pmleaf_t *mlc_pagemap_leaf_locked(uintptr_t a) {
  mlc_assert(mlc_mutex_owned(&mlc_pagemap_lock));
#if MLC_VA_BITS < 8 * __SIZEOF_POINTER__
  /* Above the page map (a kernel with 52- or 57-bit user addresses that placed a
     mapping there, which none does unless asked): not melloc's to use. */
  if (a >> MLC_VA_BITS) return NULL;
#endif
  mlc_pmleaf_t *leaf = mlc_pagemap_leaf(a);
  if (!leaf) {
    leaf = mlc_os_map(MLC_ALIGN_UP(sizeof(mlc_pmleaf_t), MLC_PAGE), MLC_PAGE);
    if (!leaf) return NULL;
    /* Relaxed, as the window above: a lookup of a pointer melloc handed out happens
       after this store.  A lookup of any other pointer may read NULL or the leaf,
       whose bytes are the kernel's zeros or relaxed stores: either answer is "not
       melloc's" or a class byte that was true at some point. */
    mlc_store(&mlc_pagemap_top[a >> MLC_PM_TOP_SHIFT], leaf);
  }
  mlc_win_place_locked(a);
  return leaf;
}

bool mlc_pagemap_register(void *addr, size_t size, void *entry) {
  uintptr_t a = (uintptr_t)addr, end = a + size;
  mlc_mutex_lock(&mlc_pagemap_lock);
  for (uintptr_t c = MLC_ALIGN_DOWN(a, MLC_CHUNK); c < end; c += MLC_CHUNK) {
    mlc_pmleaf_t *leaf = mlc_pagemap_leaf_locked(c);
    if (!leaf) {
      mlc_mutex_unlock(&mlc_pagemap_lock);
      if (entry) mlc_pagemap_register(addr, c - a, NULL);
      return false;
    }
    mlc_store(&leaf->ent[(c >> MLC_CHUNK_SHIFT) & (MLC_PM_LEAF_CHUNKS - 1)], entry);
  }
  mlc_mutex_unlock(&mlc_pagemap_lock);
  return true;
}

void mlc_pagemap_set_class(void *granule, unsigned cls) {
  uintptr_t a = (uintptr_t)granule;
  mlc_pmleaf_t *leaf = mlc_pagemap_leaf(a);
  mlc_assert(leaf != NULL);
  mlc_store(&leaf->cls[(a >> MLC_GRANULE_SHIFT) & (MLC_PM_LEAF_GRANULES - 1)], (uint8_t)cls);
  uintptr_t g = a >> MLC_GRANULE_SHIFT;
  if (g - mlc_load(&mlc_win_first) < MLC_WIN) mlc_store(&mlc_win_map[g - mlc_win_first], (uint8_t)cls);
}

/* Bytes mapped for chunks and huge blocks since start-up or the last fork (never
   lowered): the collector starts early in a process that maps much (gc.c). */
static size_t mlc_chunk_mapped; /* Atomic */

size_t mlc_chunk_mapped_total(void) { return __atomic_load_n(&mlc_chunk_mapped, __ATOMIC_RELAXED); }

static void mlc_chunk_count_mapped(size_t bytes) {
  __atomic_fetch_add(&mlc_chunk_mapped, bytes, __ATOMIC_RELAXED);
}

mlc_chunk_t *mlc_chunk_new(mlc_arena_t *arena) {
  mlc_chunk_t *chunk = mlc_os_map(MLC_CHUNK, MLC_CHUNK);
  /* The huge cache may hold the address space this needs (RLIMIT_AS): give it back.
     (The caller holds an arena lock; the huge lock is never held with one.) */
  if (!chunk && mlc_huge_purge(0, 0) > 0) chunk = mlc_os_map(MLC_CHUNK, MLC_CHUNK);
  if (!chunk) return NULL;
  if (!mlc_pagemap_register(chunk, MLC_CHUNK, chunk)) {
    mlc_os_unmap(chunk, MLC_CHUNK);
    return NULL;
  }
  /* Slabs are touched sparsely and pages are purged a few at a time: with THP "always",
     huge pages would make one small object cost 2 MiB of RSS and every purge split a
     huge page. */
  mlc_os_nohuge(chunk, MLC_CHUNK);
  mlc_store(&chunk->arena, arena);
  static uint64_t serial; /* Atomic */
  chunk->serial = __atomic_fetch_add(&serial, 1, __ATOMIC_RELAXED);
  mlc_chunk_count_mapped(MLC_CHUNK);
  return chunk;
}

void mlc_chunk_delete(mlc_chunk_t *chunk) {
  mlc_pagemap_register(chunk, MLC_CHUNK, NULL);
  mlc_os_unmap(chunk, MLC_CHUNK);
}

/* ---- A chunk's page state (the caller holds c->arena->lock) ---- */

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

/* 128 bits as two words (no __int128 on 32-bit targets), shifted right by 1..63. */
typedef struct {
  uint64_t lo, hi;
} mlc_u128_t;

MLC_INLINE mlc_u128_t mlc_u128_shr(mlc_u128_t x, unsigned r) {
  return (mlc_u128_t){(x.lo >> r) | (x.hi << (64 - r)), x.hi >> r};
}

MLC_INLINE mlc_u128_t mlc_u128_and(mlc_u128_t a, mlc_u128_t b) {
  return (mlc_u128_t){a.lo & b.lo, a.hi & b.hi};
}

/* The first run of exactly len (1..32) clear bits of map, nwords words, bounded by set
   bits (the bits before the first and past the last count as set): its first bit, or
   SIZE_MAX.  Word by word: in the 128 bits of a word and the next, the starts of len
   clear bits, less those of len + 1, that follow a set bit. */
static size_t mlc_bits_find_exact_clear(const uint64_t *map, size_t nwords, unsigned len) {
  uint64_t before = 1; /* the bit before this word's first */
  for (size_t k = 0; k < nwords; k++) {
    uint64_t w = map[k];
    if (w == ~(uint64_t)0) {
      before = 1;
      continue;
    }
    uint64_t next = k + 1 < nwords ? map[k + 1] : ~(uint64_t)0;
    mlc_u128_t f = {~w, ~next}; /* clear bits */
    mlc_u128_t t = f;
    unsigned have = 1;
    for (; have * 2 <= len; have *= 2) t = mlc_u128_and(t, mlc_u128_shr(t, have));
    if (have < len) t = mlc_u128_and(t, mlc_u128_shr(t, len - have)); /* len clear from here */
    uint64_t starts = t.lo & ~mlc_u128_shr(f, len).lo & ((w << 1) | before);
    if (starts) return k * 64 + (size_t)__builtin_ctzll(starts);
    before = w >> 63;
  }
  return SIZE_MAX;
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

_Static_assert(MLC_CHUNK_HEADER_PAGES <= MLC_GRANULE_PAGES, "the header fits in granule 0");
_Static_assert(64 % MLC_GRANULE_PAGES == 0, "a bitmap word holds whole granules");

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
  if (c->ref) {
    c->ref->free_granules = c->free_granules;
    c->ref->dirty_granules = c->dirty_granules;
  }
}

/* Free runs are counted by length in buckets (mlc_chunk_run_bucket): a chunk's run_mask
   says at once whether it has a run that holds a request, so that best fit across an
   arena's chunks looks inside one chunk, or the few that tie, instead of walking every
   run of every chunk. */
_Static_assert(MLC_PAGES_PER_CHUNK <= 1024, "run lengths fit in buckets 0..51");

static void mlc_run_add(mlc_chunk_t *c, size_t len) {
  if (!len) return;
  unsigned b = mlc_chunk_run_bucket(len);
  if (c->run_count[b]++ == 0) {
    c->run_mask |= (uint64_t)1 << b;
    if (c->ref) c->ref->run_mask = c->run_mask;
  }
}

static void mlc_run_del(mlc_chunk_t *c, size_t len) {
  if (!len) return;
  unsigned b = mlc_chunk_run_bucket(len);
  mlc_assert(c->run_count[b] > 0);
  if (--c->run_count[b] == 0) {
    c->run_mask &= ~((uint64_t)1 << b);
    if (c->ref) c->ref->run_mask = c->run_mask;
  }
}

/* Pages [i, i + n) are free: they become a slab or a run.  Returns whether any of them
   may be resident (not known to read as zero). */
bool mlc_chunk_take(mlc_chunk_t *c, size_t i, size_t n) {
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
void mlc_chunk_give(mlc_chunk_t *c, size_t i, size_t n) {
  size_t lo = mlc_bits_rfind_set(c->used, i);
  size_t hi = mlc_bits_find(c->used, i + n, MLC_PAGES_PER_CHUNK, true);
  mlc_run_del(c, i - lo);
  mlc_run_del(c, hi - i - n);
  mlc_run_add(c, hi - lo);
  mlc_bits_set(c->used, i, n, false);
  mlc_bits_set(c->dirty, i, n, true);
  c->nfree += (uint32_t)n;
  c->free_ns = mlc_os_now_ns();
  c->purge_pending = true;
  mlc_chunk_sync(c, i, n);
}

void mlc_chunk_clean(mlc_chunk_t *c, size_t i, size_t n) {
  mlc_assert(mlc_chunk_pages_free(c, i, n));
  mlc_bits_set(c->dirty, i, n, false);
  mlc_chunk_sync(c, i, n);
}

/* The first free run of c at or after page from: its start, or MLC_PAGES_PER_CHUNK
   when there is none, and in *end one past its last page. */
static size_t mlc_chunk_free_run(const mlc_chunk_t *c, size_t from, size_t *end) {
  size_t i = mlc_bits_find(c->used, from, MLC_PAGES_PER_CHUNK, false);
  *end = mlc_bits_find(c->used, i, MLC_PAGES_PER_CHUNK, true);
  return i;
}

/* The best fit in c for n free pages starting at a multiple of align_pages: the start
   of the smallest free run that holds them (*waste: its pages left over), or 0.  Best
   fit, not first fit: blocks up to 2 MiB in 4 MiB chunks fragment them quickly, and
   every hole left too small for the next request is resident memory nobody uses
   (large: peak RSS 132 -> 124 MiB, mixed-t1 7.0 -> 6.1 MiB, same speed). */
/* The best fit by walking every free run of c in address order (the first of the
   least waste; it stops at a run that leaves floor_waste, none can leave less). */
static size_t mlc_chunk_run_walk(mlc_chunk_t *c, size_t n, size_t align_pages, size_t floor_waste,
                                 size_t *waste) {
  size_t best = 0, best_waste = SIZE_MAX, end;
  for (size_t i = mlc_chunk_free_run(c, MLC_CHUNK_HEADER_PAGES, &end); i < MLC_PAGES_PER_CHUNK;
       i = mlc_chunk_free_run(c, end, &end)) {
    size_t start = MLC_ALIGN_UP(i, align_pages);
    if (start + n <= end && end - i - n < best_waste) {
      best = start;
      best_waste = end - i - n;
      if (best_waste == floor_waste) break;
    }
  }
  *waste = best_waste;
  return best;
}

size_t mlc_chunk_run_longest(const mlc_chunk_t *c, size_t *len) {
  size_t best = 0, best_len = 0, end;
  for (size_t i = mlc_chunk_free_run(c, MLC_CHUNK_HEADER_PAGES, &end); i < MLC_PAGES_PER_CHUNK;
       i = mlc_chunk_free_run(c, end, &end))
    if (end - i > best_len) {
      best = i;
      best_len = end - i;
    }
  *len = best_len;
  return best;
}

size_t mlc_chunk_run_find(mlc_chunk_t *c, size_t n, size_t align_pages, size_t *waste) {
  *waste = SIZE_MAX;
  uint64_t m = c->run_mask >> mlc_chunk_run_bucket(n);
  if (!m) return 0;
  /* The smallest bucket with a run that may hold n.  One of the exact lengths (1..32
     pages), with no alignment to meet: the best fit is the first free run of exactly
     that length, found a word at a time rather than run by run (a chunk of small runs
     left by 3- and 4-page blocks freed in a scattered order: walking them was 15% of
     bench's handoff).  Else the walk, which stops at a run of n pages. */
  unsigned b = mlc_chunk_run_bucket(n) + (unsigned)__builtin_ctzll(m);
  if (b < 32 && align_pages == 1) {
    size_t i = mlc_bits_find_exact_clear(c->used, MLC_CHUNK_WORDS, b + 1);
    mlc_assert(i != SIZE_MAX && i >= MLC_CHUNK_HEADER_PAGES);
    if (mlc_config_debug) {
      size_t w, j = mlc_chunk_run_walk(c, n, 1, b + 1 - n, &w);
      mlc_assert(j == i && w == b + 1 - n);
    }
    *waste = b + 1 - n;
    return i;
  }
  return mlc_chunk_run_walk(c, n, align_pages, 0, waste);
}

void mlc_chunk_pages_init(mlc_chunk_t *c) {
  mlc_bits_set(c->used, 0, MLC_CHUNK_HEADER_PAGES, true);
  c->nfree = MLC_CHUNK_FREE_PAGES;
  mlc_run_add(c, MLC_CHUNK_FREE_PAGES);
  c->free_granules = ~(uint64_t)1;
}

bool mlc_chunk_page_used(const mlc_chunk_t *c, size_t i) { return mlc_bit_get(c->used, i); }

bool mlc_chunk_after_growing(const mlc_chunk_t *c, size_t i) {
  size_t j = mlc_bits_rfind_set(c->growing, i); /* one past the last growing run's start */
  return j > 0 && c->npages[j - 1] != 0 && j - 1 + c->npages[j - 1] == i;
}

bool mlc_chunk_pages_free(const mlc_chunk_t *c, size_t i, size_t n) {
  return !mlc_bits_any(c->used, i, n);
}

/* The kernel takes pages back whole: with 16 or 64 KiB pages a purge covers only the
   kernel pages whose MLC_PAGE units are all free (clean free neighbours count: they read
   as zero anyway), so that no live page is ever zeroed.  The dirty units of a kernel page
   still partly in use stay dirty -- a later take zeroes them when asked to -- and so do
   those of a purge the kernel refused. */
size_t mlc_chunk_purge(mlc_chunk_t *c) {
  size_t unit = mlc_os_purge_unit();
  size_t up = unit >> MLC_PAGE_SHIFT; /* units per kernel page, 0: purge nothing */
  size_t purged = 0;
  c->purge_pending = false;
  if (up == 0) return 0;
  size_t i = mlc_bits_find(c->dirty, 0, MLC_PAGES_PER_CHUNK, true);
  while (i < MLC_PAGES_PER_CHUNK) {
    size_t e = mlc_bits_find(c->dirty, i, MLC_PAGES_PER_CHUNK, false);
    /* The free run around the dirty units, then the kernel pages inside it that hold
       some of them. */
    size_t lo = mlc_bits_rfind_set(c->used, i);
    size_t hi = mlc_bits_find(c->used, e, MLC_PAGES_PER_CHUNK, true);
    size_t a = MLC_MAX(MLC_ALIGN_UP(lo, up), MLC_ALIGN_DOWN(i, up));
    size_t b = MLC_MIN(MLC_ALIGN_DOWN(hi, up), MLC_ALIGN_UP(e, up));
    if (a < b && mlc_os_purge((char *)c + (a << MLC_PAGE_SHIFT), (b - a) << MLC_PAGE_SHIFT)) {
      mlc_bits_set(c->dirty, a, b - a, false);
      purged += (b - a) << MLC_PAGE_SHIFT;
    }
    i = mlc_bits_find(c->dirty, MLC_MAX(e, b), MLC_PAGES_PER_CHUNK, true);
  }
  mlc_chunk_sync(c, 0, MLC_PAGES_PER_CHUNK);
  return purged;
}

bool mlc_chunk_validate(const mlc_chunk_t *c) {
  uint16_t count[64] = {0};
  uint64_t mask = 0, free_g = 0, dirty_g = 0;
  size_t nfree = 0;
  bool ok = true;
  for (size_t i = 0; i < MLC_PAGES_PER_CHUNK;) {
    size_t e = mlc_bits_find(c->used, i, MLC_PAGES_PER_CHUNK, true);
    if (e > i) {
      count[mlc_chunk_run_bucket(e - i)]++;
      mask |= (uint64_t)1 << mlc_chunk_run_bucket(e - i);
      nfree += e - i;
    }
    i = mlc_bits_find(c->used, e, MLC_PAGES_PER_CHUNK, false);
  }
  for (size_t g = 0; g < MLC_GRANULES_PER_CHUNK; g++) {
    size_t p0 = g * MLC_GRANULE_PAGES;
    if (!mlc_bits_any(c->used, p0, MLC_GRANULE_PAGES)) free_g |= (uint64_t)1 << g;
    if (mlc_bits_any(c->dirty, p0, MLC_GRANULE_PAGES)) dirty_g |= (uint64_t)1 << g;
  }
  for (size_t w = 0; w < MLC_CHUNK_WORDS; w++) ok &= !(c->used[w] & c->dirty[w]) && !(c->growing[w] & ~c->used[w]);
  for (size_t i = 0; i < MLC_PAGES_PER_CHUNK; i++) ok &= !mlc_bit_get(c->growing, i) || c->npages[i] != 0;
  return ok && !memcmp(count, c->run_count, sizeof(count)) && mask == c->run_mask &&
         nfree == c->nfree && free_g == c->free_granules && dirty_g == c->dirty_granules;
}

/* ---- Huge allocations ---- */

/* Freed huge mappings are kept (dirty) for reuse until the collector's decay gives them
   back: faulting pages in again costs far more than keeping them a few seconds. */
#define MLC_HUGE_CACHE_MAX ((size_t)256 << 20)
/* The default build's free ranges (mlc_huge_take_locked), with the live blocks'
   slack (the pages from a carved block's end to the end of its last 4 MiB,
   mlc_huge_carve: resident, and nobody's to use until the block goes), hold at most
   this, or a quarter of the bytes of live huge blocks, or, once live bytes fell under
   half their recent peak, what keeps live and cached bytes under it (mlc_huge_free),
   where that is more; the oldest ranges go
   first, and a freed block of more than MLC_HUGE_RANGE_MAX, or half of the bound where
   that is more, is unmapped at once.  bench's bigbuf (20 live buffers of 5-25 MiB,
   interleaved runs, medians), before mlc_huge_gather: 128 MiB 4.31 s and 474 MiB of
   peak RSS, 96 MiB 5.02 s and 445 MiB, 32 MiB 5.83 s and 392 MiB, the whole-mapping
   cache before 5.98 s and 408 MiB; tcmalloc 5.09 s and 484 MiB, glibc 5.22 s and
   457 MiB, jemalloc 17.5 s and 390 MiB.  Giving each block's slack (to the end of its
   last 4 MiB) back at each carve saved 30 MiB and cost 0.5 s.  With the gather, which
   makes every cached page usable (5 runs, another day): 128 MiB 2.84 s and 453 MiB,
   96 MiB 2.93 s and 427 MiB, 80 MiB 2.95 s and 416 MiB, 64 MiB 3.05 s and 418 MiB;
   tcmalloc 2.96 s and 484 MiB, glibc 3.00 s and 457 MiB.  The bound counted the free
   ranges alone then, and the slack, up to 38 MiB of bigbuf's 20 blocks, came on top:
   80 MiB for the ranges alone and 104 MiB for ranges and slack (5 interleaved runs):
   3.31 and 3.28 s, 427 and 416 MiB (jemalloc 390, mimalloc 436); 10 runs of each:
   422 and 409 MiB, 224k and 233k page faults.  One address layout without the
   collector (setarch -R, gc:false: the same every run): 431 MiB before; ranges and
   slack under 80 MiB 413 MiB and 57% more faults, 96 MiB 408 and 14% more, 104 MiB
   412 and as many, 112 MiB 428. */
#define MLC_HUGE_RANGES_MAX ((size_t)104 << 20)
#define MLC_HUGE_RANGE_MAX ((size_t)64 << 20)

static mlc_mutex_t mlc_huge_lock = MLC_MUTEX_INITIALIZER(MLC_RANK_HUGE);
static mlc_huge_t *mlc_huge_cache;     /* Protected by mlc_huge_lock, newest first */
static mlc_huge_t *mlc_huge_free_desc; /* Protected by mlc_huge_lock */
static size_t mlc_huge_cached;         /* Protected by mlc_huge_lock */
static size_t mlc_huge_live;           /* Protected by mlc_huge_lock */
/* Protected by mlc_huge_lock: the spans of the live blocks, which pass their sizes by
   the pages to the end of the last chunk of a block carved from a cached range
   (mlc_huge_carve): mapped and resident, but nobody's to use until the block goes. */
static size_t mlc_huge_held;
/* Protected by mlc_huge_lock: the most live huge bytes frees have seen in the last one
   or two decay delays (mlc_huge_free's bound; a new window from mlc_huge_purge). */
static mlc_peak_t mlc_huge_peak;

/* Whole kernel pages: the mapping has them anyway, and mremap and munmap see them. */
static size_t mlc_huge_round(size_t size) {
  return MLC_ALIGN_UP(size, mlc_os_map_unit());
}

/* Caller holds mlc_huge_lock. */
static mlc_huge_t *mlc_huge_desc_new_locked(void) {
  mlc_assert(mlc_mutex_owned(&mlc_huge_lock));
  mlc_huge_t *h = mlc_huge_free_desc;
  if (h) {
    mlc_huge_free_desc = h->next;
    memset(h, 0, sizeof(*h));
    return h;
  }
  return mlc_base_alloc(sizeof(mlc_huge_t));
}

/* Caller holds mlc_huge_lock; h's pages are already unregistered and unmapped. */
static void mlc_huge_desc_delete_locked(mlc_huge_t *h) {
  mlc_assert(mlc_mutex_owned(&mlc_huge_lock));
  h->addr = NULL;
  h->next = mlc_huge_free_desc;
  mlc_huge_free_desc = h;
}

/* The hardened build's huge blocks have a guard page (a kernel page, PROT_NONE) right
   before and right after them, in their mapping: an overflow or underflow faults.  Such
   a mapping grows by realloc within its span, and moves when it outgrows it
   (mlc_huge_grow_guarded); a smaller size copies.  A freed one goes into the
   cache with its first page made PROT_NONE, so a use after free through the start of
   the block (where a structure's header is) faults; reuse makes that page accessible
   again and moves the end of the accessible part to the new block's end: the rest of
   the mapping is PROT_NONE, part of its upper guard.  Making the whole block PROT_NONE
   cost an mprotect of every page each way, and a write fault per page after it (the
   kernel gives write access back page by page): 7x the default library's time on
   bench's large workload.  Nothing is zeroed on reuse except for calloc: the block
   holds what its last owner left (large blocks are not filled either). */
static size_t mlc_huge_guard(void) { return mlc_harden_guard_on ? mlc_os_page_size() : 0; }

/* Caller holds mlc_huge_lock: the free h goes into the cache, newest first. */
static void mlc_huge_cache_push_locked(mlc_huge_t *h) {
  mlc_assert(mlc_mutex_owned(&mlc_huge_lock));
  h->free_ns = mlc_os_now_ns();
  h->next = mlc_huge_cache;
  mlc_huge_cache = h;
  mlc_huge_cached += h->span;
}

/* ---- Borders between kernel mappings inside huge ranges ----
   The default build moves cached pages into new blocks (mlc_huge_gather), and a block
   or range may then be several kernel mappings.  Each is one of the process's
   (vm.max_map_count, 65530 by default, counts them all), mremap does not resize a range
   of several, and only Linux 6.17 and later move one.  So melloc records every border it
   makes, by address, and makes no more than MLC_HUGE_BORDERS_MAX: at most that many
   mappings more than the blocks would have had.  A border leaves the record when its
   address stops being inside a mapping of melloc's (its range unmapped or moved), and
   may stay where the kernel merged two mappings (a count too high is safe).  Protected
   by mlc_huge_lock; the pages between a border's removal and its re-entry (a move) are
   the mover's alone. */
#define MLC_HUGE_BORDERS_MAX 1024
/* Kept free for the growth paths, which make a border whether or not there is room. */
#define MLC_HUGE_BORDERS_SPARE 64
/* Borders one move carries (a range with more stays where it is). */
#define MLC_HUGE_MOVE_BORDERS 16
static uintptr_t mlc_huge_border[MLC_HUGE_BORDERS_MAX]; /* ascending */
static size_t mlc_huge_nborders;
static bool mlc_huge_moves_several = true; /* false once the kernel refused such a move */

/* Index of the first border >= a. */
static size_t mlc_huge_border_at(uintptr_t a) {
  size_t lo = 0, hi = mlc_huge_nborders;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (mlc_huge_border[mid] < a)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Borders strictly inside (lo, hi). */
static size_t mlc_huge_borders_in(uintptr_t lo, uintptr_t hi) {
  mlc_assert(mlc_mutex_owned(&mlc_huge_lock));
  return hi > lo + 1 ? mlc_huge_border_at(hi) - mlc_huge_border_at(lo + 1) : 0;
}

static void mlc_huge_border_add(uintptr_t a) {
  mlc_assert(mlc_mutex_owned(&mlc_huge_lock));
  size_t i = mlc_huge_border_at(a);
  if ((i < mlc_huge_nborders && mlc_huge_border[i] == a) || mlc_huge_nborders == MLC_HUGE_BORDERS_MAX) return;
  memmove(&mlc_huge_border[i + 1], &mlc_huge_border[i], (mlc_huge_nborders - i) * sizeof(uintptr_t));
  mlc_huge_border[i] = a;
  mlc_huge_nborders++;
}

/* Removes the borders in [lo, hi] and returns how many; the first max of those strictly
   inside (lo, hi) are copied to out[] when out is not NULL. */
static size_t mlc_huge_borders_take(uintptr_t lo, uintptr_t hi, uintptr_t *out, size_t max) {
  mlc_assert(mlc_mutex_owned(&mlc_huge_lock));
  size_t i = mlc_huge_border_at(lo), j = i, n = 0;
  while (j < mlc_huge_nborders && mlc_huge_border[j] <= hi) {
    if (out && mlc_huge_border[j] > lo && mlc_huge_border[j] < hi && n < max) out[n++] = mlc_huge_border[j];
    j++;
  }
  memmove(&mlc_huge_border[i], &mlc_huge_border[j], (mlc_huge_nborders - j) * sizeof(uintptr_t));
  mlc_huge_nborders -= j - i;
  return n;
}

/* Puts back n borders taken from a range at from (mlc_huge_borders_take) at the same
   offsets from to, where its pages are now (or are still, to == from). */
static void mlc_huge_borders_put(const uintptr_t *b, size_t n, uintptr_t from, uintptr_t to) {
  for (size_t k = 0; k < n; k++) mlc_huge_border_add(b[k] - from + to);
}

/* Clears the page map's pieces that lie wholly in [a, a + len), before its pages go: a
   range that starts inside a piece (the end of one a gather moved, or what it left when
   the kernel refused) leaves that piece to the range or block before it. */
static void mlc_huge_unregister(char *a, size_t len) {
  char *clear = (char *)MLC_ALIGN_UP((uintptr_t)a, MLC_CHUNK);
  if (clear < a + len) mlc_pagemap_register(clear, (size_t)(a + len - clear), NULL);
}

static void mlc_huge_destroy(mlc_huge_t *h) {
  size_t g = mlc_huge_guard();
  mlc_mutex_lock(&mlc_huge_lock);
  mlc_huge_borders_take((uintptr_t)h->addr, (uintptr_t)h->addr + h->span, NULL, 0);
  mlc_mutex_unlock(&mlc_huge_lock);
  mlc_huge_unregister(h->addr, h->span);
  mlc_os_unmap((char *)h->addr - g, h->span + 2 * g);
  mlc_mutex_lock(&mlc_huge_lock);
  mlc_huge_desc_delete_locked(h);
  mlc_mutex_unlock(&mlc_huge_lock);
}

/* The default build's cache is a set of free ranges of address space, each with its
   pages (dirty) still mapped: a freed block's whole mapping, or the part of one that a
   smaller block left.  Every range starts chunk-aligned, as huge blocks do, so that
   the page map's 4 MiB pieces of a block are its own.  An allocation takes the
   smallest range, or run of ranges adjacent in the address space, of at least the
   bytes it needs, merged into the first one's descriptor; the part past the chunk
   that holds the block's end goes back into the cache as a range of its own.  Reusing
   pages that are already there, in place of mapping and faulting new ones, is what
   makes replacing big buffers cheap (bench's bigbuf: a 5-25 MiB buffer replaced at
   random, 20 live); the ranges are merged only when taken, so that a freed block keeps
   its own descriptor, and a second free of it is a double free, until its pages are
   used again.  Caller holds mlc_huge_lock.  NULL when nothing fits. */
#define MLC_HUGE_RUN_MAX 128
static mlc_huge_t *mlc_huge_take_locked(size_t sz, size_t align) {
  mlc_assert(mlc_mutex_owned(&mlc_huge_lock));
  mlc_huge_t *arr[MLC_HUGE_RUN_MAX];
  size_t n = 0;
  for (mlc_huge_t *h = mlc_huge_cache; h; h = h->next) {
    if (n == MLC_HUGE_RUN_MAX) break; /* the rest are not looked at: the cache is bounded */
    /* By address: insertion into the sorted prefix (a few dozen ranges at most). */
    size_t i = n++;
    for (; i > 0 && (uintptr_t)arr[i - 1]->addr > (uintptr_t)h->addr; i--) arr[i] = arr[i - 1];
    arr[i] = h;
  }
  /* The smallest that holds sz, but a range right after a live block (the tail of a
     carved range) only where no other holds it: that block grows into it
     (mlc_huge_grow_into_cache); four threads growing buffers by realloc took each
     other's tails, and the blocks moved to new pages while the cache kept the old. */
  size_t best_i = 0, best_j = 0, best_total = 0;
  bool best_tail = true;
  for (size_t i = 0; i < n; i++) {
    if (((uintptr_t)arr[i]->addr & (align - 1)) != 0) continue;
    size_t total = arr[i]->span, j = i;
    while (total < sz && j + 1 < n && (char *)arr[j]->addr + arr[j]->span == arr[j + 1]->addr)
      total += arr[++j]->span;
    if (total < sz) continue;
    bool tail = arr[i]->tail && mlc_huge_of_entry(mlc_pagemap_entry((char *)arr[i]->addr - 1)) != NULL;
    if (!best_total || (best_tail && !tail) || (tail == best_tail && total < best_total)) {
      best_i = i;
      best_j = j;
      best_total = total;
      best_tail = tail;
    }
  }
  if (!best_total) return NULL;
  mlc_huge_t *r = arr[best_i];
  mlc_trace("huge: take %zu bytes at %p for %zu (%zu ranges)", best_total, r->addr, sz, best_j - best_i + 1);
  for (size_t k = best_i; k <= best_j; k++) arr[k]->in_use = true; /* marks what leaves */
  for (mlc_huge_t **pp = &mlc_huge_cache; *pp;) {
    if ((*pp)->in_use)
      *pp = (*pp)->next;
    else
      pp = &(*pp)->next;
  }
  for (size_t k = best_i + 1; k <= best_j; k++) {
    if (arr[k]->free_ns > r->free_ns) r->free_ns = arr[k]->free_ns;
    arr[k]->in_use = false;
    mlc_huge_desc_delete_locked(arr[k]);
  }
  mlc_huge_cached -= best_total;
  r->span = r->size = best_total;
  r->next = NULL;
  return r;
}

/* The range r (taken from the cache, in_use) becomes a block of sz bytes: the part past
   the chunk holding its end goes back into the cache; its pieces are registered as
   r's.  false when the page map cannot take them (r is then still whole, for the
   caller to destroy).  (Giving the rest of that chunk to the cache as well, for
   mlc_huge_gather, left bench's bigbuf with more faults and more resident memory.) */
static bool mlc_huge_carve(mlc_huge_t *r, size_t sz) {
  size_t keep = MLC_ALIGN_UP(sz, MLC_CHUNK);
  mlc_huge_t *t = NULL;
  if (r->span > keep) {
    mlc_mutex_lock(&mlc_huge_lock);
    t = mlc_huge_desc_new_locked();
    mlc_mutex_unlock(&mlc_huge_lock);
  }
  size_t span = t ? keep : r->span;
  if (!mlc_pagemap_register(r->addr, span, (char *)r + 1)) {
    if (t) {
      mlc_mutex_lock(&mlc_huge_lock);
      mlc_huge_desc_delete_locked(t);
      mlc_mutex_unlock(&mlc_huge_lock);
    }
    return false;
  }
  if (t) {
    /* Not a block: a pointer into it is nobody's.  Its pieces are cleared before it is
       in the cache, where another thread may take it and register them as its own. */
    t->addr = (char *)r->addr + keep;
    t->span = t->size = r->span - keep;
    t->free_ns = r->free_ns;
    t->in_use = false;
    t->tail = true;
    mlc_pagemap_register(t->addr, t->span, NULL);
  }
  mlc_mutex_lock(&mlc_huge_lock);
  mlc_trace("huge: carve %p: block %zu span %zu, tail %p %zu", r->addr, sz, t ? keep : r->span, t ? t->addr : NULL, t ? t->span : 0);
  if (t) {
    t->next = mlc_huge_cache;
    mlc_huge_cache = t;
    mlc_huge_cached += t->span;
    r->span = keep;
  }
  r->size = sz;
  mlc_huge_live += sz;
  mlc_huge_held += r->span;
  mlc_mutex_unlock(&mlc_huge_lock);
  return true;
}

/* Cached pages are worth an mremap from this many bytes on; less is faulted in. */
#define MLC_HUGE_GATHER_MIN ((size_t)1 << 20)

/* Whether a cached range is a better donor for mlc_huge_gather than the best so far:
   one that is not a live block's growth room (tail) first; then one that holds the rest
   (holds), the smallest such; else the one that gives the most (take). */
static bool mlc_huge_donor_better(bool tail, bool holds, size_t span, size_t take, bool best_tail,
                                  bool best_holds, size_t best_span, size_t best_take) {
  if (tail != best_tail) return !tail;
  if (holds != best_holds) return holds;
  return holds ? span < best_span : take > best_take;
}

/* The default build's answer to a block that no free range holds whole: fills
   [dst, dst + len), pages of a new block that nothing has written, with the
   pages of cached ranges, moved (mremap: the kernel moves page tables, nothing is
   copied or faulted), from dst up.  Ranges go whole, the largest first, until one
   holds the rest: the smallest that does gives its end, and keeps its start (a range
   always starts chunk-aligned, as blocks do; where it ends does not matter) and at
   least MLC_HUGE_GATHER_MIN, as every piece moved has.  Ranges right after a live block
   (its growth room) go last.  Without this a 20 MiB block next to a cached 12 MiB and a
   cached 10 MiB faulted 20 MiB of new pages while the cache kept 22 resident: bench's
   bigbuf (20 live buffers of 5-25 MiB replaced at random) peaked at 1.31x its live bytes
   and faulted 1.5 GiB in 2000 replacements.  Returns the bytes filled.  Stops where the
   borders would pass their bound (see above), or at a move the kernel refuses. */
static size_t mlc_huge_gather(char *dst, size_t len) {
  size_t done = 0;
  uintptr_t carried[MLC_HUGE_MOVE_BORDERS];
  while (len - done >= MLC_HUGE_GATHER_MIN) {
    size_t need = len - done, best_take = 0;
    mlc_huge_t **best = NULL;
    bool best_tail = true, best_holds = false;
    mlc_mutex_lock(&mlc_huge_lock);
    /* Two borders at dst (where the piece starts and ends) and the ones it carries. */
    if (mlc_huge_nborders + 2 > MLC_HUGE_BORDERS_MAX - MLC_HUGE_BORDERS_SPARE) {
      mlc_mutex_unlock(&mlc_huge_lock);
      break;
    }
    size_t room = MLC_HUGE_BORDERS_MAX - MLC_HUGE_BORDERS_SPARE - mlc_huge_nborders - 2;
    for (mlc_huge_t **pp = &mlc_huge_cache, *h; (h = *pp) != NULL; pp = &h->next) {
      size_t take = h->span;
      if (take > need) take = h->span - need >= MLC_HUGE_GATHER_MIN ? need : h->span - MLC_HUGE_GATHER_MIN;
      if (take < MLC_HUGE_GATHER_MIN) continue;
      uintptr_t src = (uintptr_t)h->addr + h->span - take;
      size_t inner = mlc_huge_borders_in(src, src + take);
      if (inner > MLC_HUGE_MOVE_BORDERS || inner > room || (inner && !mlc_huge_moves_several)) continue;
      bool tail = h->tail && mlc_huge_of_entry(mlc_pagemap_entry((char *)h->addr - 1)) != NULL;
      bool holds = take == need;
      if (best && !mlc_huge_donor_better(tail, holds, h->span, take, best_tail, best_holds, (*best)->span, best_take))
        continue;
      best = pp;
      best_take = take;
      best_tail = tail;
      best_holds = holds;
    }
    if (!best) {
      mlc_mutex_unlock(&mlc_huge_lock);
      break;
    }
    mlc_huge_t *h = *best;
    size_t take = best_take;
    bool whole = take == h->span;
    char *src = (char *)h->addr + h->span - take;
    mlc_huge_cached -= take;
    if (whole) {
      *best = h->next; /* out of the cache: nobody else takes it */
      h->in_use = true;
    } else {
      h->span -= take; /* its part from src on is this call's alone */
      h->size = h->span;
    }
    /* Its borders leave the record with it (those at its ends are no longer inside a
       mapping); they come back at their new place. */
    size_t ncarried = mlc_huge_borders_take((uintptr_t)src, (uintptr_t)src + take, carried, MLC_HUGE_MOVE_BORDERS);
    mlc_mutex_unlock(&mlc_huge_lock);
    mlc_huge_unregister(src, take);
    bool moved = mlc_os_move(src, take, dst + done, take);
    mlc_mutex_lock(&mlc_huge_lock);
    if (moved) {
      mlc_huge_borders_put(carried, ncarried, (uintptr_t)src, (uintptr_t)dst + done);
      if (done) mlc_huge_border_add((uintptr_t)dst + done);
      if (done + take < len) mlc_huge_border_add((uintptr_t)dst + done + take);
      if (whole) mlc_huge_desc_delete_locked(h);
    } else {
      mlc_huge_borders_put(carried, ncarried, (uintptr_t)src, (uintptr_t)src);
      if (ncarried) mlc_huge_moves_several = false;
      /* Back into the cache as a range of its own (its pieces cleared, as a tail's):
         it no longer starts a chunk, so only another gather takes it. */
      mlc_huge_t *r = whole ? h : mlc_huge_desc_new_locked();
      if (r) {
        uint64_t freed = h->free_ns;
        r->addr = src;
        r->span = r->size = take;
        r->in_use = false;
        r->tail = false;
        r->free_ns = freed;
        r->next = mlc_huge_cache;
        mlc_huge_cache = r;
        mlc_huge_cached += take;
      }
      mlc_mutex_unlock(&mlc_huge_lock);
      if (!r) mlc_os_unmap(src, take);
      break;
    }
    mlc_mutex_unlock(&mlc_huge_lock);
    mlc_trace("huge: gathered %zu cached bytes from %p into %p", take, src, dst + done);
    done += take;
  }
  return done;
}

/* calloc on pages a huge block takes over from freed ones, which hold the old bytes.
   glibc maps every block above its largest mmap threshold afresh (32 MiB on 64-bit
   targets, 512 KiB on 32-bit ones), so a big calloc'ed table costs only the pages the
   program touches; here too: above that size the pages go back to the kernel
   (MADV_DONTNEED: they read as zero and are faulted in when touched, as jemalloc zeroes
   its extents).  Smaller blocks are cleared with memset, as glibc's heap clears them:
   a buffer reused whole costs no fault.  (A loop of 40 calloc(64 MiB) that touch two
   pages each: 52 ms and a peak RSS of 65.6 MiB with memset, 0.9 ms and 1.6 MiB now;
   glibc 0.7 ms and 1.2 MiB.  The price: 20 that are written whole fault their pages in again,
   40 -> 509 ms, as under glibc (497 ms), jemalloc (500) and mimalloc (529).) */
#define MLC_HUGE_ZERO_DEMAND (sizeof(long) >= 8 ? (size_t)32 << 20 : (size_t)512 << 10)

static void mlc_huge_zero(char *p, size_t len, size_t block) {
  if (block > MLC_HUGE_ZERO_DEMAND) {
    size_t pg = mlc_os_page_size();
    char *lo = (char *)MLC_ALIGN_UP((uintptr_t)p, pg);
    char *hi = (char *)((uintptr_t)(p + len) & ~(uintptr_t)(pg - 1));
    if (lo < hi && mlc_os_purge(lo, (size_t)(hi - lo))) {
      memset(p, 0, (size_t)(lo - p));
      memset(hi, 0, (size_t)(p + len - hi));
      return;
    }
  }
  memset(p, 0, len);
}

void *mlc_huge_alloc(size_t size, size_t align, bool zero) {
  size_t sz = mlc_huge_round(size);
  if (sz < size || sz > (size_t)PTRDIFF_MAX) return NULL;
  size_t g = mlc_huge_guard();
  if (align < MLC_CHUNK) align = MLC_CHUNK;

  /* Reuse cached pages: in the default build, the free ranges (mlc_huge_take_locked),
     else new pages filled with the cached ranges' (mlc_huge_gather, below); in the
     hardened build, a cached mapping at most 8 times the request (the smallest), kept
     whole (no mremap): a block that starts at 2 MiB and grows by realloc, as vectors
     and string builders do, grows into its pages without a fault (bench grow-t4: 4.4 s
     faulting fresh pages from 2 to 16 MiB each round, 0.6 s growing into a cached
     16 MiB mapping's).  Either way the pages it already has stay resident and are not
     faulted in again. */
  mlc_mutex_lock(&mlc_huge_lock);
  mlc_huge_t **pp, *h, **best = NULL;
  if (!mlc_harden_guard_on && (h = mlc_huge_take_locked(sz, align)) != NULL) {
    mlc_mutex_unlock(&mlc_huge_lock);
    if (MLC_LIKELY(mlc_huge_carve(h, sz))) {
      if (zero) mlc_huge_zero(h->addr, sz, sz);
      return h->addr;
    }
    mlc_mutex_lock(&mlc_huge_lock);
    h->in_use = false;
    mlc_mutex_unlock(&mlc_huge_lock);
    mlc_huge_destroy(h);
    mlc_mutex_lock(&mlc_huge_lock);
  }
  if (mlc_harden_guard_on)
    for (pp = &mlc_huge_cache; (h = *pp) != NULL; pp = &h->next)
      if (((uintptr_t)h->addr & (align - 1)) == 0 && h->span >= sz && h->span / 8 <= sz &&
          (!best || h->span < (*best)->span))
        best = pp;
  if (best) {
    h = *best;
    *best = h->next;
    mlc_huge_cached -= h->span;
    mlc_huge_live += sz;
    mlc_huge_held += h->span;
    h->in_use = true;
    h->next = NULL;
    size_t old = h->size; /* the bytes its last block had: accessible but the first page */
    h->size = sz;
    mlc_mutex_unlock(&mlc_huge_lock);
    char *a = h->addr;
    size_t pg = mlc_os_page_size();
    bool ok = mlc_os_protect_rw(a, pg);
    if (ok && sz > old) ok = mlc_os_protect_rw(a + old, sz - old);
    if (ok && sz < old) ok = mlc_os_protect_none(a + sz, old - sz); /* the upper guard */
    if (MLC_LIKELY(ok)) {
      if (zero) mlc_huge_zero(a, sz, sz);
      return a;
    }
    mlc_mutex_lock(&mlc_huge_lock);
    mlc_huge_live -= sz;
    mlc_huge_held -= h->span;
    h->in_use = false;
    mlc_mutex_unlock(&mlc_huge_lock);
    mlc_huge_destroy(h);
    mlc_mutex_lock(&mlc_huge_lock);
  }
  h = mlc_huge_desc_new_locked();
  mlc_mutex_unlock(&mlc_huge_lock);
  if (!h) return NULL;

  char *p = NULL;
  if (g) {
    /* The block starts chunk-aligned, as every chunk and huge block does, its lower
       guard in the 4 MiB before it: the page map's entries of the 4 MiB pieces it
       registers are its own (no other block starts in them).  What precedes the lower
       guard goes back. */
    char *base = sz + align + g > sz ? mlc_os_map(sz + align + g, align) : NULL;
    if (!base) goto fail;
    p = base + align;
    mlc_os_unmap(base, align - g);
    if (!mlc_os_protect_none(p - g, g) || !mlc_os_protect_none(p + sz, g)) {
      mlc_os_unmap(p - g, sz + 2 * g);
      goto fail;
    }
  } else {
    p = mlc_os_map(sz, align);
    if (!p) goto fail;
  }
  h->addr = p;
  h->size = sz;
  h->span = sz;
  h->in_use = true;
  if (!mlc_pagemap_register(p, sz, (char *)h + 1)) {
    mlc_os_unmap(p - g, sz + 2 * g);
    goto fail;
  }
  mlc_mutex_lock(&mlc_huge_lock);
  mlc_huge_live += sz;
  mlc_huge_held += sz;
  mlc_mutex_unlock(&mlc_huge_lock);
  size_t filled = g ? 0 : mlc_huge_gather(p, sz);
  if (zero && filled) mlc_huge_zero(p, filled, sz);
  mlc_chunk_count_mapped(sz - filled);
  mlc_trace("huge: mapped %zu bytes at %p (%zu of them cached pages)", sz, p, filled);
  return p;
fail:
  mlc_mutex_lock(&mlc_huge_lock);
  mlc_huge_desc_delete_locked(h);
  mlc_mutex_unlock(&mlc_huge_lock);
  return NULL;
}

bool mlc_huge_is_live(mlc_huge_t *h, const void *p) {
  mlc_mutex_lock(&mlc_huge_lock);
  bool live = h->in_use && h->addr == p;
  mlc_mutex_unlock(&mlc_huge_lock);
  return live;
}

void mlc_huge_free(mlc_huge_t *h) {
  mlc_mutex_lock(&mlc_huge_lock);
  if (!h->in_use) {
    mlc_mutex_unlock(&mlc_huge_lock);
    mlc_fatal("double free", h->addr);
  }
  h->in_use = false;
  h->tail = false;
  mlc_peak_see(&mlc_huge_peak, mlc_huge_live);
  mlc_huge_live -= h->size;
  mlc_huge_held -= h->span;
  mlc_assert(mlc_huge_held >= mlc_huge_live);
  if (!mlc_harden_guard_on) {
    h->size = h->span; /* the whole range is free */
    /* A phase ended (live bytes fell under half their peak of the last one or two
       decay delays: threads that end, a phase that frees its blocks): what keeps live
       and cached bytes under that peak waits for the next phase's allocations, which
       would fault it in again.  It adds nothing to the peak RSS.  bench's tstress-t2
       (each round's threads free their 2-10 MiB blocks at exit), with the two-window
       peak of the arenas' spare chunks (arena.c), 5 interleaved runs: page faults
       237k -> 151k (glibc 155k), 0.60 -> 0.52 s (glibc 0.53).  Not above half: a
       program that replaces its buffers one by one (bigbuf: live bytes wander by a
       third around their mean) keeps the fixed bound; the peak rule there kept more
       ranges beside the live blocks and cost 4% of its peak RSS (434 -> 452 MiB). */
    size_t peak = mlc_peak_get(&mlc_huge_peak);
    size_t cap = MLC_MAX(MLC_HUGE_RANGES_MAX, mlc_huge_live / 4);
    size_t slack = mlc_huge_held - mlc_huge_live;
    if (mlc_huge_live < peak / 2) cap = MLC_MAX(cap, peak - mlc_huge_live);
    if (h->span <= MLC_MAX(MLC_HUGE_RANGE_MAX, cap / 2)) { /* a bigger one is unmapped at once */
      /* Over the bound, the oldest ranges go back to the kernel. */
      mlc_huge_cache_push_locked(h);
      mlc_huge_t *gone = NULL;
      while (mlc_huge_cached && mlc_huge_cached + slack > cap) {
        mlc_huge_t **pp = &mlc_huge_cache;
        while ((*pp)->next) pp = &(*pp)->next;
        mlc_huge_t *o = *pp;
        *pp = NULL;
        mlc_huge_cached -= o->span;
        o->next = gone;
        gone = o;
      }
      mlc_mutex_unlock(&mlc_huge_lock);
      while (gone) {
        mlc_huge_t *o = gone;
        gone = o->next;
        mlc_huge_destroy(o);
      }
      return;
    }
  } else if (h->span <= MLC_HUGE_CACHE_MAX / 4 && mlc_huge_cached + h->span <= MLC_HUGE_CACHE_MAX &&
             mlc_os_protect_none(h->addr, mlc_os_page_size())) {
    mlc_huge_cache_push_locked(h);
    mlc_mutex_unlock(&mlc_huge_lock);
    return;
  }
  mlc_mutex_unlock(&mlc_huge_lock);
  mlc_trace("huge: unmapped %zu bytes at %p", h->size, h->addr);
  mlc_huge_destroy(h);
}

/* Takes out of the cache the free ranges that follow each other from addr on, until
   they hold need bytes: their descriptors go to out[] (marked in_use), their total to
   *total.  0 ranges (nothing taken) when no run from addr holds need.  Caller holds
   mlc_huge_lock. */
static size_t mlc_huge_take_from_locked(char *addr, size_t need, mlc_huge_t **out, size_t *total) {
  mlc_assert(mlc_mutex_owned(&mlc_huge_lock));
  size_t n = 0, got = 0;
  while (got < need && n < MLC_HUGE_RUN_MAX) {
    mlc_huge_t *r = mlc_huge_cache;
    while (r && (char *)r->addr != addr + got) r = r->next;
    if (!r) break;
    out[n++] = r;
    got += r->span;
  }
  if (got < need) return 0;
  for (size_t k = 0; k < n; k++) out[k]->in_use = true;
  for (mlc_huge_t **pp = &mlc_huge_cache; *pp;) {
    if ((*pp)->in_use)
      *pp = (*pp)->next;
    else
      pp = &(*pp)->next;
  }
  mlc_huge_cached -= got;
  *total = got;
  return n;
}

/* The default build's realloc of h (old bytes mapped, old_size its size) to sz
   bytes, sz > old, into the free ranges right after it (a block carved from a range
   is followed by the range's tail): their pages are mapped and need no fault, where
   growing by mremap maps new ones while the cache keeps the old, all resident.  false
   (nothing changed) when the ranges there do not hold it. */
static bool mlc_huge_grow_into_cache(mlc_huge_t *h, size_t old, size_t old_size, size_t sz) {
  mlc_huge_t *taken[MLC_HUGE_RUN_MAX];
  size_t total = 0;
  char *end = (char *)h->addr + old;
  mlc_mutex_lock(&mlc_huge_lock);
  size_t n = mlc_huge_take_from_locked(end, sz - old, taken, &total);
  mlc_mutex_unlock(&mlc_huge_lock);
  if (n == 0) return false;
  bool ok = mlc_pagemap_register(end, total, (char *)h + 1);
  mlc_mutex_lock(&mlc_huge_lock);
  for (size_t k = 0; k < n; k++) {
    taken[k]->in_use = false;
    if (!ok) {
      mlc_huge_cache_push_locked(taken[k]);
      continue;
    }
    if (taken[k]->free_ns > h->free_ns) h->free_ns = taken[k]->free_ns;
    mlc_huge_desc_delete_locked(taken[k]);
  }
  if (ok) {
    h->span = old + total;
    mlc_huge_live -= old_size; /* mlc_huge_carve counts sz and the span */
    mlc_huge_held -= old;
  }
  mlc_mutex_unlock(&mlc_huge_lock);
  if (!ok) return false;
  mlc_trace("huge: %p grows from %zu to %zu into %zu cached bytes", h->addr, old_size, sz, total);
  /* Every piece it keeps is registered: this cannot fail. */
  bool carved = mlc_huge_carve(h, sz);
  mlc_assert(carved);
  (void)carved;
  return true;
}

/* h, resized by realloc, is now at p, sz bytes of span mapped: recorded, with the live
   bytes.  Returns p. */
static void *mlc_huge_resized(mlc_huge_t *h, void *p, size_t sz, size_t span) {
  mlc_mutex_lock(&mlc_huge_lock);
  mlc_huge_live += sz - h->size;
  mlc_huge_held += span - h->span;
  h->addr = p;
  h->size = sz;
  h->span = span;
  mlc_mutex_unlock(&mlc_huge_lock);
  return p;
}

/* The hardened build's growth of h to sz bytes (sz > h->size): its mapping is
   [guard][size bytes accessible][span - size bytes PROT_NONE][guard].  Within the span
   the pages past the old size become accessible (one mprotect; the kernel's zero pages
   until written); past it, the block's pages move (mremap: page tables, no copy) to a
   new reservation of sz rounded up to a chunk, and the mapping grows to all of it, the
   part past sz made PROT_NONE, so that the next steps of a program growing a buffer
   little by little stay within it.  The span is one mapping split by protection, which
   mprotect merges back, where the reservation's own pages after a moved block would not
   merge with it (the kernel keeps a moved mapping's offset), and mremap refuses a range
   of several mappings (EFAULT): every other move failed that way.  Copying, as the
   hardened build did, made bench's grow-t4 170 times slower than glibc.  NULL (nothing
   changed) when the kernel refuses; the caller copies then. */
static void *mlc_huge_grow_guarded(mlc_huge_t *h, size_t sz) {
  char *p = h->addr;
  size_t old_size = h->size, span = h->span, g = mlc_huge_guard();
  if (sz <= span) {
    if (!mlc_os_protect_rw(p + old_size, sz - old_size)) return NULL;
  } else {
    size_t ns = MLC_ALIGN_UP(sz, MLC_CHUNK);
    if (ns < sz || ns + MLC_CHUNK + g < ns) return NULL;
    char *base = mlc_os_reserve(ns + MLC_CHUNK + g, MLC_CHUNK);
    if (!base) return NULL;
    char *dst = base + MLC_CHUNK;
    mlc_os_unmap(base, MLC_CHUNK - g); /* the lower guard stays */
    if (!mlc_pagemap_register(dst, ns, (char *)h + 1)) {
      mlc_os_unmap(dst - g, ns + g);
      return NULL;
    }
    /* As the default build's move: the old place leaves the page map first. */
    mlc_pagemap_register(p, span, NULL);
    if (!mlc_os_move(p, old_size, dst, ns)) {
      mlc_pagemap_register(p, span, (char *)h + 1);
      mlc_pagemap_register(dst, ns, NULL);
      mlc_os_unmap(dst - g, ns + g);
      return NULL;
    }
    /* The old guards and the PROT_NONE rest of the old span go; so does access past sz
       (when the kernel refuses, the block is all of the span). */
    mlc_os_unmap(p - g, g);
    mlc_os_unmap(p + old_size, span - old_size + g);
    if (ns > sz && !mlc_os_protect_none(dst + sz, ns - sz)) sz = ns;
    p = dst;
    span = ns;
  }
  return mlc_huge_resized(h, p, sz, span);
}

void *mlc_huge_realloc(mlc_huge_t *h, size_t size) {
  size_t sz = mlc_huge_round(size);
  if (sz < size || sz > (size_t)PTRDIFF_MAX) return NULL;
  if (sz == h->size) return h->addr;
  if (mlc_harden_guard_on) return sz > h->size ? mlc_huge_grow_guarded(h, sz) : NULL;
  /* old: the bytes mapped from addr, which may run past the block's size to the end of
     its last chunk (mlc_huge_carve). */
  size_t old = h->span, old_size = h->size;
  if (sz > old_size && sz <= old) {
    /* Grown into pages it already has. */
    mlc_mutex_lock(&mlc_huge_lock);
    h->size = sz;
    mlc_huge_live += sz - old_size;
    mlc_mutex_unlock(&mlc_huge_lock);
    return h->addr;
  }
  if (sz < old) {
    /* The tail's whole 4 MiB pieces leave the page map before the pages go: once they
       are unmapped, another thread may map and register a block there. */
    uintptr_t keep_end = MLC_ALIGN_UP((uintptr_t)h->addr + sz, MLC_CHUNK);
    uintptr_t old_end = (uintptr_t)h->addr + old;
    if (old_end > keep_end) mlc_pagemap_register((void *)keep_end, old_end - keep_end, NULL);
    mlc_mutex_lock(&mlc_huge_lock); /* so do the borders there */
    mlc_huge_borders_take((uintptr_t)h->addr + sz, old_end, NULL, 0);
    mlc_mutex_unlock(&mlc_huge_lock);
    if (!mlc_os_resize_in_place(h->addr, old, sz)) {
      if (old_end > keep_end) mlc_pagemap_register((void *)keep_end, old_end - keep_end, (char *)h + 1);
      return NULL;
    }
    mlc_mutex_lock(&mlc_huge_lock);
    h->size = sz;
    h->span = sz;
    mlc_huge_live -= old_size - sz;
    mlc_huge_held -= old - sz;
    mlc_mutex_unlock(&mlc_huge_lock);
    return h->addr;
  }
  /* Grow: into the cached ranges after it; else in place when the address space after
     it is free, else move the pages to a new chunk-aligned reservation; the kernel
     moves page tables, nothing is copied. */
  if (mlc_huge_grow_into_cache(h, old, old_size, sz)) return h->addr;
  void *p = h->addr;
  bool in_place = false;
  uintptr_t carried[MLC_HUGE_MOVE_BORDERS];
  mlc_mutex_lock(&mlc_huge_lock);
  size_t inner = mlc_huge_borders_in((uintptr_t)p, (uintptr_t)p + old);
  mlc_mutex_unlock(&mlc_huge_lock);
  if (mlc_os_resize_in_place(p, old, sz)) {
    in_place = mlc_pagemap_register((char *)p + old, sz - old, (char *)h + 1);
    if (!in_place) mlc_os_resize_in_place(p, sz, old);
  }
  if (in_place && inner) {
    /* Several mappings grow by one more after them (mlc_os_resize_in_place). */
    mlc_mutex_lock(&mlc_huge_lock);
    mlc_huge_border_add((uintptr_t)p + old);
    mlc_mutex_unlock(&mlc_huge_lock);
  }
  if (!in_place) {
    if (inner > MLC_HUGE_MOVE_BORDERS) return NULL; /* the caller copies */
    void *dst = mlc_os_reserve(sz, MLC_CHUNK);
    if (!dst) return NULL;
    if (!mlc_pagemap_register(dst, sz, (char *)h + 1)) {
      mlc_os_unmap(dst, sz);
      return NULL;
    }
    /* The old place leaves the page map first, as above (the pieces are the block's
       own: no other lookup of them is right while the program reallocates it). */
    mlc_pagemap_register(p, old, NULL);
    mlc_mutex_lock(&mlc_huge_lock); /* so do its borders, back at the new place */
    size_t n = mlc_huge_borders_take((uintptr_t)p, (uintptr_t)p + old, carried, MLC_HUGE_MOVE_BORDERS);
    mlc_mutex_unlock(&mlc_huge_lock);
    bool moved = mlc_os_move(p, old, dst, sz);
    uintptr_t to = moved ? (uintptr_t)dst : (uintptr_t)p;
    mlc_mutex_lock(&mlc_huge_lock);
    mlc_huge_borders_put(carried, n, (uintptr_t)p, to);
    if (moved && n) mlc_huge_border_add(to + old); /* the rest of dst is a mapping of its own */
    mlc_mutex_unlock(&mlc_huge_lock);
    if (!moved) {
      mlc_pagemap_register(p, old, (char *)h + 1);
      mlc_pagemap_register(dst, sz, NULL);
      mlc_os_unmap(dst, sz);
      return NULL;
    }
    p = dst;
  }
  return mlc_huge_resized(h, p, sz, sz);
}

size_t mlc_huge_purge(uint64_t now, uint64_t decay_ns) {
  size_t purged = 0;
  mlc_mutex_lock(&mlc_huge_lock);
  mlc_peak_turn(&mlc_huge_peak, now, decay_ns, mlc_huge_live);
  mlc_mutex_unlock(&mlc_huge_lock);
  for (;;) {
    mlc_mutex_lock(&mlc_huge_lock);
    mlc_huge_t **pp = &mlc_huge_cache, *h;
    for (; (h = *pp) != NULL; pp = &h->next)
      if (mlc_aged(now, h->free_ns, decay_ns)) break;
    if (h) {
      *pp = h->next;
      mlc_huge_cached -= h->span;
    }
    mlc_mutex_unlock(&mlc_huge_lock);
    if (!h) return purged;
    purged += h->span;
    mlc_huge_destroy(h);
  }
}

void mlc_huge_stats(size_t *live, size_t *held, size_t *cached) {
  mlc_mutex_lock(&mlc_huge_lock);
  *live = mlc_huge_live;
  *held = mlc_huge_held;
  *cached = mlc_huge_cached;
  mlc_mutex_unlock(&mlc_huge_lock);
}

void mlc_chunk_prefork(void) {
  mlc_mutex_lock(&mlc_huge_lock);
  mlc_mutex_lock(&mlc_pagemap_lock);
}
void mlc_chunk_postfork_parent(void) {
  mlc_mutex_unlock(&mlc_pagemap_lock);
  mlc_mutex_unlock(&mlc_huge_lock);
}
void mlc_chunk_postfork_child(void) {
  mlc_mutex_reset(&mlc_pagemap_lock);
  mlc_mutex_reset(&mlc_huge_lock);
  __atomic_store_n(&mlc_chunk_mapped, 0, __ATOMIC_RELAXED);
}
