/* SPDX-License-Identifier: MIT */
/*
 * The public entry points: melloc_* and the standard names (aliases of the same
 * functions).  Small requests take the thread cache's inline fast path; everything
 * else goes to the arenas or to huge mappings.  Errors follow the C standard and glibc:
 * NULL with errno = ENOMEM for impossible sizes, EINVAL for bad alignments, and a
 * one-line message and abort() for heap misuse.
 */
#include "internal.h"

#include "arena.h"
#include "alloc.h"
#include "chunk.h"
#include "free.h"
#include "gc.h"
#include "harden.h"
#include "init.h"
#include "os.h"
#include "prof.h"
#include "sizeclass.h"
#include "tcache.h"

#include <melloc.h>

/* ---- Helpers ---- */

void *mlc_alloc_big_plain(size_t size, size_t align, bool zero) {
  if (MLC_UNLIKELY(size > (size_t)PTRDIFF_MAX) || !mlc_boot()) {
    errno = ENOMEM;
    return NULL;
  }
  void *p;
  size_t npages = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  mlc_assert(npages >= MLC_LCLASS_MIN_PAGES);
  if (npages <= MLC_LCACHE_MAX_PAGES && align <= MLC_PAGE &&
      (p = mlc_tcache_large_alloc(npages)) != NULL) {
    if (zero) memset(p, 0, npages << MLC_PAGE_SHIFT);
    return p;
  }
  for (int attempt = 0;; attempt++) {
    if (size <= MLC_LARGE_MAX && align <= MLC_CHUNK / 4)
      p = mlc_arena_large_alloc(mlc_tsd_arena(), size, align, zero);
    else
      p = mlc_huge_alloc(size, align, zero);
    if (MLC_LIKELY(p != NULL)) {
      mlc_free_key_clear(p); /* a run's first word may hold it from an earlier life */
      mlc_gc_maybe_start(); /* a process that maps much gets its collector early */
      return p;
    }
    /* Out of address space (RLIMIT_AS) or memory: what caches and spare chunks hold
       may be what is missing -- give it all back and try once more. */
    if (attempt == 1 || mlc_gc_collect_now() == 0) break;
  }
  errno = ENOMEM;
  return NULL;
}

void *mlc_alloc_grow_plain(size_t size) {
  size_t n = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  void *q = mlc_arena_large_alloc_room(mlc_tsd_arena(), size, (MLC_LARGE_MAX >> MLC_PAGE_SHIFT) - n);
  if (!q) return NULL;
  mlc_free_key_clear(q); /* a run's first word may hold it from an earlier life */
  mlc_gc_maybe_start();
  return q;
}

void *mlc_alloc_grow(size_t size) {
  return MLC_UNLIKELY(mlc_prof_active()) ? mlc_prof_alloc_grow(size) : mlc_alloc_grow_plain(size);
}

/* Every allocation above MLC_SMALL_MAX: counted by the heap profiler when it runs. */
static MLC_NOINLINE void *mlc_alloc_big(size_t size, size_t align, bool zero) {
  if (MLC_UNLIKELY(mlc_prof_active())) return mlc_prof_alloc_big(size, align, zero);
  return mlc_alloc_big_plain(size, align, zero);
}

/* malloc above MLC_SMALL_MAX: a block from the thread cache's large stacks without a
   stack frame, else mlc_alloc_big.  While the heap profiler runs, a large allocation
   is counted before it pops (tcache.c, "Sampling"): here when it is not the next
   sample, else in mlc_alloc_big.  (Sizes near SIZE_MAX round to 0 pages here.) */
static MLC_NOINLINE void *mlc_malloc_big(size_t size) {
  size_t np = MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT;
  if (np - MLC_LCLASS_MIN_PAGES <= MLC_LCACHE_MAX_PAGES - MLC_LCLASS_MIN_PAGES) {
    if (MLC_LIKELY(!mlc_prof_active())) {
      void *p = mlc_tcache_large_pop(np);
      if (p) return p;
    } else if (mlc_prof_big_unsampled(np << MLC_PAGE_SHIFT)) {
      void *p = mlc_tcache_large_pop(np);
      return p ? p : mlc_alloc_big_plain(size, 0, false);
    }
  }
  return mlc_alloc_big(size, 0, false);
}

/* malloc's fast path: size to class with one table load, then the cache pop.  No branch
   on the size below MLC_SMALL_MAX: a program whose sizes fall on both sides of a test
   mispredicts it.  (A test for size <= 128, which skipped the load below it, cost
   bench's mixed-t1, 60% of its sizes at most 128, 0.48 mispredicted branches per
   malloc in cachegrind's model, 1.11 -> 0.63 per operation, and 18% of its time: 141
   -> 115 ms; larson-t1 182 -> 165.) */
MLC_INLINE void *mlc_malloc_inline(size_t size) {
  if (MLC_UNLIKELY(size > MLC_SMALL_MAX)) return mlc_malloc_big(size);
  size_t cls = mlc_size_class(size);
#if MLC_TB_ASM
  /* In the register the slow path takes it in: gcc 12 otherwise loads it into another
     and copies it before the pop, one instruction more on every malloc. */
  __asm__("" : "+D"(cls));
#endif
  return mlc_tcache_alloc(cls);
}

static bool mlc_is_pow2(size_t x) { return x && !(x & (x - 1)); }

/* align is a power of two. */
void *mlc_aligned_plain(size_t align, size_t size) {
  if (align <= 16) return mlc_malloc_inline(size);
  if (size <= MLC_SMALL_MAX && align <= MLC_GRANULE) {
    unsigned cls = mlc_size_class_aligned(size, align);
    if (cls) return mlc_tcache_alloc(cls);
  }
  if (size <= MLC_SMALL_MAX) size = MLC_SMALL_MAX + 1;
  return mlc_alloc_big(size, align, false);
}

/* call: the public function's name, for the hardened library's messages. */
static void *mlc_alloc_aligned(size_t align, size_t size, const char *call) {
  if (mlc_config_hardened) return mlc_harden_aligned(align, size, call);
  return mlc_aligned_plain(align, size);
}

void *mlc_malloc_plain(size_t size) { return mlc_malloc_inline(size); }

void mlc_free_plain(void *p) { mlc_free_inline(p); }

void *mlc_zalloc_big_plain(size_t size) {
  mlc_assert(size > MLC_SMALL_MAX);
  return mlc_alloc_big(size, 0, true);
}

/* ---- The API ---- */

/* The hardened library (MLC_HARDENED) enters its layer (harden.c) first thing; in the
   default one mlc_config_hardened is a constant false and the tests vanish. */

MLC_EXPORT void *melloc_malloc(size_t size) {
  if (mlc_config_hardened) return mlc_harden_malloc(size);
  return mlc_malloc_inline(size);
}

MLC_EXPORT void melloc_free(void *p) {
  if (mlc_config_hardened) {
    mlc_harden_free(p);
    return;
  }
  mlc_free_inline(p);
}

MLC_EXPORT void *melloc_calloc(size_t n, size_t size) {
  if (mlc_config_hardened) return mlc_harden_calloc(n, size);
  size_t total;
  if (MLC_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  if (total > MLC_SMALL_MAX) return mlc_alloc_big(total, 0, true);
  void *p = mlc_malloc_inline(total);
  if (MLC_LIKELY(p != NULL)) memset(p, 0, total);
  return p;
}

/* A block that realloc grows past MLC_LARGE_MAX leaves its run for a huge mapping,
   and the move copies it: 2 MiB, once in each such block's life.  From there on it
   grows without a copy (the cache's free ranges after it, mremap).  A thread whose
   grown blocks cross MLC_LARGE_MAX is likely to grow the next ones as far: while it
   has credit for it, a grown block moves to its huge mapping at MLC_GROW_EARLY
   instead, and copies an eighth as much.  Each crossing earns two early moves (at most
   MLC_GROW_CREDIT_MAX held), each early move spends one: a thread that grows only
   smaller blocks, which an early move would copy for nothing, soon has none.  bench's
   grow-t4 (4 threads growing buffers to 16 MiB by 1/64 of their size), 5 interleaved
   runs: the copies were 14-17% of its profile, glibc's realloc copies nothing there
   (it grows the block at the top of the thread's heap). */
#define MLC_GROW_EARLY ((size_t)256 << 10)
#define MLC_GROW_CREDIT_MAX 4u

/* A grown block went past MLC_LARGE_MAX. */
static void mlc_grow_crossed(void) {
  unsigned c = mlc_tsd.grow_credit + 2;
  mlc_tsd.grow_credit = c < MLC_GROW_CREDIT_MAX ? c : MLC_GROW_CREDIT_MAX;
}

/* Whether a block of old bytes grown to size moves to a huge mapping now. */
static bool mlc_grow_early(size_t size, size_t old) {
  return size >= MLC_GROW_EARLY && size > old && size <= MLC_LARGE_MAX && mlc_tsd.grow_credit > 0;
}

/* realloc's new block of size bytes (above MLC_SMALL_MAX) for a block of old bytes: when
   it grows out of a small block or a large run (grow) and stays large, a run with room
   after it to MLC_LARGE_MAX (mlc_alloc_grow), so that the steps that follow grow in
   place until it is huge (or moves early: above); else malloc's.  A buffer grown by a little at a time used to
   move to a run of exactly its size, and again whenever its neighbours blocked it:
   bench's grow, 4 threads to 2 MiB, copied 1.3 GB per thread in 800 rounds (57% of its
   time); with room for its double, 0.4 GB; with room to MLC_LARGE_MAX, 15 MB.  The room
   is free pages, resident only where an earlier block left them dirty. */
static MLC_NOINLINE void *mlc_realloc_new_big(size_t size, size_t old, bool grow) {
  if (grow && size > old && size <= MLC_LARGE_MAX) {
    void *q;
    if (mlc_grow_early(size, old)) {
      mlc_tsd.grow_credit--;
      q = mlc_alloc_big(size, MLC_CHUNK, false); /* aligned past MLC_CHUNK / 4: huge */
    } else {
      q = mlc_alloc_grow(size);
    }
    if (q) return q;
  }
  return mlc_malloc_inline(size);
}

/* realloc of a large run that is a sample of the heap profiler (b): what an unsampled
   block would do, so that the profile counts what the program does.  A sampled small
   block (a run of its own) stays where it is within its class and moves otherwise; a
   sampled large block's in-use bytes follow its size. */
static MLC_NOINLINE void *mlc_realloc_sampled(void *p, size_t size, const mlc_block_t *b) {
  size_t was = mlc_prof_sampled_size(p);
  if (was != 0 && was <= MLC_SMALL_MAX) {
    if (size <= was && mlc_size_class(size) == mlc_size_class(was)) return p;
  } else if ((size > MLC_SMALL_MAX && MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT == b->pages) ||
             (size > MLC_SMALL_MAX && size <= MLC_LARGE_MAX && mlc_arena_large_resize(b->chunk, p, size))) {
    mlc_prof_resized(p, p, size);
    return p;
  }
  void *q = size <= MLC_SMALL_MAX ? mlc_malloc_inline(size) : mlc_realloc_new_big(size, b->size, true);
  if (!q) return NULL;
  memcpy(q, p, MLC_MIN(b->size, size));
  mlc_free_inline(p);
  return q;
}

/* realloc of the large run b at p past MLC_LARGE_MAX: a huge block, and credit for
   early moves (mlc_grow_crossed).  The run's pages go back to the kernel at once when
   it is big: the thread grows its next blocks the same way, past them (mlc_grow_early),
   so they would stay resident and unused until the collector's decay (bench's grow-t4
   kept each thread's first 2 MiB run, 8 MiB of its 71 MiB peak; glibc's was 65). */
static MLC_NOINLINE void *mlc_realloc_past_large(void *p, size_t size, const mlc_block_t *b) {
  mlc_grow_crossed();
  void *q = mlc_malloc_inline(size);
  if (!q) return NULL;
  memcpy(q, p, b->size);
  if (b->size >= MLC_GROW_EARLY)
    mlc_arena_large_free_purged(b->chunk, p);
  else
    mlc_free_inline(p);
  return q;
}

/* Everything realloc does; melloc_realloc below first tries the cases that need no
   new block without a stack frame. */
static MLC_NOINLINE void *mlc_realloc_slow(void *p, size_t size) {
  if (!p) return mlc_malloc_inline(size);
  if (size == 0) {
    /* As glibc: the block is freed and NULL returned. */
    mlc_free_inline(p);
    return NULL;
  }
  if (MLC_UNLIKELY(size > (size_t)PTRDIFF_MAX)) {
    errno = ENOMEM;
    return NULL;
  }
  mlc_block_t b;
  mlc_block_check(p, MLC_CALL_REALLOC, &b);
  size_t old = b.size;
  switch (b.kind) {
    case MLC_BLOCK_SMALL:
      if (size <= old && mlc_size_class(size) == b.cls) return p;
      break;
    case MLC_BLOCK_HUGE:
      /* A block that moved early (mlc_grow_early) stays in its mapping from
         MLC_GROW_EARLY on, whichever way it goes: its size is rounded to the kernel's
         pages (16 or 64 KiB on some), so the program's next step may fit in it. */
      if (size > MLC_LARGE_MAX || (old <= MLC_LARGE_MAX && size >= MLC_GROW_EARLY)) {
        void *q = mlc_huge_realloc(b.huge, size);
        if (q) {
          if (old <= MLC_LARGE_MAX && size > MLC_LARGE_MAX) mlc_grow_crossed();
          if (MLC_UNLIKELY(mlc_prof_active())) mlc_prof_resized(p, q, size);
          return q;
        }
      }
      break;
    case MLC_BLOCK_LARGE:
      if (MLC_UNLIKELY(mlc_chunk_sampled_is(b.chunk, p))) return mlc_realloc_sampled(p, size, &b);
      /* Same page count: nothing to do. */
      if (size > MLC_SMALL_MAX && MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT == b.pages) return p;
      if (size > MLC_SMALL_MAX && size <= MLC_LARGE_MAX && !mlc_grow_early(size, old) &&
          mlc_arena_large_resize(b.chunk, p, size))
        return p;
      if (size > MLC_LARGE_MAX) return mlc_realloc_past_large(p, size, &b);
      break;
  }
  /* Above MLC_SMALL_MAX a block that grows out of its pages moves to a run with room
     (mlc_realloc_new_big); the test folds into malloc's own, so that small moves pay
     nothing for it. */
  void *q = MLC_LIKELY(size <= MLC_SMALL_MAX) ? mlc_malloc_inline(size)
                                              : mlc_realloc_new_big(size, old, b.kind != MLC_BLOCK_HUGE);
  if (!q) return NULL;
  memcpy(q, p, MLC_MIN(old, size));
  mlc_free_inline(p);
  return q;
}

MLC_EXPORT void *melloc_realloc(void *p, size_t size) {
  if (mlc_config_hardened) return mlc_harden_realloc(p, size);
  /* A size of 1..PTRDIFF_MAX that stays in p's small class, or in p's page count: p
     is returned as it is, once free's checks pass (a slot's start, or a live run's,
     without the free key); everything else, and every doubt, in mlc_realloc_slow. */
  if (MLC_LIKELY(p && size - 1 < (size_t)PTRDIFF_MAX && mlc_win_covers(p))) {
    unsigned cls = (unsigned)mlc_win_class_in(p);
    if (cls) {
      if (size <= mlc_class_size[cls] && mlc_size_class(size) == cls &&
          mlc_tb_is_slot(mlc_tb_base(), cls, p) && !mlc_free_key_is_set(p))
        return p;
    } else if (size > MLC_SMALL_MAX) {
      mlc_pmleaf_t *leaf = mlc_pagemap_leaf((uintptr_t)p); /* p < 2^48: in the window */
      mlc_chunk_t *c = leaf ? mlc_pagemap_leaf_entry(leaf, p) : NULL;
      if (c && !mlc_huge_of_entry(c)) {
        size_t np = mlc_chunk_run_pages(c, p);
        if (np && MLC_ALIGN_UP(size, MLC_PAGE) >> MLC_PAGE_SHIFT == np && !mlc_free_key_is_set(p))
          return p;
      }
    }
  }
  return mlc_realloc_slow(p, size);
}

MLC_EXPORT void melloc_free_sized(void *p, size_t size) {
  (void)size;
  if (mlc_config_hardened) {
    mlc_harden_free(p);
    return;
  }
  mlc_free_inline(p);
}

MLC_EXPORT int melloc_posix_memalign(void **memptr, size_t align, size_t size) {
  if (!mlc_is_pow2(align) || align % sizeof(void *) != 0) return EINVAL;
  int saved = errno;
  void *p = mlc_alloc_aligned(align, size, "posix_memalign");
  if (!p) {
    errno = saved;
    return ENOMEM;
  }
  *memptr = p;
  return 0;
}

MLC_EXPORT void *melloc_aligned_alloc(size_t align, size_t size) {
  if (!mlc_is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return mlc_alloc_aligned(align, size, "aligned_alloc");
}

MLC_EXPORT size_t melloc_usable_size(const void *p) {
  if (mlc_config_hardened) return mlc_harden_usable_size(p);
  if (!p) return 0;
  mlc_block_t b;
  mlc_block_check(p, MLC_CALL_USABLE_SIZE, &b);
  return b.size;
}

MLC_EXPORT const char *melloc_version(void) { return PACKAGE_VERSION; }

MLC_EXPORT int melloc_version_number(void) { return MELLOC_VERSION_NUMBER; }

MLC_EXPORT size_t melloc_collect(void) { return mlc_gc_collect_now(); }

MLC_EXPORT int melloc_option_get(const char *name, char *value, size_t len) {
  return mlc_option_get(name, value, len);
}

MLC_EXPORT int melloc_option_set(const char *name, const char *value) {
  return mlc_option_set(name, value);
}

MLC_EXPORT int melloc_prof_dump(const char *path) { return mlc_prof_dump(path); }

MLC_EXPORT void melloc_prof_reset(void) { mlc_prof_reset(); }

/* ---- The standard names ---- */

/* Sanitizer builds of the tests (make check-sanitizers) define MELLOC_PREFIX_ONLY: the
   sanitizer runtime owns the standard names there. */
#ifndef MELLOC_PREFIX_ONLY

static void *mlc_memalign(size_t align, size_t size) {
  /* glibc: an alignment that is not a power of two is rounded up to one. */
  if (align > ((size_t)1 << (sizeof(size_t) * 8 - 1))) {
    errno = EINVAL;
    return NULL;
  }
  if (!mlc_is_pow2(align)) {
    size_t a = 1;
    while (a < align) a <<= 1;
    align = a;
  }
  return mlc_alloc_aligned(align, size, "memalign");
}

/* Declared here: not every libc's headers declare all of them (C23's free_sized). */
void *malloc(size_t size);
void free(void *p);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);
int posix_memalign(void **memptr, size_t align, size_t size);
void *aligned_alloc(size_t align, size_t size);
size_t malloc_usable_size(void *p);
void free_sized(void *p, size_t size);
void *memalign(size_t align, size_t size);
void *valloc(size_t size);
void *pvalloc(size_t size);
void *reallocarray(void *p, size_t n, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);

#define MLC_ALIAS(name) __attribute__((alias(#name), visibility("default")))

MLC_EXPORT void *malloc(size_t size) MLC_ALIAS(melloc_malloc);
MLC_EXPORT void free(void *p) MLC_ALIAS(melloc_free);
MLC_EXPORT void *calloc(size_t n, size_t size) MLC_ALIAS(melloc_calloc);
MLC_EXPORT void *realloc(void *p, size_t size) MLC_ALIAS(melloc_realloc);
MLC_EXPORT int posix_memalign(void **memptr, size_t align, size_t size)
    MLC_ALIAS(melloc_posix_memalign);
MLC_EXPORT void *aligned_alloc(size_t align, size_t size) MLC_ALIAS(melloc_aligned_alloc);
MLC_EXPORT size_t malloc_usable_size(void *p) MLC_ALIAS(melloc_usable_size);
MLC_EXPORT void free_sized(void *p, size_t size) MLC_ALIAS(melloc_free_sized);

MLC_EXPORT void *memalign(size_t align, size_t size) { return mlc_memalign(align, size); }

/* valloc and pvalloc align to the kernel's page size (4, 16 or 64 KiB), as glibc's do. */
MLC_EXPORT void *valloc(size_t size) {
  return mlc_alloc_aligned(mlc_os_page_size(), size, "valloc");
}

MLC_EXPORT void *pvalloc(size_t size) {
  size_t pg = mlc_os_page_size();
  size_t rounded = MLC_ALIGN_UP(size, pg);
  if (rounded < size) {
    errno = ENOMEM;
    return NULL;
  }
  return mlc_alloc_aligned(pg, rounded ? rounded : pg, "pvalloc");
}

MLC_EXPORT void *reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return melloc_realloc(p, total);
}

MLC_EXPORT void free_aligned_sized(void *p, size_t align, size_t size) {
  (void)align;
  (void)size;
  if (mlc_config_hardened) {
    mlc_harden_free(p);
    return;
  }
  mlc_free_inline(p);
}

#endif /* MELLOC_PREFIX_ONLY */
