/* SPDX-License-Identifier: MIT */
/*
 * Thread caches: creation, refill, flush, thread exit and recycling.  The fast paths
 * are inline in tcache.h; everything here is a slow path.
 */
#include "internal.h"

#include "arena.h"
#include "base.h"
#include "bin.h"
#include "chunk.h"
#include "gc.h"
#include "harden.h"
#include "init.h"
#include "list.h"
#include "os.h"
#include "prof.h"
#include "sizeclass.h"
#include "tcache.h"

#include <pthread.h>

void *mlc_dummy_slot[2];

#define MLC_DUMMY_BINS                                       \
  {                                                          \
    .head = {[0 ... MLC_NCLASSES - 1] = &mlc_dummy_slot[1]}, \
    .lw = {[0 ... MLC_NCLASSES - 1] = &mlc_dummy_slot[1]},   \
    .full = {[0 ... MLC_NCLASSES - 1] = &mlc_dummy_slot[1]}, \
    .magic = MLC_CLASS_DIVMAGIC,                             \
  }

static const mlc_tbins_t mlc_tbins_dummy = MLC_DUMMY_BINS;

#define MLC_TSD_INITIAL \
  { MLC_DUMMY_BINS, NULL, NULL, MLC_TSD_NEW, 0, 0 }
MLC_TLS mlc_tsd_t mlc_tsd = MLC_TSD_INITIAL;

void mlc_tsd_fresh(void) { mlc_tsd = (mlc_tsd_t)MLC_TSD_INITIAL; }

/* A thread that has only freed so far gives its first frees straight back to their bins:
   a block handed over by another thread and freed first thing must not come back to
   the new thread from its own cache, next to the blocks of the thread that made it
   (passive false sharing, Hoard's cache-scratch).  A thread that keeps freeing (a
   consumer) gets its cache after this many. */
#define MLC_TCACHE_DIRECT_FREES 64

static pthread_key_t mlc_tcache_key;
static mlc_mutex_t mlc_tcache_registry = MLC_MUTEX_INITIALIZER(MLC_RANK_TCACHE);
/* Caches are in one of two groups: live ones, which the collector visits on each pass,
   and parked ones, which it emptied while their owners were idle and does not visit
   until their owners come back (through a slow path, see mlc_tcache_unpark).  A pass
   costs in proportion to the caches that may have something to return. */
static mlc_tcache_t *mlc_tcache_live;     /* Protected by mlc_tcache_registry */
static mlc_tcache_t *mlc_tcache_parked;   /* Protected by mlc_tcache_registry */
static unsigned long mlc_tcache_exits;    /* Protected by mlc_tcache_registry */
static mlc_tcache_t *mlc_tcache_recycled; /* Protected by mlc_tcache_registry */
/* Largest capacity per class: mlc_class_cap, or 0 above tcache_max.  Constant after
   boot.  A cache starts with MLC_TCACHE_CAP0 slots per class and doubles a class's
   capacity when its refills or frees need more, so a thread that allocates a little
   touches one page of stacks, not nine (many threads, mimalloc #1107). */
static uint16_t mlc_tcache_cap[MLC_TCLASSES];
#define MLC_TCACHE_CAP0 8
/* How far a small class may grow while it swings (see "Swings"): MLC_TCACHE_SWING_CLASS
   bytes of objects, at most MLC_TCACHE_SWING_SLOTS, never below mlc_tcache_cap.
   Constant after boot. */
static uint16_t mlc_tcache_swing_cap[MLC_NCLASSES];
#define MLC_TCACHE_SWING_CLASS ((size_t)256 << 10)
#define MLC_TCACHE_SWING_SLOTS 1024u
/* The room past their capacities that the classes of every thread hold together, bytes
   of objects: at most MLC_TCACHE_SWING_THREADS times tcache_swing (16 MiB by default),
   so that hundreds of threads that swing do not keep hundreds of MiB in their caches
   (tcmalloc bounds its thread caches together, by 32 MiB).  Atomic (relaxed). */
size_t mlc_tcache_swing_total;
#define MLC_TCACHE_SWING_THREADS 16u
/* Stack storage no cache uses any more, by log2 of its slot count.  Protected by the
   registry lock. */
static void **mlc_tcache_spare_stacks[32];

/* First batch size of a class: small, so that a thread that allocates little keeps
   little; it doubles on each refill up to half the capacity or MLC_TCACHE_BATCH_BYTES. */
static unsigned mlc_tcache_fill_initial(unsigned cls) {
  unsigned f = mlc_tcache_cap[cls] / 16;
  return f < 2 ? 2 : f;
}

static unsigned mlc_log2_ceil(size_t n) {
  unsigned l = 0;
  while (((size_t)1 << l) < n) l++;
  return l;
}

/* Storage for at least slots stack slots; *got is its real size.  NULL when the kernel
   refuses memory. */
static void **mlc_tcache_stack_alloc(size_t slots, size_t *got) {
  unsigned l = mlc_log2_ceil(slots < 512 ? 512 : slots);
  mlc_tcache_registry_lock();
  void **st = mlc_tcache_spare_stacks[l];
  if (st) mlc_tcache_spare_stacks[l] = (void **)st[0];
  mlc_tcache_registry_unlock();
  if (!st) st = mlc_base_alloc(((size_t)1 << l) * sizeof(void *));
  *got = (size_t)1 << l;
  return st;
}

static void mlc_tcache_stack_free(void **st, size_t slots) {
  unsigned l = mlc_log2_ceil(slots);
  mlc_tcache_registry_lock();
  st[0] = mlc_tcache_spare_stacks[l];
  mlc_tcache_spare_stacks[l] = st;
  mlc_tcache_registry_unlock();
}

static void mlc_tcache_thread_exit(void *arg);

bool mlc_tcache_boot(void) {
  for (unsigned c = 1; c < MLC_NCLASSES; c++) {
    mlc_tcache_cap[c] = mlc_class_size[c] <= mlc_opt.tcache_max ? mlc_class_cap[c] : 0;
    size_t swing = MLC_MIN(MLC_TCACHE_SWING_CLASS / mlc_class_size[c], MLC_TCACHE_SWING_SLOTS);
    mlc_tcache_swing_cap[c] = mlc_tcache_cap[c] ? (uint16_t)MLC_MAX(swing, mlc_tcache_cap[c]) : 0;
  }
  /* Large classes: MLC_LCACHE_CAP blocks, or up to MLC_LCACHE_CLASS_BYTES of the
     smaller ones (a cache starts at MLC_TCACHE_CAP0 and grows when frees overflow it). */
  for (unsigned c = MLC_NCLASSES; c < MLC_TCLASSES; c++) {
    size_t pages = c - MLC_NCLASSES + MLC_LCLASS_MIN_PAGES, bytes = pages << MLC_PAGE_SHIFT;
    mlc_tcache_cap[c] = (uint16_t)MLC_MAX((size_t)MLC_LCACHE_CAP, MLC_LCACHE_CLASS_BYTES / bytes);
  }
  return pthread_key_create(&mlc_tcache_key, mlc_tcache_thread_exit) == 0;
}

mlc_arena_t *mlc_tsd_arena(void) {
  mlc_arena_t *a = mlc_tsd.arena;
  if (MLC_UNLIKELY(!a)) {
    a = mlc_arena_choose();
    mlc_tsd.arena = a;
  }
  return a;
}

/*
 * Sampling (the heap profiler, prof.h).  While it runs, each small class of a cache
 * counts its pops down to the next sampled one (prof_left: an exponential draw of
 * bytes around prof_sample_bytes, in objects of the class; per-class countdowns are
 * independent Poisson processes whose superposition samples every byte at the same
 * rate as one countdown per thread).  The pop fast path is unchanged and counts
 * nothing: the slow paths bound it instead.  A slow path that holds the state leaves
 * lw at most prof_left above head, so that the fast path stops before the sampled pop
 * and the slow path makes it.  Pushes between pops would let a pop/push pair run on
 * the fast paths for ever past that bound (each push moves head down, away from lw),
 * so every push of a small class goes to free's slow path (full is MLC_TB_FULL_PROF,
 * above every head), where mlc_tcache_prof_push does the fast push's work and counts
 * it: pops since the last count = (head - prof_ref) + the pushes since (prof_room0 -
 * prof_room).  A push that would leave lw more than the pops left above head
 * (prof_room: pops move head and the pops left together, each push takes one), or
 * that finds the stack full, takes the regular slow path instead, which lowers lw or
 * makes room.  A parked cache's full is not the mark, so its next push unparks it in
 * the slow path as without profiling.  lw is left halfway (prof_left / 2 above head)
 * so that a run of pushes and pops needs that only once in a while.  Large classes
 * are not bounded: malloc counts a large block's bytes before it pops one (alloc.c,
 * mlc_malloc_big, with mlc_prof_big_unsampled), and goes to mlc_prof_alloc_big where
 * the sample may fall in them (session 11 kept lw at the bottom of large stacks
 * instead: each large pop then took this file's slow path, ~300 instructions, and
 * handoff-t2 ran 1.32x slower with profiling on).
 */

/* Counts class c's pops since prof_ref into prof_left, from head h.  Owner, holding
   state; before anything but a pop or a push moves head. */
static void mlc_tcache_prof_settle(mlc_tcache_t *tc, unsigned c, void **h) {
  if (tc->prof_ref[c]) {
    int64_t pops = (int64_t)(h - tc->prof_ref[c]) + (tc->prof_room0[c] - tc->prof_room[c]);
    tc->prof_left[c] = pops >= (int64_t)tc->prof_left[c] ? 0 : tc->prof_left[c] - (uint32_t)pops;
  }
  tc->prof_ref[c] = h;
  tc->prof_room0[c] = tc->prof_room[c];
}

/* The low-water mark a slow path that holds the state leaves for class c, whose head
   is h: the empty end (every object may be popped again); while the heap profiler
   runs, at most prof_left / 2 above h for a small class, whose pops are counted from
   h on (the caller counted those before with mlc_tcache_prof_settle, if head moved
   since by anything but a pop). */
static void **mlc_tcache_lw_for(mlc_tcache_t *tc, unsigned c, void **h, void **empty) {
  if (MLC_LIKELY(!mlc_prof_active()) || c >= MLC_NCLASSES) return empty;
  tc->prof_ref[c] = h;
  size_t allow = MLC_MIN(tc->prof_left[c] / 2, (size_t)(empty > h ? empty - h : 0));
  tc->prof_room[c] = tc->prof_room0[c] = tc->prof_left[c] - (uint32_t)allow;
  return h + allow;
}

/* full for class c: the start of its region; while the profiler runs, its mark for a
   small class, so that every push goes to free's slow path. */
static void **mlc_tcache_full_for(mlc_tcache_t *tc, unsigned c) {
  if (MLC_UNLIKELY(mlc_prof_active()) && c < MLC_NCLASSES) return MLC_TB_FULL_PROF;
  return tc->start[c];
}

/* Lays class c's stack out in [start, start + cap): its n objects (from head) move to
   the top, the owner may use them all again.  Returns the new head.  The owner holds
   tc's state, or tc is not in use yet. */
static void **mlc_tcache_place(mlc_tcache_t *tc, unsigned c, void **start, size_t n) {
  void **empty = start + tc->cap[c];
  if (MLC_UNLIKELY(mlc_prof_active()) && c < MLC_NCLASSES && tc->prof_ref[c])
    mlc_tcache_prof_settle(tc, c, mlc_load(mlc_tc_head(tc, c)));
  if (n) memmove(empty - n, mlc_load(mlc_tc_head(tc, c)), n * sizeof(void *));
  tc->start[c] = start;
  mlc_store(&tc->empty[c], empty);
  mlc_store(mlc_tc_full(tc, c), mlc_tcache_full_for(tc, c));
  mlc_store(mlc_tc_lw(tc, c), mlc_tcache_lw_for(tc, c, empty - n, empty));
  mlc_store_rel(mlc_tc_head(tc, c), empty - n);
  return empty - n;
}

/* Lays the stacks out in tc->stack with capacities tc->cap: class c gets
   [start, start + cap), and keeps the objects it has (moved to the top of its new
   region).  The owner holds tc's state, or tc is not in use yet. */
static void mlc_tcache_layout(mlc_tcache_t *tc, void **stack) {
  void **slot = stack;
  for (unsigned c = 1; c < MLC_TCLASSES; c++) {
    mlc_tcache_place(tc, c, slot,
                     tc->stack ? (size_t)(tc->empty[c] - mlc_load(mlc_tc_head(tc, c))) : 0);
    slot += tc->cap[c];
  }
  mlc_store(&tc->empty[0], &mlc_dummy_slot[1]);
  mlc_store_rel(mlc_tc_head(tc, 0), &mlc_dummy_slot[1]);
  mlc_store(mlc_tc_lw(tc, 0), &mlc_dummy_slot[1]);
  mlc_store(mlc_tc_full(tc, 0), &mlc_dummy_slot[1]);
}

static size_t mlc_tcache_slots_needed(const mlc_tcache_t *tc) {
  size_t n = 0;
  for (unsigned c = 1; c < MLC_TCLASSES; c++) n += tc->cap[c];
  return n;
}

/* Takes bytes of room past the capacities from what all threads may hold together;
   false (nothing taken) when that would go past it.  Any thread. */
static bool mlc_tcache_swing_take(size_t bytes) {
  size_t limit = mlc_opt.tcache_swing * MLC_TCACHE_SWING_THREADS;
  if (__atomic_add_fetch(&mlc_tcache_swing_total, bytes, __ATOMIC_RELAXED) <= limit) return true;
  __atomic_sub_fetch(&mlc_tcache_swing_total, bytes, __ATOMIC_RELAXED);
  return false;
}

/* Gives back the room tc's classes took past their capacities (their capacities are
   back, or the cache is going).  Owner, holding state. */
static void mlc_tcache_swing_give(mlc_tcache_t *tc) {
  if (tc->swing_bytes)
    __atomic_sub_fetch(&mlc_tcache_swing_total, tc->swing_bytes, __ATOMIC_RELAXED);
  tc->swing_bytes = 0;
  tc->swinging = 0;
}

/* Doubles class cls's capacity (up to its largest: mlc_tcache_cap, or while the class
   swings, mlc_tcache_swing_cap as far as the room left allows), moving every stack to
   storage big enough.  false when it is at its largest or memory is refused.  Owner,
   holding state. */
static bool mlc_tcache_grow(mlc_tcache_t *tc, unsigned cls) {
  unsigned old = tc->cap[cls], cap = MLC_MIN(old * 2u, (unsigned)mlc_tcache_cap[cls]);
  size_t past = 0; /* bytes of room past the capacity this growth takes */
  if (cls < MLC_NCLASSES && ((tc->swinging >> cls) & 1)) {
    unsigned base = MLC_MAX(old, (unsigned)mlc_tcache_cap[cls]), size = mlc_class_size[cls];
    size_t left = mlc_opt.tcache_swing - MLC_MIN(tc->swing_bytes, mlc_opt.tcache_swing);
    cap = MLC_MIN(MLC_MIN(old * 2u, (unsigned)mlc_tcache_swing_cap[cls]),
                  base + (unsigned)MLC_MIN(left / size, (size_t)MLC_TCACHE_SWING_SLOTS));
    if (cap > base) past = (size_t)(cap - base) * size;
    if (past && !mlc_tcache_swing_take(past)) {
      cap = MLC_MIN(old * 2u, (unsigned)mlc_tcache_cap[cls]);
      past = 0;
    }
  }
  if (cap <= old) return false;
  tc->cap[cls] = (uint16_t)cap;
  size_t need = mlc_tcache_slots_needed(tc);
  if (need <= tc->stack_slots) {
    /* Room in the storage it has: lay out again in place, from the last class down so
       that no stack overwrites one not yet moved. */
    void **slot = tc->stack + need;
    for (unsigned c = MLC_TCLASSES - 1; c >= 1; c--) {
      slot -= tc->cap[c];
      mlc_tcache_place(tc, c, slot, (size_t)(tc->empty[c] - mlc_load(mlc_tc_head(tc, c))));
    }
    tc->swing_bytes += past;
    return true;
  }
  size_t got;
  void **st = mlc_tcache_stack_alloc(need, &got);
  if (!st) {
    tc->cap[cls] = (uint16_t)old;
    if (past) __atomic_sub_fetch(&mlc_tcache_swing_total, past, __ATOMIC_RELAXED);
    return false;
  }
  void **old_stack = tc->stack;
  size_t old_slots = tc->stack_slots;
  mlc_tcache_layout(tc, st);
  tc->stack = st;
  tc->stack_slots = got;
  mlc_tcache_stack_free(old_stack, old_slots);
  tc->swing_bytes += past;
  mlc_trace("tcache: class %u grows to %u slots", cls, cap);
  return true;
}

/* The live and parked lists.  Protected by the registry lock. */
MLC_LIST_DEFINE(tcache, mlc_tcache_t)

/* The list tc is on.  Caller holds the registry lock. */
static mlc_tcache_t **mlc_tcache_list_of(mlc_tcache_t *tc) {
  return tc->parked ? &mlc_tcache_parked : &mlc_tcache_live;
}

/* Calls visit on every registered cache, live then parked; visit may unlink the cache it
   is given.  Caller holds the registry lock (or is a fork child's only thread). */
static void mlc_tcache_each_locked(void (*visit)(mlc_tcache_t *tc, void *arg), void *arg) {
  mlc_assert(mlc_mutex_owned(&mlc_tcache_registry));
  mlc_tcache_t *lists[2] = {mlc_tcache_live, mlc_tcache_parked};
  mlc_tcache_t *next;
  for (int l = 0; l < 2; l++)
    for (mlc_tcache_t *tc = lists[l]; tc; tc = next) {
      next = tc->next;
      visit(tc, arg);
    }
}

/* No thread has a cache, parked or not.  Caller holds the registry lock. */
static bool mlc_tcache_none_locked(void) {
  mlc_assert(mlc_mutex_owned(&mlc_tcache_registry));
  return !mlc_tcache_live && !mlc_tcache_parked;
}

void mlc_tcache_park(mlc_tcache_t *tc) {
  mlc_assert(mlc_mutex_owned(&mlc_tcache_registry));
  /* Every push now falls to the slow path, which unparks: the collector hears of the
     first object the owner caches again. */
  for (unsigned c = 1; c < MLC_TCLASSES; c++)
    mlc_store(mlc_tc_full(tc, c), mlc_load(mlc_tc_head(tc, c)));
  mlc_list_tcache_remove(&mlc_tcache_live, tc);
  tc->parked = true;
  mlc_list_tcache_push(&mlc_tcache_parked, tc);
}

void mlc_tcache_unpark(mlc_tcache_t *tc) {
  mlc_tcache_registry_lock();
  mlc_list_tcache_remove(&mlc_tcache_parked, tc);
  tc->parked = false;
  mlc_list_tcache_push(&mlc_tcache_live, tc);
  mlc_tcache_registry_unlock();
  for (unsigned c = 1; c < MLC_TCLASSES; c++)
    mlc_store(mlc_tc_full(tc, c), mlc_tcache_full_for(tc, c));
  tc->gc_idle_passes = 0;
}

/* ---- The owner's side of the state word (the collector's is in gc.c) ---- */

void mlc_tcache_owner_enter(mlc_tcache_t *tc) {
  for (;;) {
    int s = MLC_TC_FREE;
    if (__atomic_compare_exchange_n(&tc->state, &s, MLC_TC_OWNER, false, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED)) {
      /* The collector parked this cache while the owner was away: it is back. */
      if (MLC_UNLIKELY(tc->parked)) mlc_tcache_unpark(tc);
      return;
    }
    /* The collector holds it: sleep until it lets go. */
    if (s == MLC_TC_COLLECTOR &&
        !__atomic_compare_exchange_n(&tc->state, &s, MLC_TC_COLLECTOR | MLC_TC_WAITING, false,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
      continue;
    mlc_os_futex_wait(&tc->state, MLC_TC_COLLECTOR | MLC_TC_WAITING);
  }
}

void mlc_tcache_owner_exit(mlc_tcache_t *tc) {
  __atomic_store_n(&tc->state, MLC_TC_FREE, __ATOMIC_RELEASE);
}

static mlc_tcache_t *mlc_tcache_create(void) {
  mlc_tsd.state = MLC_TSD_CREATING;
  mlc_tcache_registry_lock();
  mlc_tcache_t *tc = mlc_tcache_recycled;
  if (tc) mlc_tcache_recycled = tc->next;
  mlc_tcache_registry_unlock();
  if (!tc) {
    tc = mlc_base_alloc(sizeof(mlc_tcache_t));
    if (!tc) {
      mlc_tsd.state = MLC_TSD_NEW;
      return NULL;
    }
  }
  /* A recycled cache keeps its storage (its owner flushed it): start small again. */
  tc->refilled = 0;
  tc->swinging = 0;
  tc->swing_bytes = 0;
  tc->swing_t0 = 0;
  for (unsigned c = 1; c < MLC_NCLASSES; c++) {
    tc->swing_in[c] = tc->swing_out[c] = 0;
    tc->prof_ref[c] = NULL;
    tc->prof_room[c] = tc->prof_room0[c] = 0;
    tc->prof_left[c] = mlc_prof_active() ? mlc_prof_draw_objs(mlc_class_size[c]) : 0;
  }
  for (unsigned c = 1; c < MLC_TCLASSES; c++) {
    tc->cap[c] = (uint16_t)MLC_MIN(MLC_TCACHE_CAP0, mlc_tcache_cap[c]);
    tc->fill[c] = (uint16_t)MLC_MIN(mlc_tcache_fill_initial(c), MLC_MAX(tc->cap[c] / 2u, 1u));
  }
  if (!tc->stack) {
    tc->stack = mlc_tcache_stack_alloc(mlc_tcache_slots_needed(tc), &tc->stack_slots);
    if (!tc->stack) {
      mlc_tcache_registry_lock();
      tc->next = mlc_tcache_recycled;
      mlc_tcache_recycled = tc;
      mlc_tcache_registry_unlock();
      mlc_tsd.state = MLC_TSD_NEW;
      return NULL;
    }
  }
  tc->b = &mlc_tsd.bins;
  void **st = tc->stack;
  tc->stack = NULL; /* nothing to carry over */
  mlc_tcache_layout(tc, st);
  tc->stack = st;
  tc->state = MLC_TC_FREE;
  tc->slow_events = 0;
  tc->gc_seen_events = 0;
  tc->gc_idle_passes = 0;
  tc->parked = false;
  mlc_tcache_registry_lock();
  mlc_list_tcache_push(&mlc_tcache_live, tc);
  mlc_tcache_registry_unlock();
  /* May allocate (past 32 keys); the state above sends that to the bins directly. */
  pthread_setspecific(mlc_tcache_key, tc);
  mlc_tsd.tc = tc;
  mlc_tsd.state = MLC_TSD_CACHED;
  mlc_trace("tcache: created for thread");
  return tc;
}

/* The calling thread's cache, creating it on first use; NULL when the thread goes to
   the bins directly (caches off, exiting, creating its cache right now, or a free among
   a new thread's first ones). */
static MLC_NOINLINE mlc_tcache_t *mlc_tcache_get_slow(bool for_free) {
  if (mlc_tsd.state != MLC_TSD_NEW) return NULL;
  if (for_free && mlc_tsd.direct_frees++ < MLC_TCACHE_DIRECT_FREES) return NULL;
  if (!mlc_boot()) return NULL;
  if (!mlc_opt.tcache) {
    mlc_tsd.state = MLC_TSD_UNCACHED;
    return NULL;
  }
  return mlc_tcache_create();
}

MLC_INLINE mlc_tcache_t *mlc_tcache_get(bool for_free) {
  if (MLC_LIKELY(mlc_tsd.state == MLC_TSD_CACHED)) return mlc_tsd.tc;
  return mlc_tcache_get_slow(for_free);
}

/* The collector takes the oldest objects, at the bottom of a stack, and lowers its
   empty end: a stack that only receives frees (no refill starts it again at the top)
   would keep less and less room.  Moves the objects to the top of the class's region
   and returns the new head.  Owner, holding state. */
static void **mlc_tcache_restack(mlc_tcache_t *tc, unsigned cls) {
  void **head = mlc_load(mlc_tc_head(tc, cls));
  if (tc->empty[cls] < tc->start[cls] + tc->cap[cls])
    head = mlc_tcache_place(tc, cls, tc->start[cls], (size_t)(tc->empty[cls] - head));
  return head;
}

void mlc_tcache_flush_oldest(mlc_tcache_t *tc, unsigned cls, unsigned n) {
  void **head = mlc_load(mlc_tc_head(tc, cls)), **empty = tc->empty[cls];
  unsigned have = (unsigned)(empty - head);
  if (n > have) n = have;
  if (n == 0) return;
  if (MLC_UNLIKELY(mlc_prof_active()) && cls < MLC_NCLASSES) mlc_tcache_prof_settle(tc, cls, head);
  mlc_tcache_return(empty - n, n, cls);
  memmove(head + n, head, (size_t)(have - n) * sizeof(void *));
  mlc_store_rel(mlc_tc_head(tc, cls), head + n);
  mlc_store(mlc_tc_lw(tc, cls), mlc_tcache_lw_for(tc, cls, head + n, empty));
  mlc_trace("tcache: flushed %u objects of cache class %u", n, cls);
}

void mlc_tcache_return(void **objs, unsigned n, unsigned cls) {
  if (cls < MLC_NCLASSES) {
    mlc_bin_free_batch(objs, n, cls);
    return;
  }
  for (unsigned i = 0; i < n; i++) mlc_arena_large_free(mlc_pagemap_entry(objs[i]), objs[i]);
}

/*
 * Swings.  A class whose objects a thread allocates by the hundred and then frees by the
 * hundred (a batch built and torn down, or handed to another thread and replaced by the
 * batch it hands back: sh8bench) swings through more than its capacity each time: the
 * frees flush half the stack to the bins, the allocations refill from them, and every
 * object of the swing crosses the bin lock twice (sh8-t1: 23% of the time in the bins,
 * 1.2x tcmalloc's, whose per-class lists grow with such use).  A random mix (larson)
 * crosses too, but rarely: a stack of capacity C that moves one object up or down at
 * random needs about (C/2)^2 moves to reach either end, a swing C/2.  So a class may
 * grow past its capacity, to MLC_TCACHE_SWING_CLASS bytes of objects, while its trips
 * (refills and flushes) come at more than mlc_tcache_swing_rate a millisecond, both
 * ways, over a window of at least MLC_TCACHE_SWING_WINDOW (the coarse clock the slow
 * path reads already; its tick is 1-10 ms).  On the 2-CPU machine of session 30,
 * larson's busiest classes (its 769-1024-byte ones) made 8-11 a millisecond, sh8's
 * 130-1000 (mixed: 18 at most, pareto: 96, but only refills).  The room past the
 * capacities a thread's classes take together is bounded by the tcache_swing option
 * (bytes of objects), and all threads' together by 16 times that.  A class that no
 * longer crosses says nothing of whether it still swings (its stack now holds the
 * swing), so the first trip MLC_TCACHE_SWING_HOLD or more after the first class began
 * sends every class back to its capacity, and the swings that go on earn their room
 * again in the next window (one window in MLC_TCACHE_SWING_HOLD at the old speed).  A
 * thread whose swings all fit makes no trip and keeps its room (the objects in it go
 * back to the bins as the collector finds the thread idle, as any cached object).
 * Threads that only allocate or only free a class never swing: room would not save
 * them a trip.
 */
#ifndef MLC_TCACHE_SWING_RATE
#define MLC_TCACHE_SWING_RATE 64 /* check-tsan builds with 0: its stress run swings */
#endif
unsigned mlc_tcache_swing_rate = MLC_TCACHE_SWING_RATE;
#define MLC_TCACHE_SWING_WINDOW ((uint64_t)8000000)
#define MLC_TCACHE_SWING_HOLD ((uint64_t)500000000)

/* Every class back to its capacity: the oldest objects past it go to the bins, and the
   stacks are laid out again in place (each moves down or stays: the storage is kept).
   Owner, holding state. */
static void mlc_tcache_swing_end(mlc_tcache_t *tc) {
  bool shrunk = false;
  for (unsigned c = 1; c < MLC_NCLASSES; c++) {
    if (tc->cap[c] <= mlc_tcache_cap[c]) continue;
    unsigned have = (unsigned)(tc->empty[c] - mlc_load(mlc_tc_head(tc, c)));
    if (have > mlc_tcache_cap[c]) mlc_tcache_flush_oldest(tc, c, have - mlc_tcache_cap[c]);
    tc->cap[c] = mlc_tcache_cap[c];
    shrunk = true;
  }
  /* Ascending: class c's new region starts at or below its old one and ends at or
     below the start of c + 1's old one, so no stack overwrites one not yet moved. */
  if (shrunk) mlc_tcache_layout(tc, tc->stack);
  mlc_tcache_swing_give(tc);
  mlc_trace("tcache: swings end");
}

/* Counts a trip of class cls (a refill if in, else a flush) and closes the window when
   it has lasted long enough.  Owner, holding state. */
static void mlc_tcache_swing_trip(mlc_tcache_t *tc, unsigned cls, bool in) {
  if (cls >= MLC_NCLASSES || mlc_tcache_swing_cap[cls] <= mlc_tcache_cap[cls] ||
      mlc_opt.tcache_swing == 0)
    return;
  uint16_t *n = in ? &tc->swing_in[cls] : &tc->swing_out[cls];
  if (*n < UINT16_MAX) ++*n;
  /* The clock every 16th trip: ~50 instructions a read (sh8-t1 under callgrind, which
     runs it too slowly to swing: +1.8% with a read on every trip). */
  if ((++tc->swing_trips & 15) != 0) return;
  uint64_t now = mlc_os_coarse_now_ns(), el = now - tc->swing_t0;
  if (now < tc->swing_t0 || el < MLC_TCACHE_SWING_WINDOW) return;
  if (tc->swinging && now - tc->swing_since >= MLC_TCACHE_SWING_HOLD) {
    mlc_tcache_swing_end(tc);
  } else {
    for (unsigned c = 1; c < MLC_NCLASSES; c++) {
      unsigned i = tc->swing_in[c], o = tc->swing_out[c];
      if (i < 4 || o < 4 || (uint64_t)(i + o) * 1000000u < mlc_tcache_swing_rate * el) continue;
      if (!tc->swinging) tc->swing_since = now;
      if (!((tc->swinging >> c) & 1)) mlc_trace("tcache: class %u swings (%u in, %u out)", c, i, o);
      tc->swinging |= (uint64_t)1 << c;
    }
  }
  memset(tc->swing_in, 0, sizeof(tc->swing_in));
  memset(tc->swing_out, 0, sizeof(tc->swing_out));
  tc->swing_t0 = now;
}

/* Objects that flow one way through a cache are memory no thread can use while they sit
   there: a refill batch the thread has not reached yet, or the frees of a class the
   thread never allocates (a consumer of objects other threads allocate).  Both are
   bounded by MLC_TCACHE_BATCH_BYTES (at least MLC_TCACHE_BATCH_OBJS objects), enough to
   take a bin lock once per batch: refill batches stop doubling there, and a class the
   thread has never refilled stops growing there and flushes instead.  A class the thread
   both allocates and frees grows to its full capacity: its stack absorbs the swings of
   a random mix (larson) without reaching the bins.  (prodcons, 1 and 2 pairs: peak RSS
   3.0 -> 2.2 and 4.2 -> 2.5 MiB at the same speed; mimalloc 2.2 and 2.8.) */
#define MLC_TCACHE_BATCH_BYTES 8192u
#define MLC_TCACHE_BATCH_OBJS 16u
_Static_assert(MLC_NCLASSES <= 64, "mlc_tcache_t.refilled has one bit per class");

static bool mlc_tcache_within_batch(unsigned cls, unsigned n) {
  return n <= MLC_TCACHE_BATCH_OBJS || n * mlc_class_size[cls] <= MLC_TCACHE_BATCH_BYTES;
}

static bool mlc_tcache_free_may_grow(const mlc_tcache_t *tc, unsigned cls) {
  return ((tc->refilled >> cls) & 1) || mlc_tcache_within_batch(cls, tc->cap[cls] * 2u);
}

/* The end of an allocation's slow path that held the cache: lets the collector go, and
   starts one if none runs (this path may have unparked the cache; see mlc_gc_retire
   for why the call comes after the work, and mlc_gc_maybe_start for why only
   allocations start it). */
static void mlc_tcache_slow_done(mlc_tcache_t *tc) {
  mlc_tcache_owner_exit(tc);
  mlc_gc_maybe_start();
}

/* One object of class cls from its bin, bypassing the cache. */
static void *mlc_tcache_alloc_from_bin(unsigned cls) {
  void *p;
  if (!mlc_boot()) return NULL;
  if (mlc_bin_alloc_batch(&mlc_tsd_arena()->bins[cls], &p, 1) == 1) {
    mlc_free_key_clear(p);
    return p;
  }
  errno = ENOMEM;
  return NULL;
}

void *mlc_tcache_alloc_slow(unsigned cls) {
  if (cls == 0) cls = 1;
  /* The hardened library looks at a few of its quarantined blocks now and then. */
  if (mlc_config_hardened) mlc_harden_slow_check();
  mlc_tcache_t *tc = mlc_tcache_get(false);
  if (!tc || mlc_tcache_cap[cls] == 0) {
    /* No cache: the profiler counts on its own (every allocation comes here). */
    if (MLC_UNLIKELY(mlc_prof_active())) {
      void *s = mlc_prof_sample_small(mlc_class_size[cls]);
      if (s) return s;
    }
    return mlc_tcache_alloc_from_bin(cls);
  }
  mlc_tcache_owner_enter(tc);
  mlc_store(&tc->slow_events, mlc_load(&tc->slow_events) + 1);
  void **head = mlc_load(mlc_tc_head(tc, cls)), **empty = tc->empty[cls];
  if (MLC_UNLIKELY(mlc_prof_active())) {
    mlc_tcache_prof_settle(tc, cls, head);
    if (tc->prof_left[cls] == 0) {
      /* This allocation is the sample: a block of its own, outside the cache. */
      tc->prof_left[cls] = mlc_prof_draw_objs(mlc_class_size[cls]);
      mlc_store(mlc_tc_lw(tc, cls), mlc_tcache_lw_for(tc, cls, head, empty));
      mlc_tcache_slow_done(tc);
      void *s = mlc_prof_sample_now(mlc_class_size[cls]);
      return s ? s : mlc_tcache_alloc_from_bin(cls);
    }
  }
  void *ret;
  if (head < empty) {
    /* Objects remain below the low-water mark: the owner may use them all again. */
    mlc_store(mlc_tc_lw(tc, cls), mlc_tcache_lw_for(tc, cls, head, empty));
  } else {
    /* Empty: refill; the stack starts again at the top of its region, which grows
       when the batch would fill more than half of it. */
    unsigned n = tc->fill[cls];
    tc->refilled |= (uint64_t)1 << cls;
    mlc_tcache_swing_trip(tc, cls, true);
    while (n * 2u > tc->cap[cls] && mlc_tcache_grow(tc, cls)) {
    }
    if (n > tc->cap[cls]) n = tc->cap[cls];
    empty = tc->start[cls] + tc->cap[cls];
    mlc_store(&tc->empty[cls], empty);
    mlc_store(mlc_tc_lw(tc, cls), empty); /* the profiler's bound is set after the pop */
    /* The thread's arena, chosen here at its first refill if it has none: a thread that
       only frees (a consumer) takes no turn of the round-robin. */
    unsigned got = mlc_bin_alloc_batch(&mlc_tsd_arena()->bins[cls], empty - n, n);
    if (got < n) memmove(empty - got, empty - n, got * sizeof(void *));
    head = empty - got;
    mlc_store_rel(mlc_tc_head(tc, cls), head);
    if (got == 0) {
      mlc_tcache_slow_done(tc);
      errno = ENOMEM;
      return NULL;
    }
    if (n < mlc_tcache_cap[cls] / 2 && mlc_tcache_within_batch(cls, n * 2u))
      tc->fill[cls] = (uint16_t)(n * 2);
  }
  ret = *head;
  mlc_store_rel(mlc_tc_head(tc, cls), head + 1);
  if (MLC_UNLIKELY(mlc_prof_active())) {
    /* This pop counts; the refill's head moves did not. */
    tc->prof_left[cls]--;
    tc->prof_ref[cls] = NULL;
    mlc_store(mlc_tc_lw(tc, cls), mlc_tcache_lw_for(tc, cls, head + 1, empty));
  }
  mlc_tcache_slow_done(tc);
  mlc_free_key_clear(ret);
  return ret;
}

void mlc_tcache_free_small(void *p, unsigned cls) {
  /* free() preserves errno: creating a cache or starting the collector may set it. */
  int saved = errno;
  mlc_free_key_set(p);
  mlc_tcache_t *tc = mlc_tcache_get(true);
  if (!tc || mlc_tcache_cap[cls] == 0) {
    mlc_bin_free_batch(&p, 1, cls);
    errno = saved;
    return;
  }
  mlc_tcache_owner_enter(tc);
  mlc_store(&tc->slow_events, mlc_load(&tc->slow_events) + 1);
  bool prof = mlc_prof_active();
  if (MLC_UNLIKELY(prof)) mlc_tcache_prof_settle(tc, cls, mlc_load(mlc_tc_head(tc, cls)));
  void **head = mlc_tcache_restack(tc, cls);
  /* Full: head at the start of the region (full itself, unless the profiler raised it,
     since owner_enter unparked the cache). */
  if (head <= tc->start[cls] && !(mlc_tcache_free_may_grow(tc, cls) && mlc_tcache_grow(tc, cls))) {
    mlc_tcache_swing_trip(tc, cls, false);
    mlc_tcache_flush_oldest(tc, cls, tc->cap[cls] / 2u);
  }
  head = mlc_load(mlc_tc_head(tc, cls));
  head[-1] = p;
  mlc_store_rel(mlc_tc_head(tc, cls), head - 1);
  /* A push is not a pop: counted from here, lw lowered with head. */
  if (MLC_UNLIKELY(prof)) {
    tc->prof_ref[cls] = NULL;
    mlc_store(mlc_tc_lw(tc, cls), mlc_tcache_lw_for(tc, cls, head - 1, tc->empty[cls]));
  }
  mlc_tcache_owner_exit(tc);
  errno = saved;
}

static void mlc_tcache_flush_all(mlc_tcache_t *tc) {
  for (unsigned c = 1; c < MLC_TCLASSES; c++)
    mlc_tcache_flush_oldest(tc, c, (unsigned)(tc->empty[c] - mlc_load(mlc_tc_head(tc, c))));
}

/* ---- Large blocks ---- */

/* The pop missed: the objects below the low-water mark (if the collector lowered it)
   are the owner's again; or there is no cache yet (a thread that allocates only large
   blocks gets one too). */
void *mlc_tcache_large_alloc_slow(size_t np) {
  mlc_tcache_t *tc = mlc_tcache_get(false);
  if (!tc) return NULL;
  unsigned c = (unsigned)mlc_tclass_large(np);
  mlc_tcache_owner_enter(tc);
  mlc_store(&tc->slow_events, mlc_load(&tc->slow_events) + 1);
  void *p = NULL;
  void **head = mlc_tcache_restack(tc, c);
  if (head < tc->empty[c]) {
    p = *head;
    mlc_store_rel(mlc_tc_head(tc, c), head + 1);
  }
  mlc_store(mlc_tc_lw(tc, c), mlc_tcache_lw_for(tc, c, mlc_load(mlc_tc_head(tc, c)), tc->empty[c]));
  mlc_tcache_slow_done(tc);
  if (p) mlc_free_key_clear(p);
  return p;
}

/* The push found the stack full (or parked, or no cache yet): the newest half goes back
   to the arenas, where it joins the runs freed around the same time (the oldest half
   goes to the bins for small objects; for large blocks returning the newest keeps the
   arenas' runs more compact: mixed-t1 peak RSS 7.8 -> 7.3 MiB). */
void mlc_tcache_large_free_slow(void *p, size_t np) {
  int saved = errno; /* free() keeps errno: creating a cache or unmapping may set it */
  mlc_tcache_t *tc = mlc_tcache_get(true);
  if (!tc) {
    mlc_arena_large_free(mlc_pagemap_entry(p), p);
    errno = saved;
    return;
  }
  unsigned c = (unsigned)mlc_tclass_large(np);
  mlc_tcache_owner_enter(tc); /* unparks */
  mlc_store(&tc->slow_events, mlc_load(&tc->slow_events) + 1);
  mlc_free_key_set(p);
  void **head = mlc_tcache_restack(tc, c);
  /* Full (cap blocks): a bigger stack while it may grow, else half of it goes. */
  if (head <= mlc_load(mlc_tc_full(tc, c)) && mlc_tcache_grow(tc, c))
    head = mlc_load(mlc_tc_head(tc, c));
  if (head <= mlc_load(mlc_tc_full(tc, c))) {
    unsigned k = tc->cap[c] / 2u;
    mlc_tcache_return(head, k, c);
    head += k;
    mlc_store_rel(mlc_tc_head(tc, c), head);
  }
  mlc_store(mlc_tc_lw(tc, c), mlc_tcache_lw_for(tc, c, mlc_load(mlc_tc_head(tc, c)), tc->empty[c]));
  head[-1] = p;
  mlc_store_rel(mlc_tc_head(tc, c), head - 1);
  mlc_tcache_owner_exit(tc);
  errno = saved;
}

static void mlc_tcache_count_large(mlc_tcache_t *tc, void *arg) {
  size_t *total = arg;
  for (size_t np = MLC_LCLASS_MIN_PAGES; np <= MLC_LCACHE_MAX_PAGES; np++) {
    size_t c = mlc_tclass_large(np);
    void **h = mlc_load(mlc_tc_head(tc, c));
    void **e = mlc_load(&tc->empty[c]);
    if (h < e) *total += (size_t)(e - h) * (np << MLC_PAGE_SHIFT);
  }
}

size_t mlc_tcache_cached_large_bytes(void) {
  size_t total = 0;
  mlc_tcache_registry_lock();
  mlc_tcache_each_locked(mlc_tcache_count_large, &total);
  mlc_tcache_registry_unlock();
  return total;
}

void mlc_tcache_flush_self(void) {
  if (mlc_tsd.state != MLC_TSD_CACHED) return;
  mlc_tcache_t *tc = mlc_tsd.tc;
  mlc_tcache_owner_enter(tc);
  mlc_tcache_flush_all(tc);
  mlc_tcache_owner_exit(tc);
}

static void mlc_tcache_thread_exit(void *arg) {
  mlc_tcache_t *tc = arg;
  if (!tc || mlc_tsd.tc != tc) return;
  /* From here on the thread's allocations (other destructors, libc) use the bins. */
  mlc_tsd.state = MLC_TSD_UNCACHED;
  mlc_tsd.tc = NULL;
  mlc_tcache_owner_enter(tc);
  mlc_tcache_flush_all(tc);
  mlc_tcache_swing_give(tc);
  mlc_tsd.bins = mlc_tbins_dummy;
  mlc_tcache_registry_lock();
  mlc_list_tcache_remove(mlc_tcache_list_of(tc), tc);
  tc->next = mlc_tcache_recycled;
  mlc_tcache_recycled = tc;
  mlc_tcache_exits++;
  mlc_tcache_owner_exit(tc);
  bool last = mlc_tcache_none_locked();
  mlc_tcache_registry_unlock();
  /* No thread holds a cache any more: perhaps the program's last thread is ending
     (pthread_exit), and the collector must not keep the process alive (gc.c). */
  if (last) mlc_gc_wake();
  mlc_trace("tcache: thread exit, cache recycled");
}

/* Whether [head, empty) of cache class tcls in tc holds p.  Relaxed reads: tc may be
   another thread's, in use. */
static bool mlc_tcache_stack_holds(mlc_tcache_t *tc, const void *p, unsigned tcls) {
  void **h = mlc_load(mlc_tc_head(tc, tcls)), **e = mlc_load(&tc->empty[tcls]);
  for (void **q = h; q < e; q++)
    if (mlc_load(q) == p) return true;
  return false;
}

typedef struct {
  const void *p;
  unsigned tcls;
  bool found;
} mlc_tcache_find_t;

static void mlc_tcache_find(mlc_tcache_t *tc, void *arg) {
  mlc_tcache_find_t *f = arg;
  if (!f->found && tc != mlc_tsd.tc) f->found = mlc_tcache_stack_holds(tc, f->p, f->tcls);
}

bool mlc_tcache_holds(const void *p, unsigned tcls) {
  if (mlc_tsd.state == MLC_TSD_CACHED && mlc_tcache_stack_holds(mlc_tsd.tc, p, tcls)) return true;
  mlc_tcache_find_t f = {p, tcls, false};
  mlc_tcache_registry_lock();
  mlc_tcache_each_locked(mlc_tcache_find, &f);
  mlc_tcache_registry_unlock();
  return f.found;
}

static void mlc_tcache_count_small(mlc_tcache_t *tc, void *arg) {
  uint64_t *out = arg;
  for (unsigned c = 1; c < MLC_NCLASSES; c++) {
    void **h = mlc_load(mlc_tc_head(tc, c));
    void **e = mlc_load(&tc->empty[c]);
    if (h < e) out[c] += (uint64_t)(e - h);
  }
}

void mlc_tcache_cached_objects(uint64_t out[MLC_NCLASSES]) {
  memset(out, 0, sizeof(uint64_t) * MLC_NCLASSES);
  mlc_tcache_registry_lock();
  mlc_tcache_each_locked(mlc_tcache_count_small, out);
  mlc_tcache_registry_unlock();
}

void mlc_tcache_registry_lock(void) { mlc_mutex_lock(&mlc_tcache_registry); }
void mlc_tcache_registry_unlock(void) { mlc_mutex_unlock(&mlc_tcache_registry); }
mlc_tcache_t *mlc_tcache_registry_first(void) {
  mlc_assert(mlc_mutex_owned(&mlc_tcache_registry));
  return mlc_tcache_live;
}

unsigned long mlc_tcache_registry_exits(void) {
  mlc_assert(mlc_mutex_owned(&mlc_tcache_registry));
  return mlc_tcache_exits;
}

bool mlc_tcache_registry_empty(void) {
  mlc_tcache_registry_lock();
  bool empty = mlc_tcache_none_locked();
  mlc_tcache_registry_unlock();
  return empty;
}

void mlc_tcache_prefork(void) { mlc_tcache_registry_lock(); }
void mlc_tcache_postfork_parent(void) { mlc_tcache_registry_unlock(); }

/* In a fork child: every cache but the calling thread's goes to the recycled list. */
static void mlc_tcache_recycle_other(mlc_tcache_t *tc, void *self) {
  if (tc == self) return;
  tc->next = mlc_tcache_recycled;
  mlc_tcache_recycled = tc;
}

void mlc_tcache_postfork_child(void) {
  /* Only the forking thread exists in the child: the other caches' objects are lost
     (as in every allocator), and their structures are recycled. */
  mlc_tcache_t *self = mlc_tsd.state == MLC_TSD_CACHED ? mlc_tsd.tc : NULL;
  mlc_tcache_each_locked(mlc_tcache_recycle_other, self);
  mlc_tcache_live = self;
  mlc_tcache_parked = NULL;
  /* The other caches' room is theirs no more (create starts them at none). */
  __atomic_store_n(&mlc_tcache_swing_total, self ? self->swing_bytes : 0, __ATOMIC_RELAXED);
  if (self) {
    self->next = self->prev = NULL;
    mlc_store(&self->state, MLC_TC_FREE);
    /* Back on the live list: the child's collector starts from a clean slate. */
    if (self->parked) {
      self->parked = false;
      for (unsigned c = 1; c < MLC_TCLASSES; c++)
        mlc_store(mlc_tc_full(self, c), mlc_tcache_full_for(self, c));
    }
  }
  mlc_mutex_reset(&mlc_tcache_registry);
}
