/* SPDX-License-Identifier: MIT */
/*
 * The collector: one background thread that, on a wall-clock timer, takes back what
 * idle thread caches hold and gives free pages back to the kernel after the decay
 * delay.  Its protocol with the cache owners is described at the top of gc.c.
 */
#ifndef MLC_GC_H
#define MLC_GC_H

#include "internal.h"

/* When the process starts (the collector's first interval counts from here). */
void mlc_gc_boot(void);
/* Starts a collector thread if it is enabled, none runs, and the process has lived one
   interval or mapped more than a few MiB.  Called at the end of allocations' slow
   paths, after the work they did, holding no lock and no cache's state word.  Never
   from free(): glibc frees while holding the lock pthread_create takes (its stack
   cache's, in __nptl_free_stacks), and would deadlock. */
void mlc_gc_maybe_start(void);
/* The same, at once, whatever the process's age (melloc_option_set("gc", "true")). */
void mlc_gc_start(void);
/* For unshare() and setns(): stops the collector and waits until the kernel no longer
   counts its thread; no collector starts until mlc_gc_resume.  Returns whether one ran
   (then resume starts it again).  Any thread, holding no lock. */
bool mlc_gc_pause(void);
void mlc_gc_resume(bool restart);
/* A full collection now, from the calling thread: its own cache, every idle cache,
   all free pages.  Returns the bytes given back to the kernel. */
size_t mlc_gc_collect_now(void);

/* One collector pass as if the clock read now (ns, CLOCK_MONOTONIC): caches, then
   pages free for longer than the decay delay.  everything: a full collection.  Returns
   the bytes given back to the kernel.  Any thread; passes are serialised. */
size_t mlc_gc_pass_at(uint64_t now, bool everything);

/* The collector's look for a quiet process a quarter interval after a busy pass, as if
   the clock read now: a full collection when no cache was used since that pass and
   gc_quiet is on.  Returns the bytes given back to the kernel. */
size_t mlc_gc_probe_at(uint64_t now);

/* The share of a cache an idle pass returns: 1/8, 1/4, 1/2, then all. */
MLC_INLINE size_t mlc_gc_piece(size_t n, unsigned idle_passes) {
  if (idle_passes >= 4) return n;
  unsigned shift = 4 - idle_passes; /* 1 -> 1/8, 2 -> 1/4, 3 -> 1/2 */
  return (n + ((size_t)1 << shift) - 1) >> shift;
}

/* What the collector did, for statistics. */
extern uint64_t mlc_gc_passes;
extern uint64_t mlc_gc_objects_returned;
extern uint64_t mlc_gc_bytes_purged;
extern uint64_t mlc_gc_caches_visited;

/* Wakes the collector early (its interval changed).  Any thread. */
void mlc_gc_wake(void);

void mlc_gc_prefork(void);
void mlc_gc_postfork_parent(void);
void mlc_gc_postfork_child(void);

#endif /* MLC_GC_H */
