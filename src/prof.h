/* SPDX-License-Identifier: MIT */
/*
 * The heap profiler (MELLOC_CONF prof:true).  Sampling is decided on slow paths only:
 * while profiling is on, the thread caches count each small class's pops down to the
 * next sample and bound the pop fast path by it (tcache.c, "Sampling"), and sizes
 * above MLC_SMALL_MAX count down on their own path (a per-thread exponential draw
 * around prof_sample_bytes: mlc_prof_big_unsampled inline in malloc's large pop, the
 * draw and the sample here).  With profiling off nothing here runs: the fast paths are
 * the same instructions.  A sampled allocation gets a run of pages of its own (a large
 * block, or a huge mapping), marked in its chunk header, so that its free is
 * recognised on the large-block free path, which unsampled small frees never take.
 * Nothing here allocates through malloc: tables come from base.c, dump buffers from
 * os.c's mappings.
 */
#ifndef MLC_PROF_H
#define MLC_PROF_H

#include "internal.h"

#include "types.h"

/* True once profiling runs (set once after boot, never cleared but by nothing).  The
   slow paths read it: relaxed. */
extern bool mlc_prof_on MLC_HIDDEN;

MLC_INLINE bool mlc_prof_active(void) { return mlc_load(&mlc_prof_on); }

/* Per thread: the countdown of sizes above MLC_SMALL_MAX (and of small allocations
   made without a cache), and whether the thread is inside the profiler. */
typedef struct mlc_prof_tsd_s {
  int64_t left; /* bytes until the next sample */
  uint64_t rng; /* 0 until the thread's first count */
  bool busy;
} mlc_prof_tsd_t;
extern MLC_TLS mlc_prof_tsd_t mlc_prof_tsd MLC_HIDDEN;

/* While profiling runs, malloc's large block of usable bytes (whole pages) that is not
   the next sample: counted, true, and the caller pops it from the thread cache without
   the profiler; false when it may be (the caller goes to mlc_prof_alloc_big, which
   counts and decides; also a thread that has not counted yet). */
MLC_INLINE bool mlc_prof_big_unsampled(size_t usable) {
  mlc_prof_tsd_t *t = &mlc_prof_tsd;
  if (MLC_LIKELY(t->left > (int64_t)usable)) {
    t->left -= (int64_t)usable;
    return true;
  }
  return false;
}

/* From an allocation's slow path, before it takes anything: counts usable bytes
   (a small class's size) down; when a sample falls in them, returns a block of at
   least usable bytes, aligned to usable's largest power-of-two factor up to a granule,
   that is the sample (its own run of pages), else NULL and the caller goes on.  Any
   thread, no lock held. */
MLC_NOINLINE void *mlc_prof_sample_small(size_t usable);
/* The sample itself, when a thread cache's countdown (tcache.c) says this allocation
   of class size usable is sampled: as mlc_prof_sample_small without the count.  NULL
   when the thread is inside the profiler or memory is short; the caller then serves
   the allocation as an ordinary one. */
MLC_NOINLINE void *mlc_prof_sample_now(size_t usable);
/* An exponential draw around prof_sample_bytes, in whole objects of size bytes: the
   pops before the next sampled one.  Any thread (its own random state). */
uint32_t mlc_prof_draw_objs(size_t size);
/* Every allocation above MLC_SMALL_MAX while profiling runs: counts it, and records
   it when sampled.  Arguments and result as mlc_alloc_big_plain's (alloc.h). */
MLC_NOINLINE void *mlc_prof_alloc_big(size_t size, size_t align, bool zero);
/* The same for realloc's growing block (alloc.h: mlc_alloc_grow_plain). */
MLC_NOINLINE void *mlc_prof_alloc_grow(size_t size);
/* The free of the live run p of chunk c, whose sampled mark the caller has just
   taken (mlc_chunk_sampled_take): forgets its sample.  No lock held. */
void mlc_prof_free_sampled(const void *p);
/* The free of the live huge block p: forgets its sample, if it is one. */
void mlc_prof_free_huge(const void *p);
/* realloc kept the block old (at new_p now: a huge block may move) and made it size
   bytes: a sample's in-use bytes follow (its weight in objects stays: the object was
   sampled when it was allocated).  Nothing for a block that is no sample. */
void mlc_prof_resized(const void *old, const void *new_p, size_t size);
/* The usable size the sample at p was recorded with (a small class's size, or whole
   pages), 0 when p is no sample.  Takes the profiler's lock. */
size_t mlc_prof_sampled_size(const void *p);

/* After boot, when MELLOC_CONF asks for profiling: primes the unwinder and starts. */
void mlc_prof_start(void);

/* melloc_prof_dump and melloc_prof_reset. */
int mlc_prof_dump(const char *path);
void mlc_prof_reset(void);
/* Live sampled allocations and the bytes they stand for (the estimate of live heap). */
void mlc_prof_stats(uint64_t *samples, uint64_t *bytes);

void mlc_prof_prefork(void);
void mlc_prof_postfork_parent(void);
void mlc_prof_postfork_child(void);

#endif /* MLC_PROF_H */
