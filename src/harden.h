/* SPDX-License-Identifier: MIT */
/*
 * The hardened library's layer at the API boundary (built with -DMLC_HARDENED=1): every
 * public allocation and free goes through these before the default allocator, which
 * they call through alloc.h's mlc_*_plain functions.  In the default build the public
 * functions never call them (mlc_config_hardened is false).  Layout of a block and the
 * defences: harden.c's opening comment.
 */
#ifndef MLC_HARDEN_H
#define MLC_HARDEN_H

#include "internal.h"

/* Each defence alone, for measuring its cost; all on in a hardened build. */
#ifndef MLC_HARDEN_CANARY
#define MLC_HARDEN_CANARY 1
#endif
#ifndef MLC_HARDEN_FILL
#define MLC_HARDEN_FILL 1
#endif
#ifndef MLC_HARDEN_QUARANTINE
#define MLC_HARDEN_QUARANTINE 1
#endif
#ifndef MLC_HARDEN_RANDOM
#define MLC_HARDEN_RANDOM 1
#endif
#ifndef MLC_HARDEN_GUARD
#define MLC_HARDEN_GUARD 1
#endif
static const bool mlc_harden_random_on = MLC_HARDENED && MLC_HARDEN_RANDOM;
static const bool mlc_harden_guard_on = MLC_HARDENED && MLC_HARDEN_GUARD;
static const bool mlc_harden_fill_on = MLC_HARDENED && MLC_HARDEN_FILL;

/* The public functions of the hardened build, with the standard semantics (errno,
   NULL) and one line on stderr and abort() on heap misuse detected.  Any thread. */
void *mlc_harden_malloc(size_t size);
void *mlc_harden_calloc(size_t n, size_t size);
void *mlc_harden_realloc(void *p, size_t size);
void mlc_harden_free(void *p);
size_t mlc_harden_usable_size(const void *p);
/* align is a power of two; call names the public function in messages. */
void *mlc_harden_aligned(size_t align, size_t size, const char *call);

/* A 64-bit random number from the calling thread's generator (seeded from the
   process's secret).  Any thread, no lock needed; bin.c calls it under a bin lock. */
uint64_t mlc_harden_random(void);

/* The calling thread is on an allocation's slow path (a cache refill, a block above
   the small classes): a few of its quarantined blocks, in turn, are checked for a write
   after free (their freed state), so that one is reported even in a program that
   frees too little for the block ever to leave the quarantine.  Aborts on one; no lock
   held. */
void mlc_harden_slow_check(void);

/* The collector's pass over the quarantines, holding mlc_gc_lock (gc.c).  Before the
   pass's membarrier: closes the gates of the quarantines whose owners freed nothing
   since the last pass (every non-empty one if everything); true if it closed any.
   After it: gives back a piece of each closed one whose owner was out (all of it if
   everything; nothing if fenced is false, the membarrier having failed), opens the
   gates, and returns the number of blocks given back. */
bool mlc_harden_gc_close(bool everything);
size_t mlc_harden_gc_drain(bool everything, bool fenced);
/* Whether some quarantine holds blocks (the collector goes on while one does). */
bool mlc_harden_gc_has_work(void);
/* A new slab's nobjs objects of size bytes from base, some of whose pages may be dirty
   (from an earlier slab or large run): brings them to the state a freed object has
   (their first MLC_HFILL bytes zero), writing only where they are not zero already.
   Caller holds the bin's lock. */
void mlc_harden_slab_init(char *base, unsigned nobjs, size_t size);

/* A slab about to go back to its arena, nobjs objects of size bytes from base: the
   first object not in the freed state (a write after free that no allocation would see
   now), or NULL.  Caller holds the bin's lock. */
void *mlc_harden_slab_check(char *base, unsigned nobjs, size_t size);

#endif /* MLC_HARDEN_H */
