/* SPDX-License-Identifier: MIT */
/*
 * The wall-clock collector.
 *
 * One background thread ("melloc-gc") wakes every gc_interval_ms while it has work (see
 * "When the thread exists" below).  Each pass:
 *  1. walks the registry of thread caches; for each cache it can claim, it measures
 *     whether the owner was idle since the last pass and returns part of what the cache
 *     holds to the bins: 1/8 of it on the first idle pass, then 1/4, 1/2, then all;
 *     half of what a busy cache did not touch since the last pass; nothing else.
 *     In the hardened library it then drains idle threads' quarantines the same way
 *     (harden.c, "The collector drains": gates closed before this pass's membarrier).
 *  2. purges, in every arena, free granules and pages that stayed free for decay_ms, and
 *     gives back cached huge mappings as old; for one interval only when no thread used
 *     its cache since the last pass (a quiet process: see mlc_gc_pass_at).
 * After a pass that found a cache in use, a probe a quarter interval later purges what
 * was freed before that pass if no cache was used since (mlc_gc_probe_at).
 *
 * The protocol with the owners.  A cache has two kinds of fields (types.h says who
 * writes each one):
 *  - head: written by the owner only, always with a release store (fast and slow
 *    paths), never by the collector, which reads it with an acquire load;
 *  - lw, full, empty, parked: written by whoever holds the cache's state word.  The
 *    fast paths read lw (pop) and full (push) without it; a push writes the free slot
 *    below head, which the collector never reads.
 * The state word (tc->state) holds one of enum mlc_tcache_state_e (tcache.h):
 * MLC_TC_FREE, MLC_TC_OWNER, or MLC_TC_COLLECTOR, with MLC_TC_WAITING added while the
 * owner sleeps on it.  The owner claims it with a compare-and-swap on its slow paths only
 * (mlc_tcache_owner_enter); the collector claims it with a compare-and-swap and skips
 * the cache when the owner holds it (mlc_gc_claim).  So the slow paths never race, and
 * the fast paths need no atomic read-modify-write.
 *
 * What makes the fast path safe: the owner pops only while head < lw, so objects in
 * [max(lw, head), empty) cannot be reached without the slow path, which waits while the
 * collector holds the state.  The collector takes objects only from that range, at its
 * bottom (the oldest objects), and moves empty down.
 *
 * Memory orders (C11).  The objects the collector takes, and the program's writes to
 * them before it freed them, were written by the owner before some store of head:
 * every store of head is a release, and the collector's load of head an acquire, so
 * everything the owner did before the head it reads happens before what the collector
 * does with the objects (and so before their next owner's writes, through the bin
 * lock).  Every slot the collector takes, [max(lw, head + 1), empty), was last written
 * before the head the collector reads was stored: the owner writes only the slot below
 * its head, and cannot move its head above lw (below).  The slots themselves are plain
 * memory: owner and collector never access one at the same time.  lw, full and empty
 * are relaxed atomics: they bound what each side may touch and publish no data.
 *
 * To measure "not touched since the last pass" the collector lowers lw to head at the
 * end of each pass.  An owner that loaded the old lw an instant before may still
 * complete one pop past the new lw, however long it is preempted in between: that pop
 * takes the object at head (the head it loaded, which stays the published head until it
 * stores head + 1).  So the range the collector takes from starts at max(lw, head + 1):
 * the object at head is never taken, and at most one object per class stays with an
 * idle thread.  Every later pop of the owner must load the new lw.  The collector
 * makes sure of it with membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) after lowering,
 * followed by a seq_cst fence: when it returns, every thread of the process has
 * executed a full memory barrier (the kernel's guarantee: each running thread is
 * interrupted to run one, a thread not running passes one on its next context switch),
 * which orders the owner's later loads of lw after the new value, as a seq_cst fence
 * in the owner would.  Without membarrier (old kernels, some sandboxes: counted in the
 * statistics) nothing in C11 bounds how long a relaxed store takes to become visible:
 * the standard asks only that it be "within a reasonable amount of time"
 * ([atomics.order]), and the collector waits a whole pass interval (a millisecond at
 * least) before it takes anything below the lw it lowered.
 *
 * Groups: a cache the collector has emptied while its owner was idle is parked
 * (mlc_tcache_park, under the registry lock and the state word): moved to a second list
 * the passes do not visit, with full raised to head in every class, so that the owner's
 * next push (like its next pop, stopped by lw) goes to the slow path, whose claim of the
 * state word unparks it (mlc_tcache_unpark, from mlc_tcache_owner_enter): back on the
 * live list, and full lowered to the start of each class's region again.  Raising full
 * is safe against a push in flight with the old full: that push writes a slot inside the
 * region and at most one object per class enters a parked cache unseen.  A pass
 * therefore costs in proportion to the caches that may have something to return, not to
 * the threads.
 *
 * A thread that exits during a pass: the collector holds the registry lock for the whole
 * pass, and an exiting thread unregisters (under that lock) before its cache is
 * recycled, so the collector never sees a cache disappear under it.
 *
 * When the thread exists.  A thread of the allocator's own is visible to the program:
 * glibc ends a process when its last thread ends (a collector alive kept a process
 * whose threads had all called pthread_exit alive forever, and, as every signal is
 * blocked in it, unkillable but by SIGKILL), and the kernel refuses unshare of a user
 * namespace and setns into a user or mount namespace to a multithreaded process.  So
 * the collector lives only while it has work (mlc_gc_state: IDLE, STARTING, RUNNING):
 *  - it starts at the end of an allocation's slow path (mlc_gc_maybe_start) once the
 *    process has lived one interval or mapped MLC_GC_EAGER_BYTES: a command that ends
 *    within its first interval never pays for a thread (its creation, and the exit of a
 *    two-thread process, cost ~0.7 ms of wall time here).  Never from free(): glibc
 *    calls free while holding its stack-cache lock, which pthread_create takes.  For the
 *    same reason the thread is detached and never joined;
 *  - it retires when a pass leaves nothing to do (every cache parked, nothing to purge),
 *    and when no thread has a cache at all (the program's threads have ended; a cache's
 *    owner wakes it when the last cache goes): then it first gives everything back,
 *    regardless of decay.  Retiring moves the state to IDLE first and then looks for
 *    work again under the locks that guard it (mlc_gc_retire), so work made meanwhile
 *    by an allocation is never left without a collector;
 *  - unshare() and setns() are interposed: they raise mlc_gc_paused, wake the collector
 *    and wait until it has retired and the kernel no longer lists its thread
 *    (tgkill(tid, 0) fails with ESRCH), make the system call, and start it again if it
 *    ran.  Calls made through syscall() are not seen;
 *  - capset() and prctl()'s capability requests are interposed the same way, so that
 *    no collector keeps capabilities the program dropped (and before each pass the
 *    collector drops those the main thread no longer has); prctl()'s
 *    PR_SET_NO_NEW_PRIVS and PR_SET_SECCOMP stop it for good (mlc_gc_sandboxed, above
 *    prctl()).
 *
 * The thread glibc does not count.  glibc turns its single-thread fast paths off for
 * good at the first pthread_create: stdio's stream locks, the atomics of pthread
 * mutexes and of glibc's internal locks, libstdc++'s shared_ptr counts (all through
 * __libc_single_threaded and _IO_enable_locks).  A pthread collector made every
 * single-threaded program that lived an interval pay them: git log -p 4.6% slower than
 * with gc:false, sqlite3's mutexes 0.9% -> 2.9% of the samples (session 26).  So where
 * it can (MLC_BARE_THREAD: glibc on x86-64, arm64, ppc64el, s390x; no sanitizer), the collector is a bare
 * thread (mlc_os_bare_spawn): made with clone() as glibc makes its threads, but without
 * telling glibc, on a stack, thread pointer and zero-filled thread-local storage of its
 * own.  glibc never runs anything on it (no exit() when the program's last thread
 * ends: glibc's own count ends the process then; no cancellation, no setxid signal),
 * and it calls into glibc only for system call wrappers and clock_gettime, which take
 * no lock (and abort(), which ends the process): glibc's locks, taken without atomics
 * in a process glibc believes single-threaded, are never contended by it.  melloc's
 * own locks are futexes with atomics whatever glibc believes.
 *   What glibc would do for it is setuid() and its family: on Linux credentials belong
 * to each thread, and glibc changes every thread it knows (SIGSETXID).  A bare thread
 * would keep the old ones: a thread with root's credentials in a process that gave
 * root up, for anyone who takes over the process to use.  So the collector is a bare
 * thread only where no thread can ever change its credentials (mlc_os_creds_fixed: one
 * uid, not root, one gid, no capability, not a set-id program), checked at each start:
 * root, a set-id program, a process with a capability get a pthread as before
 * (test_process's test_setuid_reaches_collector), and so does a process that gained
 * capabilities in a new user namespace (unshare() below stops the collector, and the
 * next start checks again).  Measured with the bare thread (as an ordinary user, 11
 * interleaved runs): git log -p 4.8% faster than with a pthread collector (140.6 ->
 * 133.8 ms), the same as with gc:false (134.1).
 * Either kind blocks every signal, so that the program's handlers run on the program's
 * threads; with the collector ending with the program's last thread, no signal is left
 * pending for it alone.
 */
#include "internal.h"

#include "arena.h"
#include "bin.h"
#include "chunk.h"
#include "gc.h"
#include "harden.h"
#include "init.h"
#include "os.h"
#include "sizeclass.h"
#include "tcache.h"

#include <pthread.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static mlc_mutex_t mlc_gc_lock = MLC_MUTEX_INITIALIZER(MLC_RANK_GC); /* one pass at a time */
static int mlc_gc_membarrier;  /* Atomic: 1 usable, -1 unusable, 0 not tried */

/* Counters.  Written holding mlc_gc_lock, read without it (statistics, tests): relaxed
   atomics, each read on its own (a reader may see one pass's counts half updated). */
uint64_t mlc_gc_passes;
uint64_t mlc_gc_objects_returned;
uint64_t mlc_gc_bytes_purged;
uint64_t mlc_gc_caches_visited; /* in the last pass */

/* ---- The collector's side of the state word (the owner's is in tcache.c) ---- */

static bool mlc_gc_claim(mlc_tcache_t *tc) {
  int s = MLC_TC_FREE;
  return __atomic_compare_exchange_n(&tc->state, &s, MLC_TC_COLLECTOR, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED);
}

static void mlc_gc_release(mlc_tcache_t *tc) {
  if (__atomic_exchange_n(&tc->state, MLC_TC_FREE, __ATOMIC_RELEASE) & MLC_TC_WAITING)
    mlc_os_futex_wake(&tc->state, 1);
}

/* ---- A pass ---- */

static void mlc_gc_fence(void) {
  int m = __atomic_load_n(&mlc_gc_membarrier, __ATOMIC_RELAXED);
  if (m == 0) {
    m = mlc_os_membarrier_register() ? 1 : -1;
    __atomic_store_n(&mlc_gc_membarrier, m, __ATOMIC_RELAXED);
  }
  /* A kernel that stops accepting it (a seccomp filter installed later): fall back to
     the pass interval as above.  The OS layer counts each refusal. */
  if (m == 1 && !mlc_os_membarrier()) __atomic_store_n(&mlc_gc_membarrier, -1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Whether tc's owner used it since the last pass that claimed it: a head moved, or a
   slow path ran (that pass left every lw at head, so the first pop after it is a slow
   path, even where pops and pushes leave head where it was).  Reads only.  Caller holds
   mlc_gc_lock. */
static bool mlc_gc_cache_moved(mlc_tcache_t *tc) {
  if (mlc_load(&tc->slow_events) != tc->gc_seen_events) return true;
  for (unsigned c = 1; c < MLC_TCLASSES; c++)
    if (mlc_load_acq(mlc_tc_head(tc, c)) != tc->gc_seen_head[c]) return true;
  return false;
}

/* Collects what it may from one claimed cache.  everything: a full collection.  *busy
   is set when the owner used it since the last pass. */
static size_t mlc_gc_cache(mlc_tcache_t *tc, bool everything, bool *busy) {
  bool idle = !mlc_gc_cache_moved(tc);
  if (!idle) *busy = true;
  tc->gc_idle_passes = idle ? tc->gc_idle_passes + 1 : 0;
  size_t returned = 0;
  for (unsigned c = 1; c < MLC_TCLASSES; c++) {
    void **head = mlc_load_acq(mlc_tc_head(tc, c));
    void **lw = mlc_load(mlc_tc_lw(tc, c)), **empty = tc->empty[c];
    /* head + 1: the owner may be stalled inside one pop that loaded an old lw (see the
       protocol above); the object at head is never taken. */
    void **lo = head + 1 > lw ? head + 1 : lw;
    size_t untouched = lo < empty ? (size_t)(empty - lo) : 0;
    size_t k = everything ? untouched
               : idle    ? mlc_gc_piece(untouched, tc->gc_idle_passes)
                         : untouched / 2;
    if (k) {
      mlc_tcache_return(empty - k, (unsigned)k, c);
      empty -= k;
      mlc_store(&tc->empty[c], empty);
      returned += k;
      /* An idle cache refills in smaller batches when its owner comes back. */
      if (idle && tc->fill[c] > 2) tc->fill[c] /= 2;
    }
    /* Measure from here until the next pass (see the protocol above). */
    mlc_store(mlc_tc_lw(tc, c), head < empty ? head : empty);
    tc->gc_seen_head[c] = head;
  }
  tc->gc_seen_events = mlc_load(&tc->slow_events);
  /* Idle and nothing left to take: park it (no more visits until the owner is back). */
  if (idle || everything) {
    bool left = false;
    for (unsigned c = 1; c < MLC_TCLASSES && !left; c++)
      left = tc->empty[c] > mlc_load(mlc_tc_head(tc, c)) + 1;
    if (!left) mlc_tcache_park(tc);
  }
  return returned;
}

/* What the last pass saw, for the probe below.  Written under mlc_gc_lock, read by the
   collector's loop without it. */
static bool mlc_gc_last_busy;     /* Atomic: a thread used its cache before it */
static uint64_t mlc_gc_last_pass; /* Atomic: when it ran, ns */
static unsigned long mlc_gc_seen_exits; /* Protected by mlc_gc_lock: threads gone by then */

/* Purges, in every arena and the huge cache, what stayed free for decay ns.  Caller
   holds mlc_gc_lock. */
static size_t mlc_gc_purge_all(uint64_t now, uint64_t decay) {
  size_t purged = 0;
  for (unsigned i = 0; i < mlc_narenas; i++) purged += mlc_arena_purge(mlc_arenas[i], now, decay);
  return purged + mlc_arena_spares_purge(now, decay) + mlc_huge_purge(now, decay);
}

size_t mlc_gc_pass_at(uint64_t now, bool everything) {
  size_t returned = 0, purged = 0;
  mlc_mutex_lock(&mlc_gc_lock);
  uint64_t visited = 0;
  bool busy = false; /* a thread used its cache since the last pass */
  mlc_tcache_registry_lock();
  mlc_tcache_t *next;
  for (mlc_tcache_t *tc = mlc_tcache_registry_first(); tc; tc = next) {
    next = tc->next; /* parking moves tc to the other list */
    visited++;
    if (!mlc_gc_claim(tc)) { /* its owner is in a slow path right now */
      busy = true;
      continue;
    }
    returned += mlc_gc_cache(tc, everything, &busy);
    mlc_gc_release(tc);
  }
  /* A thread that exited since gave its cache back: that was work too. */
  unsigned long exits = mlc_tcache_registry_exits();
  if (exits != mlc_gc_seen_exits) busy = true;
  mlc_gc_seen_exits = exits;
  mlc_tcache_registry_unlock();
  mlc_store(&mlc_gc_caches_visited, visited);
  /* The hardened library's quarantines: gates closed before the fence, idle ones
     drained after it (harden.c). */
  bool quarantines = mlc_config_hardened && mlc_load(&mlc_gc_membarrier) >= 0 &&
                     mlc_harden_gc_close(everything);
  mlc_gc_fence();
  if (quarantines)
    returned += mlc_harden_gc_drain(everything, mlc_load(&mlc_gc_membarrier) == 1);
  /* A quiet process: no thread used its cache for a whole interval (parked caches were
     not even visited).  It waits (for a request, a timer, input), and pages freed an
     interval ago or more go back now rather than after decay_ms: decay spares a running
     program page faults on memory it reuses in a moment, which a waiting one does not
     need (bench's bursts: the mean RSS of 3 s quiet spells 111 -> 91 MiB; with the probe
     a quarter interval after a busy pass, mlc_gc_probe_at, 25 MiB).  What was
     freed less than an interval ago (a huge block or a page run of a thread that does
     nothing else, the pieces this pass took from caches) waits for the next pass.
     gc_quiet:false keeps decay_ms in every pass. */
  uint64_t decay = everything ? 0 : mlc_load(&mlc_opt.decay_ms) * 1000000u;
  uint64_t interval = mlc_load(&mlc_opt.gc_interval_ms) * 1000000u;
  if (!busy && decay > interval && mlc_load(&mlc_opt.gc_quiet)) decay = interval;
  purged = mlc_gc_purge_all(now, decay);
  mlc_store(&mlc_gc_last_busy, busy);
  mlc_store(&mlc_gc_last_pass, now);
  /* One writer (this lock's holder), readers without it: relaxed stores, no RMW. */
  mlc_store(&mlc_gc_passes, mlc_load(&mlc_gc_passes) + 1);
  mlc_store(&mlc_gc_objects_returned, mlc_load(&mlc_gc_objects_returned) + returned);
  mlc_store(&mlc_gc_bytes_purged, mlc_load(&mlc_gc_bytes_purged) + purged);
  mlc_mutex_unlock(&mlc_gc_lock);
  if (returned || purged)
    mlc_trace("gc: pass returned %zu cached objects, purged %zu bytes", returned, purged);
  return purged;
}

/* A quarter interval after a pass that found the process busy: when no thread used its
   cache since that pass (and none is in a slow path), the work had ended before it, and
   what was freed before it goes back now -- the quiet rule of mlc_gc_pass_at a quarter
   interval after the pass rather than one interval (bench's bursts: the memory of a
   burst goes back 0.25-1.25 s after its end instead of 1-2 s, and all of it: the probe
   makes a full collection, caches emptied and every free page purged).  Each cache is
   claimed for the look, as a pass claims it, and one held by its owner counts as used;
   a thread that calls the allocator in that quarter interval keeps decay_ms, and so
   does a process with gc_quiet:false, set before or while the collector waits for
   the probe.  Returns the bytes purged. */
size_t mlc_gc_probe_at(uint64_t now) {
  size_t purged = 0;
  bool quiet = false;
  mlc_mutex_lock(&mlc_gc_lock);
  uint64_t pass = mlc_load(&mlc_gc_last_pass);
  uint64_t decay = mlc_load(&mlc_opt.decay_ms) * 1000000u;
  if (mlc_load(&mlc_opt.gc_quiet) && mlc_load(&mlc_gc_last_busy) && now > pass &&
      decay > now - pass) {
    bool used = false;
    mlc_tcache_registry_lock();
    for (mlc_tcache_t *tc = mlc_tcache_registry_first(); tc && !used; tc = tc->next) {
      /* Claimed as a pass claims it: its owner may be leaving (its thread's exit resets
         the stacks this reads). */
      if (!mlc_gc_claim(tc)) {
        used = true;
        break;
      }
      used = mlc_gc_cache_moved(tc);
      mlc_gc_release(tc);
    }
    mlc_tcache_registry_unlock();
    quiet = !used;
  }
  mlc_mutex_unlock(&mlc_gc_lock);
  if (quiet) purged = mlc_gc_pass_at(now, true);
  if (purged) mlc_trace("gc: quiet probe purged %zu bytes", purged);
  return purged;
}

size_t mlc_gc_collect_now(void) {
  if (!mlc_boot()) return 0;
  mlc_tcache_flush_self();
  return mlc_gc_pass_at(mlc_os_now_ns(), true);
}

static int mlc_gc_wakeword; /* Atomic: bumped to cut the collector's sleep short */

void mlc_gc_wake(void) {
  __atomic_fetch_add(&mlc_gc_wakeword, 1, __ATOMIC_RELEASE);
  mlc_os_futex_wake(&mlc_gc_wakeword, 1);
}

/* ---- The collector thread's life (see "When the thread exists" above) ---- */

enum { MLC_GC_IDLE = 0, MLC_GC_STARTING = 1, MLC_GC_RUNNING = 2 };
static int mlc_gc_state;  /* Atomic: MLC_GC_* */
static int mlc_gc_paused; /* Atomic: calls the collector steps aside for, in progress */
static int mlc_gc_sandboxed; /* Atomic: the process restricts its system calls: no collector
                                starts again, in it or in its fork children */
/* Set on the collector's own thread (never joined: see mlc_gc_maybe_start).  Thread-
   local, not a saved pthread_t: glibc gives a new thread the stack, and so the
   pthread_t, of one that ended (its stack cache; in a fork child, every other thread's
   stack), and a program thread that inherited a retired collector's pthread_t took
   itself for the collector and never started one (found under qemu: an idle thread's
   96 MiB never given back, 0 passes). */
static MLC_TLS bool mlc_gc_self;
static long mlc_gc_tid; /* Atomic: its kernel thread id, written by the thread; 0 once
                           mlc_gc_pause has seen it gone */
static uint64_t mlc_gc_refused_at; /* Atomic: when the kernel last refused a collector
                                      thread (coarse ns), 0 when it did not */
static uint64_t mlc_gc_epoch; /* Atomic: when the process started (or forked), ns,
                              coarse: the clock it is compared with */

/* The process maps this much before it has lived an interval: the collector starts. */
#define MLC_GC_EAGER_BYTES ((size_t)8 << 20)

void mlc_gc_boot(void) { __atomic_store_n(&mlc_gc_epoch, mlc_os_coarse_now_ns(), __ATOMIC_RELAXED); }

/* Anything a pass could still give back: a cache that is not parked (its owner is
   active, or it holds objects), dirty pages or spare chunks, cached huge mappings. */
static bool mlc_gc_has_work(void) {
  mlc_tcache_registry_lock();
  bool work = mlc_tcache_registry_first() != NULL;
  mlc_tcache_registry_unlock();
  /* Quarantines the collector can drain (not without membarrier: see harden.c). */
  if (!work && mlc_config_hardened && mlc_load(&mlc_gc_membarrier) >= 0)
    work = mlc_harden_gc_has_work();
  for (unsigned i = 0; i < mlc_narenas && !work; i++) work = mlc_arena_purgeable(mlc_arenas[i]);
  if (!work) {
    size_t live, held, cached;
    mlc_huge_stats(&live, &held, &cached);
    work = cached != 0;
  }
  return work;
}

/* The collector stops: false when it must go on after all.  recheck: go on if work
   appeared meanwhile.  The state goes to IDLE before the check, and every check takes
   the lock under which the work it looks for is made; an allocation's slow path calls
   mlc_gc_maybe_start() after releasing that lock.  So either the check sees the work
   or that call sees IDLE and starts a new collector. */
static bool mlc_gc_retire(bool recheck) {
  int s = MLC_GC_RUNNING;
  /* STARTING: the creator has not published the thread yet; try again later. */
  if (!__atomic_compare_exchange_n(&mlc_gc_state, &s, MLC_GC_IDLE, false, __ATOMIC_SEQ_CST,
                                   __ATOMIC_RELAXED))
    return false;
  if (!recheck || !mlc_gc_has_work()) return true;
  s = MLC_GC_IDLE;
  return !__atomic_compare_exchange_n(&mlc_gc_state, &s, MLC_GC_RUNNING, false, __ATOMIC_SEQ_CST,
                                      __ATOMIC_RELAXED);
}

static bool mlc_gc_stop_wanted(void) {
  return __atomic_load_n(&mlc_gc_paused, __ATOMIC_ACQUIRE) != 0 || !mlc_load(&mlc_opt.gc);
}

static void *mlc_gc_main(void *arg) {
  (void)arg;
  mlc_gc_self = true;
  __atomic_store_n(&mlc_gc_tid, mlc_os_gettid(), __ATOMIC_RELEASE);
  mlc_os_thread_name("melloc-gc");
  /* A collector starts when work appears (a new process, or allocations after it
     retired): its first pass comes a quarter interval after, so that the probe after
     it finds a burst of work that ended meanwhile (mlc_gc_probe_at). */
  bool first = true;
  for (;;) {
    uint64_t ms = mlc_load(&mlc_opt.gc_interval_ms);
    uint64_t ns = first ? ms * 250000u : ms * 1000000u;
    /* After a busy pass, look for a quiet process a quarter of the way (mlc_gc_probe_at). */
    uint64_t probe = !first && mlc_load(&mlc_gc_last_busy) && mlc_load(&mlc_opt.gc_quiet) ? ms * 250000u : 0;
    first = false;
    uint64_t start = mlc_os_now_ns();
    int w = __atomic_load_n(&mlc_gc_wakeword, __ATOMIC_ACQUIRE);
    /* Sleep for the interval, unless woken (the interval changed, the last cache went
       away, or unshare() waits for this thread to go), probing on the way. */
    for (;;) {
      uint64_t elapsed = mlc_os_now_ns() - start;
      if (elapsed >= ns || __atomic_load_n(&mlc_gc_wakeword, __ATOMIC_ACQUIRE) != w ||
          mlc_gc_stop_wanted())
        break;
      if (probe && elapsed >= probe) {
        mlc_gc_probe_at(mlc_os_now_ns());
        probe = 0;
        continue;
      }
      mlc_os_futex_wait_ns(&mlc_gc_wakeword, w, (probe ? probe : ns) - elapsed);
    }
    if (mlc_gc_stop_wanted()) {
      if (mlc_gc_retire(false)) break;
      mlc_os_sleep_ns(100000); /* the creator is publishing this thread */
      continue;
    }
    /* A program that drops capabilities with a system call melloc does not see (libcap
       2.43 and later call syscall(SYS_capset) directly): its main thread's, once a pass,
       bound the collector's (capset() and prctl() themselves: below). */
    mlc_os_caps_follow_main();
    bool no_caches = mlc_tcache_registry_empty();
    /* No thread holds a cache: the program's threads have exited (or never allocate).
       Give everything back now rather than after the decay, and go, so that a process
       whose last thread ends with pthread_exit ends too. */
    mlc_gc_pass_at(mlc_os_now_ns(), no_caches);
    /* Nothing left to give back (every cache parked, no dirty page): go; the first slow
       path that makes work again starts a collector. */
    if (!mlc_gc_has_work() && mlc_gc_retire(true)) break;
  }
  mlc_trace("gc: collector stopped");
  return NULL;
}

/* The bare thread starts with its thread-local variables zero-filled. */
static int mlc_gc_bare_main(void *arg) {
  mlc_tsd_fresh();
  mlc_gc_main(arg);
  return 0;
}

/* Caller moved mlc_gc_state from IDLE to STARTING.  Creates the thread, or goes back to
   IDLE. */
static void mlc_gc_spawn(void) {
  /* The collector itself, allocating in the exit() that glibc runs on the last thread
     to end: no new collector for a process that is ending. */
  if (mlc_gc_self) {
    __atomic_store_n(&mlc_gc_state, MLC_GC_IDLE, __ATOMIC_RELEASE);
    return;
  }
  /* The collector never takes a signal meant for the program.  A bare thread where the
     platform and the process's credentials allow it ("The thread glibc does not count"
     above), else a pthread. */
  long tid;
  /* The thread-local variables its code uses lie between these: mlc_tsd is melloc's one
     initialised one (.tdata, placed apart from the .tbss variables in a static program,
     whose own TLS may lie between them). */
  const char *tsd = (const char *)&mlc_tsd, *self = (const char *)&mlc_gc_self;
  const void *tls_lo = tsd < self ? tsd : self;
  const void *tls_hi = tsd < self ? self + sizeof(mlc_gc_self) : tsd + sizeof(mlc_tsd);
  bool ok = mlc_os_creds_fixed() && mlc_os_bare_spawn(mlc_gc_bare_main, tls_lo, tls_hi, &tid);
  /* The default stack, as the program's own threads get: when the program's last thread
     ends while a pthread collector runs, glibc may run exit() -- the program's atexit
     handlers and destructors -- on the collector (64 KiB crashed a 128 KiB handler).
     Untouched stack pages cost address space, not memory. */
  pthread_t t;
  bool bare = ok;
  if (!ok) ok = mlc_os_thread_spawn(mlc_gc_main, 0, &t);
  if (ok) {
    mlc_trace("gc: collector started (%s), interval %u ms, decay %u ms",
              bare ? "bare thread" : "pthread", (unsigned)mlc_opt.gc_interval_ms,
              (unsigned)mlc_opt.decay_ms);
  }
  __atomic_store_n(&mlc_gc_refused_at, ok ? 0 : mlc_os_coarse_now_ns(), __ATOMIC_RELAXED);
  __atomic_store_n(&mlc_gc_state, ok ? MLC_GC_RUNNING : MLC_GC_IDLE, __ATOMIC_RELEASE);
}

static void mlc_gc_start_if(bool now) {
  if (MLC_LIKELY(__atomic_load_n(&mlc_gc_state, __ATOMIC_RELAXED) != MLC_GC_IDLE)) return;
  if (!mlc_load(&mlc_opt.gc) || !mlc_opt.tcache ||
      __atomic_load_n(&mlc_gc_paused, __ATOMIC_RELAXED) ||
      __atomic_load_n(&mlc_gc_sandboxed, __ATOMIC_RELAXED))
    return;
  /* Short-lived processes never see the thread: it starts once the process has lived
     one interval, or has mapped enough that what it frees is worth a thread. */
  uint64_t interval = mlc_load(&mlc_opt.gc_interval_ms) * 1000000u;
  if (!now && mlc_chunk_mapped_total() <= MLC_GC_EAGER_BYTES &&
      mlc_os_coarse_now_ns() - __atomic_load_n(&mlc_gc_epoch, __ATOMIC_RELAXED) < interval)
    return;
  /* The kernel refused the last thread (RLIMIT_NPROC, a full pids cgroup, a filter that
     answers EPERM): ask again an interval later, not on every slow path. */
  uint64_t refused = __atomic_load_n(&mlc_gc_refused_at, __ATOMIC_RELAXED);
  if (!now && refused && mlc_os_coarse_now_ns() - refused < interval) return;
  int s = MLC_GC_IDLE;
  if (__atomic_compare_exchange_n(&mlc_gc_state, &s, MLC_GC_STARTING, false, __ATOMIC_ACQ_REL,
                                  __ATOMIC_RELAXED))
    mlc_gc_spawn();
}

void mlc_gc_maybe_start(void) { mlc_gc_start_if(false); }
void mlc_gc_start(void) { mlc_gc_start_if(true); }

bool mlc_gc_pause(void) {
  __atomic_fetch_add(&mlc_gc_paused, 1, __ATOMIC_SEQ_CST);
  bool was_running = false;
  /* Wait for the collector to retire, then take the thread's handle (STARTING). */
  for (unsigned i = 0;; i++) {
    int s = __atomic_load_n(&mlc_gc_state, __ATOMIC_ACQUIRE);
    if (s == MLC_GC_IDLE) {
      if (__atomic_compare_exchange_n(&mlc_gc_state, &s, MLC_GC_STARTING, false, __ATOMIC_ACQ_REL,
                                      __ATOMIC_RELAXED))
        break;
      continue;
    }
    was_running = true;
    if (i >= 20000) return true; /* ~2 s: something is wrong; let the call report it */
    mlc_gc_wake();
    mlc_os_sleep_ns(100000);
  }
  /* The thread has retired; it stops running a moment later, and the kernel removes it
     from the process a moment after that: the calls that follow count threads.  (A
     tid seen gone is forgotten, so a later pause never waits for a reused one.) */
  long tid = __atomic_exchange_n(&mlc_gc_tid, 0, __ATOMIC_ACQ_REL);
  for (unsigned i = 0; tid && i < 20000 && !mlc_os_thread_gone(tid); i++) mlc_os_sleep_ns(10000);
  __atomic_store_n(&mlc_gc_state, MLC_GC_IDLE, __ATOMIC_RELEASE);
  return was_running;
}

void mlc_gc_resume(bool restart) {
  __atomic_fetch_sub(&mlc_gc_paused, 1, __ATOMIC_SEQ_CST);
  if (restart) mlc_gc_start();
}

/* ---- Calls the collector steps aside for ---- */
#ifndef MELLOC_PREFIX_ONLY

/* Makes system call nr with the collector out of the way: it retires and the kernel no
   longer counts its thread, and a new one starts after the call (on the caller's
   thread, with the caller's credentials) if one ran.  errno is the call's. */
static int mlc_gc_aside(long nr, unsigned long a1, unsigned long a2, unsigned long a3,
                        unsigned long a4, unsigned long a5) {
  int saved = errno;
  bool restart = mlc_gc_pause();
  errno = saved;
  int r = (int)mlc_os_syscall(nr, a1, a2, a3, a4, a5);
  saved = errno;
  mlc_gc_resume(restart);
  errno = saved;
  return r;
}

/* unshare(CLONE_NEWUSER) and setns() into a user or mount namespace fail with EINVAL in
   a process with more than one thread (jemalloc interposes pthread_create for similar
   reasons). */
MLC_EXPORT int unshare(int flags) { return mlc_gc_aside(SYS_unshare, (unsigned)flags, 0, 0, 0, 0); }

MLC_EXPORT int setns(int fd, int nstype) {
  return mlc_gc_aside(SYS_setns, (unsigned long)(long)fd, (unsigned)nstype, 0, 0, 0);
}

/* Capabilities belong to each thread, and neither glibc nor the kernel changes another
   thread's: a program that drops them with the collector running (capset(); prctl()'s
   PR_CAPBSET_DROP, PR_CAP_AMBIENT and PR_SET_SECUREBITS) would leave a thread that
   keeps them.  The collector made after the call has the caller's.  libcap 2.43 and
   later drop them through syscall(), which is not seen: the collector takes the main
   thread's capabilities as a bound before each pass instead (mlc_gc_main). */
int capset(void *header, void *data);
MLC_EXPORT int capset(void *header, void *data) {
  return mlc_gc_aside(SYS_capset, (uintptr_t)header, (uintptr_t)data, 0, 0, 0);
}

/* prctl(PR_SET_NO_NEW_PRIVS) and prctl(PR_SET_SECCOMP) prepare or install a system call
   filter, which a process writes for the calls its own code makes: OpenSSH's pre-
   authentication child kills itself (SECCOMP_RET_KILL) on any call but some twenty, and
   a collector started after it -- getresuid(), clone(), membarrier() -- killed it (a
   login that failed, where glibc's malloc makes none of those calls).  And a collector
   started before the filter would run unfiltered in a sandboxed process.  So the
   collector stops for good first: it retires, and none starts again in the process or
   in its fork children (which inherit the filter); membarrier is not called again
   (melloc_collect(), a failing mapping's full collection).  Calls made through syscall()
   (libseccomp's seccomp_load() makes one after its prctl(PR_SET_NO_NEW_PRIVS), on by
   default) are not seen. */
MLC_EXPORT int prctl(int option, ...) {
  va_list ap;
  va_start(ap, option);
  unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
  unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
  va_end(ap);
  if (option == PR_SET_NO_NEW_PRIVS || option == PR_SET_SECCOMP) {
    int saved = errno;
    __atomic_store_n(&mlc_gc_sandboxed, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&mlc_gc_membarrier, -1, __ATOMIC_RELAXED);
    mlc_gc_pause(); /* never resumed */
    errno = saved;
  } else if (option == PR_CAPBSET_DROP || option == PR_SET_SECUREBITS ||
             (option == PR_CAP_AMBIENT && a2 != PR_CAP_AMBIENT_IS_SET)) {
    return mlc_gc_aside(SYS_prctl, (unsigned)option, a2, a3, a4, a5);
  }
  return (int)mlc_os_syscall(SYS_prctl, (unsigned)option, a2, a3, a4, a5);
}
#endif /* MELLOC_PREFIX_ONLY */

void mlc_gc_prefork(void) { mlc_mutex_lock(&mlc_gc_lock); }
void mlc_gc_postfork_parent(void) { mlc_mutex_unlock(&mlc_gc_lock); }
void mlc_gc_postfork_child(void) {
  mlc_mutex_reset(&mlc_gc_lock);
  /* No collector exists in the child (its thread, if any, was not copied): the child
     starts its own on a slow path once it has lived an interval, like a new process. */
  __atomic_store_n(&mlc_gc_state, MLC_GC_IDLE, __ATOMIC_RELAXED);
  __atomic_store_n(&mlc_gc_paused, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&mlc_gc_tid, 0, __ATOMIC_RELAXED);
  mlc_os_bare_postfork_child();
  mlc_gc_boot();
}
