/* SPDX-License-Identifier: MIT */
/*
 * The allocator's lock: a futex word with three states (free, held, held with waiters).
 * It never allocates, needs no initialisation beyond its rank, and its fork handling is
 * "lock before, unlock or reset after".  Never taken on a fast path.
 *
 * Debug builds check the discipline (a witness, as jemalloc's): each thread records the
 * locks it holds; taking a lock whose rank is not above every rank held aborts, as does
 * unlocking a lock not held, and mlc_mutex_owned() lets `_locked` functions assert
 * that their caller holds the lock.  Release builds compile all of it away.
 */
#ifndef MLC_MUTEX_H
#define MLC_MUTEX_H

#include "internal.h"

/* The lock order, written once: a thread holding a lock takes only locks of a higher
   rank.  The fork handlers (init.c) take every lock in this order. */
enum mlc_lock_rank_e {
  MLC_RANK_BOOT = 1, /* init.c: held while boot creates the arenas */
  MLC_RANK_PROF,     /* prof.c: the heap profiler's tables; taken with no other lock
                        held, it takes only base's */
  MLC_RANK_GC,       /* gc.c: one pass at a time; a pass takes the locks below */
  MLC_RANK_TCACHE,   /* tcache.c: the cache registry; a pass returns objects to bins
                        and large blocks to arenas while holding it */
  MLC_RANK_BIN,      /* bin.c: a bin; a refill takes its arena's lock for a new slab */
  MLC_RANK_ARENA,    /* arena.c: an arena; a new or unmapped chunk updates the page map */
  MLC_RANK_SPARE,    /* arena.c: the wholly free chunks every arena shares */
  MLC_RANK_HUGE,     /* chunk.c: the huge mappings; new descriptors come from base */
  MLC_RANK_PAGEMAP,  /* chunk.c: the page map; new leaves come from base */
  MLC_RANK_BASE,     /* base.c: the metadata allocator, taken last */
  MLC_RANK_COUNT
};
/* Ranks whose locks one thread may hold several of: only the fork handlers do, taking
   every bin, then every arena. */
#define MLC_RANK_MANY(r) ((r) == MLC_RANK_BIN || (r) == MLC_RANK_ARENA)

typedef struct mlc_mutex_s {
  int word;     /* Atomic: 0 free, 1 held, 2 held and someone may be waiting */
  uint8_t rank; /* Constant: enum mlc_lock_rank_e */
} mlc_mutex_t;

#define MLC_MUTEX_INITIALIZER(rank) {0, (rank)}

void mlc_mutex_lock_slow(mlc_mutex_t *m);
void mlc_mutex_wake(mlc_mutex_t *m);

/* Debug builds only (mutex.c): check and record an acquisition, a release, and whether
   the calling thread holds m.  Never called in release builds. */
void mlc_witness_lock(const mlc_mutex_t *m);
void mlc_witness_unlock(const mlc_mutex_t *m, bool reset);
bool mlc_witness_owned(const mlc_mutex_t *m);

/* Sets m's rank, for locks in structures made at run time (zeroed memory). */
MLC_INLINE void mlc_mutex_init(mlc_mutex_t *m, enum mlc_lock_rank_e rank) {
  m->word = 0;
  m->rank = (uint8_t)rank;
}

/* The lock's own compare-and-swap, for its slow path's spin. */
MLC_INLINE bool mlc_mutex_try_acquire(mlc_mutex_t *m) {
  int expected = 0;
  return __atomic_compare_exchange_n(&m->word, &expected, 1, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED);
}

/* Any thread; not recursive; the caller holds no lock of a higher (or, but for the
   MLC_RANK_MANY ranks, equal) rank. */
MLC_INLINE void mlc_mutex_lock(mlc_mutex_t *m) {
  if (mlc_config_debug) mlc_witness_lock(m);
  if (MLC_LIKELY(mlc_mutex_try_acquire(m))) return;
  mlc_mutex_lock_slow(m);
}

/* Caller holds m. */
MLC_INLINE void mlc_mutex_unlock(mlc_mutex_t *m) {
  if (mlc_config_debug) mlc_witness_unlock(m, false);
  if (MLC_UNLIKELY(__atomic_exchange_n(&m->word, 0, __ATOMIC_RELEASE) == 2))
    mlc_mutex_wake(m);
}

/* In a fork child, where only the forking thread exists: the lock is free again. */
MLC_INLINE void mlc_mutex_reset(mlc_mutex_t *m) {
  if (mlc_config_debug) mlc_witness_unlock(m, true);
  __atomic_store_n(&m->word, 0, __ATOMIC_RELAXED);
}

/* Whether the calling thread holds m: for `mlc_assert(mlc_mutex_owned(&x->lock))` at
   the top of a `_locked` function.  Always true in release builds. */
MLC_INLINE bool mlc_mutex_owned(const mlc_mutex_t *m) {
  return !mlc_config_debug || mlc_witness_owned(m);
}

#endif /* MLC_MUTEX_H */
