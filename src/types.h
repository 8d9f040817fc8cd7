/* SPDX-License-Identifier: MIT */
/*
 * Every internal structure of melloc, in one place.
 *
 * Glossary
 *   chunk    4 MiB region, aligned to its size, that an arena takes from the kernel.
 *            Its header (at its start) says which of its pages hold slabs and runs.
 *   granule  64 KiB piece of a chunk; granule 0 holds the chunk header.
 *   slab     one granule carved into objects of one size class; belongs to one bin.
 *   class    small size class, 1..MLC_NCLASSES-1 (class 0 means "not a small object").
 *   bin      per arena and class: the slabs with free objects, behind its own lock.
 *   arena    bins plus the page-level state (chunks, large runs) behind the arena lock.
 *   large    allocation above MLC_SMALL_MAX, a run of pages in a chunk.
 *   huge     allocation above MLC_LARGE_MAX, mapped on its own.
 *   tcache   per-thread stacks of free small objects, one stack per class.
 *   page map two-level radix tree: pointer -> class byte and pointer -> chunk header
 *            or huge descriptor; plus the window, a flat copy of the class bytes over
 *            1 TiB (all 4 GiB on 32-bit targets) that free's fast path reads (chunk.h).
 *   dirty    free memory that may still be resident; clean free memory reads as zero.
 */
#ifndef MLC_TYPES_H
#define MLC_TYPES_H

#include "internal.h"

#include "mutex.h"
#include "sizeclass_tables.h"

typedef struct mlc_slab_s mlc_slab_t;
typedef struct mlc_chunk_s mlc_chunk_t;
typedef struct mlc_bin_s mlc_bin_t;
typedef struct mlc_arena_s mlc_arena_t;
typedef struct mlc_tcache_s mlc_tcache_t;
typedef struct mlc_huge_s mlc_huge_t;

/* Objects per slab at most: the 16-byte class fills only the first 32 KiB of its
   granule (the rest is never touched, so costs no memory), which halves every slab's
   free bitmap and so the chunk headers (frag: 2.4 -> 1.3 MiB of headers). */
#define MLC_SLAB_MAX_OBJS 2048
#define MLC_SLAB_MAP_WORDS (MLC_SLAB_MAX_OBJS / 64)
#define MLC_LARGE_MAX ((size_t)2 << 20)
#define MLC_CHUNK_WORDS (MLC_PAGES_PER_CHUNK / 64)
/* Thread caches also keep a few freed large blocks of up to this many pages, on stacks
   of their own: the cache classes MLC_NCLASSES.. are large blocks of
   MLC_LCLASS_MIN_PAGES..MLC_LCACHE_MAX_PAGES pages, of each at most MLC_LCACHE_CAP, or
   as many as MLC_LCACHE_CLASS_BYTES hold where that is more (the smaller classes).
   Their words live in the cache (mlc_tcache_t.lb), not in initial-exec TLS with the
   size classes' (mlc_tbins_t): a library loaded with dlopen takes that from glibc's
   small static reserve, where Python's ctypes here loads up to 1700-1719 bytes.  In TLS
   (before) they took 288 of the release build's 1560 bytes (1656 in the debug build,
   the witness's in mutex.c), and 12 pages instead of 16, to save 96 of them, cost
   bench's mixed workloads 10-20% of peak RSS (mixed-t8 23.2 -> 25.9 MiB): their
   52-64 KiB blocks went through the arena.  Now 1464 and 1560 bytes, with the size
   classes at 9/8 of a power of two (sizeclass.c).  The cache costs memory where freed
   large blocks are not reused (git log -p: 25.0 MiB, 23.4 with none cached; glibc
   20.5), but the arena path costs more in a mixed heap (mixed-t1 5.1 -> 6.1-6.4 MiB,
   mixed-t8 24.5 -> 30.3 with none cached), and a byte bound on the classes together
   (256 KiB to 2 MiB) or a smaller first capacity did not help both (session 25). */
#define MLC_LCACHE_MAX_PAGES 16
#define MLC_LCACHE_CAP 8
#define MLC_LCACHE_CLASS_BYTES ((size_t)256 << 10)
#define MLC_LCLASS_MIN_PAGES 5 /* the smallest large block, MLC_SMALL_MAX + 1 bytes */
#define MLC_LCLASSES (MLC_LCACHE_MAX_PAGES - MLC_LCLASS_MIN_PAGES + 1)
#define MLC_TCLASSES (MLC_NCLASSES + MLC_LCLASSES)
_Static_assert((MLC_SMALL_MAX + 1 + 4095) / 4096 == MLC_LCLASS_MIN_PAGES,
               "large blocks start at MLC_LCLASS_MIN_PAGES pages");

struct mlc_slab_s {
  mlc_slab_t *next; /* Protected by bin->lock: the bin's list of slabs with free objects */
  mlc_slab_t *prev;
  mlc_bin_t *bin;   /* Set when the slab is created, NULL while the granule is unused */
  uint16_t nfree;   /* Protected by bin->lock */
  uint16_t nobjs;   /* Constant while the slab exists */
  uint16_t hint;    /* Protected by bin->lock: no free bit in freemap words below it */
  uint16_t cls;
  uint64_t freemap[MLC_SLAB_MAP_WORDS]; /* Protected by bin->lock: bit set = object free */
};

/*
 * A chunk holds slabs and large runs side by side: a slab is a whole granule (its 16
 * pages), a large run any run of pages.  One kind of chunk, not one for each, so that
 * the pages a phase of large blocks frees can hold the next phase's slabs and the other
 * way round (frag: peak RSS 288 -> 278 MiB).  Slabs are taken from the top of a chunk and
 * large runs by best fit, lowest first, which keeps the two apart while both have room.
 * The page state (free_ns to npages) is changed only by chunk.c's functions (chunk.h),
 * which the arena calls holding arena->lock.
 */
struct mlc_chunk_s {
  /* Atomic (relaxed): the arena that owns it; a wholly free chunk passes from one arena
     to another through the shared spares (arena.c), and a chunk with live blocks never
     does, so a free reads the arena its block came from. */
  mlc_arena_t *arena;
  mlc_chunk_t *next;       /* Protected by arena->lock: the arena's chunks; or by the spare
                              lock: the shared spares (arena.c) */
  mlc_chunk_t *prev;
  uint64_t free_ns;        /* Protected by arena->lock: when memory in it last became free */
  uint64_t serial;         /* Constant: chunks are numbered as they are mapped */
  uint32_t nfree;          /* Protected by arena->lock: free pages */
  uint64_t run_mask;       /* Protected by arena->lock: bit b set when run_count[b] > 0 */
  /* Protected by arena->lock: where the arena keeps copies of run_mask, free_granules
     and dirty_granules (its refs, below), written with them; NULL while the chunk is a
     spare. */
  struct mlc_chunk_ref_s *ref;
  uint16_t run_count[64];  /* Protected by arena->lock: free runs by length bucket (arena.c) */
  uint64_t free_granules;  /* Protected by arena->lock: granules whose pages are all free */
  uint64_t dirty_granules; /* Protected by arena->lock: granules with a dirty free page */
  /* Protected by arena->lock: pages became free since the last purge.  A purge leaves
     dirty what it cannot give back (part of a larger kernel page in use, a refusal);
     only a later free can change that, so until one the chunk is not worth a pass. */
  bool purge_pending;
  uint64_t used[MLC_CHUNK_WORDS];  /* Protected by arena->lock: page in a slab, a run or the header */
  uint64_t dirty[MLC_CHUNK_WORDS]; /* Protected by arena->lock: free page that may be resident */
  /* Protected by arena->lock: bit i set while the live run at page i is a block realloc
     placed with room to grow into (arena.c, "room"): the free run after it is taken
     from its far end. */
  uint64_t growing[MLC_CHUNK_WORDS];
  /* Atomic (relaxed, read-modify-write): bit i set while the live run at page i is a
     sampled allocation of the heap profiler (prof.c); set by the thread that allocated
     it before handing it out, cleared by the free that ends it. */
  uint64_t sampled[MLC_CHUNK_WORDS];
  uint16_t npages[MLC_PAGES_PER_CHUNK]; /* Run length at a large run's first page, else 0 */
  mlc_slab_t slabs[MLC_GRANULES_PER_CHUNK]; /* slabs[g]: granule g while it is a slab */
};

/* Pages at the start of a chunk that hold its header (all in granule 0, never a slab). */
#define MLC_CHUNK_HEADER_PAGES ((sizeof(mlc_chunk_t) + MLC_PAGE - 1) / MLC_PAGE)

struct mlc_bin_s {
  mlc_mutex_t lock;
  uint16_t cls;         /* Constant */
  mlc_arena_t *arena;   /* Constant */
  mlc_slab_t *nonfull;  /* Protected by lock: slabs with at least one free object */
  size_t nslabs;        /* Protected by lock */
  uint64_t nmalloc;     /* Protected by lock: objects handed out (to caches or callers) */
  uint64_t nfree;       /* Protected by lock: objects given back */
} __attribute__((aligned(64)));

struct mlc_huge_s {
  void *addr;           /* Protected by the huge lock */
  size_t size;          /* the usable size */
  size_t span;          /* mapped bytes from addr, guards excluded: size, or more in the
                           hardened build, where [size, span) is PROT_NONE (the upper
                           guard grown after a cached mapping was reused shorter) */
  mlc_huge_t *next;     /* free-descriptor list or the cache of unused mappings */
  uint64_t free_ns;     /* when it went into the cache */
  bool in_use;
  bool tail;            /* a cached range carved off the block before it (chunk.c) */
};

/* An arena's chunk and copies of the masks the arena's searches read, side by side
   with the other chunks' (below). */
typedef struct mlc_chunk_ref_s {
  mlc_chunk_t *chunk;
  uint64_t run_mask;
  uint64_t free_granules;
  uint64_t dirty_granules;
} mlc_chunk_ref_t;

/* Chunks an arena's refs hold in the arena itself; more take a mapping of their own. */
#define MLC_ARENA_REFS_INLINE 16

struct mlc_arena_s {
  mlc_mutex_t lock;
  unsigned ind;               /* Constant */
  mlc_chunk_t *chunks;        /* Protected by lock: every chunk in use */
  /* Protected by lock: the same chunks, oldest first, each with copies of its run and
     granule masks, packed, so that a large run's best fit and a slab's granule (arena.c)
     find their chunk without reading every chunk's header: refs_inline, or a mapping of
     refs_cap entries. */
  mlc_chunk_ref_t *refs;
  size_t nrefs;
  size_t refs_cap;
  mlc_chunk_ref_t refs_inline[MLC_ARENA_REFS_INLINE];
  size_t mapped;              /* Protected by lock: bytes of chunks held */
  /* Atomic (relaxed; written under lock): some chunk may have a resident free granule.
     Set when pages are freed, cleared by a search that finds none; another arena looks
     in this one's chunks only while it is set (arena.c, mlc_arena_slab_alloc). */
  bool granule_hint;
  uint64_t nlarge_alloc;      /* Protected by lock */
  uint64_t nlarge_free;       /* Protected by lock */
  size_t large_allocated;     /* Protected by lock: bytes in live large runs */
  size_t used_pages;          /* Protected by lock: pages of its chunks in slabs and runs */
  mlc_bin_t bins[MLC_NCLASSES];
};

/*
 * A thread cache.  The three arrays the fast paths use (mlc_tbins_t) live in the
 * owner's thread-local storage, so that the fast paths reach them with one %fs-relative
 * access and no pointer load; the rest lives here, with the same three arrays for the
 * large cache classes (lb), whose pops and pushes come from slow paths and pay for the
 * pointer load.  For each class, a stack of free objects grows downwards in
 * [full, empty): the objects are head[0 .. empty-head-1], head[0] the most recent.
 *   pop  (malloc): allowed while head < lw;  push (free): allowed while head > full.
 * lw ("low water") lets the collector know which objects the owner has not touched:
 * the fast path never goes past it, so [lw, empty) is only reachable through the slow
 * path.  Bin 0 has head == lw == full so that both fast paths fall to the slow path.
 * The arrays are separate so that the fast paths index them with the class and no
 * multiplication.  Cache classes 1..MLC_NCLASSES-1 are the size classes; the ones after
 * them hold freed large blocks by page count (MLC_LCACHE_MAX_PAGES above).  mlc_tc_head,
 * mlc_tc_lw and mlc_tc_full (tcache.h) find a cache class's words in either place.
 */
/* full while the heap profiler runs: above every head, so that each push of a small
   class goes to free's slow path, which counts it (tcache.c, "Sampling"). */
#define MLC_TB_FULL_PROF ((void **)UINTPTR_MAX)

typedef struct mlc_tbins_s {
  /* Written by the owner only, always with release stores (its fast paths without
     state); the collector reads it with acquire loads (gc.c: memory orders). */
  void **head[MLC_NCLASSES];
  /* Whoever holds state: the owner's slow paths raise it to empty (the owner may use
     every object again), a pass lowers it to head (to see what the owner touches before
     the next one).  Relaxed atomic: the pop fast path reads it without state. */
  void **lw[MLC_NCLASSES];
  /* Whoever holds state: the owner sets it to the start of the class's region when it
     lays the stacks out or unparks (to MLC_TB_FULL_PROF for a small class while the heap
     profiler runs), a pass raises it to head when it parks the cache.  Relaxed atomic:
     the push fast path reads it without state. */
  void **full[MLC_NCLASSES];
  /* mlc_class_divmagic, constant: free's slot test reads it next to head and full
     (a thread-local copy costs no address computation of its own). */
  uint64_t magic[MLC_NCLASSES];
} mlc_tbins_t;

/* The same words for the large cache classes MLC_NCLASSES.. (index c - MLC_NCLASSES). */
typedef struct mlc_tbins_large_s {
  void **head[MLC_LCLASSES];
  void **lw[MLC_LCLASSES];
  void **full[MLC_LCLASSES];
} mlc_tbins_large_t;

struct mlc_tcache_s {
  mlc_tbins_t *b;             /* Constant: the owner's bins, in its thread-local storage */
  mlc_tbins_large_t lb;       /* The large classes' (mlc_tbins_t above) */
  /* Whoever holds state: the owner's refills and layouts set it to the top of the
     class's region, a pass lowers it by what it takes from the bottom of the stack. */
  void **empty[MLC_TCLASSES];
  void **start[MLC_TCLASSES]; /* Constant: where each class's region starts (its full) */
  uint16_t fill[MLC_TCLASSES]; /* Owner thread: objects per refill, grows with use */
  uint16_t cap[MLC_TCLASSES];  /* Owner thread: slots per class now, grows with use */
  uint64_t refilled;           /* Owner thread: bit c set once class c needed a refill */
  /* Owner thread: swings (tcache.c, "Swings").  Bit c of swinging: small class c may
     grow past its capacity, into the room swing_bytes counts (bytes of objects past the
     capacities); swing_since: when the first bit was set; swing_t0: when the window
     whose trips swing_in (refills) and swing_out (flushes) count began (coarse clock). */
  uint64_t swinging;
  size_t swing_bytes;
  uint64_t swing_since, swing_t0;
  unsigned swing_trips; /* trips counted, of every class */
  uint16_t swing_in[MLC_NCLASSES], swing_out[MLC_NCLASSES];
  int state;                   /* Atomic: enum mlc_tcache_state_e, who holds the
                                  slow-path fields (protocol at the top of gc.c) */
  /* Written holding both the registry lock and state: set by a pass that parks the cache
     (then it is on the parked list, full raised to head), cleared by the owner's claim
     of state (mlc_tcache_owner_enter unparks).  The owner reads it holding state. */
  bool parked;
  mlc_tcache_t *next;          /* Protected by the registry lock */
  mlc_tcache_t *prev;
  unsigned long slow_events;   /* Owner writes (relaxed): slow-path calls, seen by gc */
  unsigned long gc_seen_events; /* Collector only */
  void **gc_seen_head[MLC_TCLASSES]; /* Collector only */
  unsigned gc_idle_passes;     /* Collector only */
  void **stack;                /* Owner thread: storage of all the stacks */
  size_t stack_slots;          /* its size, a power of two */
  /* Owner thread, while the heap profiler runs (tcache.c, "Sampling"): per small class,
     the pops left before the one that is sampled, counted from prof_ref (the head when
     they were last counted) and the pushes made since (all on free's slow path while
     profiling runs): prof_room0 - prof_room. */
  uint32_t prof_left[MLC_NCLASSES];
  void **prof_ref[MLC_NCLASSES];
  /* Pushes free's slow path may still make before lw would let the pop fast path
     reach the sampled pop: prof_left less (lw - head), which pops leave as it is.
     prof_room0: its value when prof_ref was set. */
  uint32_t prof_room[MLC_NCLASSES];
  uint32_t prof_room0[MLC_NCLASSES];
};

#endif /* MLC_TYPES_H */
