/* SPDX-License-Identifier: MIT */
/*
 * The hardened library's layer (MLC_HARDENED): it owns the layout of a block as the
 * program sees it and the per-thread quarantines, and calls the default allocator only
 * through alloc.h's mlc_*_plain functions; it must never trust a word inside a block
 * without checking it against the process's secret first.
 *
 * A block of n bytes is taken from the default allocator as n + MLC_HOVER bytes; of the
 * u bytes it really has (its size class, its pages, or its mapping):
 *   [0, n)          the program's bytes (malloc_usable_size says n)
 *   [n, u - 8)      the canary: at least one byte, at most 8 written and checked,
 *                   derived from the secret and the address, the byte at n never
 *                   zero (an off-by-one NUL is caught)
 *   [u - 8, u)      the trailer: n in the low 48 bits, a 16-bit keyed check of (p, n)
 *                   in the top 16 (as scudo's header checksum), so an overflow that
 *                   rewrites the size is caught even where it spares the canary.
 * free and realloc check both before anything else and abort on a mismatch.
 * A freed small block has its first MLC_HFILL (256) bytes filled with zeros
 * (zero-on-free; the whole object for classes up to 256 bytes) and its first word then
 * holds a keyed tag, "freed"; the tag is what reports a second free, for as long as the
 * block is not handed out again.  An allocation from a slab checks that those bytes are
 * still zero (first word: zero or the tag), so a write after free into them is reported
 * by the malloc that would have handed the block out.  Weaker than filling the whole
 * object (which cost a memset and a full read per pair: 48x the default library on
 * malloc(4096)/free): a write after free past byte 256 of a larger object is not
 * caught, and past byte 256 a new block holds what its last owner left (as glibc's
 * do; calloc clears that part).  New slabs are zeroed where dirty
 * (mlc_harden_slab_init), and a slab going back to its arena has the first 256 bytes
 * of each object checked again (mlc_harden_slab_check).
 * Large blocks are not filled (that would fault in pages the program never touched):
 * they get the tag, so a double free in quarantine is caught, and their canary.
 * Freed blocks wait in a per-thread quarantine (FIFO, bounded in blocks and bytes)
 * before they go back to the default allocator; the word the tag is in is checked
 * again when they leave it.
 */
#include "internal.h"

#include "alloc.h"
#include "arena.h"
#include "base.h"
#include "chunk.h"
#include "free.h"
#include "gc.h"
#include "harden.h"
#include "os.h"
#include "sizeclass.h"
#include "tcache.h"
#include "util.h"

#include <pthread.h>

/* Bytes a block has beyond the request: the trailer and at least one canary byte. */
#define MLC_HTRAILER 8
#define MLC_HOVER (MLC_HTRAILER + 1)
#define MLC_HSIZE_MASK (((uint64_t)1 << 48) - 1)
/* The bytes of a small object that are zeroed when it is freed and checked when it is
   handed out again (the whole object for classes up to this size). */
#define MLC_HFILL 256

/* Quarantine of each thread.  A block above half the bytes goes back at once (huge
   blocks, which are unmapped and so fault on any later use). */
#define MLC_QUARANTINE_BLOCKS 1024
#define MLC_QUARANTINE_BYTES ((size_t)256 << 10)

static const bool mlc_harden_canary_on = MLC_HARDEN_CANARY;
static const bool mlc_harden_quarantine_on = MLC_HARDEN_QUARANTINE;

enum { MLC_HK_SMALL = 1, MLC_HK_LARGE, MLC_HK_HUGE };

/* Words of blocks whose effective type is the program's business. */
typedef uint64_t mlc_hword_t __attribute__((may_alias, aligned(8)));

/* ---- The secret ---- */

static uint64_t mlc_harden_key[2]; /* Constant once mlc_harden_state is 2 */
static int mlc_harden_state;       /* Atomic: 0, 1 while one thread boots, 2 ready */
static pthread_key_t mlc_quarantine_key;

static void mlc_quarantine_thread_exit(void *arg);

static MLC_NOINLINE void mlc_harden_boot_slow(void) {
  int expected = 0;
  if (__atomic_compare_exchange_n(&mlc_harden_state, &expected, 1, false, __ATOMIC_ACQUIRE,
                                  __ATOMIC_ACQUIRE)) {
    uint64_t k[2] = {0, 0};
    mlc_os_random(k, sizeof(k));
    mlc_harden_key[0] = k[0];
    mlc_harden_key[1] = k[1] | 1;
    /* Created before the allocator boots (the first call comes here before it calls the
       default allocator), so its destructor runs before the thread cache's: a thread's
       quarantine goes to its cache, then the cache to the bins. */
    if (mlc_harden_quarantine_on)
      pthread_key_create(&mlc_quarantine_key, mlc_quarantine_thread_exit);
    mlc_store_rel(&mlc_harden_state, 2);
    return;
  }
  while (mlc_load_acq(&mlc_harden_state) != 2) mlc_spin_pause();
}

MLC_INLINE void mlc_harden_boot(void) {
  if (MLC_UNLIKELY(mlc_load_acq(&mlc_harden_state) != 2)) mlc_harden_boot_slow();
}

/* A bijective 64-bit mixer (murmur3's finaliser), for the random generator only. */
MLC_INLINE uint64_t mlc_hmix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

/* The block's secret word, from which the three below are derived, computed once per
   call: one multiply by an odd secret and a shift (a full mixer was ~7 ns, and a
   malloc/free pair needed three).  Keyed by the secret on both sides, it is what
   scudo's checksum is: a check an overflow cannot pass by chance, not a MAC against an
   attacker who can read the heap. */
MLC_INLINE uint64_t mlc_harden_bword(const void *p) {
  uint64_t h = ((uintptr_t)p ^ mlc_harden_key[0]) * mlc_harden_key[1];
  return h ^ (h >> 29);
}

/* The "freed" tag of the block at p: never 0 (0 is a fresh object's first word). */
MLC_INLINE uint64_t mlc_harden_tag_of(uint64_t h) { return h | 1; }
MLC_INLINE uint64_t mlc_harden_tag(const void *p) { return mlc_harden_tag_of(mlc_harden_bword(p)); }

/* The canary word: no byte of it is zero (each byte's lowest bit is set: 56 secret
   bits, where clearing zero bytes exactly cost 7 instructions a computation). */
MLC_INLINE uint64_t mlc_harden_canary_word(uint64_t h) {
  return (((h << 32) | (h >> 32)) ^ mlc_harden_key[0]) | 0x0101010101010101ull;
}

/* n, and in the top 16 bits a check of n keyed by the block's word. */
MLC_INLINE uint64_t mlc_harden_trailer(uint64_t h, size_t n) {
  return (uint64_t)n | (((h ^ (uint64_t)n) * 0x9e3779b97f4a7c15ull) & ~MLC_HSIZE_MASK);
}

uint64_t mlc_harden_random(void) {
  static MLC_TLS uint64_t state;
  uint64_t s = state;
  if (MLC_UNLIKELY(s == 0)) s = mlc_hmix(mlc_harden_bword(&state)) | 1; /* each thread its own stream */
  s += 0x9e3779b97f4a7c15ull;
  state = s;
  return mlc_hmix(s ^ mlc_harden_key[1]);
}

/* ---- Reports ---- */

static MLC_NORETURN MLC_COLD MLC_NOINLINE void mlc_harden_fatal(const char *call, const char *what,
                                                                const void *p) {
  mlc_fatal_in(call, what, p);
}

/* ---- Blocks ---- */

/* The bytes the default allocator gave the block at p, its kind and (small) class; aborts naming call
   when p is not the start of a live block it holds (free.c's one check). */
MLC_INLINE size_t mlc_harden_block_of(const void *p, mlc_call_t call, unsigned *kind, size_t *cls,
                                      mlc_block_t *b) {
  mlc_block_check(p, call, b);
  *kind = b->kind == MLC_BLOCK_SMALL ? MLC_HK_SMALL : b->kind == MLC_BLOCK_LARGE ? MLC_HK_LARGE : MLC_HK_HUGE;
  *cls = b->kind == MLC_BLOCK_SMALL ? b->cls : 0;
  return b->size;
}
MLC_INLINE size_t mlc_harden_block(const void *p, mlc_call_t call, unsigned *kind, size_t *cls) {
  mlc_block_t b;
  return mlc_harden_block_of(p, call, kind, cls, &b);
}

/* 16 bytes of a block, which small objects are aligned to. */
typedef uint64_t mlc_hvec_t __attribute__((vector_size(16), may_alias, aligned(16)));

/* Zeroes the first MLC_MIN(u, MLC_HFILL) bytes of the small object at p: 16-byte
   stores, 64 bytes a step, the last step overlapping the one before when the length is
   not a multiple of 64 (memset's rep stos costs more than the stores for so few bytes;
   the empty asm keeps gcc from turning the loop back into a memset call). */
MLC_INLINE void mlc_harden_fill(char *p, size_t u) {
  size_t len = MLC_MIN(u, MLC_HFILL);
  mlc_hvec_t z = {0, 0};
  if (len == MLC_HFILL) { /* every class from 256 bytes: straight-line stores */
    mlc_hvec_t *v = (mlc_hvec_t *)p;
#pragma GCC unroll 16
    for (int i = 0; i < MLC_HFILL / 16; i++) v[i] = z;
    return;
  }
  if (len < 64) {
    for (size_t i = 0; i < len; i += 16) {
      *(mlc_hvec_t *)(p + i) = z;
      __asm__("" : "+r"(p));
    }
    return;
  }
  char *end = p + len - 64;
  for (;;) {
    mlc_hvec_t *v = (mlc_hvec_t *)p;
    v[0] = z;
    v[1] = z;
    v[2] = z;
    v[3] = z;
    __asm__("" : "+r"(p));
    if (p == end) return;
    p += 64;
    if (p > end) p = end;
  }
}

/* Whether bytes [16, MLC_MIN(u, MLC_HFILL)) of the small object at p are zero. */
MLC_INLINE bool mlc_harden_filled(const char *p, size_t u) {
  const mlc_hvec_t *v = (const mlc_hvec_t *)p;
  size_t n = MLC_MIN(u, MLC_HFILL) / 16;
  mlc_hvec_t a = {0, 0}, b = {0, 0};
  if (n == MLC_HFILL / 16) { /* every class from 256 bytes: straight-line loads */
#pragma GCC unroll 16
    for (int i = 1; i < MLC_HFILL / 16; i += 2) {
      a |= v[i];
      if (i + 1 < MLC_HFILL / 16) b |= v[i + 1];
    }
    a |= b;
    return (a[0] | a[1]) == 0;
  }
  size_t i = 1;
  for (; i + 2 <= n; i += 2) {
    a |= v[i];
    b |= v[i + 1];
  }
  if (i < n) a |= v[i];
  a |= b;
  return (a[0] | a[1]) == 0;
}

static bool mlc_harden_is_zero(const char *p, size_t len) {
  const mlc_hword_t *w = (const mlc_hword_t *)p;
  size_t n = len / 8, i = 0;
  uint64_t a = 0, b = 0;
  for (; i + 2 <= n; i += 2) {
    a |= w[i];
    b |= w[i + 1];
  }
  if (i < n) a |= w[i];
  return (a | b) == 0;
}

/* Unaligned 8-byte words (the canary starts right after the request). */
typedef uint64_t mlc_huword_t __attribute__((may_alias, aligned(1)));

/* The canary: the MLC_MIN(8, u - MLC_HTRAILER - n) bytes right after the n requested
   (at least one: u >= n + MLC_HOVER), the first of them of the canary word in memory
   order.  A linear overflow meets them first; filling all of a 4 KiB page-rounding
   slack on each realloc was most of fastpath-realloc's time, and 16 bytes of a
   pattern that repeats by address cost 30 instructions a pair.  An overflow that skips
   the 8 bytes past the request and lands before the trailer is not caught by the
   canary (small objects: the bytes among the first MLC_HFILL are zero since the free,
   checked at allocation).  One unaligned word, masked where there are fewer than 8
   bytes (no branch). */
#define MLC_HCANARY_MAX 8
MLC_INLINE size_t mlc_canary_len(size_t n, size_t u) {
  return MLC_MIN((size_t)MLC_HCANARY_MAX, u - MLC_HTRAILER - n);
}

/* The bytes of a word loaded from the canary's start that are the canary's: its
   first len (1 to 8) in memory order. */
MLC_INLINE uint64_t mlc_canary_mask(size_t len) {
  if (len >= 8) return ~(uint64_t)0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return ~(~(uint64_t)0 >> (8 * len));
#else
  return ((uint64_t)1 << (8 * len)) - 1;
#endif
}

/* One word (u >= n + MLC_HOVER: it ends inside the block), the canary's bytes only:
   where the canary is shorter than 8 bytes the rest of the word is the trailer's place,
   which keeps what it holds until mlc_harden_seal stores the trailer.  Another thread
   freeing the next slot reads that place at any moment (mlc_harden_check_before): it
   must see the old trailer or the new one, never canary bytes in it.  (Storing the
   whole canary word there first was a false "heap underflow" in bench's larson-t4,
   once in a few runs.) */
MLC_INLINE void mlc_canary_fill(char *p, size_t n, size_t u, uint64_t c) {
  mlc_huword_t *w = (mlc_huword_t *)(p + n);
  size_t len = mlc_canary_len(n, u);
  if (MLC_LIKELY(len >= MLC_HCANARY_MAX)) { /* the whole word is the canary's */
    *w = c;
    return;
  }
  uint64_t m = mlc_canary_mask(len);
  *w = (*w & ~m) | (c & m);
}

MLC_INLINE bool mlc_canary_ok(const char *p, size_t n, size_t u, uint64_t c) {
  return ((*(const mlc_huword_t *)(p + n) ^ c) & mlc_canary_mask(mlc_canary_len(n, u))) == 0;
}

/* The canary and the trailer of a block of n bytes in u. */
MLC_INLINE void mlc_harden_seal(char *p, size_t n, size_t u, uint64_t h) {
  if (mlc_harden_canary_on) mlc_canary_fill(p, n, u, mlc_harden_canary_word(h));
  *(mlc_hword_t *)(p + u - MLC_HTRAILER) = mlc_harden_trailer(h, n); /* after the canary */
}

static MLC_NORETURN MLC_COLD MLC_NOINLINE void mlc_harden_fatal_freed(mlc_call_t ccall,
                                                                      const char *call, const void *p) {
  mlc_harden_fatal(call, mlc_misuse_freed(ccall), p);
}

/* Checks the block at p (u bytes) and returns its requested size; aborts naming call
   (ccall: the same, for the name of a freed block's misuse) when it was freed or
   overflowed. */
MLC_INLINE size_t mlc_harden_open(char *p, size_t u, uint64_t h, mlc_call_t ccall, const char *call) {
  if (MLC_UNLIKELY(*(mlc_hword_t *)p == mlc_harden_tag_of(h))) mlc_harden_fatal_freed(ccall, call, p);
  uint64_t t = *(mlc_hword_t *)(p + u - MLC_HTRAILER);
  size_t n = (size_t)(t & MLC_HSIZE_MASK);
  if (MLC_UNLIKELY(n > u - MLC_HOVER || t != mlc_harden_trailer(h, n) ||
                   (mlc_harden_canary_on && !mlc_canary_ok(p, n, u, mlc_harden_canary_word(h)))))
    mlc_harden_fatal(call, "heap overflow (canary overwritten)", p);
  return n;
}

/* An underflow: the 8 bytes before a small object are the trailer of the slot before it
   in its slab (the slab's first object has none).  That word is 0 (a slot never used,
   or freed: MLC_HFILL bytes zeroed, all of a small one's), the default allocator's free
   key (a freed 16-byte slot: its word 1), or a trailer that is valid for that slot's
   address (a live block, or a freed bigger one, whose trailer stays).  Anything else was
   written by the program through a pointer before the block: at free, and before the
   block can be handed out again, "heap underflow".  64-bit only: another thread may be
   sealing the slot before (a store of that word), which a 32-bit target does in two
   halves that a load here could see torn. */
MLC_INLINE void mlc_harden_check_before(const char *p, size_t u, const char *call) {
#if UINTPTR_MAX > 0xffffffffu
  if (((uintptr_t)p & (MLC_GRANULE - 1)) == 0) return;
  uint64_t t = *(const mlc_hword_t *)(p - MLC_HTRAILER);
  if (MLC_LIKELY(t == 0)) return;
  size_t n = (size_t)(t & MLC_HSIZE_MASK);
  if (MLC_UNLIKELY((n > u - MLC_HOVER || t != mlc_harden_trailer(mlc_harden_bword(p - u), n)) &&
                   !(u == 16 && t == MLC_FREE_KEY)))
    mlc_harden_fatal(call, "heap underflow (the 8 bytes before the block overwritten)", p);
#else
  (void)p;
  (void)u;
  (void)call;
#endif
}

/* ---- The quarantine ---- */

/*
 * The collector drains an idle thread's quarantine as it drains its cache: 1/8 of the
 * blocks on the first idle pass, then 1/4, 1/2, then all, each checked for a write
 * after free and given back with mlc_free_uncached (the bins, the arena).  Idle: head
 * and count unchanged since the last pass.  The owner's free touches its quarantine on
 * every call, so the two agree with a gate and a flag rather than a lock (an asymmetric
 * Dekker, as the thread caches' protocol in gc.c):
 *  - the owner, to enter: stores busy = 1, then (a compiler barrier only) loads gate;
 *    open (0): it works on the ring and stores busy = 0 (release) when done; closed: it
 *    stores busy = 0 and waits on the gate's futex until the collector opens it;
 *  - the collector closes the gates of the idle quarantines, runs the pass's
 *    membarrier (every thread of the process executes a full barrier), then loads each
 *    busy: 0 means the owner is out and, if it comes back, will see the gate closed;
 *    1 means it is inside (or was, an instant ago): that quarantine waits for the next
 *    pass.  Then it opens the gates (release) and wakes the waiters.
 * Without membarrier nothing bounds the owner's store-load reordering: the collector
 * leaves quarantines alone (they still empty when their threads end).  The ring's
 * head and count are written with relaxed atomic stores, as the collector reads them
 * without the gate to tell idle from busy.
 */
typedef struct mlc_quarantine_s mlc_quarantine_t;
struct mlc_quarantine_s {
  mlc_quarantine_t *next; /* on the recycled list, once its thread ended */
  mlc_quarantine_t *all;  /* the list of every quarantine made (never freed) */
  size_t bytes;           /* Owner thread (or the collector, holding the gate), as the rest */
  unsigned head, count;   /* a ring: the oldest at head */
  unsigned scan;          /* mlc_harden_slow_check's next, counted from head */
  int busy;               /* Atomic: 1 while the owner is inside */
  int gate;               /* Atomic: enum mlc_qgate_e */
  /* The collector's, holding mlc_gc_lock. */
  unsigned gc_seen_head, gc_seen_count, gc_idle_passes;
  bool gc_closed;
  struct {
    void *p;
    uint32_t u;   /* its bytes */
    uint32_t cls; /* a small object's class, else 0 */
  } blocks[MLC_QUARANTINE_BLOCKS];
};

enum mlc_qgate_e { MLC_QG_OPEN = 0, MLC_QG_CLOSED = 1, MLC_QG_WAITING = 2 };

static MLC_TLS mlc_quarantine_t *mlc_quarantine_mine;
/* Atomic: every quarantine made, newest first; pushed at creation, never removed. */
static mlc_quarantine_t *mlc_quarantine_all;
static MLC_TLS bool mlc_quarantine_gone; /* the thread is ending: no quarantine */
/* Atomic: quarantines of ended threads.  Taken whole with an exchange (no ABA), the
   rest pushed back. */
static mlc_quarantine_t *mlc_quarantine_recycled;

static void mlc_quarantine_recycle(mlc_quarantine_t *first, mlc_quarantine_t *last) {
  mlc_quarantine_t *old = mlc_load(&mlc_quarantine_recycled);
  do {
    last->next = old;
  } while (!__atomic_compare_exchange_n(&mlc_quarantine_recycled, &old, first, true,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

static MLC_NOINLINE mlc_quarantine_t *mlc_quarantine_new(void) {
  if (mlc_quarantine_gone) return NULL;
  mlc_quarantine_t *q = __atomic_exchange_n(&mlc_quarantine_recycled, NULL, __ATOMIC_ACQUIRE);
  if (q) {
    if (q->next) {
      mlc_quarantine_t *last = q->next;
      while (last->next) last = last->next;
      mlc_quarantine_recycle(q->next, last);
    }
    /* Empty (its thread's exit drained it); the collector may be looking at it, so
       nothing of the gate's is reset. */
  } else {
    q = mlc_base_alloc(sizeof(*q)); /* zeroed */
    if (!q) return NULL;
    mlc_quarantine_t *old = mlc_load(&mlc_quarantine_all);
    do {
      q->all = old;
    } while (!__atomic_compare_exchange_n(&mlc_quarantine_all, &old, q, true, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
  }
  mlc_quarantine_mine = q;
  pthread_setspecific(mlc_quarantine_key, q);
  return q;
}

/* The owner enters its quarantine q: false when the collector holds the gate (the
   caller waits with mlc_quarantine_wait, or goes the general way). */
MLC_INLINE bool mlc_quarantine_enter(mlc_quarantine_t *q) {
  __atomic_store_n(&q->busy, 1, __ATOMIC_RELAXED);
  __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the collector's membarrier does the rest */
  if (MLC_LIKELY(__atomic_load_n(&q->gate, __ATOMIC_ACQUIRE) == MLC_QG_OPEN)) return true;
  __atomic_store_n(&q->busy, 0, __ATOMIC_RELEASE);
  return false;
}

MLC_INLINE void mlc_quarantine_leave(mlc_quarantine_t *q) {
  __atomic_store_n(&q->busy, 0, __ATOMIC_RELEASE);
}

/* Until the collector opens the gate of q. */
static MLC_NOINLINE void mlc_quarantine_wait(mlc_quarantine_t *q) {
  for (;;) {
    int g = __atomic_load_n(&q->gate, __ATOMIC_ACQUIRE);
    if (g == MLC_QG_OPEN) return;
    if (g == MLC_QG_CLOSED &&
        !__atomic_compare_exchange_n(&q->gate, &g, MLC_QG_WAITING, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_ACQUIRE))
      continue;
    mlc_os_futex_wait(&q->gate, MLC_QG_WAITING);
  }
}

/* Enters q, waiting for the collector if it holds the gate. */
static void mlc_quarantine_enter_wait(mlc_quarantine_t *q) {
  while (!mlc_quarantine_enter(q)) mlc_quarantine_wait(q);
}

/* The oldest block leaves: its tag is checked (a write after free while it waited) and
   it goes back to the default allocator. */
MLC_INLINE void mlc_quarantine_evict(mlc_quarantine_t *q) {
  void *p = q->blocks[q->head].p;
  size_t cls = q->blocks[q->head].cls;
  q->bytes -= q->blocks[q->head].u;
  mlc_store(&q->head, (q->head + 1) % MLC_QUARANTINE_BLOCKS);
  mlc_store(&q->count, q->count - 1);
  if (MLC_UNLIKELY(*(mlc_hword_t *)p != mlc_harden_tag(p)))
    mlc_harden_fatal("free", "write after free (block in quarantine)", p);
  /* A small object was checked when the program freed it: straight into the cache. */
  if (MLC_LIKELY(cls != 0) && MLC_LIKELY(mlc_tcache_push_checked(p, cls))) return;
  mlc_free_inline(p);
}

/* cls: the class of a small object, else 0. */
MLC_INLINE void mlc_quarantine_push(void *p, size_t u, size_t cls) {
  mlc_quarantine_t *q = mlc_quarantine_mine;
  if (MLC_UNLIKELY(u > MLC_QUARANTINE_BYTES / 2) ||
      (MLC_UNLIKELY(!q) && (q = mlc_quarantine_new()) == NULL)) {
    mlc_free_inline(p);
    return;
  }
  mlc_quarantine_enter_wait(q);
  while (q->count == MLC_QUARANTINE_BLOCKS || q->bytes + u > MLC_QUARANTINE_BYTES)
    mlc_quarantine_evict(q);
  unsigned i = (q->head + q->count) % MLC_QUARANTINE_BLOCKS;
  q->blocks[i].p = p;
  q->blocks[i].u = (uint32_t)u;
  q->blocks[i].cls = (uint32_t)cls;
  mlc_store(&q->count, q->count + 1);
  q->bytes += u;
  mlc_quarantine_leave(q);
}

/* Blocks of the quarantine mlc_harden_slow_check looks at in one call: with a refill
   of 8 to 64 objects, at most a few instructions an allocation. */
#define MLC_QUARANTINE_SCAN 8

void mlc_harden_slow_check(void) {
  mlc_quarantine_t *q = mlc_quarantine_mine;
  if (!q || !mlc_quarantine_enter(q)) return; /* the collector checks them now */
  for (unsigned k = 0; k < MLC_QUARANTINE_SCAN && k < q->count; k++) {
    if (q->scan >= q->count) q->scan = 0;
    unsigned i = (q->head + q->scan++) % MLC_QUARANTINE_BLOCKS;
    char *p = q->blocks[i].p;
    const mlc_hword_t *w = (const mlc_hword_t *)p;
    /* Large blocks are not filled: their tag only. */
    bool ok = w[0] == mlc_harden_tag(p) &&
              (q->blocks[i].cls == 0 || !mlc_harden_fill_on ||
               (w[1] == 0 && mlc_harden_filled(p, q->blocks[i].u)));
    if (MLC_UNLIKELY(!ok)) mlc_harden_fatal("malloc", "write after free (block in quarantine)", p);
  }
  mlc_quarantine_leave(q);
}

static void mlc_quarantine_thread_exit(void *arg) {
  mlc_quarantine_t *q = arg;
  /* Frees from later destructors go straight back. */
  mlc_quarantine_gone = true;
  mlc_quarantine_mine = NULL;
  mlc_quarantine_enter_wait(q);
  while (q->count) mlc_quarantine_evict(q);
  mlc_quarantine_leave(q);
  mlc_quarantine_recycle(q, q);
}

/* ---- The collector's side (see "The collector drains" above) ---- */

bool mlc_harden_gc_close(bool everything) {
  bool any = false;
  for (mlc_quarantine_t *q = mlc_load_acq(&mlc_quarantine_all); q; q = q->all) {
    unsigned head = mlc_load(&q->head), count = mlc_load(&q->count);
    bool idle = head == q->gc_seen_head && count == q->gc_seen_count;
    q->gc_seen_head = head;
    q->gc_seen_count = count;
    q->gc_idle_passes = idle ? q->gc_idle_passes + 1 : 0;
    q->gc_closed = count != 0 && (idle || everything);
    if (q->gc_closed) {
      __atomic_store_n(&q->gate, MLC_QG_CLOSED, __ATOMIC_SEQ_CST);
      any = true;
    }
  }
  return any;
}

size_t mlc_harden_gc_drain(bool everything, bool fenced) {
  size_t returned = 0;
  for (mlc_quarantine_t *q = mlc_load_acq(&mlc_quarantine_all); q; q = q->all) {
    if (!q->gc_closed) continue;
    q->gc_closed = false;
    if (fenced && __atomic_load_n(&q->busy, __ATOMIC_ACQUIRE) == 0) {
      unsigned k = everything ? q->count : (unsigned)mlc_gc_piece(q->count, q->gc_idle_passes);
      for (unsigned j = 0; j < k; j++) {
        void *p = q->blocks[q->head].p;
        q->bytes -= q->blocks[q->head].u;
        mlc_store(&q->head, (q->head + 1) % MLC_QUARANTINE_BLOCKS);
        mlc_store(&q->count, q->count - 1);
        if (MLC_UNLIKELY(*(mlc_hword_t *)p != mlc_harden_tag(p)))
          mlc_harden_fatal("free", "write after free (block in quarantine)", p);
        mlc_free_uncached(p);
      }
      if (q->scan >= q->count) q->scan = 0;
      q->gc_seen_head = q->head;
      q->gc_seen_count = q->count;
      returned += k;
    }
    if (__atomic_exchange_n(&q->gate, MLC_QG_OPEN, __ATOMIC_RELEASE) == MLC_QG_WAITING)
      mlc_os_futex_wake(&q->gate, INT32_MAX);
  }
  return returned;
}

bool mlc_harden_gc_has_work(void) {
  for (mlc_quarantine_t *q = mlc_load_acq(&mlc_quarantine_all); q; q = q->all)
    if (mlc_load(&q->count)) return true;
  return false;
}

/* ---- Allocation and free ---- */

/* The block at p (u bytes, from the default allocator a moment ago) becomes a block of
   size bytes for the program.  small: an object of a slab, which must be in the freed
   state (else a write after free happened while it was free). */
MLC_INLINE void *mlc_harden_hand_out(char *p, size_t u, bool small, size_t size, bool zero,
                                     bool zeroed, const char *call) {
  mlc_hword_t *w0 = (mlc_hword_t *)p;
  uint64_t h = mlc_harden_bword(p);
  if (small && mlc_harden_fill_on) {
    if (MLC_UNLIKELY((*w0 != 0 && *w0 != mlc_harden_tag_of(h)) || w0[1] != 0 ||
                     !mlc_harden_filled(p, u)))
      mlc_harden_fatal(call, "write after free", p);
    /* Past MLC_HFILL the object holds what its last owner left. */
    if (zero && size > MLC_HFILL) memset(p + MLC_HFILL, 0, size - MLC_HFILL);
  } else if (zero && !zeroed) {
    memset(p, 0, size);
  }
  *w0 = 0; /* a stale tag must not make the live block look freed */
  mlc_harden_seal(p, size, u, h);
  return p;
}

static MLC_NOINLINE void *mlc_harden_alloc_slow(size_t size, size_t align, bool zero,
                                                const char *call) {
  mlc_harden_boot();
  if (MLC_UNLIKELY(size > (size_t)PTRDIFF_MAX - MLC_HOVER)) {
    errno = ENOMEM;
    return NULL;
  }
  mlc_harden_slow_check();
  size_t want = size + MLC_HOVER;
  /* A big calloc asks for zeros: fresh pages are not written again. */
  bool big_zero = zero && align <= 16 && want > MLC_SMALL_MAX;
  char *p = big_zero ? mlc_zalloc_big_plain(want)
                     : align <= 16 ? mlc_malloc_plain(want) : mlc_aligned_plain(align, want);
  if (MLC_UNLIKELY(!p)) return NULL;
  unsigned kind;
  size_t cls;
  size_t u = mlc_harden_block(p, MLC_CALL_USABLE_SIZE, &kind, &cls); /* a new block: no misuse */
  return mlc_harden_hand_out(p, u, kind == MLC_HK_SMALL, size, zero, big_zero, call);
}

/* The common case inline: a small object from the thread cache, whose class gives its
   size (no lookup of the block). */
MLC_INLINE void *mlc_harden_alloc(size_t size, bool zero, const char *call) {
  if (MLC_UNLIKELY(size > MLC_SMALL_MAX - MLC_HOVER || mlc_load_acq(&mlc_harden_state) != 2))
    return mlc_harden_alloc_slow(size, 0, zero, call);
  size_t want = size + MLC_HOVER;
  size_t cls = mlc_size_class(want); /* no branch on the size: alloc.c, mlc_malloc_inline */
  /* An empty cache is the general path's (a tail call, no registers saved here). */
  char *p = mlc_tcache_try_pop(cls);
  if (MLC_UNLIKELY(!p)) return mlc_harden_alloc_slow(size, 0, zero, call);
  return mlc_harden_hand_out(p, mlc_class_size[cls], true, size, zero, false, call);
}

/* The block at p (u bytes, checked) is free: filled, tagged, into the quarantine. */
MLC_INLINE void mlc_harden_release(char *p, size_t u, unsigned kind, size_t cls, uint64_t h) {
  if (kind == MLC_HK_SMALL && mlc_harden_fill_on) mlc_harden_fill(p, u);
  *(mlc_hword_t *)p = mlc_harden_tag_of(h);
  if (mlc_harden_quarantine_on && kind != MLC_HK_HUGE)
    mlc_quarantine_push(p, u, cls);
  else
    mlc_free_inline(p);
}

MLC_INLINE void mlc_harden_free_as(void *p, mlc_call_t ccall, const char *call) {
  mlc_harden_boot();
  unsigned kind;
  size_t cls;
  size_t u = mlc_harden_block(p, ccall, &kind, &cls);
  uint64_t h = mlc_harden_bword(p);
  mlc_harden_open(p, u, h, ccall, call);
  if (kind == MLC_HK_SMALL) mlc_harden_check_before(p, u, call);
  mlc_harden_release(p, u, kind, cls, h);
}

void *mlc_harden_malloc(size_t size) { return mlc_harden_alloc(size, false, "malloc"); }

void *mlc_harden_calloc(size_t n, size_t size) {
  size_t total;
  if (MLC_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return mlc_harden_alloc(total, true, "calloc");
}

void *mlc_harden_aligned(size_t align, size_t size, const char *call) {
  return mlc_harden_alloc_slow(size, align, false, call);
}

static MLC_NOINLINE void mlc_harden_free_slow(void *p) {
  if (p) mlc_harden_free_as(p, MLC_CALL_FREE, "free");
}

/* free's common case inline: a live small object of the thread cache's classes, and a
   quarantine that takes it by letting at most its oldest block go, into a cache with
   room.  Everything else is a tail call to the general path (which checks again).
   278 -> 257 instructions a malloc(64)/free pair. */
void mlc_harden_free(void *p) {
  size_t cls = mlc_block_small_class(p);
  mlc_quarantine_t *q = mlc_quarantine_mine;
  if (MLC_UNLIKELY(cls == 0 || !q || !mlc_harden_fill_on || !mlc_harden_quarantine_on))
    return mlc_harden_free_slow(p);
  if (MLC_UNLIKELY(!mlc_quarantine_enter(q))) return mlc_harden_free_slow(p);
  size_t u = mlc_class_size[cls];
  uint64_t h = mlc_harden_bword(p);
  mlc_harden_open(p, u, h, MLC_CALL_FREE, "free");
  mlc_harden_check_before(p, u, "free");
  unsigned head = q->head, count = q->count;
  size_t bytes = q->bytes + u;
  unsigned i = (head + count) % MLC_QUARANTINE_BLOCKS;
  if (count < MLC_QUARANTINE_BLOCKS && bytes <= MLC_QUARANTINE_BYTES) {
    mlc_store(&q->count, count + 1); /* room: nothing leaves */
  } else {
    /* The oldest leaves for the cache (its tag checked: a write after free while it
       waited), unless that takes more than one block or a cache with no room. */
    char *e = q->blocks[head].p;
    size_t ecls = q->blocks[head].cls;
    bytes -= q->blocks[head].u;
    if (MLC_UNLIKELY(bytes > MLC_QUARANTINE_BYTES || ecls == 0)) {
      mlc_quarantine_leave(q);
      return mlc_harden_free_slow(p);
    }
    if (MLC_UNLIKELY(*(mlc_hword_t *)e != mlc_harden_tag(e)))
      mlc_harden_fatal("free", "write after free (block in quarantine)", e);
    /* A full cache: nothing changed yet, the general path does it all. */
    if (MLC_UNLIKELY(!mlc_tcache_push_checked(e, ecls))) {
      mlc_quarantine_leave(q);
      return mlc_harden_free_slow(p);
    }
    mlc_store(&q->head, (head + 1) % MLC_QUARANTINE_BLOCKS);
  }
  mlc_harden_fill(p, u);
  *(mlc_hword_t *)p = mlc_harden_tag_of(h);
  q->blocks[i].p = p;
  q->blocks[i].u = (uint32_t)u;
  q->blocks[i].cls = (uint32_t)cls;
  q->bytes = bytes;
  mlc_quarantine_leave(q);
}

/* Whether a block of kind and u bytes is what a request of size would get now. */
static bool mlc_harden_fits(unsigned kind, size_t u, size_t size) {
  size_t want = size + MLC_HOVER;
  if (kind == MLC_HK_SMALL) return want <= u && mlc_class_size[mlc_size_class(want)] == u;
  if (kind == MLC_HK_LARGE) return want > MLC_SMALL_MAX && MLC_ALIGN_UP(want, MLC_PAGE) == u;
  return want > MLC_LARGE_MAX && MLC_ALIGN_UP(want, mlc_os_map_unit()) == u;
}

/* realloc's block growing out of its pages to size (a large block's): as in the default
   build (alloc.c, mlc_realloc_new_big), a run with room to grow in place at the next
   steps.  NULL when memory is short. */
static MLC_NOINLINE void *mlc_harden_alloc_grow(size_t size) {
  char *g = mlc_alloc_grow(size + MLC_HOVER);
  if (!g) return NULL;
  unsigned kind;
  size_t cls;
  size_t u = mlc_harden_block(g, MLC_CALL_USABLE_SIZE, &kind, &cls); /* a new block */
  return mlc_harden_hand_out(g, u, false, size, false, false, "realloc");
}

void *mlc_harden_realloc(void *p, size_t size) {
  if (!p) return mlc_harden_alloc(size, false, "realloc");
  if (size == 0) {
    /* As glibc and the default build: the block is freed and NULL returned. */
    mlc_harden_free_as(p, MLC_CALL_REALLOC, "realloc");
    return NULL;
  }
  mlc_harden_boot();
  unsigned kind;
  size_t cls;
  mlc_block_t b; /* where realloc resizes it in place */
  size_t u = mlc_harden_block_of(p, MLC_CALL_REALLOC, &kind, &cls, &b);
  uint64_t h = mlc_harden_bword(p);
  size_t n = mlc_harden_open(p, u, h, MLC_CALL_REALLOC, "realloc");
  if (kind == MLC_HK_SMALL) mlc_harden_check_before(p, u, "realloc");
  if (size <= (size_t)PTRDIFF_MAX - MLC_HOVER && mlc_harden_fits(kind, u, size)) {
    /* The old canary's bytes (the rest is as a new block's: zero or left over). */
    if (size > n) {
      /* One 8-byte store where it stays clear of the trailer (the bytes past the new
         size get the new canary below), else only the canary's bytes. */
      if (n + 8 <= u - MLC_HTRAILER) *(mlc_huword_t *)((char *)p + n) = 0;
      else memset((char *)p + n, 0, MLC_MIN(size, n + mlc_canary_len(n, u)) - n);
    }
    mlc_harden_seal(p, size, u, h);
    return p;
  }
  if (kind != MLC_HK_SMALL && size <= (size_t)PTRDIFF_MAX - MLC_HOVER) {
    /* A page run grows or shrinks in place when the pages after it allow, as in the
       default build; a huge block grows where it is, or its pages move (chunk.c): no
       copy.  The old canary and trailer, now inside the block, are zeroed, as the pages
       grown into are. */
    size_t want = size + MLC_HOVER, nu = 0;
    char *q = NULL;
    if (kind == MLC_HK_LARGE && want > MLC_SMALL_MAX && want <= MLC_LARGE_MAX) {
      if (mlc_arena_large_resize(b.chunk, p, want)) {
        q = p;
        nu = MLC_ALIGN_UP(want, MLC_PAGE);
      }
    } else if (kind == MLC_HK_HUGE && want > MLC_LARGE_MAX && size > n) {
      q = mlc_huge_realloc(b.huge, want);
      nu = b.huge->size; /* the owner's thread: no lock */
    }
    if (q) {
      if (size > n) {
        memset(q + n, 0, mlc_canary_len(n, u));
        *(mlc_hword_t *)(q + u - MLC_HTRAILER) = 0;
      }
      mlc_harden_seal(q, size, nu, mlc_harden_bword(q));
      return q;
    }
  }
  void *q = NULL;
  if (size > MLC_SMALL_MAX - MLC_HOVER && size <= MLC_LARGE_MAX - MLC_HOVER && size > n)
    q = mlc_harden_alloc_grow(size);
  if (!q) q = mlc_harden_alloc(size, false, "realloc");
  if (!q) return NULL;
  memcpy(q, p, MLC_MIN(n, size));
  mlc_harden_release(p, u, kind, cls, h);
  return q;
}

size_t mlc_harden_usable_size(const void *p) {
  if (!p) return 0;
  mlc_harden_boot();
  unsigned kind;
  size_t cls;
  size_t u = mlc_harden_block(p, MLC_CALL_USABLE_SIZE, &kind, &cls);
  return mlc_harden_open((char *)p, u, mlc_harden_bword(p), MLC_CALL_USABLE_SIZE,
                         "malloc_usable_size");
}

void mlc_harden_slab_init(char *base, unsigned nobjs, size_t size) {
  if (!mlc_harden_fill_on) return;
  if (size > MLC_HFILL) {
    /* Only the first MLC_HFILL bytes of an object are in the freed state's zeros. */
    for (unsigned i = 0; i < nobjs; i++) {
      char *p = base + (size_t)i * size;
      if (!mlc_harden_is_zero(p, MLC_HFILL)) mlc_harden_fill(p, MLC_HFILL);
      /* The trailer place: what the granule held before is no trailer of this slot
         (mlc_harden_check_before reads it). */
      mlc_hword_t *t = (mlc_hword_t *)(p + size - MLC_HTRAILER);
      if (*t) *t = 0;
    }
    return;
  }
  size_t len = (size_t)nobjs * size;
  for (size_t off = 0; off < len; off += MLC_PAGE) {
    size_t l = MLC_MIN(MLC_PAGE, len - off);
    if (!mlc_harden_is_zero(base + off, l)) memset(base + off, 0, l);
  }
}

void *mlc_harden_slab_check(char *base, unsigned nobjs, size_t size) {
  if (!mlc_harden_fill_on) return NULL;
  for (unsigned i = 0; i < nobjs; i++) {
    char *p = base + (size_t)i * size;
    uint64_t w0 = *(mlc_hword_t *)p;
    /* Word 1 of a free object holds the default allocator's free key (tcache.h). */
    uint64_t w1 = *(mlc_hword_t *)(p + 8);
    if ((w0 != 0 && w0 != mlc_harden_tag(p)) || (w1 != 0 && w1 != MLC_FREE_KEY) ||
        !mlc_harden_filled(p, size))
      return p;
  }
  return NULL;
}
