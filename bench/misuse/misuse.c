/* SPDX-License-Identifier: MIT */
/* One heap-misuse case per run: `misuse CASE` commits the misuse CASE names, then
   goes on with the mallocs that reveal damage (a block handed out twice, a block
   that overlaps a live one, a wild or misaligned pointer, a live block whose
   contents changed).  `misuse --list` prints every case as "name kind timeout".
   The outcome is read by run.py from the exit status and from the lines this
   program writes on stdout, one per line, with write(2) so that reporting never
   allocates and never sits in a stdio buffer when the allocator aborts:
     DAMAGE <what>        damage observed; the program exits 3 at once
     RESULT OK|WRONG <what>   the answer of a "correct answer" case
     REPORT <WORD> <what> the observation of a report-only case (stale data...)
     INFO <what>          a note (the value malloc_usable_size returned...)
     END                  reached the end without observing damage (exit 0)
   The allocator is swapped in with LD_PRELOAD; this file uses only libc and
   pthreads.  Build with -O0 -fno-builtin so that no misuse is optimised away. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The compiler may not see through this: the pointer could be anything. */
static void *launder(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

static void say(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w = write(1, buf, (size_t)n);
  (void)w;
}

#define damage(...) (say("DAMAGE " __VA_ARGS__), _exit(3))

/* ---- Live blocks and the probe ---- */

/* Bytes that are filled and checked: all of a block up to 64 KiB, else its first and
   last 4 KiB (a huge block is mostly never touched, so probes stay cheap). */
#define EDGE 4096
#define MAXLIVE 8192

typedef struct {
  unsigned char *p;
  size_t n;
  unsigned char fill; /* 0: contents not checked (the test wrote into it itself) */
} live_t;

static live_t live[MAXLIVE];
static int nlive;

static void fill_range(unsigned char *p, size_t n, unsigned char v) {
  if (n <= 65536) {
    memset(p, v, n);
  } else {
    memset(p, v, EDGE);
    memset(p + n - EDGE, v, EDGE);
  }
}

/* Offset of the first byte of [p, p+n) (checked ranges only) that is not v, or -1. */
static long check_range(const unsigned char *p, size_t n, unsigned char v) {
  size_t lo = n <= 65536 ? n : EDGE;
  for (size_t i = 0; i < lo; i++)
    if (p[i] != v) return (long)i;
  if (n > 65536)
    for (size_t i = n - EDGE; i < n; i++)
      if (p[i] != v) return (long)i;
  return -1;
}

/* Registers a block the program owns; with check, fills it with a value of its own
   that later probes verify. */
static void live_add(void *p, size_t n, bool check) {
  if (nlive == MAXLIVE) return;
  unsigned char v = check ? (unsigned char)(0x10 + nlive % 200) : 0;
  if (check) fill_range(p, n, v);
  live[nlive++] = (live_t){p, n, v};
}

static void live_verify(const char *when) {
  for (int i = 0; i < nlive; i++) {
    if (!live[i].fill) continue;
    long off = check_range(live[i].p, live[i].n, live[i].fill);
    if (off >= 0)
      damage("live block %p (%zu bytes) changed at offset %ld %s", (void *)live[i].p, live[i].n, off,
             when);
  }
}

/* A pointer that cannot be a block: misaligned, or not a user-space address. */
static void check_sane(const void *q, size_t n, const char *fn) {
  uintptr_t a = (uintptr_t)q;
  if (a & 7) damage("%s(%zu) returned a misaligned pointer %p", fn, n, q);
  if (a < 4096 || a >> 47) damage("%s(%zu) returned a wild pointer %p", fn, n, q);
}

/* Checks a new block against every live one: the same address, or any overlap. */
static void check_new(const unsigned char *q, size_t n, const char *fn) {
  check_sane(q, n, fn);
  for (int i = 0; i < nlive; i++) {
    const unsigned char *p = live[i].p;
    if (q == p) damage("%s(%zu) handed out %p twice (live block)", fn, n, (const void *)q);
    if (q < p + live[i].n && p < q + n)
      damage("%s(%zu) returned %p, which overlaps the live block %p (%zu bytes)", fn, n,
             (const void *)q, (const void *)p, live[i].n);
  }
}

/* The follow-up: count mallocs of n bytes, each checked against every live block
   before it is written, then filled; then every live block is verified. */
static void probe(size_t n, int count) {
  for (int i = 0; i < count; i++) {
    unsigned char *q = launder(malloc(n));
    if (!q) {
      say("INFO malloc(%zu) returned NULL in the probe", n);
      return;
    }
    check_new(q, n, "malloc");
    live_add(q, n, true);
  }
  live_verify("after the probe's mallocs");
}

static int probe_count(size_t n) { return n <= 4096 ? 256 : n <= 65536 ? 64 : 8; }

/* The probe every case runs after its misuse: blocks of its size, then a few common sizes,
   so that a damaged neighbouring class shows too. */
static void probe_all(size_t n) {
  probe(n, probe_count(n));
  static const size_t common[] = {16, 64, 256, 4096};
  for (size_t i = 0; i < sizeof common / sizeof *common; i++) probe(common[i], 64);
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* ---- Double free ---- */

static void c_df_row(size_t n) {
  void *p = launder(malloc(n));
  free(p);
  free(launder(p));
  probe_all(n);
}

static void c_df_abab(size_t n) {
  void *p = launder(malloc(n)), *q = launder(malloc(n));
  free(p);
  free(q);
  free(launder(p));
  probe_all(n);
}

/* The number of threads in this process, from /proc (no allocation), or -1. */
static int thread_count(void) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t len = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (len <= 0) return -1;
  buf[len] = 0;
  char *t = strstr(buf, "\nThreads:");
  return t ? atoi(t + 9) : -1;
}

/* A second and a half of allocation activity before the misuse, so that an allocator's
   background thread (melloc's collector starts after its first interval, 1 s, at an
   allocation's slow path) is running when the process goes idle. */
static void warm_up(void) {
  static void *b[64];
  for (int round = 0; round < 15; round++) {
    for (int i = 0; i < 64; i++) b[i] = launder(malloc((size_t)16 << (i % 13)));
    for (int i = 0; i < 64; i++) free(b[i]);
    free(launder(malloc((size_t)1 << 20)));
    usleep(100000);
  }
  say("INFO %d threads after the warm-up", thread_count());
}

static void c_df_idle(size_t n) {
  warm_up();
  void *p = launder(malloc(n));
  free(p);
  free(launder(p));
  sleep(5);
  probe_all(n);
}

static void c_df_idle_between(size_t n) {
  warm_up();
  void *p = launder(malloc(n));
  free(p);
  sleep(5);
  free(launder(p));
  probe_all(n);
}

static sem_t df_go;
static void *df_p;
static size_t df_n;

static void *df_thread(void *arg) {
  (void)arg;
  while (sem_wait(&df_go) != 0) continue;
  free(launder(df_p));
  probe(df_n, probe_count(df_n));
  return NULL;
}

/* The second free comes from another thread; both threads then allocate, the other
   one first, and all blocks are checked against each other. */
static void c_df_thread(size_t n) {
  pthread_t t;
  sem_init(&df_go, 0, 0);
  df_n = n;
  df_p = launder(malloc(n));
  if (pthread_create(&t, NULL, df_thread, NULL) != 0) {
    say("INFO pthread_create failed");
    return;
  }
  free(df_p);
  sem_post(&df_go);
  pthread_join(t, NULL);
  probe_all(n);
}

/* Many frees of the same size between the two frees of p push p down a thread cache
   (or out of it), where a check of the cache's top finds nothing. */
static void c_df_deep(size_t n) {
  enum { M = 200, MH = 16 };
  static void *b[M];
  int m = n <= 65536 ? M : MH;
  void *p = launder(malloc(n));
  for (int i = 0; i < m; i++) b[i] = launder(malloc(n));
  free(p);
  for (int i = 0; i < m; i++) free(b[i]);
  free(launder(p));
  probe(n, 2 * m + 16);
  probe_all(n);
}

/* ---- Invalid free ---- */

/* p stays live (the program still owns it): a later block that overlaps it is damage. */
static void interior_free(size_t n, size_t off) {
  unsigned char *p = launder(malloc(n));
  live_add(p, n, true);
  free(launder(p + off));
  probe_all(n);
  if (n > off) probe(n - off, probe_count(n));
}
static void c_free_interior8(size_t n) { interior_free(n, 8); }
static void c_free_interior16(size_t n) { interior_free(n, 16); }
static void c_free_interior1(size_t n) { interior_free(n, 1); }

/* 8 bytes past the 16-rounded end: inside whatever follows, never a block start.
   The blocks around p are live, so a free that hits a neighbour is seen. */
static void c_free_past_end(size_t n) {
  enum { K = 16 };
  unsigned char *b[K];
  for (int i = 0; i < K; i++) {
    b[i] = launder(malloc(n));
    live_add(b[i], n, true);
  }
  free(launder(b[K / 2] + round16(n) + 8));
  probe_all(n);
}

/* A region the allocator does not own: if a later malloc returns memory inside it, or
   its contents change, the allocator adopted it. */
static void foreign_free(unsigned char *r, size_t len, size_t off) {
  live_add(r, len, true);
  free(launder(r + off));
  probe_all(16);
  probe(len - off, 64);
}

static void c_free_stack(size_t n) {
  (void)n;
  _Alignas(64) unsigned char buf[4096];
  foreign_free(launder(buf), sizeof buf, 64);
}

static _Alignas(4096) unsigned char static_buf[16384];
static void c_free_static(size_t n) {
  (void)n;
  foreign_free(launder(static_buf), sizeof static_buf, 4096);
}

static void c_free_mmap(size_t n) {
  (void)n;
  unsigned char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    say("INFO mmap failed");
    return;
  }
  foreign_free(m, 8192, 0);
}

static void c_free_0x1000(size_t n) {
  (void)n;
  free(launder((void *)0x1000));
  probe_all(16);
}

/* ---- realloc and malloc_usable_size of bad pointers ---- */

static void c_realloc_interior(size_t n) {
  unsigned char *p = launder(malloc(n));
  live_add(p, n, true);
  unsigned char *r = launder(realloc(launder(p + 16), 2 * n));
  if (r) {
    check_new(r, 2 * n, "realloc");
    live_add(r, 2 * n, true);
  }
  live_verify("after the realloc");
  probe_all(n);
}

static void c_realloc_freed(size_t n) {
  unsigned char *p = launder(malloc(n));
  free(p);
  unsigned char *r = launder(realloc(launder(p), n + n / 2));
  if (r) {
    check_new(r, n + n / 2, "realloc");
    live_add(r, n + n / 2, true);
  }
  probe_all(n);
}

static void c_usable_freed(size_t n) {
  void *p = launder(malloc(n));
  free(p);
  size_t u = malloc_usable_size(launder(p));
  say("INFO malloc_usable_size(freed %zu-byte block) = %zu", n, u);
  probe_all(n);
}

/* An answer larger than what is left of the block invites writes into the next one. */
static void c_usable_interior(size_t n) {
  unsigned char *p = launder(malloc(n));
  size_t whole = malloc_usable_size(p);
  size_t u = malloc_usable_size(launder(p + 16));
  say("INFO malloc_usable_size(p+16) = %zu (block: %zu)", u, whole);
  if (u > whole - 16)
    damage("malloc_usable_size(p+16) = %zu, but only %zu bytes of the block follow p+16", u, whole - 16);
}

static void c_usable_stack(size_t n) {
  (void)n;
  _Alignas(64) unsigned char buf[256];
  size_t u = malloc_usable_size(launder(buf + 64));
  say("INFO malloc_usable_size(stack) = %zu", u);
  if (u > sizeof buf - 64) damage("malloc_usable_size(stack) = %zu: past the end of the buffer", u);
}

/* ---- Overflow and underflow ---- */

/* K blocks of n, sorted by address in b[]; returns the index of a block whose
   physical successor (the next block at the stride of its class) is among them, or
   K/2 when none is. */
enum { OVK = 32 };
static unsigned char *ov[OVK];

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
  return x < y ? -1 : x > y;
}

static int ov_setup(size_t n) {
  for (int i = 0; i < OVK; i++) ov[i] = launder(malloc(n));
  qsort(ov, OVK, sizeof *ov, cmp_ptr);
  size_t u = malloc_usable_size(ov[0]);
  int best = -1;
  /* The successor is the smallest gap at or above the usable size. */
  for (int i = OVK / 4; i < OVK - 1; i++) {
    size_t gap = (size_t)(ov[i + 1] - ov[i]);
    if (gap >= u && gap <= u + 64 && (best < 0 || gap < (size_t)(ov[best + 1] - ov[best]))) best = i;
  }
  return best < 0 ? OVK / 2 : best;
}

/* Writes k bytes at p[at] (at = n for an overflow, -k for an underflow), then frees
   the neighbour(s) and p, and probes.  Blocks the write may reach are not checked. */
static void overflow(size_t n, long at, size_t k, bool free_nb_first) {
  int i = ov_setup(n);
  unsigned char *p = ov[i], *nb = i + 1 < OVK ? ov[i + 1] : NULL;
  for (int j = 0; j < OVK; j++)
    if (j != i && j != i + 1) live_add(ov[j], n, false);
  if (free_nb_first && nb) free(nb);
  memset(launder(p + at), 0x41, k);
  free(p);
  if (!free_nb_first && nb) free(nb);
  probe_all(n);
}

static void c_overflow1_slack(size_t n) { overflow(n, (long)n, 1, false); }
static void c_overflow1(size_t n) { overflow(n, (long)n, 1, false); }
static void c_overflow8(size_t n) { overflow(n, (long)n, 8, false); }
static void c_overflow64(size_t n) { overflow(n, (long)n, 64, false); }
static void c_overflow8_freenb(size_t n) { overflow(n, (long)n, 8, true); }
static void c_underflow1(size_t n) { overflow(n, -1, 1, false); }
static void c_underflow8(size_t n) { overflow(n, -8, 8, false); }

/* ---- Use after free ---- */

/* Fills a freed block (where free lists keep their links), then allocates the size again.
   Other blocks of the size are freed first, so that p's link points somewhere. */
static void c_write_after_free(size_t n) {
  void *b[4];
  for (int i = 0; i < 4; i++) b[i] = launder(malloc(n));
  unsigned char *p = launder(malloc(n));
  for (int i = 0; i < 4; i++) free(b[i]);
  free(p);
  memset(launder(p), 0x41, n < 4096 ? n : 4096);
  probe_all(n);
}

/* ---- Report-only ---- */

static size_t count_byte(const unsigned char *p, size_t len, unsigned char v) {
  size_t c = 0;
  for (size_t i = 0; i < len; i++) c += p[i] == v;
  return c;
}

static void c_read_after_free(size_t n) {
  size_t len = n < 4096 ? n : 4096;
  unsigned char *p = launder(malloc(n));
  memset(p, 0x5a, len);
  free(p);
  size_t c = count_byte(launder(p), len, 0x5a);
  if (c)
    say("REPORT STALE %zu of %zu bytes still readable after free", c, len);
  else
    say("REPORT CLEARED none of %zu bytes left after free", len);
}

static void c_uninit(size_t n) {
  size_t len = n < 4096 ? n : 4096;
  unsigned char *p = launder(malloc(n));
  memset(p, 0x5a, len);
  free(p);
  unsigned char *q = launder(malloc(n));
  size_t c = count_byte(q, len, 0x5a);
  if (c)
    say("REPORT OLD %zu of %zu bytes of a new block are the old data (%s block)", c, len,
        q == p ? "same" : "other");
  else
    say("REPORT CLEAN no old data in a new block (%s block)", q == p ? "same" : "other");
}

/* ---- Correct-answer cases ---- */

/* Read at run time, so that the compiler neither warns about nor folds the sizes. */
static volatile size_t size_max = SIZE_MAX;

static void answer_null(void *r, int want, const char *what) {
  int e = errno;
  if (r == NULL && e == want)
    say("RESULT OK %s: NULL, errno %s", what, strerror(e));
  else if (r == NULL)
    say("RESULT WRONG %s: NULL but errno %d (%s)", what, e, strerror(e));
  else
    say("RESULT WRONG %s: returned %p", what, r);
}

static void c_calloc_wrap(size_t n) {
  (void)n;
  size_t cnt = size_max / 16 + 2; /* cnt * 16 wraps to 16 */
  errno = 0;
  answer_null(launder(calloc(cnt, 16)), ENOMEM, "calloc(SIZE_MAX/16+2, 16)");
}

static void c_malloc_sizemax(size_t n) {
  (void)n;
  errno = 0;
  answer_null(launder(malloc(size_max)), ENOMEM, "malloc(SIZE_MAX)");
}

static void c_malloc_ptrdiffmax1(size_t n) {
  (void)n;
  errno = 0;
  answer_null(launder(malloc(size_max / 2 + 1)), ENOMEM, "malloc(PTRDIFF_MAX+1)");
}

static void c_realloc_sizemax(size_t n) {
  (void)n;
  unsigned char *p = launder(malloc(64));
  memset(p, 0x33, 64);
  errno = 0;
  void *r = launder(realloc(p, size_max - 64));
  if (r == NULL && count_byte(p, 64, 0x33) != 64) {
    say("RESULT WRONG realloc(p, SIZE_MAX-64): NULL but the old block changed");
    return;
  }
  answer_null(r, ENOMEM, "realloc(p, SIZE_MAX-64)");
}

static void answer_einval(int rc, void *q, const char *what) {
  if (rc == EINVAL)
    say("RESULT OK %s: EINVAL", what);
  else if (rc == 0)
    say("RESULT WRONG %s: 0 (success), block %p", what, q);
  else
    say("RESULT WRONG %s: %d (%s)", what, rc, strerror(rc));
}

static void c_memalign_np2(size_t n) {
  (void)n;
  void *q = NULL;
  int rc = posix_memalign(&q, 24, 64);
  answer_einval(rc, q, "posix_memalign(24, 64)");
}

static void c_memalign_small(size_t n) {
  (void)n;
  void *q = NULL;
  int rc = posix_memalign(&q, 4, 64);
  answer_einval(rc, q, "posix_memalign(4, 64)");
}

static void c_memalign_overflow(size_t n) {
  (void)n;
  void *q = NULL;
  int rc = posix_memalign(&q, 4096, size_max - 100);
  if (rc == ENOMEM)
    say("RESULT OK posix_memalign(4096, SIZE_MAX-100): ENOMEM");
  else
    say("RESULT WRONG posix_memalign(4096, SIZE_MAX-100): %d, block %p", rc, q);
}

static void c_aligned_alloc_np2(size_t n) {
  (void)n;
  errno = 0;
  answer_null(launder(aligned_alloc(24, 48)), EINVAL, "aligned_alloc(24, 48)");
}

static void c_aligned_alloc_zero(size_t n) {
  (void)n;
  errno = 0;
  answer_null(launder(aligned_alloc(0, 64)), EINVAL, "aligned_alloc(0, 64)");
}

static void c_aligned_alloc_overflow(size_t n) {
  (void)n;
  errno = 0;
  /* A multiple of the alignment, which C11 (before DR 460) required. */
  answer_null(launder(aligned_alloc(4096, size_max & ~(size_t)4095)), ENOMEM,
              "aligned_alloc(4096, SIZE_MAX & ~4095)");
}

/* ---- The case table ---- */

enum kind { DETECT, REPORT, ANSWER };
static const char *const kind_name[] = {"detect", "report", "answer"};

typedef struct {
  const char *name;
  enum kind kind;
  int timeout; /* seconds */
  void (*fn)(size_t);
  const size_t *sizes; /* 0-terminated; NULL: the case has no size */
} family_t;

#define HUGE_SZ ((size_t)4 << 20)
static const size_t S_ALL[] = {24, 64, 200, 4000, 12000, 65536, HUGE_SZ, 0};
static const size_t S_OVF[] = {16, 24, 64, 200, 4000, 12000, 65536, HUGE_SZ, 0};
static const size_t S_EXACT[] = {16, 64, 0};
static const size_t S_SLACK[] = {20, 0};
static const size_t S_FREENB[] = {16, 64, 200, 4000, 0};

static const family_t families[] = {
    {"df-row", DETECT, 10, c_df_row, S_ALL},
    {"df-abab", DETECT, 10, c_df_abab, S_ALL},
    {"df-idle", DETECT, 20, c_df_idle, S_ALL},
    {"df-idle-between", DETECT, 20, c_df_idle_between, S_ALL},
    {"df-thread", DETECT, 10, c_df_thread, S_ALL},
    {"df-deep", DETECT, 10, c_df_deep, S_ALL},
    {"free-interior8", DETECT, 10, c_free_interior8, S_ALL},
    {"free-interior16", DETECT, 10, c_free_interior16, S_ALL},
    {"free-interior1", DETECT, 10, c_free_interior1, S_ALL},
    {"free-past-end", DETECT, 10, c_free_past_end, S_ALL},
    {"free-stack", DETECT, 10, c_free_stack, NULL},
    {"free-static", DETECT, 10, c_free_static, NULL},
    {"free-mmap", DETECT, 10, c_free_mmap, NULL},
    {"free-0x1000", DETECT, 10, c_free_0x1000, NULL},
    {"realloc-interior", DETECT, 10, c_realloc_interior, S_ALL},
    {"realloc-freed", DETECT, 10, c_realloc_freed, S_ALL},
    {"usable-freed", DETECT, 10, c_usable_freed, S_ALL},
    {"usable-interior", DETECT, 10, c_usable_interior, S_ALL},
    {"usable-stack", DETECT, 10, c_usable_stack, NULL},
    {"overflow1-slack", DETECT, 10, c_overflow1_slack, S_SLACK},
    {"overflow1", DETECT, 10, c_overflow1, S_EXACT},
    {"overflow8", DETECT, 10, c_overflow8, S_OVF},
    {"overflow64", DETECT, 10, c_overflow64, S_OVF},
    {"overflow8-freenb", DETECT, 10, c_overflow8_freenb, S_FREENB},
    {"underflow1", DETECT, 10, c_underflow1, S_ALL},
    {"underflow8", DETECT, 10, c_underflow8, S_ALL},
    {"write-after-free", DETECT, 10, c_write_after_free, S_ALL},
    {"read-after-free", REPORT, 10, c_read_after_free, S_ALL},
    {"uninit", REPORT, 10, c_uninit, S_ALL},
    {"calloc-wrap", ANSWER, 10, c_calloc_wrap, NULL},
    {"malloc-sizemax", ANSWER, 10, c_malloc_sizemax, NULL},
    {"malloc-ptrdiffmax1", ANSWER, 10, c_malloc_ptrdiffmax1, NULL},
    {"realloc-sizemax", ANSWER, 10, c_realloc_sizemax, NULL},
    {"memalign-np2", ANSWER, 10, c_memalign_np2, NULL},
    {"memalign-small", ANSWER, 10, c_memalign_small, NULL},
    {"memalign-overflow", ANSWER, 10, c_memalign_overflow, NULL},
    {"aligned_alloc-np2", ANSWER, 10, c_aligned_alloc_np2, NULL},
    {"aligned_alloc-zero", ANSWER, 10, c_aligned_alloc_zero, NULL},
    {"aligned_alloc-overflow", ANSWER, 10, c_aligned_alloc_overflow, NULL},
};

#define NFAM (sizeof families / sizeof *families)

int main(int argc, char **argv) {
  if (argc != 2) {
    say("usage: misuse CASE | --list   (CASE is name or name:size)");
    return 2;
  }
  if (strcmp(argv[1], "--list") == 0) {
    for (size_t f = 0; f < NFAM; f++) {
      const family_t *fam = &families[f];
      if (!fam->sizes)
        say("%s %s %d", fam->name, kind_name[fam->kind], fam->timeout);
      else
        for (const size_t *s = fam->sizes; *s; s++)
          say("%s:%zu %s %d", fam->name, *s, kind_name[fam->kind], fam->timeout);
    }
    return 0;
  }
  const char *colon = strchr(argv[1], ':');
  size_t len = colon ? (size_t)(colon - argv[1]) : strlen(argv[1]);
  size_t n = colon ? strtoull(colon + 1, NULL, 10) : 0;
  for (size_t f = 0; f < NFAM; f++) {
    const family_t *fam = &families[f];
    if (strlen(fam->name) != len || strncmp(fam->name, argv[1], len) != 0) continue;
    if ((fam->sizes != NULL) != (colon != NULL)) break;
    fam->fn(n);
    say("END");
    return 0;
  }
  say("misuse: unknown case %s", argv[1]);
  return 2;
}
