/* SPDX-License-Identifier: MIT */
/* Shared by the white-box unit tests: they link the internal convenience library, so
   melloc is also the allocator of the test process itself. */
#ifndef MLC_UNIT_H
#define MLC_UNIT_H

#include "internal.h"

#include <check.h>

#include "../check_run.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>

#include "arena.h"
#include "base.h"
#include "bin.h"
#include "chunk.h"
#include "gc.h"
#include "init.h"
#include "os.h"
#include "sizeclass.h"
#include "tcache.h"
#include "types.h"

static inline int mlc_unit_run(Suite *s) { return mlc_check_run(s); }

/* Objects of class c in the calling thread's cache. */
static inline size_t mlc_unit_cached(unsigned c) {
  mlc_tcache_t *tc = mlc_tsd.tc;
  if (!tc) return 0;
  return (size_t)(tc->empty[c] - mlc_tsd.bins.head[c]);
}

/* Objects of class c the bins count as handed out (to callers or to caches). */
static inline uint64_t mlc_unit_outstanding(unsigned c) {
  uint64_t total = 0;
  for (unsigned i = 0; i < mlc_narenas; i++) {
    uint64_t m, f;
    size_t n;
    mlc_bin_stats(&mlc_arenas[i]->bins[c], &m, &f, &n);
    total += m - f;
  }
  return total;
}

/* glibc's pthread_create allocates, in the creating thread, the new thread's DTV
   (calloc of (modules + 16) * sizeof(dtv_t): 8 bytes a slot on 32-bit targets, 16 on
   64-bit ones, so a different size class on each) -- unless it reuses a cached stack,
   which keeps its DTV.  A test that counts one class's objects across pthread_create
   first creates and joins one thread: its stack, DTV included, goes to glibc's cache,
   and the next pthread_create takes it and allocates nothing. */
static inline void *mlc_unit_noop_thread(void *arg) { return arg; }
static inline void mlc_unit_warm_thread_cache(void) {
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, mlc_unit_noop_thread, NULL), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
}

/* For qsort: pointers by address, to find one handed out twice. */
static inline int mlc_unit_cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
  return x < y ? -1 : x > y;
}

#endif
