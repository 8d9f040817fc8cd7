/* SPDX-License-Identifier: MIT */
/*
 * The mutex's slow paths: a short spin, then the futex; and, in debug builds, the
 * witness that checks the lock order (mutex.h).  The fast paths (an uncontended
 * compare-and-swap, an exchange) are inline in mutex.h.  Never allocates.
 */
#include "internal.h"

#include "mutex.h"
#include "os.h"
#include "util.h"

#include <stdlib.h>

/* The futex calls keep errno themselves (os.h): free() must preserve it. */
void mlc_mutex_lock_slow(mlc_mutex_t *m) {
  for (int spin = 0; spin < 100; spin++) {
    if (__atomic_load_n(&m->word, __ATOMIC_RELAXED) == 0 && mlc_mutex_try_acquire(m)) return;
    mlc_spin_pause();
  }
  while (__atomic_exchange_n(&m->word, 2, __ATOMIC_ACQUIRE) != 0) mlc_os_futex_wait(&m->word, 2);
}

void mlc_mutex_wake(mlc_mutex_t *m) { mlc_os_futex_wake(&m->word, 1); }

/* ---- The witness (debug builds) ---- */

/* What the calling thread holds: a count per rank (for the order check) and the locks
   themselves, the first MLC_WITNESS_HELD of them (the fork handlers hold every bin's;
   past the array, mlc_witness_owned cannot tell and says yes). */
#define MLC_WITNESS_HELD 8 /* initial-exec TLS: types.h, MLC_LCACHE_MAX_PAGES */
typedef struct mlc_witness_s {
  uint16_t count[MLC_RANK_COUNT];
  const mlc_mutex_t *held[MLC_WITNESS_HELD];
  unsigned nheld;
  unsigned untracked;
} mlc_witness_t;

static MLC_TLS mlc_witness_t mlc_witness;

static MLC_NORETURN MLC_COLD void mlc_witness_fail(const char *why, const mlc_mutex_t *m) {
  char buf[160];
  size_t n = mlc_snprintf(buf, sizeof(buf), "melloc: lock discipline: %s (lock %p, rank %u)\n",
                          why, (const void *)m, (unsigned)m->rank);
  mlc_os_write_stderr(buf, n);
  abort();
}

void mlc_witness_lock(const mlc_mutex_t *m) {
  if (!mlc_config_debug) return;
  mlc_witness_t *w = &mlc_witness;
  unsigned r = m->rank;
  if (r == 0 || r >= MLC_RANK_COUNT) mlc_witness_fail("lock without a rank", m);
  for (unsigned k = r + 1; k < MLC_RANK_COUNT; k++)
    if (w->count[k]) mlc_witness_fail("taken while a lock of a higher rank is held", m);
  for (unsigned i = 0; i < w->nheld; i++)
    if (w->held[i] == m) mlc_witness_fail("taken twice by one thread", m);
  if (w->count[r] && !MLC_RANK_MANY(r))
    mlc_witness_fail("taken while another lock of its rank is held", m);
  w->count[r]++;
  if (w->nheld < MLC_WITNESS_HELD)
    w->held[w->nheld++] = m;
  else
    w->untracked++;
}

void mlc_witness_unlock(const mlc_mutex_t *m, bool reset) {
  if (!mlc_config_debug) return;
  mlc_witness_t *w = &mlc_witness;
  unsigned r = m->rank < MLC_RANK_COUNT ? m->rank : 0;
  for (unsigned i = w->nheld; i-- > 0;)
    if (w->held[i] == m) {
      w->held[i] = w->held[--w->nheld];
      w->count[r]--;
      return;
    }
  if (w->untracked && w->count[r]) {
    w->untracked--;
    w->count[r]--;
    return;
  }
  /* A fork child resets every lock, whether or not its thread took it. */
  if (!reset) mlc_witness_fail("unlocked by a thread that does not hold it", m);
}

bool mlc_witness_owned(const mlc_mutex_t *m) {
  if (!mlc_config_debug) return true;
  const mlc_witness_t *w = &mlc_witness;
  for (unsigned i = 0; i < w->nheld; i++)
    if (w->held[i] == m) return true;
  return w->untracked != 0 && w->count[m->rank] != 0;
}
