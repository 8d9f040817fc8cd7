/* SPDX-License-Identifier: MIT */
/*
 * Thread caches.  A thread's frees go to its cache and its small allocations come from
 * it, with no lock and no atomic read-modify-write; the cache refills from and flushes
 * to the bins in batches.  A thread starts with a small batch size that doubles with
 * use.  The collector (gc.c) may take objects from a cache the owner is not using; the
 * protocol is described at the top of gc.c.
 */
#ifndef MLC_TCACHE_H
#define MLC_TCACHE_H

#include "internal.h"

#include "sizeclass.h"
#include "types.h"

enum {
  MLC_TSD_NEW = 0,      /* no cache yet: the next slow path creates one */
  MLC_TSD_CACHED = 1,   /* tc is the thread's own cache */
  MLC_TSD_CREATING = 2, /* creating the cache: allocations meanwhile go to the bins */
  MLC_TSD_UNCACHED = 3, /* the thread is exiting, or caches are off: bins directly */
};

/* Who holds a cache's slow-path fields (mlc_tcache_t.state; the protocol is at the top
   of gc.c).  WAITING is added to COLLECTOR while the owner sleeps on the word. */
enum mlc_tcache_state_e {
  MLC_TC_FREE = 0,
  MLC_TC_OWNER = 1,
  MLC_TC_COLLECTOR = 2,
  MLC_TC_WAITING = 4,
};

/* Per-thread data: all of melloc's thread-local storage (initial-exec, kept tiny). */
typedef struct mlc_tsd_s {
  mlc_tbins_t bins;   /* the fast paths' view of the cache; all at mlc_dummy_slot when
                         there is no cache, so both fast paths fall to the slow path */
  mlc_tcache_t *tc;   /* NULL when there is no cache */
  mlc_arena_t *arena; /* assigned on the first allocation */
  int state;
  unsigned direct_frees; /* frees before the cache exists (see mlc_tcache_get) */
  unsigned grow_credit;  /* realloc's early moves to a huge mapping (alloc.c) */
} mlc_tsd_t;

extern MLC_TLS mlc_tsd_t mlc_tsd;
/* Sets the calling thread's mlc_tsd to its initial value: for a thread whose TLS starts
   zero-filled (gc.c's bare collector). */
void mlc_tsd_fresh(void);
extern void *mlc_dummy_slot[2];

/* The free key: the word at byte 8 of every free small object or
   cached large block holds it, from its free until the allocation that hands it out
   again, which clears it (glibc's tcache does the same).  A free that finds it takes
   the slow path, which reports a double free if the object is indeed free (see
   mlc_block_check): a live object holds the key only if the program stored this value
   there.  A constant that fits an instruction's 32-bit immediate: checking it costs no
   load.  (Its upper half is all ones: not a pointer, not a small integer, a NaN as a
   double.) */
#define MLC_FREE_KEY ((uintptr_t)(intptr_t)-0x74520ff3) /* ...8badf00d */
#define MLC_FREE_KEY_AT(p) ((uintptr_t *)((char *)(p) + 8))
/* Byte 8, not word 1: on 32-bit targets too the key stays out of the first 8 bytes,
   which the hardened library's keyed tag fills (harden.c). */
MLC_INLINE bool mlc_free_key_is_set(const void *p) {
  return *MLC_FREE_KEY_AT((void *)(uintptr_t)p) == MLC_FREE_KEY;
}
MLC_INLINE void mlc_free_key_set(void *p) { *MLC_FREE_KEY_AT(p) = MLC_FREE_KEY; }
MLC_INLINE void mlc_free_key_clear(void *p) { *MLC_FREE_KEY_AT(p) = 0; }

/* The pop's slow path: cls in 1..MLC_NCLASSES-1 (0 for malloc(0) is treated as 1).
   Returns an object with its free key cleared, or NULL with errno ENOMEM.  Any thread,
   no lock. */
MLC_NOINLINE void *mlc_tcache_alloc_slow(unsigned cls);
/* Frees the live small object p of class cls (checked by free.c) where the push could
   not: the cache's slow path, or its bin.  Sets the free key.  Preserves errno. */
void mlc_tcache_free_small(void *p, unsigned cls);
/* Whether p sits in a thread cache, as a free object of cache class tcls: the calling
   thread's, then every other registered one (read without their owners' consent: a
   cache that moves p at that moment may hide it).  Takes the registry lock. */
bool mlc_tcache_holds(const void *p, unsigned tcls);

/* The fast paths' words of class cls: head[cls], then lw, full and magic, each array
   MLC_NCLASSES words above the one before. */
_Static_assert(offsetof(mlc_tsd_t, bins) == 0 && offsetof(mlc_tbins_t, head) == 0 &&
                   offsetof(mlc_tbins_t, lw) == sizeof(void **) * MLC_NCLASSES &&
                   offsetof(mlc_tbins_t, full) == 2 * sizeof(void **) * MLC_NCLASSES &&
                   offsetof(mlc_tbins_t, magic) == 3 * sizeof(void **) * MLC_NCLASSES,
               "head, lw, full and magic are consecutive arrays at the start of mlc_tsd");
#define MLC_TB_LW_OFF (sizeof(void **) * MLC_NCLASSES)
#define MLC_TB_FULL_OFF (2 * sizeof(void **) * MLC_NCLASSES)
#define MLC_TB_MAGIC_OFF (3 * sizeof(void **) * MLC_NCLASSES)

/* Cache class c's head, lw and full in tc, for the slow paths and the collector: the
   size classes' in the owner's thread-local storage (tc->b), the large classes' in tc
   itself (tc->lb). */
MLC_INLINE void ***mlc_tc_head(mlc_tcache_t *tc, size_t c) {
  return c < MLC_NCLASSES ? &tc->b->head[c] : &tc->lb.head[c - MLC_NCLASSES];
}
MLC_INLINE void ***mlc_tc_lw(mlc_tcache_t *tc, size_t c) {
  return c < MLC_NCLASSES ? &tc->b->lw[c] : &tc->lb.lw[c - MLC_NCLASSES];
}
MLC_INLINE void ***mlc_tc_full(mlc_tcache_t *tc, size_t c) {
  return c < MLC_NCLASSES ? &tc->b->full[c] : &tc->lb.full[c - MLC_NCLASSES];
}

/* How the fast paths reach those words.  In C they are atomics (gc.c: memory orders),
   and gcc folds no atomic load into an operand: it computes the thread-local address
   (a GOT load, add %fs:0, lea) and loads each word into a register of its own.  On
   x86-64 (but not under ThreadSanitizer, which must see every access) they are read
   and written through %fs directly, compared as memory operands: the same accesses --
   relaxed loads are x86's plain mov, a release store a plain mov after a compiler
   barrier (x86 keeps stores in order) -- in three instructions fewer on each fast
   path, which pay for free's checks.  mlc_tb_* take the base mlc_tb_base returns and a
   class. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_THREAD__)
#define MLC_TB_ASM 1
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#undef MLC_TB_ASM
#endif
#endif
#endif
#ifndef MLC_TB_ASM
#define MLC_TB_ASM 0
#endif

#if MLC_TB_ASM
/* mlc_tsd's offset from the thread pointer (initial-exec). */
typedef uintptr_t mlc_tb_base_t;
MLC_INLINE mlc_tb_base_t mlc_tb_base(void) {
  uintptr_t off;
  __asm__("movq mlc_tsd@gottpoff(%%rip), %0" : "=r"(off));
  return off;
}
/* The offset of class cls's head.  Every access below is %fs plus one register, no
   index: an indexed address through a segment costs the loads on the pair's critical
   path (head, stored by one call and loaded by the next) a cycle each --
   fastpath-malloc64 45% slower than with the address computed first. */
MLC_INLINE uintptr_t mlc_tb_row(mlc_tb_base_t b, size_t cls) {
  uintptr_t r;
  __asm__("leaq (%1,%2,8), %0" : "=r"(r) : "r"(b), "r"(cls));
  return r;
}
MLC_INLINE void **mlc_tb_head(mlc_tb_base_t b, size_t cls) {
  void **h;
  __asm__ volatile("movq %%fs:(%1), %0" : "=r"(h) : "r"(mlc_tb_row(b, cls)));
  return h;
}
MLC_INLINE bool mlc_tb_at_lw(mlc_tb_base_t b, size_t cls, void **h) {
  bool r;
  __asm__ volatile("cmpq %%fs:%c3(%2), %1"
                   : "=@ccae"(r)
                   : "r"(h), "r"(mlc_tb_row(b, cls)), "i"(MLC_TB_LW_OFF));
  return r;
}
MLC_INLINE bool mlc_tb_at_full(mlc_tb_base_t b, size_t cls, void **h) {
  bool r;
  __asm__ volatile("cmpq %%fs:%c3(%2), %1"
                   : "=@ccbe"(r)
                   : "r"(h), "r"(mlc_tb_row(b, cls)), "i"(MLC_TB_FULL_OFF));
  return r;
}
/* Whether the thread has a cache of its own (mlc_tsd.state CACHED), and that cache
   (mlc_tsd.tc): through the same base, without a second GOT load. */
MLC_INLINE bool mlc_tb_cached(mlc_tb_base_t b) {
  bool r;
  __asm__ volatile("cmpl %3, %%fs:%c1(%2)"
                   : "=@cce"(r)
                   : "i"(offsetof(mlc_tsd_t, state)), "r"(b), "i"(MLC_TSD_CACHED));
  return r;
}
MLC_INLINE mlc_tcache_t *mlc_tb_tc(mlc_tb_base_t b) {
  mlc_tcache_t *tc;
  __asm__ volatile("movq %%fs:%c1(%2), %0" : "=r"(tc) : "i"(offsetof(mlc_tsd_t, tc)), "r"(b));
  return tc;
}
/* Whether class cls's full is the heap profiler's mark (every push to free's slow
   path: tcache.c, "Sampling"). */
MLC_INLINE bool mlc_tb_full_is_prof(mlc_tb_base_t b, size_t cls) {
  bool r;
  __asm__ volatile("cmpq $-1, %%fs:%c2(%1)"
                   : "=@cce"(r)
                   : "r"(mlc_tb_row(b, cls)), "i"(MLC_TB_FULL_OFF));
  return r;
}
MLC_INLINE bool mlc_tb_is_slot(mlc_tb_base_t b, size_t cls, const void *p) {
  uint64_t off = (uint64_t)((uintptr_t)p & (MLC_GRANULE - 1));
  bool r;
  __asm__("imulq %%fs:%c3(%2), %1\n\tcmpq %%fs:%c3(%2), %1"
          : "=@ccb"(r), "+r"(off)
          : "r"(mlc_tb_row(b, cls)), "i"(MLC_TB_MAGIC_OFF));
  return r;
}
MLC_INLINE void mlc_tb_set_head(mlc_tb_base_t b, size_t cls, void **h) {
  __asm__ volatile("movq %0, %%fs:(%1)" : : "r"(h), "r"(mlc_tb_row(b, cls)) : "memory");
}
#else
typedef void ***mlc_tb_base_t;
MLC_INLINE mlc_tb_base_t mlc_tb_base(void) { return mlc_tsd.bins.head; }
MLC_INLINE void **mlc_tb_head(mlc_tb_base_t b, size_t cls) { return mlc_load(&b[cls]); }
MLC_INLINE bool mlc_tb_at_lw(mlc_tb_base_t b, size_t cls, void **h) {
  return h >= mlc_load(&b[cls + MLC_NCLASSES]);
}
MLC_INLINE bool mlc_tb_at_full(mlc_tb_base_t b, size_t cls, void **h) {
  return h <= mlc_load(&b[cls + 2 * MLC_NCLASSES]);
}
MLC_INLINE bool mlc_tb_full_is_prof(mlc_tb_base_t b, size_t cls) {
  return mlc_load(&b[cls + 2 * MLC_NCLASSES]) == MLC_TB_FULL_PROF;
}
MLC_INLINE bool mlc_tb_cached(mlc_tb_base_t b) {
  (void)b;
  return mlc_tsd.state == MLC_TSD_CACHED;
}
MLC_INLINE mlc_tcache_t *mlc_tb_tc(mlc_tb_base_t b) {
  (void)b;
  return mlc_tsd.tc;
}
MLC_INLINE bool mlc_tb_is_slot(mlc_tb_base_t b, size_t cls, const void *p) {
  uint64_t m = ((const uint64_t *)(b + 3 * MLC_NCLASSES))[cls];
  return (uint64_t)((uintptr_t)p & (MLC_GRANULE - 1)) * m < m;
}
MLC_INLINE void mlc_tb_set_head(mlc_tb_base_t b, size_t cls, void **h) {
  mlc_store_rel(&b[cls], h);
}
#endif

/* Pop from the thread cache: one branch, no locks, no read-modify-write.  Everything
   else (first use, refill, class 0) happens in mlc_tcache_alloc_slow().  The object
   leaves with its free key cleared. */
MLC_INLINE void *mlc_tcache_alloc(size_t cls) {
  mlc_tb_base_t b = mlc_tb_base();
  void **h = mlc_tb_head(b, cls);
  if (MLC_UNLIKELY(mlc_tb_at_lw(b, cls, h))) return mlc_tcache_alloc_slow((unsigned)cls);
  mlc_tb_set_head(b, cls, h + 1);
  void *p = *h;
  mlc_free_key_clear(p);
  return p;
}

/* mlc_tcache_alloc's pop without its slow path: NULL where that would be taken (the
   caller has a slow path of its own: the hardened library's). */
MLC_INLINE void *mlc_tcache_try_pop(size_t cls) {
  mlc_tb_base_t b = mlc_tb_base();
  void **h = mlc_tb_head(b, cls);
  if (MLC_UNLIKELY(mlc_tb_at_lw(b, cls, h))) return NULL;
  mlc_tb_set_head(b, cls, h + 1);
  void *p = *h;
  mlc_free_key_clear(p);
  return p;
}

/* Push onto the thread cache: no locks, no read-modify-write.  Two checks stay off the
   dependency chain of the push: p starts a slot of its class (a multiply), and it does
   not hold the free key (else it may be free already).  MLC_PUSH_NO (nothing done)
   when a check fails: cls 0 (NULL, large, huge, foreign, or a slab outside the page
   map's window), not a slot's start, the free key; the caller then takes free's slow
   path (free.c), which finds out what p is.  MLC_PUSH_FULL (nothing done) when p passed
   them but the stack has no room: full, parked, no cache yet, or the heap profiler's
   bound (tcache.c, "Sampling"); *head is then the head it saw. */
enum { MLC_PUSH_DONE, MLC_PUSH_FULL, MLC_PUSH_NO };
MLC_INLINE int mlc_tcache_push(void *p, size_t cls, void ***head) {
  mlc_tb_base_t b = mlc_tb_base();
  void **h = mlc_tb_head(b, cls);
  if (MLC_UNLIKELY(!mlc_tb_is_slot(b, cls, p) || mlc_free_key_is_set(p))) return MLC_PUSH_NO;
  *head = h;
  if (MLC_UNLIKELY(mlc_tb_at_full(b, cls, h))) return MLC_PUSH_FULL;
  mlc_free_key_set(p);
  h[-1] = p;
  mlc_tb_set_head(b, cls, h - 1);
  return MLC_PUSH_DONE;
}

/* mlc_tcache_push for an object known to start a live slot of class cls with its free
   key clear (the hardened library's quarantine, which checked it when the program freed
   it): only the cache's own test.  false (nothing done) when the cache is full, parked
   or missing; the caller then frees it as free does. */
MLC_INLINE bool mlc_tcache_push_checked(void *p, size_t cls) {
  mlc_tb_base_t b = mlc_tb_base();
  void **h = mlc_tb_head(b, cls);
  if (MLC_UNLIKELY(mlc_tb_at_full(b, cls, h))) return false;
  mlc_free_key_set(p);
  h[-1] = p;
  mlc_tb_set_head(b, cls, h - 1);
  return true;
}

/* Trips a millisecond that make a class swing (tcache.c, "Swings"): 64 (0 in the
   ThreadSanitizer build); the unit tests lower it, to see swings on machines of any
   speed (qemu's emulation). */
extern unsigned mlc_tcache_swing_rate;
/* Bytes of room past their capacities that all threads' classes hold (tcache.c). */
extern size_t mlc_tcache_swing_total;

/* The calling thread's arena, assigning one round-robin on first use. */
mlc_arena_t *mlc_tsd_arena(void);

/* Returns every cached object of the calling thread to the bins. */
void mlc_tcache_flush_self(void);

/* The cache class of large blocks of np pages, MLC_LCLASS_MIN_PAGES..MLC_LCACHE_MAX_PAGES. */
MLC_INLINE size_t mlc_tclass_large(size_t np) { return MLC_NCLASSES + np - MLC_LCLASS_MIN_PAGES; }

/* The cache's slow paths for large blocks: the pop's (NULL when nothing is cached),
   and the push's for the live block p of np pages (checked by free.c): the cache, or
   its arena.  Both leave the free key as the fast paths do.  Preserve errno. */
MLC_NOINLINE void *mlc_tcache_large_alloc_slow(size_t np);
MLC_NOINLINE void mlc_tcache_large_free_slow(void *p, size_t np);

/* A freed large block of np pages (MLC_LCLASS_MIN_PAGES..MLC_LCACHE_MAX_PAGES) from the
   calling thread's cache, its free key cleared, or NULL.  The same pop as for small
   objects, under the same protocol with the collector (no lock, no atomic), on the
   words in the cache (mlc_tcache_t.lb): one load more, and a test for no cache. */
MLC_INLINE void *mlc_tcache_large_pop(size_t np) {
  size_t c = np - MLC_LCLASS_MIN_PAGES;
  mlc_tcache_t *tc = mlc_tsd.tc;
  if (MLC_UNLIKELY(tc == NULL)) return NULL;
  void **h = mlc_load(&tc->lb.head[c]);
  if (MLC_UNLIKELY(h >= mlc_load(&tc->lb.lw[c]))) return NULL;
  mlc_store_rel(&tc->lb.head[c], h + 1);
  void *p = *h;
  mlc_free_key_clear(p);
  return p;
}

/* The same, and on a miss the slow path (which finds the owner's objects below the
   low-water mark, or creates the cache). */
MLC_INLINE void *mlc_tcache_large_alloc(size_t np) {
  void *p = mlc_tcache_large_pop(np);
  return MLC_LIKELY(p != NULL) ? p : mlc_tcache_large_alloc_slow(np);
}

/* Keeps the large block p of np pages (MLC_LCLASS_MIN_PAGES..MLC_LCACHE_MAX_PAGES), the
   start of a live run, in the calling thread's cache and sets its free key.  false
   (nothing done) when the stack is full, or p holds the key already (free.c then
   finds out whether it is free). */
MLC_INLINE bool mlc_tcache_large_push(void *p, size_t np) {
  size_t c = np - MLC_LCLASS_MIN_PAGES;
  mlc_tcache_t *tc = mlc_tsd.tc;
  if (MLC_UNLIKELY(tc == NULL)) return false;
  void **h = mlc_load(&tc->lb.head[c]);
  if (MLC_UNLIKELY(h <= mlc_load(&tc->lb.full[c]) || mlc_free_key_is_set(p))) return false;
  mlc_free_key_set(p);
  h[-1] = p;
  mlc_store_rel(&tc->lb.head[c], h - 1);
  return true;
}

/* The push of the small object p of class cls while the heap profiler runs, which
   passed the fast push's checks (MLC_PUSH_FULL) with head h, counted; false (nothing
   done) where the stack is not the thread's own live one (parked, no cache, exiting:
   full is not the profiler's mark), or is full, or the push would let the pop fast
   path pass the next sampled pop (tcache.c, "Sampling").  Owner thread, no lock. */
MLC_INLINE bool mlc_tcache_prof_push(void *p, size_t cls, void **h) {
  mlc_tb_base_t b = mlc_tb_base();
  if (!mlc_tb_full_is_prof(b, cls)) return false;
  /* The mark is laid out before the cache is the thread's (pthread_setspecific may
     free meanwhile) and stays while it exits. */
  if (!mlc_tb_cached(b)) return false;
  mlc_tcache_t *tc = mlc_tb_tc(b);
  uint32_t *room = &tc->prof_room[cls];
  if (h <= tc->start[cls] || *room == 0) return false;
  mlc_free_key_set(p);
  h[-1] = p;
  mlc_tb_set_head(b, cls, h - 1);
  --*room;
  return true;
}

/* Gives n objects of cache class cls back: to their bins, or large blocks to their
   arenas.  No lock held. */
void mlc_tcache_return(void **objs, unsigned n, unsigned cls);

/* Objects cached per class in all thread caches (approximate while owners run). */
void mlc_tcache_cached_objects(uint64_t out[MLC_NCLASSES]);
/* Bytes of large blocks cached in all thread caches. */
size_t mlc_tcache_cached_large_bytes(void);

/* The registry of live (not parked) caches, for the collector.  Any thread. */
void mlc_tcache_registry_lock(void);
void mlc_tcache_registry_unlock(void);
mlc_tcache_t *mlc_tcache_registry_first(void);
/* Threads whose cache went back to the bins at their exit, so far.  Caller holds the
   registry lock. */
unsigned long mlc_tcache_registry_exits(void);
/* True when no thread has a cache, parked or not.  Takes the registry lock. */
bool mlc_tcache_registry_empty(void);

bool mlc_tcache_boot(void);
void mlc_tcache_prefork(void);
void mlc_tcache_postfork_parent(void);
void mlc_tcache_postfork_child(void);

/* Moves an emptied, idle cache to the parked group (its pushes fall to the slow path
   from now on).  Caller holds the registry lock and has claimed tc (gc.c). */
void mlc_tcache_park(mlc_tcache_t *tc);
/* Back to the live group.  Owner thread, having claimed tc, no registry lock held. */
void mlc_tcache_unpark(mlc_tcache_t *tc);

/* Owner-side claim of the cache's slow-path fields (see gc.c): waits while the collector
   holds them, and unparks a parked cache.  Owner thread only, no lock held. */
void mlc_tcache_owner_enter(mlc_tcache_t *tc);
/* Lets them go.  Owner thread, after mlc_tcache_owner_enter. */
void mlc_tcache_owner_exit(mlc_tcache_t *tc);

/* Flushes the n oldest objects of class cls.  Caller owns tc's slow-path fields. */
void mlc_tcache_flush_oldest(mlc_tcache_t *tc, unsigned cls, unsigned n);

#endif /* MLC_TCACHE_H */
