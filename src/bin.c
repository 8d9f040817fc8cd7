/* SPDX-License-Identifier: MIT */
/*
 * Bins: slabs of one size class, a free bitmap per slab.  A bitmap (not a free list
 * threaded through the objects) lets every returned pointer be checked, keeps freed
 * objects untouched, and lets a refill hand out objects in address order.
 */
#include "internal.h"

#include "arena.h"
#include "bin.h"
#include "harden.h"
#include "list.h"
#include "sizeclass.h"

void mlc_bin_init(mlc_bin_t *bin, mlc_arena_t *arena, unsigned cls) {
  memset(bin, 0, sizeof(*bin));
  bin->arena = arena;
  bin->cls = (uint16_t)cls;
  mlc_mutex_init(&bin->lock, MLC_RANK_BIN);
}

/* The bin's nonfull list.  Protected by bin->lock. */
MLC_LIST_DEFINE(slab, mlc_slab_t)

/* Objects smaller than a cache line share it with their neighbours, and x86's adjacent-
   line prefetcher makes two threads writing to the two lines of one 128-byte pair
   contend as if they shared a line.  A refill first takes objects from 128-byte blocks
   that are wholly free, so that two threads of one arena are not handed objects in one
   block when other threads' frees leave holes in blocks still in use (passive false
   sharing, Hoard's cache-scratch); the holes are used once the slab has no wholly free
   block left.  For the classes whose size divides MLC_DESTRUCTIVE: the mask of the bits
   of a freemap word whose whole block is free. */
static uint64_t mlc_whole_blocks(uint64_t bits, size_t size) {
  unsigned k = (unsigned)(MLC_DESTRUCTIVE / size); /* objects per block: 2, 4 or 8 */
  uint64_t starts = ~(uint64_t)0 / ((((uint64_t)1) << k) - 1); /* bit 0 of each block */
  uint64_t g = bits;
  for (unsigned i = 1; i < k; i++) g &= bits >> i;
  return (g & starts) * ((((uint64_t)1) << k) - 1);
}

/* Caller holds bin->lock.  Takes up to n of the free objects of word w of s's bitmap
   whose bits are set in take, lowest address first; returns how many. */
static unsigned mlc_slab_take_locked(mlc_slab_t *s, unsigned w, uint64_t take, size_t size,
                                     void **out, unsigned n) {
  mlc_assert(mlc_mutex_owned(&s->bin->lock));
  char *base = mlc_slab_base(s);
  unsigned got = 0;
  while (take && got < n) {
    unsigned b = (unsigned)__builtin_ctzll(take);
    take &= take - 1;
    out[got++] = base + (size_t)(w * 64 + b) * size;
    s->freemap[w] &= ~((uint64_t)1 << b);
  }
  s->nfree = (uint16_t)(s->nfree - got);
  return got;
}

/* The hardened build's take: up to n free objects of s, each a random free bit of the
   first word with one at or after a random word (ASLR for the heap: the next object's
   address cannot be predicted from the last one's).  Caller holds bin->lock. */
static unsigned mlc_slab_take_random_locked(mlc_slab_t *s, size_t size, void **out, unsigned n) {
  mlc_assert(mlc_mutex_owned(&s->bin->lock));
  char *base = mlc_slab_base(s);
  unsigned nw = (s->nobjs + 63u) / 64u, got = 0;
  while (got < n && s->nfree) {
    uint64_t r = mlc_harden_random();
    /* A word in [hint, nw) from the top 32 bits, by a multiply (Lemire), not a divide. */
    unsigned w = s->hint + (unsigned)(((r >> 32) * (uint64_t)(nw - s->hint)) >> 32);
    while (!s->freemap[w]) w = w + 1 == nw ? s->hint : w + 1;
    uint64_t bits = s->freemap[w];
    unsigned rot = (unsigned)r & 63;
    uint64_t rotated = (bits >> rot) | (bits << ((64 - rot) & 63));
    unsigned b = ((unsigned)__builtin_ctzll(rotated) + rot) & 63;
    out[got++] = base + (size_t)(w * 64 + b) * size;
    s->freemap[w] &= ~((uint64_t)1 << b);
    s->nfree--;
  }
  return got;
}

unsigned mlc_bin_alloc_batch(mlc_bin_t *bin, void **out, unsigned n) {
  unsigned got = 0;
  size_t size = mlc_class_size[bin->cls];
  mlc_mutex_lock(&bin->lock);
  while (got < n) {
    mlc_slab_t *s = bin->nonfull;
    if (!s) {
      bool dirty;
      s = mlc_arena_slab_alloc(bin->arena, bin, &dirty);
      if (!s) break;
      /* Pages the kernel has just given read as zero: not read (that would map the
         zero page, and the first write would fault a second time). */
      if (mlc_config_hardened && dirty) mlc_harden_slab_init(mlc_slab_base(s), s->nobjs, size);
      bin->nslabs++;
      mlc_list_slab_push(&bin->nonfull, s);
    }
    if (mlc_harden_random_on) {
      got += mlc_slab_take_random_locked(s, size, out + got, n - got);
      if (s->nfree == 0) mlc_list_slab_remove(&bin->nonfull, s);
      continue;
    }
    if (size < MLC_DESTRUCTIVE && MLC_DESTRUCTIVE % size == 0)
      for (unsigned w = s->hint; w < MLC_SLAB_MAP_WORDS && got < n; w++)
        got += mlc_slab_take_locked(s, w, mlc_whole_blocks(s->freemap[w], size), size,
                                    out + got, n - got);
    unsigned w = s->hint;
    while (got < n && s->nfree) {
      if (!s->freemap[w]) {
        w++;
        continue;
      }
      got += mlc_slab_take_locked(s, w, s->freemap[w], size, out + got, n - got);
    }
    s->hint = (uint16_t)w;
    if (s->nfree == 0) mlc_list_slab_remove(&bin->nonfull, s);
  }
  bin->nmalloc += got;
  mlc_mutex_unlock(&bin->lock);
  return got;
}

/* Caller holds bin->lock; s is a slab of bin, whose class has objects of size bytes
   and the reciprocal recip (mlc_class_recip). */
static inline void mlc_bin_free_one_locked(mlc_bin_t *bin, mlc_slab_t *s, void *p, uint32_t size,
                                           uint32_t recip) {
  mlc_assert(mlc_mutex_owned(&bin->lock));
  /* Slabs are aligned to their size: the offset is the low bits of the address. */
  uint32_t off = (uint32_t)((uintptr_t)p & (MLC_GRANULE - 1));
  uint32_t idx = (uint32_t)(((uint64_t)off * recip) >> 32);
  if (MLC_UNLIKELY(idx * size != off || idx >= s->nobjs)) {
    mlc_mutex_unlock(&bin->lock);
    mlc_fatal("invalid free (not the start of a block)", p);
  }
  uint64_t bit = (uint64_t)1 << (idx % 64);
  if (MLC_UNLIKELY(s->freemap[idx / 64] & bit)) {
    mlc_mutex_unlock(&bin->lock);
    mlc_fatal("double free", p);
  }
  s->freemap[idx / 64] |= bit;
  if (idx / 64 < s->hint) s->hint = (uint16_t)(idx / 64);
  s->nfree++;
  if (s->nfree == 1) mlc_list_slab_push(&bin->nonfull, s);
  if (s->nfree == s->nobjs && (s->prev || s->next)) {
    /* Empty and not the bin's only slab: the granule goes back to the arena. */
    void *bad = mlc_config_hardened ? mlc_harden_slab_check(mlc_slab_base(s), s->nobjs, size) : NULL;
    if (MLC_UNLIKELY(bad != NULL)) {
      mlc_mutex_unlock(&bin->lock);
      mlc_fatal("free(): write after free", bad);
    }
    mlc_list_slab_remove(&bin->nonfull, s);
    bin->nslabs--;
    mlc_arena_slab_free(s);
  }
}

void mlc_bin_free_batch(void **ptrs, unsigned n, unsigned cls) {
  while (n > 0) {
    mlc_slab_t *s0 = mlc_slab_of(ptrs[0]);
    mlc_bin_t *bin = mlc_load(&s0->bin);
    if (MLC_UNLIKELY(bin == NULL || bin->cls != cls)) mlc_fatal("double free or invalid pointer", ptrs[0]);
    uint32_t size = mlc_class_size[cls], recip = mlc_class_recip[cls];
    mlc_mutex_lock(&bin->lock);
    unsigned left = 0;
    for (unsigned i = 0; i < n; i++) {
      void *p = ptrs[i];
      mlc_slab_t *s = mlc_slab_of(p);
      /* One register for s: gcc otherwise keeps the chunk and the index apart and
         computes their sum again for each field (frag: 8 instructions an object). */
      __asm__("" : "+r"(s));
      if (mlc_load(&s->bin) == bin)
        mlc_bin_free_one_locked(bin, s, p, size, recip);
      else if (s == s0) {
        /* The slab went back to the arena while p was cached: p was freed twice. */
        mlc_mutex_unlock(&bin->lock);
        mlc_fatal("double free", p);
      } else
        ptrs[left++] = p;
    }
    bin->nfree += n - left;
    mlc_mutex_unlock(&bin->lock);
    n = left;
  }
}

bool mlc_bin_holds(const void *p, unsigned cls) {
  mlc_slab_t *s = mlc_slab_of(p);
  mlc_bin_t *bin = mlc_load(&s->bin);
  if (!bin || bin->cls != cls) return false;
  uint32_t off = (uint32_t)((uintptr_t)p & (MLC_GRANULE - 1));
  uint32_t idx = mlc_class_index(cls, off);
  mlc_mutex_lock(&bin->lock);
  bool held = mlc_load(&s->bin) == bin && idx < s->nobjs &&
              (s->freemap[idx / 64] >> (idx % 64)) & 1;
  mlc_mutex_unlock(&bin->lock);
  return held;
}

void mlc_bin_stats(mlc_bin_t *bin, uint64_t *nmalloc, uint64_t *nfree, size_t *nslabs) {
  mlc_mutex_lock(&bin->lock);
  *nmalloc = bin->nmalloc;
  *nfree = bin->nfree;
  *nslabs = bin->nslabs;
  mlc_mutex_unlock(&bin->lock);
}
