/* SPDX-License-Identifier: MIT */
/*
 * First include of every melloc source file: build configuration, compiler helpers,
 * assertions and the constants that fix the shape of the heap.  Nothing here allocates
 * or makes a system call.
 */
#ifndef MLC_INTERNAL_H
#define MLC_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MLC_LIKELY(x) __builtin_expect(!!(x), 1)
#define MLC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MLC_NOINLINE __attribute__((noinline))
#define MLC_INLINE static inline __attribute__((always_inline))
#define MLC_EXPORT __attribute__((visibility("default")))
/* For globals the fast paths read: a direct %rip-relative access, no GOT load. */
#define MLC_HIDDEN __attribute__((visibility("hidden")))
#define MLC_COLD __attribute__((cold))
#define MLC_NORETURN __attribute__((noreturn))
#define MLC_TLS __thread __attribute__((tls_model("initial-exec")))

#ifdef MELLOC_DEBUG
static const bool mlc_config_debug = true;
#else
static const bool mlc_config_debug = false;
#endif

/* 1 in libmelloc-hardened.so.0 (Makefile.am), whose heap trades speed for defences. */
#ifndef MLC_HARDENED
#define MLC_HARDENED 0
#endif
static const bool mlc_config_hardened = MLC_HARDENED;

/* Shape of the heap. */
#define MLC_PAGE_SHIFT 12
#define MLC_PAGE ((size_t)1 << MLC_PAGE_SHIFT)
/* Small objects live in slabs of exactly one granule, aligned to it, so that the
   size class of any small pointer is one byte in the page map. */
#define MLC_GRANULE_SHIFT 16
#define MLC_GRANULE ((size_t)1 << MLC_GRANULE_SHIFT)
/* Chunks are the unit the arenas take from the kernel, aligned to their size. */
/* Bytes two threads should not share: a cache line pair (adjacent-line prefetch). */
#define MLC_DESTRUCTIVE 128
#define MLC_CHUNK_SHIFT 22
#define MLC_CHUNK ((size_t)1 << MLC_CHUNK_SHIFT)
#define MLC_CHUNK_MASK (MLC_CHUNK - 1)
#define MLC_GRANULES_PER_CHUNK (MLC_CHUNK >> MLC_GRANULE_SHIFT)
#define MLC_PAGES_PER_CHUNK (MLC_CHUNK >> MLC_PAGE_SHIFT)
/* User address space covered by the page map: 48 bits on 64-bit targets (x86-64 and
   arm64 with 4-level tables), the whole address space on 32-bit ones. */
#if UINTPTR_MAX > 0xffffffffu
#define MLC_VA_BITS 48
#else
#define MLC_VA_BITS 32
#endif

#define MLC_ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((uintptr_t)(a)-1))
#define MLC_ALIGN_DOWN(x, a) ((x) & ~((uintptr_t)(a)-1))

#define MLC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MLC_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Relaxed atomics: what another thread may read or write at the same time. */
#define mlc_load(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define mlc_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define mlc_load_acq(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define mlc_store_rel(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* Every word that two threads may touch at the same time is read and written only
   through these, in every build (the ThreadSanitizer build is this code with sanitizer
   flags, nothing else).  Each use names its order; an argument for an order names the
   C11 order it pairs with (acquire/release, a seq_cst fence), never a processor.
   Relaxed loads and stores of aligned words are plain loads and stores on every
   processor melloc builds for; what they cost is the compiler's freedom: gcc folds no
   atomic load into another instruction's operand and computes a thread-local atomic's
   address instead of using the thread pointer's segment (x86-64: 7 instructions more
   per malloc/free pair, bench/budget.txt). */

/* The processor's spin-wait hint, once per turn of a spin loop: it lets a sibling
   hardware thread run and stops the core from speculating far into the loop. */
MLC_INLINE void mlc_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  /* isb, not yield: yield is a no-op on most arm64 cores; isb waits a few dozen
     cycles, as x86's pause does (Rust's and .NET's spin loops chose it too). */
  __asm__ __volatile__("isb" ::: "memory");
#elif defined(__arm__) && (defined(__ARM_ARCH_6K__) || defined(__ARM_ARCH_6ZK__) || (defined(__ARM_ARCH) && __ARM_ARCH >= 7))
  __asm__ __volatile__("yield" ::: "memory");
#elif defined(__powerpc__) || defined(__powerpc64__)
  /* Low then medium thread priority, as Linux's cpu_relax(). */
  __asm__ __volatile__("or 27,27,27\n\tor 2,2,2" ::: "memory");
#elif defined(__riscv)
  /* Zihintpause's pause, an encoding older cores run as a no-op fence. */
  __asm__ __volatile__(".4byte 0x100000f" ::: "memory");
#else
  /* s390x and the rest: no hint, a compiler barrier. */
  __asm__ __volatile__("" ::: "memory");
#endif
}

/* Heap misuse, or a broken invariant found on the way: "melloc: WHAT: pointer P" on
   stderr, then abort(). */
MLC_NORETURN MLC_COLD void mlc_fatal(const char *what, const void *ptr);
/* The same for misuse found in the program's call (free, realloc, ...):
   "melloc: CALL(): WHAT: pointer P". */
MLC_NORETURN MLC_COLD void mlc_fatal_in(const char *call, const char *what, const void *ptr);
MLC_NORETURN MLC_COLD void mlc_assert_fail(const char *expr, const char *file, int line);

#define mlc_assert(e)                                                 \
  do {                                                                \
    if (mlc_config_debug && MLC_UNLIKELY(!(e)))                       \
      mlc_assert_fail(#e, __FILE__, __LINE__);                        \
  } while (0)

/* Debug builds print a trace of the inner workings when MELLOC_TRACE is set (or
   MELLOC_CONF has trace:true); release builds compile it away. */
extern bool mlc_trace_on;
void mlc_trace_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define mlc_trace(...)                                                \
  do {                                                                \
    if (mlc_config_debug && mlc_trace_on) mlc_trace_printf(__VA_ARGS__); \
  } while (0)

/* Whether what happened at then (ns) is decay ns old at now, or decay is 0.  A then
   after now is not old: a purge reads the clock once and the threads it runs beside
   free things after that (now - then wrapped around, and pages freed a moment before
   read as ages old: decay_ms:60000 purged 40 MiB freed during the pass). */
MLC_INLINE bool mlc_aged(uint64_t now, uint64_t then, uint64_t decay) {
  return decay == 0 || (now >= then && now - then >= decay);
}

/* The most a count reached in the last one or two decay delays: the most of this
   window and of the one before, a new window at most once per delay (mlc_peak_turn,
   from the collector's purge).  Two windows, because one that turns in the middle of
   a phase would forget it.  The bounds of the spare chunks (arena.c) and of the huge
   cache (chunk.c); the caller's lock protects it. */
typedef struct {
  size_t cur, last; /* the most in this window and in the one before */
  uint64_t since;   /* when this window began, ns */
} mlc_peak_t;

MLC_INLINE void mlc_peak_see(mlc_peak_t *p, size_t v) {
  if (v > p->cur) p->cur = v;
}

MLC_INLINE size_t mlc_peak_get(const mlc_peak_t *p) { return MLC_MAX(p->cur, p->last); }

/* A new window, starting from v, once the current one is decay ns old. */
MLC_INLINE void mlc_peak_turn(mlc_peak_t *p, uint64_t now, uint64_t decay, size_t v) {
  if (!mlc_aged(now, p->since, decay)) return;
  p->last = p->cur;
  p->cur = v;
  p->since = now;
}

#endif /* MLC_INTERNAL_H */
