/* SPDX-License-Identifier: MIT */
/*
 * The allocator's lock: a futex word with three states (free, held, held with waiters).
 * It never allocates, needs no initialisation beyond zero, and its fork handling is
 * "lock before, unlock or reset after".  Never taken on a fast path.
 */
#ifndef MLC_MUTEX_H
#define MLC_MUTEX_H

#include "internal.h"

typedef struct mlc_mutex_s {
  int word; /* Atomic: 0 free, 1 held, 2 held and someone may be waiting */
} mlc_mutex_t;

#define MLC_MUTEX_INITIALIZER {0}

void mlc_mutex_lock_slow(mlc_mutex_t *m);
void mlc_mutex_wake(mlc_mutex_t *m);

/* Any thread; not recursive. */
MLC_INLINE void mlc_mutex_lock(mlc_mutex_t *m) {
  int expected = 0;
  if (MLC_LIKELY(__atomic_compare_exchange_n(&m->word, &expected, 1, false,
                                             __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)))
    return;
  mlc_mutex_lock_slow(m);
}

MLC_INLINE bool mlc_mutex_trylock(mlc_mutex_t *m) {
  int expected = 0;
  return __atomic_compare_exchange_n(&m->word, &expected, 1, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED);
}

/* Caller holds m. */
MLC_INLINE void mlc_mutex_unlock(mlc_mutex_t *m) {
  if (MLC_UNLIKELY(__atomic_exchange_n(&m->word, 0, __ATOMIC_RELEASE) == 2))
    mlc_mutex_wake(m);
}

/* In a fork child, where only the forking thread exists: the lock is free again. */
MLC_INLINE void mlc_mutex_reset(mlc_mutex_t *m) { __atomic_store_n(&m->word, 0, __ATOMIC_RELAXED); }

#endif /* MLC_MUTEX_H */
