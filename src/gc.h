/* SPDX-License-Identifier: MIT */
/*
 * The collector: one background thread that, on a wall-clock timer, takes back what
 * idle thread caches hold and gives free pages back to the kernel after the decay
 * delay.  Its protocol with the cache owners is described at the top of gc.c.
 */
#ifndef MLC_GC_H
#define MLC_GC_H

#include "internal.h"

/* Starts the collector thread if it is enabled and not running yet.  Any thread. */
void mlc_gc_ensure_started(void);
/* A full collection now, from the calling thread: its own cache, every idle cache,
   all free pages.  Returns the bytes given back to the kernel. */
size_t mlc_gc_collect_now(void);

/* One collector pass as if the clock read now (ns, CLOCK_MONOTONIC): caches, then
   pages free for longer than the decay delay.  everything: a full collection.  Returns
   the bytes given back to the kernel.  Any thread; passes are serialised. */
size_t mlc_gc_pass_at(uint64_t now, bool everything);

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
