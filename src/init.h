/* SPDX-License-Identifier: MIT */
/*
 * Initialisation and the settings it reads.  mlc_boot() runs once, on the first call
 * that needs it, from whichever thread; it never allocates through malloc, so it is safe
 * from constructors, dlsym and pthread_create.  Fork handlers live here too.
 */
#ifndef MLC_INIT_H
#define MLC_INIT_H

#include "internal.h"

typedef struct mlc_options_s {
  unsigned narenas;        /* 0: one per CPU this process may run on */
  bool tcache;             /* thread caches on */
  size_t tcache_max;       /* largest size thread caches hold (0..MLC_SMALL_MAX) */
  size_t tcache_swing;     /* room a thread's swinging classes may take past their
                              capacities, bytes of objects (tcache.c, "Swings") */
  bool gc;                 /* wall-clock collector on */
  uint64_t gc_interval_ms; /* time between collector passes */
  uint64_t decay_ms;       /* free memory older than this goes back to the kernel */
  bool gc_quiet;           /* a quiet process: one interval in place of decay_ms (gc.c) */
  bool stats_print;        /* print statistics at exit */
  bool stats_json;         /* ... as JSON */
  bool trace;              /* debug builds: trace (mlc_trace_on follows it) */
  bool prof;               /* heap profiling (prof.c) */
  uint64_t prof_sample_bytes; /* mean bytes between samples */
  unsigned prof_depth;     /* frames kept per stack */
  bool prof_dump_at_exit;  /* a dump at exit */
  bool prof_leak;          /* the leak report at exit */
  char prof_prefix[200];   /* dump file names: PREFIX.PID.SEQ.pb.gz */
} mlc_options_t;

/* The settings.  Written at boot (defaults, then MELLOC_CONF) before mlc_boot_state
   says booted; after that, the fields of run-time options (options.c's table) are
   written again by melloc_option_set, any thread, with relaxed atomic stores, so their
   readers use mlc_load; the others are constant after boot. */
extern mlc_options_t mlc_opt;

extern int mlc_boot_state; /* Atomic: 2 once booted */

bool mlc_boot_slow(void);
/* true once melloc is ready; false only when the kernel refused the first mappings. */
MLC_INLINE bool mlc_boot(void) {
  if (MLC_LIKELY(mlc_load_acq(&mlc_boot_state) == 2)) return true;
  return mlc_boot_slow();
}

/* Parses a MELLOC_CONF string into opt, reporting bad pairs on stderr. */
void mlc_options_parse(mlc_options_t *opt, const char *conf);
void mlc_options_default(mlc_options_t *opt);

/* Arenas in use (after boot). */
unsigned mlc_narenas_now(void);

/* By name, as text (melloc_option_get/set).  0 or an errno value. */
int mlc_option_get(const char *name, char *value, size_t len);
int mlc_option_set(const char *name, const char *value);

#endif /* MLC_INIT_H */
