/* SPDX-License-Identifier: MIT */
/*
 * The mutex's slow paths: a short spin, then the futex.  The fast paths (an
 * uncontended compare-and-swap, an exchange) are inline in mutex.h.  Never allocates.
 */
#include "internal.h"

#include "mutex.h"
#include "os.h"

/* The futex calls may set errno (EAGAIN, EINTR); free() must preserve it. */
void mlc_mutex_lock_slow(mlc_mutex_t *m) {
  int saved = errno;
  for (int spin = 0; spin < 100; spin++) {
    if (__atomic_load_n(&m->word, __ATOMIC_RELAXED) == 0 && mlc_mutex_trylock(m)) {
      errno = saved;
      return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  while (__atomic_exchange_n(&m->word, 2, __ATOMIC_ACQUIRE) != 0) mlc_os_futex_wait(&m->word, 2);
  errno = saved;
}

void mlc_mutex_wake(mlc_mutex_t *m) {
  int saved = errno;
  mlc_os_futex_wake(&m->word, 1);
  errno = saved;
}
