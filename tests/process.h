/* SPDX-License-Identifier: MIT */
/* For the process-level tests (test_process, test_unshare): the pieces each case needs
   to run with a collector beside it.  Uses only the public API. */
#ifndef MLC_TEST_PROCESS_H
#define MLC_TEST_PROCESS_H

#include "gc_thread.h"
#include <melloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline void mlc_test_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Whether this run's settings start a collector at all (tcache:false or gc:false do not). */
static inline int mlc_test_collector_expected(void) {
  char v[16];
  if (melloc_option_get("gc", v, sizeof(v)) != 0 || strcmp(v, "true") != 0) return 0;
  if (melloc_option_get("tcache", v, sizeof(v)) != 0 || strcmp(v, "true") != 0) return 0;
  return 1;
}

/* Work that maps more than the collector's early-start threshold (8 MiB), so that it
   starts now rather than after the process's first interval.  Exits with 90 when an
   allocation fails (it runs in child processes, outside check's assertions). */
static inline void mlc_test_allocate_much(void) {
  enum { N = 64 };
  void *v[N];
  for (int i = 0; i < N; i++) {
    v[i] = malloc(512 * 1024);
    if (!v[i]) _exit(90);
    memset(v[i], 1, 512 * 1024);
  }
  for (int i = 0; i < N; i++) free(v[i]);
  for (int i = 0; i < 20000; i++) free(malloc(16 + i % 1000));
}

#endif
