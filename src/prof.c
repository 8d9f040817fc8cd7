/* SPDX-License-Identifier: MIT */
/*
 * The heap profiler: sampling, stacks, the table of allocation sites, and the dumps
 * (pprof's profile.proto in a gzip file of stored blocks, and a folded-stack text file).
 *
 * Sampling.  Each thread counts its allocated bytes (usable sizes) down from an
 * exponential draw around prof_sample_bytes; the allocation that reaches zero is
 * sampled, so an allocation of s bytes is sampled with probability
 * p(s) = 1 - exp(-s / mean), and a sample stands for 1/p(s) objects and s/p(s) bytes:
 * per-site sums of these weights are unbiased estimates (jemalloc's and tcmalloc's
 * scheme).  The count runs on slow paths only (prof.h): the thread caches' per-class
 * countdowns for small sizes (tcache.c), a per-thread countdown here for the others
 * and for threads without a cache.
 *
 * Sampled blocks.  A sample is served from a run of pages of its own (at least
 * MLC_SMALL_MAX + 1 bytes: the smallest large block) or a huge mapping.  A run carries
 * a mark in its chunk header (mlc_chunk_t.sampled) that the large-block free path
 * tests; huge frees look their address up here.  Unsampled small frees never come
 * here: their fast path only takes slots of small classes.
 *
 * Records.  Every live sample has a record (address, size, weights, site) in a hash
 * table by address; every site (a stack) has its sums.  Both come from base.c and are
 * recycled through free lists; one lock (MLC_RANK_PROF) protects them.  Stacks are
 * taken before the lock, and never while melloc holds any lock: the unwinder may take
 * the dynamic loader's locks, and the loader may be the one calling malloc.  A thread
 * that is inside the profiler (unwinding, recording, dumping) is never sampled again:
 * whatever the unwinder allocates is an ordinary allocation.
 */
#include "internal.h"

#include "alloc.h"
#include "gc.h"
#include "base.h"
#include "chunk.h"
#include "init.h"
#include "os.h"
#include "sizeclass.h"
#include "prof.h"
#include "stats.h"
#include "tcache.h"
#include "stackwalk.h"
#include "util.h"

#include <dlfcn.h>
#include <sched.h>
#include <link.h>

#if MLC_PROF_UNWIND_LIBGCC
#include <unwind.h>
#elif MLC_PROF_UNWIND_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

#define MLC_PROF_MAX_DEPTH 128
#define MLC_PROF_REC_BUCKETS 16384 /* power of two */
#define MLC_PROF_SITE_BUCKETS 4096 /* power of two */
#define MLC_PROF_MAX_MAPS 512

typedef struct mlc_prof_site_s mlc_prof_site_t;
struct mlc_prof_site_s {
  mlc_prof_site_t *next; /* Protected by the lock: hash chain */
  uint64_t hash;
  double alloc_objs, alloc_bytes; /* estimates since start (or the last reset) */
  double inuse_objs, inuse_bytes; /* estimates of what is live */
  double freed_bytes;             /* estimate of what was freed since the last dump */
  unsigned depth;
  uintptr_t frames[]; /* innermost first: return addresses */
};

typedef struct mlc_prof_rec_s mlc_prof_rec_t;
struct mlc_prof_rec_s {
  mlc_prof_rec_t *next; /* Protected by the lock: hash chain, or the free list */
  const void *addr;
  mlc_prof_site_t *site;
  double objs, bytes;   /* the weights it added to its site */
  size_t usable;        /* the size it was sampled with */
};

bool mlc_prof_on MLC_HIDDEN;

/* Whether profiling runs, with acquire order: what mlc_prof_start set up before it
   said so (the mean, the depth, the tables) is visible after it. */
static bool mlc_prof_running(void) { return mlc_load_acq(&mlc_prof_on); }

static mlc_mutex_t mlc_prof_lock = MLC_MUTEX_INITIALIZER(MLC_RANK_PROF);
static mlc_prof_rec_t **mlc_prof_recs;   /* Protected by the lock (constant pointer) */
static mlc_prof_site_t **mlc_prof_sites; /* Protected by the lock (constant pointer) */
static mlc_prof_rec_t *mlc_prof_free_recs; /* Protected by the lock */
static uint64_t mlc_prof_nlive;            /* Protected by the lock: live samples */
static double mlc_prof_live_bytes;         /* Protected by the lock: their weight */
static uint64_t mlc_prof_nsites;           /* Protected by the lock */
static uint64_t mlc_prof_seq;              /* Atomic: dumps so far (of this process) */
static double mlc_prof_mean;               /* Constant after start */
static unsigned mlc_prof_depth;            /* Constant after start */
static uint64_t mlc_prof_purged_at_dump;   /* Protected by the lock */
/* Melloc's own code, whose frames are left off the top of every stack; empty when
   melloc is linked into the executable (then its frames stay: a static link). */
static uintptr_t mlc_prof_self_lo, mlc_prof_self_hi; /* Constant after start */

MLC_TLS mlc_prof_tsd_t mlc_prof_tsd;

static uint64_t mlc_prof_next_rand(mlc_prof_tsd_t *t) {
  /* xorshift64* */
  uint64_t x = t->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* An exponential draw around the mean, at least 1. */
static int64_t mlc_prof_draw(mlc_prof_tsd_t *t) {
  double u = ((double)(mlc_prof_next_rand(t) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double v = -mlc_log_unit(u) * mlc_prof_mean;
  if (v > 9e18) v = 9e18;
  return v < 1 ? 1 : (int64_t)v;
}

/* Counts size bytes: whether a sample falls in them. */
static bool mlc_prof_tick(mlc_prof_tsd_t *t, size_t size) {
  if (MLC_UNLIKELY(t->rng == 0)) {
    uint64_t seed;
    mlc_os_random(&seed, sizeof(seed));
    t->rng = (seed ^ (uintptr_t)t) | 1;
    t->left = mlc_prof_draw(t);
  }
  t->left -= (int64_t)MLC_MIN(size, (size_t)INT64_MAX / 2);
  if (t->left > 0) return false;
  t->left = mlc_prof_draw(t);
  return true;
}

/* ---- Stacks ---- */

#if MLC_PROF_UNWIND_LIBGCC
typedef struct {
  uintptr_t *out;
  unsigned n, max;
  bool started;
} mlc_prof_bt_t;

static _Unwind_Reason_Code mlc_prof_bt_frame(struct _Unwind_Context *ctx, void *arg) {
  mlc_prof_bt_t *b = arg;
  uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
  if (!ip) return _URC_END_OF_STACK;
  if (!b->started) {
    if (ip >= mlc_prof_self_lo && ip < mlc_prof_self_hi) return _URC_NO_REASON;
    b->started = true;
  }
  b->out[b->n++] = ip;
  return b->n >= b->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}
#endif

#if MLC_PROF_UNWIND_LIBGCC
MLC_INLINE unsigned mlc_prof_backtrace_libgcc(uintptr_t *out, unsigned max) {
  mlc_prof_bt_t b = {out, 0, max, false};
  _Unwind_Backtrace(mlc_prof_bt_frame, &b);
  return b.n;
}
#endif

/* The calling thread's stack, innermost first, without melloc's frames: up to max
   return addresses.  Never allocates (libgcc's unwinder, linked in and primed at
   start, reads .eh_frame through _dl_find_object or dl_iterate_phdr; on amd64 the rules
   it would compute are kept per return address, stackwalk.c, and libgcc walks only the
   stacks they do not cover).  Inlined, as mlc_prof_backtrace: libgcc walked melloc's
   own frames too, at ~1,700 instructions each (two frames fewer: malloc(4096)+free
   with profiling on 211 -> 185 instructions; the cached walk: 91). */
MLC_INLINE unsigned mlc_prof_backtrace_raw(uintptr_t *out, unsigned max) {
#if MLC_PROF_UNWIND_LIBGCC
#if MLC_STACKWALK_CACHED
  /* amd64: the same frames from the rules kept per return address (stackwalk.c), or -1
     where a frame needs libgcc. */
  int got = mlc_stackwalk_take(out, max, mlc_prof_self_lo, mlc_prof_self_hi);
#ifdef MELLOC_DEBUG
  if (got >= 0) { /* both walks start in this function: the same frames */
    uintptr_t again[MLC_PROF_MAX_DEPTH];
    unsigned cn = mlc_prof_backtrace_libgcc(again, max);
    /* Linked into the program, melloc's frames stay: the first is where each walk was
       called from. */
    unsigned from = mlc_prof_self_lo == mlc_prof_self_hi && got > 0 ? 1 : 0;
    mlc_assert(cn == (unsigned)got && !memcmp(again + from, out + from, (cn - from) * sizeof(uintptr_t)));
  }
#endif
  if (MLC_LIKELY(got >= 0)) return (unsigned)got;
#endif
  return mlc_prof_backtrace_libgcc(out, max);
#elif MLC_PROF_UNWIND_LIBUNWIND
  /* unw_backtrace's own frame and melloc's come first: taken, then left off. */
  void *ips[MLC_PROF_MAX_DEPTH + 16];
  int got = unw_backtrace(ips, (int)MLC_MIN(max + 16, (unsigned)(MLC_PROF_MAX_DEPTH + 16)));
  unsigned n = 0;
  int i = 0;
  while (i < got && (uintptr_t)ips[i] >= mlc_prof_self_lo && (uintptr_t)ips[i] < mlc_prof_self_hi) i++;
  for (; i < got && n < max; i++) out[n++] = (uintptr_t)ips[i];
  return n;
#elif MLC_PROF_UNWIND_FP
  /* Frame pointers: only for programs built with -fno-omit-frame-pointer. */
  uintptr_t *fp = __builtin_frame_address(0);
  unsigned n = 0;
  bool started = false;
  while (fp && n < max) {
    uintptr_t *next = (uintptr_t *)fp[0];
    uintptr_t ip = fp[1];
    if (!ip) break;
    if (started || !(ip >= mlc_prof_self_lo && ip < mlc_prof_self_hi)) {
      started = true;
      out[n++] = ip;
    }
    if (next <= fp || (uintptr_t)next - (uintptr_t)fp > ((uintptr_t)1 << 24) ||
        ((uintptr_t)next & (sizeof(void *) - 1)))
      break;
    fp = next;
  }
  return n;
#else
  (void)out;
  (void)max;
  return 0;
#endif
}

/* Fork and the unwinder.  Where libgcc finds unwind tables through dl_iterate_phdr (i386's
   glibc, older systems without _dl_find_object), an unwind holds the loader's lock; a fork
   at that moment leaves the lock held in the child, whose first sampled allocation then
   waits for ever.  So fork's prepare step closes a gate and waits for the unwinds under
   way to end; a sample taken while the gate is closed records no stack (it is counted
   under an empty stack) rather than wait, because its thread may hold what fork waits
   for.  Two atomic operations a sample; nothing on unsampled allocations. */
static uint32_t mlc_prof_unwinders, mlc_prof_forking;

MLC_INLINE unsigned mlc_prof_backtrace(uintptr_t *out, unsigned max) {
  __atomic_fetch_add(&mlc_prof_unwinders, 1, __ATOMIC_SEQ_CST);
  unsigned n = 0;
  if (MLC_LIKELY(!__atomic_load_n(&mlc_prof_forking, __ATOMIC_SEQ_CST))) n = mlc_prof_backtrace_raw(out, max);
  __atomic_fetch_sub(&mlc_prof_unwinders, 1, __ATOMIC_RELEASE);
  return n;
}

static uint64_t mlc_prof_hash(const uintptr_t *f, unsigned n) {
  uint64_t h = 0xcbf29ce484222325ULL ^ n;
  for (unsigned i = 0; i < n; i++) {
    h ^= f[i];
    h *= 0x100000001b3ULL;
    h ^= h >> 29;
  }
  return h;
}

/* The site of stack f[0..n), created when new; NULL when base refuses memory.  Caller
   holds the lock. */
static mlc_prof_site_t *mlc_prof_site_locked(const uintptr_t *f, unsigned n) {
  uint64_t h = mlc_prof_hash(f, n);
  mlc_prof_site_t **b = &mlc_prof_sites[h & (MLC_PROF_SITE_BUCKETS - 1)];
  for (mlc_prof_site_t *s = *b; s; s = s->next)
    if (s->hash == h && s->depth == n && !memcmp(s->frames, f, n * sizeof(uintptr_t))) return s;
  mlc_prof_site_t *s = mlc_base_alloc(sizeof(*s) + n * sizeof(uintptr_t));
  if (!s) return NULL;
  s->hash = h;
  s->depth = n;
  memcpy(s->frames, f, n * sizeof(uintptr_t));
  s->next = *b;
  *b = s;
  mlc_prof_nsites++;
  return s;
}

static size_t mlc_prof_rec_bucket(const void *p) {
  return (((uintptr_t)p >> MLC_PAGE_SHIFT) * 0x9E3779B97F4A7C15ULL >> 40) & (MLC_PROF_REC_BUCKETS - 1);
}

/* Records the sample p of size bytes, taken at stack f[0..n).  false when no memory
   for it (then it is an ordinary block).  No lock held. */
static bool mlc_prof_record(const void *p, size_t size, const uintptr_t *f, unsigned n) {
  double prob = mlc_one_minus_exp_neg((double)size / mlc_prof_mean);
  double objs = 1.0 / prob, bytes = (double)size / prob;
  mlc_mutex_lock(&mlc_prof_lock);
  mlc_prof_site_t *s = mlc_prof_site_locked(f, n);
  mlc_prof_rec_t *r = mlc_prof_free_recs;
  if (r)
    mlc_prof_free_recs = r->next;
  else if (s)
    r = mlc_base_alloc(sizeof(*r));
  if (!s || !r) {
    if (r) {
      r->next = mlc_prof_free_recs;
      mlc_prof_free_recs = r;
    }
    mlc_mutex_unlock(&mlc_prof_lock);
    return false;
  }
  r->addr = p;
  r->site = s;
  r->objs = objs;
  r->bytes = bytes;
  r->usable = size;
  mlc_prof_rec_t **b = &mlc_prof_recs[mlc_prof_rec_bucket(p)];
  r->next = *b;
  *b = r;
  s->alloc_objs += objs;
  s->alloc_bytes += bytes;
  s->inuse_objs += objs;
  s->inuse_bytes += bytes;
  mlc_prof_nlive++;
  mlc_prof_live_bytes += bytes;
  mlc_mutex_unlock(&mlc_prof_lock);
  return true;
}

/* Takes the record of p out of the table; NULL when p has none.  Caller holds the lock. */
static mlc_prof_rec_t *mlc_prof_unlink_locked(const void *p) {
  for (mlc_prof_rec_t **b = &mlc_prof_recs[mlc_prof_rec_bucket(p)]; *b; b = &(*b)->next)
    if ((*b)->addr == p) {
      mlc_prof_rec_t *r = *b;
      *b = r->next;
      return r;
    }
  return NULL;
}

static void mlc_prof_forget(const void *p) {
  mlc_mutex_lock(&mlc_prof_lock);
  mlc_prof_rec_t *r = mlc_prof_recs ? mlc_prof_unlink_locked(p) : NULL;
  if (r) {
    mlc_prof_site_t *s = r->site;
    s->inuse_objs -= r->objs;
    s->inuse_bytes -= r->bytes;
    s->freed_bytes += r->bytes;
    if (s->inuse_objs < 1e-6) s->inuse_objs = s->inuse_bytes = 0; /* rounding */
    mlc_prof_nlive--;
    mlc_prof_live_bytes -= r->bytes;
    if (mlc_prof_nlive == 0) mlc_prof_live_bytes = 0;
    r->next = mlc_prof_free_recs;
    mlc_prof_free_recs = r;
  }
  mlc_mutex_unlock(&mlc_prof_lock);
}

void mlc_prof_free_sampled(const void *p) {
  if (mlc_prof_running()) mlc_prof_forget(p);
}

void mlc_prof_free_huge(const void *p) {
  if (mlc_prof_running()) mlc_prof_forget(p);
}

size_t mlc_prof_sampled_size(const void *p) {
  if (!mlc_prof_running()) return 0;
  size_t usable = 0;
  mlc_mutex_lock(&mlc_prof_lock);
  for (mlc_prof_rec_t *r = mlc_prof_recs[mlc_prof_rec_bucket(p)]; r; r = r->next)
    if (r->addr == p) {
      usable = r->usable;
      break;
    }
  mlc_mutex_unlock(&mlc_prof_lock);
  return usable;
}

void mlc_prof_resized(const void *old, const void *new_p, size_t size) {
  if (!mlc_prof_running()) return;
  size_t usable = size <= MLC_SMALL_MAX ? mlc_class_size[mlc_size_class(size)] : MLC_ALIGN_UP(size, MLC_PAGE);
  mlc_mutex_lock(&mlc_prof_lock);
  mlc_prof_rec_t *r = mlc_prof_unlink_locked(old);
  if (r) {
    double bytes = (double)usable * r->objs;
    r->site->inuse_bytes += bytes - r->bytes;
    mlc_prof_live_bytes += bytes - r->bytes;
    r->bytes = bytes;
    r->addr = new_p;
    mlc_prof_rec_t **b = &mlc_prof_recs[mlc_prof_rec_bucket(new_p)];
    r->next = *b;
    *b = r;
  }
  mlc_mutex_unlock(&mlc_prof_lock);
}

/* Marks the block p (a run of a chunk, or a huge mapping) sampled. */
static void mlc_prof_mark(void *p) {
  void *ent = mlc_pagemap_entry(p);
  if (ent && !mlc_huge_of_entry(ent)) mlc_chunk_sampled_set(ent, p);
}

uint32_t mlc_prof_draw_objs(size_t size) {
  mlc_prof_tsd_t *t = &mlc_prof_tsd;
  if (MLC_UNLIKELY(t->rng == 0)) mlc_prof_tick(t, 0); /* seeds it */
  int64_t bytes = mlc_prof_draw(t);
  uint64_t objs = (uint64_t)bytes / (size ? size : 1);
  return objs > 0x7fffffffu ? 0x7fffffffu : (uint32_t)objs;
}

void *mlc_prof_sample_small(size_t usable) {
  mlc_prof_tsd_t *t = &mlc_prof_tsd;
  if (t->busy || !mlc_prof_running() || !mlc_prof_tick(t, usable)) return NULL;
  return mlc_prof_sample_now(usable);
}

void *mlc_prof_sample_now(size_t usable) {
  mlc_prof_tsd_t *t = &mlc_prof_tsd;
  if (t->busy || !mlc_prof_running()) return NULL;
  t->busy = true;
  uintptr_t f[MLC_PROF_MAX_DEPTH];
  unsigned n = mlc_prof_backtrace(f, mlc_prof_depth);
  size_t align = usable & -usable;
  void *p = mlc_alloc_big_plain(MLC_MAX(usable, (size_t)MLC_SMALL_MAX + 1),
                                align > MLC_PAGE ? MLC_MIN(align, MLC_GRANULE) : 0, false);
  if (p && mlc_prof_record(p, usable, f, n)) mlc_prof_mark(p);
  t->busy = false;
  return p;
}

/* mlc_prof_alloc_big and mlc_prof_alloc_grow: the block from alloc_big_plain(size,
   align, zero), or with grow from mlc_alloc_grow_plain(size). */
static void *mlc_prof_alloc_from(size_t size, size_t align, bool zero, bool grow) {
  mlc_prof_tsd_t *t = &mlc_prof_tsd;
  size_t usable = MLC_ALIGN_UP(size, MLC_PAGE);
  if (t->busy || usable < size || !mlc_prof_running() || !mlc_prof_tick(t, usable))
    return grow ? mlc_alloc_grow_plain(size) : mlc_alloc_big_plain(size, align, zero);
  t->busy = true;
  uintptr_t f[MLC_PROF_MAX_DEPTH];
  unsigned n = mlc_prof_backtrace(f, mlc_prof_depth);
  void *p = grow ? mlc_alloc_grow_plain(size) : mlc_alloc_big_plain(size, align, zero);
  if (p && mlc_prof_record(p, usable, f, n)) mlc_prof_mark(p);
  t->busy = false;
  return p;
}

void *mlc_prof_alloc_big(size_t size, size_t align, bool zero) {
  return mlc_prof_alloc_from(size, align, zero, false);
}

void *mlc_prof_alloc_grow(size_t size) { return mlc_prof_alloc_from(size, 0, false, true); }

/* ---- Start ---- */

static int mlc_prof_find_self(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  uintptr_t me = (uintptr_t)&mlc_prof_find_self;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (me >= lo && me < hi) {
      /* Linked into the executable itself: no range to leave off. */
      if (info->dlpi_name && info->dlpi_name[0]) {
        mlc_prof_self_lo = lo;
        mlc_prof_self_hi = hi;
      }
      return 1;
    }
  }
  return 0;
}

static void mlc_prof_warn(const char *msg) {
  char buf[200];
  size_t n = mlc_snprintf(buf, sizeof(buf), "melloc: prof: %s\n", msg);
  mlc_os_write_stderr(buf, n);
}

void mlc_prof_start(void) {
  if (!mlc_opt.prof || mlc_prof_active()) return;
  /* The hardened layer lays its canary and trailer out by the size class the cache
     pop was for (harden.c): a sample, a run of pages of its own, would not match. */
  if (mlc_config_hardened) {
    mlc_prof_warn("not available in the hardened library, profiling off");
    return;
  }
  if (!MLC_PROF_UNWIND_LIBGCC && !MLC_PROF_UNWIND_LIBUNWIND && !MLC_PROF_UNWIND_FP) {
    mlc_prof_warn("no stack unwinder in this build (configure --with-unwinder), profiling off");
    return;
  }
  mlc_prof_tsd_t *t = &mlc_prof_tsd;
  t->busy = true;
  mlc_prof_mean = (double)mlc_opt.prof_sample_bytes;
  mlc_prof_depth = MLC_MIN(mlc_opt.prof_depth, (unsigned)MLC_PROF_MAX_DEPTH);
  mlc_prof_recs = mlc_base_alloc(MLC_PROF_REC_BUCKETS * sizeof(*mlc_prof_recs));
  mlc_prof_sites = mlc_base_alloc(MLC_PROF_SITE_BUCKETS * sizeof(*mlc_prof_sites));
  dl_iterate_phdr(mlc_prof_find_self, NULL);
#if MLC_STACKWALK_CACHED
  mlc_stackwalk_boot(); /* without its table, every walk is libgcc's */
#endif
  /* The first unwind resolves what the unwinder needs (libgcc's register tables, the
     loader's object lookup): here, not inside a program's malloc. */
  uintptr_t f[4];
  unsigned n = mlc_prof_backtrace(f, 4);
#if MLC_STACKWALK_CACHED
  /* The cached walk ran (or not): libgcc's, which it hands signal frames to, too. */
  if (n) n = mlc_prof_backtrace_libgcc(f, 4);
#endif
  t->busy = false;
  if (!mlc_prof_recs || !mlc_prof_sites) {
    mlc_prof_warn("out of memory for the profiler's tables, profiling off");
    return;
  }
  if (n == 0) {
    mlc_prof_warn("the stack unwinder returned no frame, profiling off");
    return;
  }
  mlc_store_rel(&mlc_prof_on, true);
  mlc_trace("prof: on, mean %llu bytes, depth %u", (unsigned long long)mlc_opt.prof_sample_bytes,
            mlc_prof_depth);
}

/* ---- Statistics, reset, fork ---- */

void mlc_prof_stats(uint64_t *samples, uint64_t *bytes) {
  *samples = *bytes = 0;
  if (!mlc_prof_running()) return;
  mlc_mutex_lock(&mlc_prof_lock);
  *samples = mlc_prof_nlive;
  *bytes = (uint64_t)(mlc_prof_live_bytes + 0.5);
  mlc_mutex_unlock(&mlc_prof_lock);
}

/* Every site's counts to zero; in_use too when all (a fork child). */
static void mlc_prof_clear_locked(bool all) {
  for (size_t i = 0; i < MLC_PROF_SITE_BUCKETS; i++)
    for (mlc_prof_site_t *s = mlc_prof_sites[i]; s; s = s->next) {
      s->alloc_objs = s->alloc_bytes = s->freed_bytes = 0;
      if (all) s->inuse_objs = s->inuse_bytes = 0;
    }
  if (!all) return;
  for (size_t i = 0; i < MLC_PROF_REC_BUCKETS; i++) {
    mlc_prof_rec_t *r = mlc_prof_recs[i], *next;
    for (; r; r = next) {
      next = r->next;
      r->next = mlc_prof_free_recs;
      mlc_prof_free_recs = r;
    }
    mlc_prof_recs[i] = NULL;
  }
  mlc_prof_nlive = 0;
  mlc_prof_live_bytes = 0;
}

void mlc_prof_reset(void) {
  if (!mlc_prof_running()) return;
  mlc_mutex_lock(&mlc_prof_lock);
  mlc_prof_clear_locked(false);
  mlc_mutex_unlock(&mlc_prof_lock);
}

void mlc_prof_prefork(void) {
  __atomic_store_n(&mlc_prof_forking, 1, __ATOMIC_SEQ_CST);
  /* sched_yield, not a sleep: fork is no cancellation point, and must not become one. */
  while (__atomic_load_n(&mlc_prof_unwinders, __ATOMIC_ACQUIRE)) sched_yield();
  mlc_mutex_lock(&mlc_prof_lock);
}

void mlc_prof_postfork_parent(void) {
  mlc_mutex_unlock(&mlc_prof_lock);
  __atomic_store_n(&mlc_prof_forking, 0, __ATOMIC_RELEASE);
}

void mlc_prof_postfork_child(void) {
  /* The child's profile starts empty: the blocks it inherits keep their marks, and
     their frees find no record. */
  if (mlc_prof_running()) mlc_prof_clear_locked(true);
  mlc_store(&mlc_prof_seq, 0);
  mlc_prof_purged_at_dump = 0;
  mlc_prof_tsd.busy = false;
  mlc_mutex_reset(&mlc_prof_lock);
  mlc_store(&mlc_prof_unwinders, 0);
  __atomic_store_n(&mlc_prof_forking, 0, __ATOMIC_RELEASE);
}

/* ---- Dumps ---- */

/* A growing buffer in mappings of its own. */
typedef struct {
  uint8_t *buf;
  size_t len, cap;
  bool failed;
} mlc_pb_t;

static void mlc_pb_free(mlc_pb_t *b) {
  if (b->buf) mlc_os_unmap(b->buf, b->cap);
  b->buf = NULL;
  b->len = b->cap = 0;
}

static bool mlc_pb_reserve(mlc_pb_t *b, size_t more) {
  if (b->failed) return false;
  if (b->len + more <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 65536;
  while (cap < b->len + more) cap *= 2;
  uint8_t *nb = mlc_os_map(cap, MLC_PAGE);
  if (!nb) {
    b->failed = true;
    return false;
  }
  if (b->len) memcpy(nb, b->buf, b->len);
  if (b->buf) mlc_os_unmap(b->buf, b->cap);
  b->buf = nb;
  b->cap = cap;
  return true;
}

static void mlc_pb_raw(mlc_pb_t *b, const void *p, size_t n) {
  if (!mlc_pb_reserve(b, n)) return;
  memcpy(b->buf + b->len, p, n);
  b->len += n;
}

static void mlc_pb_varint(mlc_pb_t *b, uint64_t v) {
  uint8_t t[10];
  size_t n = 0;
  do {
    t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  mlc_pb_raw(b, t, n);
}

static void mlc_pb_int(mlc_pb_t *b, unsigned field, uint64_t v) {
  mlc_pb_varint(b, (uint64_t)field << 3);
  mlc_pb_varint(b, v);
}

static void mlc_pb_bytes(mlc_pb_t *b, unsigned field, const void *p, size_t n) {
  mlc_pb_varint(b, ((uint64_t)field << 3) | 2);
  mlc_pb_varint(b, n);
  mlc_pb_raw(b, p, n);
}

static void mlc_pb_str(mlc_pb_t *b, unsigned field, const char *s) {
  mlc_pb_bytes(b, field, s, strlen(s));
}

/* The string table: strings are appended to the profile (field 6) in the order they
   get their index. */
typedef struct {
  mlc_pb_t *out;
  int64_t next;
} mlc_strtab_t;

static int64_t mlc_strtab_add(mlc_strtab_t *t, const char *s) {
  mlc_pb_str(t->out, 6, s);
  return t->next++;
}

typedef struct {
  uintptr_t lo, hi, off;
  char name[240];
} mlc_prof_map_t;

typedef struct {
  mlc_prof_map_t *maps;
  unsigned n;
} mlc_prof_maps_t;

static int mlc_prof_collect_map(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  mlc_prof_maps_t *m = arg;
  const char *name = info->dlpi_name;
  bool main_exe = !name || !name[0];
  if (!main_exe && name[0] != '/') return 0; /* the vDSO */
  for (int i = 0; i < info->dlpi_phnum && m->n < MLC_PROF_MAX_MAPS; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    mlc_prof_map_t *e = &m->maps[m->n++];
    e->lo = info->dlpi_addr + ph->p_vaddr;
    e->hi = e->lo + ph->p_memsz;
    e->off = ph->p_offset;
    if (main_exe)
      mlc_os_self_exe(e->name, sizeof(e->name));
    else
      mlc_snprintf(e->name, sizeof(e->name), "%s", name);
  }
  return 0;
}

/* A snapshot of one site, as the dump copies it out under the lock. */
typedef struct {
  int64_t v[6]; /* inuse objects, bytes; alloc objects, bytes; freed bytes; retained bytes */
  unsigned depth;
  uintptr_t frames[MLC_PROF_MAX_DEPTH];
} mlc_prof_snap_t;

/* Open addressing: address -> location id, in a mapping of its own. */
typedef struct {
  uintptr_t *keys;
  size_t mask;
  uint64_t next_id;
} mlc_prof_locs_t;

static uint64_t mlc_prof_loc_id(mlc_prof_locs_t *l, uintptr_t a, bool *fresh) {
  size_t i = (size_t)((a * 0x9E3779B97F4A7C15ULL) >> 20) & l->mask;
  *fresh = false;
  while (l->keys[2 * i]) {
    if (l->keys[2 * i] == a) return l->keys[2 * i + 1];
    i = (i + 1) & l->mask;
  }
  l->keys[2 * i] = a;
  l->keys[2 * i + 1] = ++l->next_id;
  *fresh = true;
  return l->next_id;
}

/* CRC-32 (gzip's), table built per call: dumps are rare. */
typedef struct {
  uint32_t table[256];
  uint32_t crc;
} mlc_crc_t;

static void mlc_crc_init(mlc_crc_t *c) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t x = i;
    for (int k = 0; k < 8; k++) x = (x & 1) ? 0xEDB88320u ^ (x >> 1) : x >> 1;
    c->table[i] = x;
  }
  c->crc = 0xFFFFFFFFu;
}

static void mlc_crc_add(mlc_crc_t *c, const uint8_t *p, size_t n) {
  uint32_t x = c->crc;
  for (size_t i = 0; i < n; i++) x = c->table[(x ^ p[i]) & 0xff] ^ (x >> 8);
  c->crc = x;
}

static void mlc_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Writes data as a gzip file of stored (uncompressed) deflate blocks: 0 or an errno
   value. */
static int mlc_prof_write_gzip(int fd, const uint8_t *data, size_t len) {
  static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  int err = mlc_os_write_all(fd, header, sizeof(header));
  mlc_crc_t crc;
  mlc_crc_init(&crc);
  size_t off = 0;
  do {
    size_t n = MLC_MIN(len - off, (size_t)65535);
    uint8_t h[5] = {off + n == len ? 1 : 0, (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)~n,
                    (uint8_t)(~n >> 8)};
    if (!err) err = mlc_os_write_all(fd, h, 5);
    if (!err && n) err = mlc_os_write_all(fd, data + off, n);
    mlc_crc_add(&crc, data + off, n);
    off += n;
  } while (off < len && !err);
  uint8_t trailer[8];
  mlc_le32(trailer, crc.crc ^ 0xFFFFFFFFu);
  mlc_le32(trailer + 4, (uint32_t)len);
  if (!err) err = mlc_os_write_all(fd, trailer, 8);
  return err;
}

static int mlc_prof_write_file(const char *path, const uint8_t *data, size_t len, bool gzip) {
  int fd, err = mlc_os_create_file(path, &fd);
  if (err) return err;
  err = gzip ? mlc_prof_write_gzip(fd, data, len) : mlc_os_write_all(fd, data, len);
  int cerr = mlc_os_close_checked(fd);
  return err ? err : cerr;
}

/* "name+0xoff" (or the address) of the frame at ip, for the text outputs. */
static void mlc_prof_frame_name(uintptr_t ip, char *buf, size_t size) {
  Dl_info info;
  if (dladdr((void *)(ip - 1), &info) && info.dli_sname)
    mlc_snprintf(buf, size, "%s+0x%zx", info.dli_sname, (size_t)(ip - (uintptr_t)info.dli_saddr));
  else if (dladdr((void *)(ip - 1), &info) && info.dli_fname)
    mlc_snprintf(buf, size, "%s+0x%zx", info.dli_fname, (size_t)(ip - (uintptr_t)info.dli_fbase));
  else
    mlc_snprintf(buf, size, "0x%zx", (size_t)ip);
}

/* Copies every site with something to report; *n sites.  NULL (and *n 0) when there
   is none or no memory.  *mapped: the mapping's size for mlc_os_unmap.  Resets the
   freed counts when reset_freed (a dump). */
static mlc_prof_snap_t *mlc_prof_snapshot(size_t *n, size_t *mapped, bool reset_freed,
                                          double retained_total, uint64_t *purged_since) {
  mlc_mutex_lock(&mlc_prof_lock);
  size_t cap = mlc_prof_nsites ? mlc_prof_nsites : 1;
  *mapped = cap * sizeof(mlc_prof_snap_t);
  mlc_prof_snap_t *snap = mlc_os_map(*mapped, MLC_PAGE);
  double freed_total = 0;
  *n = 0;
  if (snap) {
    for (size_t i = 0; i < MLC_PROF_SITE_BUCKETS; i++)
      for (mlc_prof_site_t *s = mlc_prof_sites[i]; s; s = s->next) freed_total += s->freed_bytes;
    for (size_t i = 0; i < MLC_PROF_SITE_BUCKETS; i++)
      for (mlc_prof_site_t *s = mlc_prof_sites[i]; s && *n < cap; s = s->next) {
        if (s->alloc_objs < 0.5 && s->inuse_objs < 0.5 && s->freed_bytes < 0.5) continue;
        mlc_prof_snap_t *e = &snap[(*n)++];
        e->v[0] = (int64_t)(s->inuse_objs + 0.5);
        e->v[1] = (int64_t)(s->inuse_bytes + 0.5);
        e->v[2] = (int64_t)(s->alloc_objs + 0.5);
        e->v[3] = (int64_t)(s->alloc_bytes + 0.5);
        e->v[4] = (int64_t)(s->freed_bytes + 0.5);
        e->v[5] = freed_total > 0 ? (int64_t)(retained_total * s->freed_bytes / freed_total + 0.5) : 0;
        e->depth = s->depth;
        memcpy(e->frames, s->frames, s->depth * sizeof(uintptr_t));
        if (reset_freed) s->freed_bytes = 0;
      }
  }
  if (purged_since) {
    uint64_t purged = mlc_load(&mlc_gc_bytes_purged);
    *purged_since = purged - mlc_prof_purged_at_dump;
    if (reset_freed) mlc_prof_purged_at_dump = purged;
  }
  mlc_mutex_unlock(&mlc_prof_lock);
  if (!snap) *mapped = 0;
  return snap;
}

/* Encodes the profile of the snapshot. */
static void mlc_prof_encode(mlc_pb_t *out, const mlc_prof_snap_t *snap, size_t n,
                            const mlc_prof_maps_t *maps, const char *const *comments,
                            unsigned ncomments) {
  static const char *const types[6][2] = {
      {"inuse_objects", "count"}, {"inuse_space", "bytes"},   {"alloc_objects", "count"},
      {"alloc_space", "bytes"},   {"freed_space", "bytes"},   {"retained_space", "bytes"},
  };
  mlc_pb_t msg = {0}, packed = {0};
  mlc_strtab_t st = {out, 0};
  mlc_strtab_add(&st, "");
  int64_t ids[6][2];
  for (int i = 0; i < 6; i++) {
    ids[i][0] = mlc_strtab_add(&st, types[i][0]);
    ids[i][1] = mlc_strtab_add(&st, types[i][1]);
  }
  int64_t space = mlc_strtab_add(&st, "space");
  for (int i = 0; i < 6; i++) {
    msg.len = 0;
    mlc_pb_int(&msg, 1, (uint64_t)ids[i][0]);
    mlc_pb_int(&msg, 2, (uint64_t)ids[i][1]);
    mlc_pb_bytes(out, 1, msg.buf, msg.len);
  }
  /* Mappings (ids from 1). */
  for (unsigned i = 0; i < maps->n; i++) {
    int64_t name = mlc_strtab_add(&st, maps->maps[i].name);
    msg.len = 0;
    mlc_pb_int(&msg, 1, i + 1);
    mlc_pb_int(&msg, 2, maps->maps[i].lo);
    mlc_pb_int(&msg, 3, maps->maps[i].hi);
    mlc_pb_int(&msg, 4, maps->maps[i].off);
    mlc_pb_int(&msg, 5, (uint64_t)name);
    mlc_pb_bytes(out, 3, msg.buf, msg.len);
  }
  /* Samples, and a location for each address the first time it appears. */
  size_t nframes = 0;
  for (size_t i = 0; i < n; i++) nframes += snap[i].depth;
  size_t slots = 64;
  while (slots < 2 * nframes) slots *= 2;
  mlc_prof_locs_t locs = {mlc_os_map(slots * 2 * sizeof(uintptr_t), MLC_PAGE), slots - 1, 0};
  if (!locs.keys) {
    out->failed = true;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const mlc_prof_snap_t *e = &snap[i];
    packed.len = 0;
    for (unsigned k = 0; k < e->depth; k++) {
      bool fresh;
      /* The call instruction, not the return address: pprof symbolises what it is
         given, and a call at a function's end returns into the next one. */
      uintptr_t a = e->frames[k] - 1;
      uint64_t id = mlc_prof_loc_id(&locs, a, &fresh);
      mlc_pb_varint(&packed, id);
      if (fresh) {
        mlc_pb_t loc = {0};
        mlc_pb_int(&loc, 1, id);
        for (unsigned m = 0; m < maps->n; m++)
          if (a >= maps->maps[m].lo && a < maps->maps[m].hi) {
            mlc_pb_int(&loc, 2, m + 1);
            break;
          }
        mlc_pb_int(&loc, 3, a);
        /* The dynamic symbol that contains it, when there is one (glibc's dladdr checks
           the symbol's size): what pprof shows for stripped binaries, such as Debian's,
           whose functions it cannot find itself.  Other addresses it symbolises from
           the mapping's file. */
        Dl_info info;
        if (dladdr((void *)a, &info) && info.dli_sname) {
          mlc_pb_t line = {0}, fn = {0};
          int64_t name = mlc_strtab_add(&st, info.dli_sname);
          int64_t file = mlc_strtab_add(&st, info.dli_fname ? info.dli_fname : "");
          mlc_pb_int(&fn, 1, id); /* one function per such location: ids stay unique */
          mlc_pb_int(&fn, 2, (uint64_t)name);
          mlc_pb_int(&fn, 3, (uint64_t)name);
          mlc_pb_int(&fn, 4, (uint64_t)file);
          mlc_pb_bytes(out, 5, fn.buf, fn.len);
          mlc_pb_int(&line, 1, id);
          mlc_pb_bytes(&loc, 4, line.buf, line.len);
          if (line.failed || fn.failed) out->failed = true;
          mlc_pb_free(&line);
          mlc_pb_free(&fn);
        }
        mlc_pb_bytes(out, 4, loc.buf, loc.len);
        mlc_pb_free(&loc);
      }
    }
    msg.len = 0;
    mlc_pb_bytes(&msg, 1, packed.buf, packed.len);
    packed.len = 0;
    for (int v = 0; v < 6; v++) mlc_pb_varint(&packed, (uint64_t)e->v[v]);
    mlc_pb_bytes(&msg, 2, packed.buf, packed.len);
    mlc_pb_bytes(out, 2, msg.buf, msg.len);
  }
  mlc_os_unmap(locs.keys, slots * 2 * sizeof(uintptr_t));
  mlc_pb_int(out, 9, mlc_os_realtime_ns()); /* time_nanos */
  msg.len = 0;
  mlc_pb_int(&msg, 1, (uint64_t)space);
  mlc_pb_int(&msg, 2, (uint64_t)ids[1][1]);
  mlc_pb_bytes(out, 11, msg.buf, msg.len);
  mlc_pb_int(out, 12, (uint64_t)mlc_prof_mean);
  for (unsigned i = 0; i < ncomments; i++) mlc_pb_int(out, 13, (uint64_t)mlc_strtab_add(&st, comments[i]));
  mlc_pb_int(out, 14, (uint64_t)ids[1][0]); /* default_sample_type: inuse_space */
  if (msg.failed || packed.failed) out->failed = true;
  mlc_pb_free(&msg);
  mlc_pb_free(&packed);
}

/* The folded stacks: "outermost;...;innermost bytes", in-use bytes, one line a site. */
static void mlc_prof_folded(mlc_pb_t *out, const mlc_prof_snap_t *snap, size_t n) {
  char name[256], num[32];
  for (size_t i = 0; i < n; i++) {
    const mlc_prof_snap_t *e = &snap[i];
    if (e->v[1] <= 0) continue;
    for (unsigned k = e->depth; k-- > 0;) {
      mlc_prof_frame_name(e->frames[k], name, sizeof(name));
      for (char *c = name; *c; c++)
        if (*c == ';' || *c == ' ') *c = '_';
      mlc_pb_raw(out, name, strlen(name));
      if (k) mlc_pb_raw(out, ";", 1);
    }
    size_t len = mlc_snprintf(num, sizeof(num), " %lld\n", (long long)e->v[1]);
    mlc_pb_raw(out, num, len);
  }
}

int mlc_prof_dump(const char *path) {
  if (!mlc_boot() || !mlc_prof_running()) return ENOENT;
  mlc_prof_tsd_t *t = &mlc_prof_tsd;
  bool was_busy = t->busy;
  t->busy = true;
  char name[320], folded[330];
  uint64_t seq = __atomic_fetch_add(&mlc_prof_seq, 1, __ATOMIC_RELAXED);
  if (path) {
    if (strlen(path) >= sizeof(name)) {
      t->busy = was_busy;
      return ENAMETOOLONG;
    }
    mlc_snprintf(name, sizeof(name), "%s", path);
  } else {
    mlc_snprintf(name, sizeof(name), "%s.%ld.%llu.pb.gz", mlc_opt.prof_prefix, mlc_os_getpid(),
                 (unsigned long long)seq);
  }
  /* foo.pb.gz -> foo.folded; anything else gets .folded appended. */
  size_t nl = strlen(name);
  memcpy(folded, name, nl + 1);
  if (nl > 6 && !strcmp(name + nl - 6, ".pb.gz")) folded[nl - 6] = '\0';
  mlc_snprintf(folded + strlen(folded), sizeof(folded) - strlen(folded), ".folded");

  /* What the process keeps besides live blocks, read before the profiler's lock (the
     statistics take the caches' and arenas' locks). */
  melloc_stats_t st;
  st.size = sizeof(st);
  mlc_stats_gather(&st, true);
  size_t idle = st.mapped > st.allocated + st.cached ? st.mapped - st.allocated - st.cached : 0;
  size_t dirty = st.resident > st.allocated + st.cached ? st.resident - st.allocated - st.cached : 0;
  if (dirty > idle) dirty = idle;

  mlc_prof_maps_t maps = {mlc_os_map(MLC_PROF_MAX_MAPS * sizeof(mlc_prof_map_t), MLC_PAGE), 0};
  if (!maps.maps) {
    t->busy = was_busy;
    return ENOMEM;
  }
  dl_iterate_phdr(mlc_prof_collect_map, &maps);
  size_t n, mapped;
  uint64_t purged_since;
  mlc_prof_snap_t *snap =
      mlc_prof_snapshot(&n, &mapped, true, (double)(st.cached + dirty), &purged_since);
  int err = 0;
  if (!snap) err = ENOMEM;
  if (!err) {
    char c[3][200];
    mlc_snprintf(c[0], sizeof(c[0]),
                 "melloc %s heap profile: sampled every %llu bytes on average, %zu sites",
                 PACKAGE_VERSION, (unsigned long long)mlc_opt.prof_sample_bytes, n);
    mlc_snprintf(c[1], sizeof(c[1]),
                 "resident %zu bytes: %zu allocated, %zu cached by threads, about %zu free "
                 "waiting for decay",
                 st.resident, st.allocated, st.cached, dirty);
    mlc_snprintf(c[2], sizeof(c[2]),
                 "the collector returned %llu bytes to the kernel since the last dump",
                 (unsigned long long)purged_since);
    const char *comments[3] = {c[0], c[1], c[2]};
    mlc_pb_t out = {0};
    mlc_prof_encode(&out, snap, n, &maps, comments, 3);
    err = out.failed ? ENOMEM : mlc_prof_write_file(name, out.buf, out.len, true);
    mlc_pb_free(&out);
    if (!err) {
      mlc_pb_t fo = {0};
      mlc_prof_folded(&fo, snap, n);
      err = fo.failed ? ENOMEM : mlc_prof_write_file(folded, fo.buf ? fo.buf : (const uint8_t *)"", fo.len, false);
      mlc_pb_free(&fo);
    }
  }
  if (snap) mlc_os_unmap(snap, mapped);
  mlc_os_unmap(maps.maps, MLC_PROF_MAX_MAPS * sizeof(mlc_prof_map_t));
  t->busy = was_busy;
  return err;
}

/* ---- At exit ---- */

static void mlc_prof_leak_report(void) {
  size_t n, mapped;
  mlc_prof_snap_t *snap = mlc_prof_snapshot(&n, &mapped, false, 0, NULL);
  if (!snap) return;
  /* The largest sites first (selection: a report prints a handful). */
  uint64_t total = 0, objs = 0;
  for (size_t i = 0; i < n; i++) {
    total += (uint64_t)snap[i].v[1];
    objs += (uint64_t)snap[i].v[0];
  }
  char line[1024];
  size_t len;
  if (total) {
    len = mlc_snprintf(line, sizeof(line),
                       "melloc: leak report: about %llu bytes in %llu objects still allocated at "
                       "exit (estimated from samples)\n",
                       (unsigned long long)total, (unsigned long long)objs);
    mlc_os_write_stderr(line, len);
  }
  for (int shown = 0; shown < 10; shown++) {
    size_t best = n;
    for (size_t i = 0; i < n; i++)
      if (snap[i].v[1] > 0 && (best == n || snap[i].v[1] > snap[best].v[1])) best = i;
    if (best == n) break;
    mlc_prof_snap_t *e = &snap[best];
    len = mlc_snprintf(line, sizeof(line), "melloc: leak: %lld bytes in %lld objects allocated at",
                       (long long)e->v[1], (long long)e->v[0]);
    for (unsigned k = 0; k < e->depth && k < 6; k++) {
      char fn[256];
      mlc_prof_frame_name(e->frames[k], fn, sizeof(fn));
      len += mlc_snprintf(line + len, sizeof(line) - len, "%s%s", k ? " <- " : " ", fn);
    }
    len += mlc_snprintf(line + len, sizeof(line) - len, "\n");
    mlc_os_write_stderr(line, len);
    e->v[1] = 0;
  }
  mlc_os_unmap(snap, mapped);
}

__attribute__((destructor)) static void mlc_prof_at_exit(void) {
  if (!mlc_prof_running()) return;
  int saved = errno;
  mlc_prof_tsd.busy = true;
  if (mlc_load(&mlc_opt.prof_leak)) mlc_prof_leak_report();
  if (mlc_load(&mlc_opt.prof_dump_at_exit)) {
    int err = mlc_prof_dump(NULL);
    if (err) {
      char buf[200];
      size_t len = mlc_snprintf(buf, sizeof(buf), "melloc: prof: the dump at exit failed (errno %d)\n", err);
      mlc_os_write_stderr(buf, len);
    }
  }
  errno = saved;
}
