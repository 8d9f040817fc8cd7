/* SPDX-License-Identifier: MIT */
/*
 * Initialisation, settings and fork handling.  Boot takes a lock of its own, reads
 * MELLOC_CONF without allocating, creates the arenas and the thread-cache key; the fork
 * handlers are registered after boot has finished, so that a malloc from inside
 * pthread_atfork is an ordinary call.
 */
#include "internal.h"

#include "arena.h"
#include "base.h"
#include "chunk.h"
#include "gc.h"
#include "init.h"
#include "os.h"
#include "prof.h"
#include "sizeclass.h"
#include "stats.h"
#include "tcache.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>

mlc_options_t mlc_opt;
int mlc_boot_state;
static mlc_mutex_t mlc_boot_lock = MLC_MUTEX_INITIALIZER(MLC_RANK_BOOT);
static long mlc_boot_tid; /* Protected by mlc_boot_lock: the thread booting */
static int mlc_atfork_done; /* Atomic */

static void mlc_prefork(void);
static void mlc_postfork_parent(void);
static void mlc_postfork_child(void);

bool mlc_boot_slow(void) {
  long tid = mlc_os_gettid();
  if (__atomic_load_n(&mlc_boot_tid, __ATOMIC_RELAXED) == tid) return false; /* recursion */
  mlc_mutex_lock(&mlc_boot_lock);
  if (mlc_boot_state == 2) {
    mlc_mutex_unlock(&mlc_boot_lock);
    return true;
  }
  __atomic_store_n(&mlc_boot_tid, tid, __ATOMIC_RELAXED);
  mlc_options_default(&mlc_opt);
  mlc_options_parse(&mlc_opt, mlc_getenv("MELLOC_CONF"));
  if (mlc_config_debug && (mlc_opt.trace || mlc_getenv("MELLOC_TRACE"))) mlc_trace_on = true;
  mlc_sizeclass_boot();
  mlc_gc_boot();
  unsigned n = mlc_opt.narenas ? mlc_opt.narenas : mlc_os_ncpus();
  bool ok = mlc_arena_boot(n) && mlc_tcache_boot();
  __atomic_store_n(&mlc_boot_tid, 0, __ATOMIC_RELAXED);
  if (ok) mlc_store_rel(&mlc_boot_state, 2);
  mlc_mutex_unlock(&mlc_boot_lock);
  if (!ok) return false;
  mlc_trace("boot: %u arenas, tcache %s, gc %s", mlc_narenas, mlc_opt.tcache ? "on" : "off",
            mlc_opt.gc ? "on" : "off");
  if (mlc_opt.stats_print) mlc_stats_keep_stderr();
  if (!__atomic_exchange_n(&mlc_atfork_done, 1, __ATOMIC_ACQ_REL))
    pthread_atfork(mlc_prefork, mlc_postfork_parent, mlc_postfork_child);
  /* After boot: priming the unwinder may allocate, as an ordinary call. */
  if (mlc_opt.prof) mlc_prof_start();
  return true;
}

/* Boot in a constructor as well, so that settings errors are reported at start-up and
   the first allocation of each thread is not the one that pays. */
__attribute__((constructor)) static void mlc_constructor(void) { mlc_boot(); }

unsigned mlc_narenas_now(void) { return mlc_narenas; }

/* Every lock, in rank order (mutex.h): the heap profiler's, the collector's, the cache registry, the bins and
   arenas, the chunk module's, base's.  (The boot lock is never taken after boot.) */
static void mlc_prefork(void) {
  if (mlc_load_acq(&mlc_boot_state) != 2) return;
  mlc_prof_prefork();
  mlc_gc_prefork();
  mlc_tcache_prefork();
  mlc_arena_prefork();
  mlc_chunk_prefork();
  mlc_base_prefork();
}

static void mlc_postfork_parent(void) {
  if (mlc_load_acq(&mlc_boot_state) != 2) return;
  mlc_base_postfork_parent();
  mlc_chunk_postfork_parent();
  mlc_arena_postfork_parent();
  mlc_tcache_postfork_parent();
  mlc_gc_postfork_parent();
  mlc_prof_postfork_parent();
}

static void mlc_postfork_child(void) {
  if (mlc_load_acq(&mlc_boot_state) != 2) return;
  mlc_base_postfork_child();
  mlc_chunk_postfork_child();
  mlc_arena_postfork_child();
  mlc_tcache_postfork_child();
  mlc_gc_postfork_child();
  mlc_prof_postfork_child();
}
