/* SPDX-License-Identifier: MIT */
/* The heap profiler's cached stack walk (src/stackwalk.c) against libgcc's
   _Unwind_Backtrace, from the same frame, on stacks of every shape the rules cover:
   frames without a frame pointer, with one, with alloca (CFA through rbp), through libc
   (qsort's comparator), on a thread's own stack, truncated, with the top frames left
   off, and twice (the second walk from the learnt rules).  A signal frame must send the
   walk to libgcc (-1).  Only amd64 builds with libgcc's unwinder have the walk. */
#include "unit.h"

#include "stackwalk.h"

#if MLC_STACKWALK_CACHED
#include <alloca.h>
#include <dlfcn.h>
#include <stdio.h>
#include <unwind.h>

#define DEPTH 64

typedef struct {
  uintptr_t *out;
  unsigned n, max;
} bt_t;

static _Unwind_Reason_Code bt_frame(struct _Unwind_Context *ctx, void *arg) {
  bt_t *b = arg;
  uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
  if (!ip) return _URC_END_OF_STACK;
  b->out[b->n++] = ip;
  return b->n >= b->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

/* The last walks compared: the cached walk's (with the limits below), and libgcc's with
   the same limits applied the way the profiler applies them (prof.c). */
static uintptr_t fast[DEPTH], slow[DEPTH];
static int nfast;
static unsigned nslow, slow_skipped;
static unsigned g_max = DEPTH;
static uintptr_t g_lo, g_hi;

/* Both walks from this function: their first frames are its two call sites (different
   addresses, unless left off), the rest must be the same addresses. */
static __attribute__((noinline)) void walk_both(void) {
  nfast = mlc_stackwalk_take(fast, g_max, g_lo, g_hi);
  uintptr_t all[DEPTH];
  bt_t b = {all, 0, DEPTH};
  _Unwind_Backtrace(bt_frame, &b);
  unsigned i = 0;
  while (i < b.n && all[i] >= g_lo && all[i] < g_hi) i++;
  slow_skipped = i;
  for (nslow = 0; i < b.n && nslow < g_max; i++) slow[nslow++] = all[i];
  __asm__ volatile("" ::: "memory");
}

static void check_same(void) {
  ck_assert_int_ge(nfast, 1);
  ck_assert_uint_eq((unsigned)nfast, nslow);
  for (int i = slow_skipped ? 0 : 1; i < nfast; i++)
    ck_assert_msg(fast[i] == slow[i], "frame %d: %#lx, libgcc %#lx", i, (unsigned long)fast[i],
                  (unsigned long)slow[i]);
}

/* Recursion without a frame pointer (CFA = rsp + k), n frames deep. */
static __attribute__((noinline)) int plain(int n) {
  if (n == 0) {
    walk_both();
    return 0;
  }
  int r = plain(n - 1);
  __asm__ volatile("" : "+r"(r));
  return r + 1;
}

/* The same with alloca in every frame: gcc keeps CFA = rbp + 16. */
static __attribute__((noinline)) int with_alloca(int n) {
  volatile char *buf = alloca((size_t)(n * 24 + 40));
  buf[0] = (char)n;
  if (n == 0) {
    walk_both();
    return buf[0];
  }
  int r = with_alloca(n - 1);
  __asm__ volatile("" : "+r"(r));
  return r + buf[0];
}

/* Frames with a frame pointer kept, alternating with frames without. */
static int mixed_b(int n);
static __attribute__((noinline)) int mixed_a(int n) {
  /* Asking for its frame address makes gcc and clang keep a frame pointer here. */
  void *volatile frame = __builtin_frame_address(0);
  (void)frame;
  if (n == 0) {
    walk_both();
    return 0;
  }
  int r = mixed_b(n - 1);
  __asm__ volatile("" : "+r"(r));
  return r + 1;
}
static __attribute__((noinline)) int mixed_b(int n) {
  volatile char big[300]; /* a larger rsp offset */
  big[0] = 1;
  int r = mixed_a(n);
  __asm__ volatile("" : "+r"(r));
  return r + big[0];
}

START_TEST(test_plain) {
  plain(10);
  check_same();
  ck_assert_int_ge(nfast, 12);
}
END_TEST

START_TEST(test_alloca) {
  with_alloca(8);
  check_same();
  ck_assert_int_ge(nfast, 10);
}
END_TEST

START_TEST(test_frame_pointers) {
  mixed_a(9);
  check_same();
  ck_assert_int_ge(nfast, 19);
}
END_TEST

/* Through libc's frames: qsort calls the comparator. */
static int cmp_walked;
static int cmp(const void *a, const void *b) {
  if (!cmp_walked) {
    cmp_walked = 1;
    walk_both();
  }
  return *(const int *)a - *(const int *)b;
}

START_TEST(test_through_libc) {
  int v[64];
  for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
  cmp_walked = 0;
  qsort(v, 64, sizeof(int), cmp);
  check_same();
  ck_assert_int_ge(nfast, 4);
}
END_TEST

/* The whole stack of a thread, to its outermost frame (clone's, which has no return
   address), and the same again from the rules learnt by the first walk. */
static void *thread_walk(void *arg) {
  (void)arg;
  plain(5);
  return NULL;
}

START_TEST(test_thread_to_the_end) {
  pthread_t t;
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(pthread_create(&t, NULL, thread_walk, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    check_same();
    ck_assert_int_lt(nfast, DEPTH); /* ended by the stack, not by max */
  }
}
END_TEST

/* max frames at most, and the top frames left off: those whose return address is in
   walk_both or plain (the range of the first walk's top frames). */
START_TEST(test_max_and_skip) {
  plain(10);
  check_same();
  ck_assert_int_ge(nfast, 12);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < 11; i++) {
    lo = MLC_MIN(lo, MLC_MIN(fast[i], slow[i]));
    hi = MLC_MAX(hi, MLC_MAX(fast[i], slow[i]) + 1);
  }
  g_max = 3;
  plain(10);
  check_same();
  ck_assert_int_eq(nfast, 3);
  g_max = DEPTH;
  g_lo = lo;
  g_hi = hi;
  plain(10);
  check_same();
  ck_assert_uint_ge(slow_skipped, 11);
  g_max = 2;
  plain(10);
  check_same();
  ck_assert_int_eq(nfast, 2);
  g_lo = g_hi = 0;
  g_max = DEPTH;
}
END_TEST

/* Through a library loaded with dlopen (zlib calls its allocator back), then again
   after dlclose and a new dlopen: the unload moves the loader's count and empties the
   rule table, and the walk through the new mapping (often at the same address: then
   the old rules would have been right too) is libgcc's again.  zlib's z_stream, declared here (its ABI, without
   needing zlib.h). */
typedef struct {
  const unsigned char *next_in;
  unsigned avail_in;
  unsigned long total_in;
  unsigned char *next_out;
  unsigned avail_out;
  unsigned long total_out;
  const char *msg;
  void *state;
  void *(*zalloc)(void *, unsigned, unsigned);
  void (*zfree)(void *, void *);
  void *opaque;
  int data_type;
  unsigned long adler, reserved;
} zstream_t;

static int zalloc_walked;
static void *zalloc_walk(void *opaque, unsigned items, unsigned size) {
  (void)opaque;
  if (!zalloc_walked) {
    zalloc_walked = 1;
    walk_both();
  }
  return calloc(items, size);
}
static void zfree_plain(void *opaque, void *p) {
  (void)opaque;
  free(p);
}

static const char *no_zlib(void) {
  void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return "libz.so.1 cannot be loaded";
  dlclose(h);
  return NULL;
}

START_TEST(test_dlopen_dlclose) {
  for (int round = 0; round < 2; round++) {
    void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    ck_assert_ptr_nonnull(h);
    const char *(*version)(void) = (const char *(*)(void))dlsym(h, "zlibVersion");
    int (*init)(zstream_t *, int, const char *, int) = (int (*)(zstream_t *, int, const char *, int))dlsym(h, "deflateInit_");
    int (*end)(zstream_t *) = (int (*)(zstream_t *))dlsym(h, "deflateEnd");
    ck_assert(version && init && end);
    zstream_t z;
    memset(&z, 0, sizeof(z));
    z.zalloc = zalloc_walk;
    z.zfree = zfree_plain;
    zalloc_walked = 0;
    ck_assert_int_eq(init(&z, 6, version(), (int)sizeof(z)), 0);
    ck_assert_int_eq(zalloc_walked, 1);
    check_same();
    /* walk_both's frame, zalloc_walk's caller in zlib, ..., this function's. */
    Dl_info info;
    ck_assert(dladdr((void *)fast[2], &info) && info.dli_fname && strstr(info.dli_fname, "libz"));
    end(&z);
    ck_assert_int_eq(dlclose(h), 0);
  }
}
END_TEST

/* A walk from a signal handler crosses the kernel's signal frame: libgcc's. */
static volatile int sig_result = -2;
static void on_signal(int sig) {
  (void)sig;
  uintptr_t out[DEPTH];
  sig_result = mlc_stackwalk_take(out, DEPTH, 0, 0);
}

START_TEST(test_signal_frame_goes_to_libgcc) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
  raise(SIGUSR1);
  ck_assert_int_eq(sig_result, -1);
}
END_TEST
#endif

int main(void) {
  Suite *s = suite_create("stackwalk");
  TCase *tc = tcase_create("against libgcc");
#if MLC_STACKWALK_CACHED
  if (!mlc_stackwalk_boot()) {
    fprintf(stderr, "test_stackwalk: no memory for the rule table\n");
    return 1;
  }
  tcase_add_test(tc, test_plain);
  tcase_add_test(tc, test_alloca);
  tcase_add_test(tc, test_frame_pointers);
  tcase_add_test(tc, test_through_libc);
  tcase_add_test(tc, test_thread_to_the_end);
  tcase_add_test(tc, test_max_and_skip);
  tcase_add_test(tc, test_signal_frame_goes_to_libgcc);
  mlc_tcase_add_test_unless(no_zlib(), tc, test_dlopen_dlclose);
#else
  mlc_check_skip("stackwalk", 1, "no cached stack walk in this build (amd64 with --with-unwinder=libgcc only)");
#endif
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
