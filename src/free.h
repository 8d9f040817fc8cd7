/* SPDX-License-Identifier: MIT */
/*
 * Freeing, and the one check of a pointer a program hands back.  free's fast path is
 * inline here; everything it cannot do, and every pointer it doubts, goes to
 * mlc_free_slow, which asks mlc_block_check what the pointer is.  realloc and
 * malloc_usable_size ask the same function.  Heap misuse never reaches a cache or a
 * bin: it is reported (one line on stderr naming the call, the problem and the
 * pointer) and the process aborts before the block can be handed out again.
 */
#ifndef MLC_FREE_H
#define MLC_FREE_H

#include "internal.h"

#include "chunk.h"
#include "tcache.h"

/* The call a pointer came to, for messages. */
typedef enum mlc_call_e {
  MLC_CALL_FREE,
  MLC_CALL_REALLOC,
  MLC_CALL_USABLE_SIZE,
} mlc_call_t;

typedef enum mlc_block_kind_e {
  MLC_BLOCK_SMALL, /* an object of a slab: cls */
  MLC_BLOCK_LARGE, /* a run of pages in a chunk: chunk, pages */
  MLC_BLOCK_HUGE,  /* a mapping of its own: huge */
} mlc_block_kind_t;

/* What a live block is. */
typedef struct mlc_block_s {
  mlc_block_kind_t kind;
  unsigned cls;      /* small: its class */
  size_t pages;      /* large: its run's pages */
  size_t size;       /* usable bytes */
  mlc_chunk_t *chunk; /* large: its chunk */
  mlc_huge_t *huge;   /* huge: its descriptor */
} mlc_block_t;

/* mlc_block_check's work past its inline first case. */
MLC_NOINLINE void mlc_block_check_slow(const void *p, mlc_call_t call, mlc_block_t *b);

/* The class of p where p is, without a doubt, a live small object: a slot's start in
   the page map's window without the free key; else 0, and mlc_block_check_slow finds
   out what it is.  mlc_block_check's inline case, and the hardened free's. */
MLC_INLINE size_t mlc_block_small_class(const void *p) {
  size_t cls = mlc_win_class(p);
  return MLC_LIKELY(cls != 0 && mlc_tb_is_slot(mlc_tb_base(), cls, p) && !mlc_free_key_is_set(p)) ? cls : 0;
}

/* Fills *b for p, which is not NULL, when p is the start of a live melloc block; else
   reports the misuse for call and aborts: a block already freed (small, large or
   huge, in a thread cache, a bin or an arena), a pointer inside a block or misaligned,
   a pointer melloc never handed out.  Inline, the case free's fast path accepts too: a
   slot's start in the page map's window without the free key.  Any thread, no lock
   held. */
MLC_INLINE void mlc_block_check(const void *p, mlc_call_t call, mlc_block_t *b) {
  size_t cls = mlc_block_small_class(p);
  if (MLC_LIKELY(cls != 0)) {
    b->kind = MLC_BLOCK_SMALL;
    b->cls = (unsigned)cls;
    b->size = mlc_class_size[cls];
    return;
  }
  mlc_block_check_slow(p, call, b);
}

/* Reports misuse of p in call and aborts.  Any thread; the caller holds no lock. */
MLC_NORETURN MLC_COLD void mlc_misuse(mlc_call_t call, const char *problem, const void *p);
/* The problem a freed block is for call: "double free" for free. */
const char *mlc_misuse_freed(mlc_call_t call);

/* Everything free does that its fast path does not: NULL, large and huge blocks, a
   full or missing cache, and every pointer the fast path doubts.  Preserves errno. */
MLC_NOINLINE void mlc_free_slow(void *p);

/* free without the calling thread's cache: the checks of free, then the block goes
   to its bin, arena or the huge cache.  The collector's, for blocks it takes from an
   idle thread's hardened quarantine (the collector holds no cache of its own).  No
   lock held; preserves errno. */
void mlc_free_uncached(void *p);

/* free: the class from the page map's window (0 outside it, or not a small object),
   then the cache's push and its checks; when the push finds no room, the heap
   profiler's counted push while it runs (tcache.c, "Sampling": every small push comes
   here then; inline, so that it costs ~12 instructions, not ~19 with a call; its
   first test is the profiler's mark on full, so without profiling a push that found
   the stack full pays one compare more); the rest in mlc_free_slow. */
MLC_INLINE void mlc_free_inline(void *p) {
  size_t cls = mlc_win_class(p);
  void **h;
  int r = mlc_tcache_push(p, cls, &h);
  if (MLC_UNLIKELY(r != MLC_PUSH_DONE)) {
    if (r == MLC_PUSH_FULL && mlc_tcache_prof_push(p, cls, h)) return;
    mlc_free_slow(p);
  }
}

#endif /* MLC_FREE_H */
