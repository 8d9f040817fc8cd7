/* SPDX-License-Identifier: MIT */
/*
 * Thread caches.  A thread's frees go to its cache and its small allocations come from
 * it, with no lock and no atomic read-modify-write; the cache refills from and flushes
 * to the bins in batches.  A thread starts with a small batch size that doubles with
 * use.  The collector (gc.c) may take objects from a cache the owner is not using; the
 * protocol is described at the top of gc.c.
 */
#ifndef MLC_TCACHE_H
#define MLC_TCACHE_H

#include "internal.h"

#include "types.h"

enum {
  MLC_TSD_NEW = 0,      /* no cache yet: the next slow path creates one */
  MLC_TSD_CACHED = 1,   /* tc is the thread's own cache */
  MLC_TSD_CREATING = 2, /* creating the cache: allocations meanwhile go to the bins */
  MLC_TSD_UNCACHED = 3, /* the thread is exiting, or caches are off: bins directly */
};

/* Who holds a cache's slow-path fields (mlc_tcache_t.state; the protocol is at the top
   of gc.c).  WAITING is added to COLLECTOR while the owner sleeps on the word. */
enum mlc_tcache_state_e {
  MLC_TC_FREE = 0,
  MLC_TC_OWNER = 1,
  MLC_TC_COLLECTOR = 2,
  MLC_TC_WAITING = 4,
};

/* Per-thread data: all of melloc's thread-local storage (initial-exec, kept tiny). */
typedef struct mlc_tsd_s {
  mlc_tbins_t bins;   /* the fast paths' view of the cache; all at mlc_dummy_slot when
                         there is no cache, so both fast paths fall to the slow path */
  mlc_tcache_t *tc;   /* NULL when there is no cache */
  mlc_arena_t *arena; /* assigned on the first allocation */
  int state;
  unsigned direct_frees; /* frees before the cache exists (see mlc_tcache_get) */
} mlc_tsd_t;

extern MLC_TLS mlc_tsd_t mlc_tsd;
extern void *mlc_dummy_slot[2];

/* Slow paths of the two below.  alloc: cls in 1..MLC_NCLASSES-1 (0 for malloc(0) is
   treated as 1).  free: recomputes the class; 0 means p is not a small object.  Any thread, no lock. */
MLC_NOINLINE void *mlc_tcache_alloc_slow(unsigned cls);
MLC_NOINLINE void mlc_tcache_free_slow(void *p);

/* The fast paths reach a class's three words from one pointer, &bins.head[cls]: lw and
   full sit MLC_TCLASSES and 2 * MLC_TCLASSES words above it.  (gcc computes a
   thread-local atomic's address; from one base it does so once, not per word.) */
_Static_assert(offsetof(mlc_tbins_t, lw) == offsetof(mlc_tbins_t, head) + sizeof(void **) * MLC_TCLASSES &&
                   offsetof(mlc_tbins_t, full) == offsetof(mlc_tbins_t, lw) + sizeof(void **) * MLC_TCLASSES,
               "head, lw and full are consecutive arrays");
#define MLC_TB_LW(hp) ((hp) + MLC_TCLASSES)
#define MLC_TB_FULL(hp) ((hp) + 2 * MLC_TCLASSES)

/* Pop from the thread cache: one branch, no locks, no read-modify-write.  Everything
   else (first use, refill, class 0) happens in mlc_tcache_alloc_slow(). */
MLC_INLINE void *mlc_tcache_alloc(size_t cls) {
  void ***hp = &mlc_tsd.bins.head[cls];
  void **h = mlc_load(hp);
  if (MLC_UNLIKELY(h >= mlc_load(MLC_TB_LW(hp)))) return mlc_tcache_alloc_slow((unsigned)cls);
  mlc_store_rel(hp, h + 1);
  return *h;
}

/* Push onto the thread cache: one branch, no locks, no read-modify-write.  Everything
   else (cache full, no cache yet, cls 0: NULL, large, huge, foreign, or a slab outside
   the page map's window) happens in mlc_tcache_free_slow(). */
MLC_INLINE void mlc_tcache_free(void *p, size_t cls) {
  void ***hp = &mlc_tsd.bins.head[cls];
  void **h = mlc_load(hp);
  if (MLC_UNLIKELY(h <= mlc_load(MLC_TB_FULL(hp)))) {
    mlc_tcache_free_slow(p);
    return;
  }
  h[-1] = p;
  mlc_store_rel(hp, h - 1);
}

/* The calling thread's arena, assigning one round-robin on first use. */
mlc_arena_t *mlc_tsd_arena(void);

/* Returns every cached object of the calling thread to the bins. */
void mlc_tcache_flush_self(void);

/* The cache class of large blocks of np pages, MLC_LCLASS_MIN_PAGES..MLC_LCACHE_MAX_PAGES. */
MLC_INLINE size_t mlc_tclass_large(size_t np) { return MLC_NCLASSES + np - MLC_LCLASS_MIN_PAGES; }

MLC_NOINLINE void *mlc_tcache_large_alloc_slow(size_t np);
MLC_NOINLINE void mlc_tcache_large_free_slow(void *p, size_t np);

/* A freed large block of np pages (MLC_LCLASS_MIN_PAGES..MLC_LCACHE_MAX_PAGES) from the
   calling thread's cache, or NULL.  The same pop as for small objects, under the same
   protocol with the collector: no lock, no atomic. */
MLC_INLINE void *mlc_tcache_large_pop(size_t np) {
  size_t c = mlc_tclass_large(np);
  void **h = mlc_load(&mlc_tsd.bins.head[c]);
  if (MLC_UNLIKELY(h >= mlc_load(&mlc_tsd.bins.lw[c]))) return NULL;
  mlc_store_rel(&mlc_tsd.bins.head[c], h + 1);
  return *h;
}

/* The same, and on a miss the slow path (which finds the owner's objects below the
   low-water mark, or creates the cache). */
MLC_INLINE void *mlc_tcache_large_alloc(size_t np) {
  void *p = mlc_tcache_large_pop(np);
  return MLC_LIKELY(p != NULL) ? p : mlc_tcache_large_alloc_slow(np);
}

/* Keeps the live large block p of np pages (MLC_LCLASS_MIN_PAGES..MLC_LCACHE_MAX_PAGES)
   in the calling thread's cache, or gives it to its arena.  Aborts on a block freed
   twice while its first free is still among those the collector cannot take yet (later
   ones are caught when the cache gives the block back). */
MLC_INLINE void mlc_tcache_large_free(void *p, size_t np) {
  size_t c = mlc_tclass_large(np);
  void **h = mlc_load(&mlc_tsd.bins.head[c]);
  if (MLC_UNLIKELY(h <= mlc_load(&mlc_tsd.bins.full[c]))) {
    mlc_tcache_large_free_slow(p, np);
    return;
  }
  for (void **q = h, **lw = mlc_load(&mlc_tsd.bins.lw[c]); q < lw; q++)
    if (MLC_UNLIKELY(*q == p)) mlc_fatal("double free", p);
  h[-1] = p;
  mlc_store_rel(&mlc_tsd.bins.head[c], h - 1);
}

/* Gives n objects of cache class cls back: to their bins, or large blocks to their
   arenas.  No lock held. */
void mlc_tcache_return(void **objs, unsigned n, unsigned cls);

/* Objects cached per class in all thread caches (approximate while owners run). */
void mlc_tcache_cached_objects(uint64_t out[MLC_NCLASSES]);
/* Bytes of large blocks cached in all thread caches. */
size_t mlc_tcache_cached_large_bytes(void);

/* The registry of live (not parked) caches, for the collector.  Any thread. */
void mlc_tcache_registry_lock(void);
void mlc_tcache_registry_unlock(void);
mlc_tcache_t *mlc_tcache_registry_first(void);
/* True when no thread has a cache, parked or not.  Takes the registry lock. */
bool mlc_tcache_registry_empty(void);

bool mlc_tcache_boot(void);
void mlc_tcache_prefork(void);
void mlc_tcache_postfork_parent(void);
void mlc_tcache_postfork_child(void);

/* Moves an emptied, idle cache to the parked group (its pushes fall to the slow path
   from now on).  Caller holds the registry lock and has claimed tc (gc.c). */
void mlc_tcache_park(mlc_tcache_t *tc);
/* Back to the live group.  Owner thread, having claimed tc, no registry lock held. */
void mlc_tcache_unpark(mlc_tcache_t *tc);

/* Owner-side claim of the cache's slow-path fields (see gc.c): waits while the collector
   holds them, and unparks a parked cache.  Owner thread only, no lock held. */
void mlc_tcache_owner_enter(mlc_tcache_t *tc);
/* Lets them go.  Owner thread, after mlc_tcache_owner_enter. */
void mlc_tcache_owner_exit(mlc_tcache_t *tc);

/* Flushes the n oldest objects of class cls.  Caller owns tc's slow-path fields. */
void mlc_tcache_flush_oldest(mlc_tcache_t *tc, unsigned cls, unsigned n);

#endif /* MLC_TCACHE_H */
