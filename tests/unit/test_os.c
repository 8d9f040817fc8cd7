/* SPDX-License-Identifier: MIT */
#include "unit.h"

#include <linux/filter.h>
#include <melloc.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static mlc_arena_t *new_arena(void) {
  mlc_boot();
  mlc_arena_t *a = mlc_arena_new(202);
  ck_assert_ptr_nonnull(a);
  return a;
}

START_TEST(test_map_aligned) {
  for (size_t align = MLC_PAGE; align <= ((size_t)64 << 20); align <<= 1) {
    void *p = mlc_os_map(3 * MLC_PAGE, align);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % align, 0);
    ((char *)p)[3 * MLC_PAGE - 1] = 1;
    mlc_os_unmap(p, 3 * MLC_PAGE);
  }
}
END_TEST

/* Purges work in whole kernel pages (4, 16 or 64 KiB): the purged ones read as zero,
   their neighbours keep their bytes, and errno is the program's. */
START_TEST(test_purge_zeroes) {
  size_t pg = mlc_os_page_size();
  ck_assert_uint_eq(pg, (size_t)sysconf(_SC_PAGESIZE));
  ck_assert_uint_eq(pg & (pg - 1), 0);
  ck_assert_uint_eq(mlc_os_purge_unit(), pg <= MLC_GRANULE ? MLC_MAX(pg, MLC_PAGE) : 0);
  char *p = mlc_os_map(4 * pg, pg);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq((uintptr_t)p % pg, 0);
  memset(p, 7, 4 * pg);
  errno = 1234;
  ck_assert(mlc_os_purge(p + pg, 2 * pg));
  ck_assert_int_eq(errno, 1234);
  ck_assert_int_eq(p[pg - 1], 7);
  ck_assert_int_eq(p[pg], 0);
  ck_assert_int_eq(p[3 * pg - 1], 0);
  ck_assert_int_eq(p[3 * pg], 7);
  mlc_os_unmap(p, 4 * pg);
}
END_TEST

/* A kernel that refuses madvise: the purge maps fresh pages over the range instead; when
   that is refused too the purge reports failure and the bytes stay.  Each is counted,
   and errno never changes. */
START_TEST(test_purge_refused) {
  size_t pg = mlc_os_page_size();
  char *p = mlc_os_map(3 * pg, pg);
  memset(p, 7, 3 * pg);
  mlc_os_counts_t a, b;
  mlc_os_counts(&a);
  mlc_os_refuse(MLC_OS_REFUSE_MADVISE);
  errno = 1234;
  ck_assert(mlc_os_purge(p + pg, pg));
  ck_assert_int_eq(errno, 1234);
  ck_assert_int_eq(p[pg], 0);
  ck_assert_int_eq(p[2 * pg - 1], 0);
  ck_assert_int_eq(p[pg - 1], 7);
  ck_assert_int_eq(p[2 * pg], 7);
  mlc_os_counts(&b);
  ck_assert_uint_eq(b.purge_refused, a.purge_refused + 1);
  ck_assert_uint_eq(b.purge_failed, a.purge_failed);
  memset(p, 7, 3 * pg);
  mlc_os_refuse(MLC_OS_REFUSE_MADVISE | MLC_OS_REFUSE_MAP_FIXED);
  ck_assert(!mlc_os_purge(p + pg, pg));
  ck_assert_int_eq(errno, 1234);
  ck_assert_int_eq(p[pg], 7);
  mlc_os_counts(&a);
  ck_assert_uint_eq(a.purge_refused, b.purge_refused + 1);
  ck_assert_uint_eq(a.purge_failed, b.purge_failed + 1);
  mlc_os_refuse(0);
  mlc_os_unmap(p, 3 * pg);
}
END_TEST

/* Refused mremap and membarrier are counted and reported as failures; shrinking in
   place needs no mremap.  errno never changes. */
START_TEST(test_remap_membarrier_refused) {
  size_t pg = mlc_os_page_size();
  char *p = mlc_os_map(8 * pg, MLC_CHUNK);
  mlc_os_counts_t a, b;
  mlc_os_counts(&a);
  mlc_os_refuse(MLC_OS_REFUSE_MREMAP | MLC_OS_REFUSE_MEMBARRIER);
  errno = 1234;
  ck_assert(!mlc_os_resize_in_place(p, 8 * pg, 16 * pg));
  ck_assert(mlc_os_resize_in_place(p, 8 * pg, 4 * pg));
  ck_assert(!mlc_os_move(p, 4 * pg, p + MLC_CHUNK / 2, 4 * pg));
  ck_assert(!mlc_os_membarrier_register());
  ck_assert(!mlc_os_membarrier());
  ck_assert_int_eq(errno, 1234);
  mlc_os_counts(&b);
  ck_assert_uint_eq(b.remap_refused, a.remap_refused + 2);
  ck_assert_uint_eq(b.membarrier_refused, a.membarrier_refused + 2);
  mlc_os_refuse(0);
  p[4 * pg - 1] = 1;
  mlc_os_unmap(p, 4 * pg);
}
END_TEST

/* A range of several kernel mappings (chunk.c's gather moves cached pages into a huge
   block) grows: mremap does not resize such a range (EFAULT), so the new pages are
   mapped right after it, or, where the address space after it is taken, it moves
   unresized (Linux 6.17 and later; an older kernel refuses, and realloc copies) into a
   reservation whose rest gets pages of its own.  The bytes stay either way. */
static void check_pieces(const char *a, size_t n, size_t grown) {
  for (size_t i = 0; i < n; i += 512)
    ck_assert_int_eq(a[i], i >= n / 4 && i < 3 * n / 4 ? 2 : 1);
  for (size_t i = n; i < grown; i += 512) ck_assert_int_eq(a[i], 0);
}

START_TEST(test_grow_several_mappings) {
  size_t pg = mlc_os_page_size(), n = 64 * pg;
  char *a = mlc_os_map(4 * n, pg);
  ck_assert_ptr_nonnull(a);
  mlc_os_unmap(a + n, 3 * n); /* free address space after a */
  char *b = mlc_os_map(n / 2, pg);
  ck_assert_ptr_nonnull(b);
  memset(a, 1, n);
  memset(b, 2, n / 2);
  ck_assert(mlc_os_move(b, n / 2, a + n / 4, n / 2)); /* a: three mappings now */
  ck_assert_int_eq(mremap(a, n, 2 * n, 0) == MAP_FAILED ? errno : 0, EFAULT);
  errno = 4321;
  ck_assert(mlc_os_resize_in_place(a, n, 2 * n));
  ck_assert_int_eq(errno, 4321);
  check_pieces(a, n, 2 * n);
  memset(a + n, 1, n); /* the new pages are writable */
  /* Take the place after it, so that the next growth must move. */
  char *next = mmap(a + 2 * n, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  ck_assert_ptr_eq(next, a + 2 * n);
  ck_assert(!mlc_os_resize_in_place(a, 2 * n, 3 * n));
  char *r = mlc_os_reserve(4 * n, pg);
  ck_assert_ptr_nonnull(r);
  if (mlc_os_move(a, 2 * n, r, 4 * n)) {
    check_pieces(r, n, n); /* [n, 2n) was written with 1 */
    for (size_t i = n; i < 2 * n; i += 512) ck_assert_int_eq(r[i], 1);
    for (size_t i = 2 * n; i < 4 * n; i += 512) ck_assert_int_eq(r[i], 0);
    memset(r + 2 * n, 5, 2 * n);
  } else {
    /* A kernel before 6.17: nothing moved. */
    check_pieces(a, n, n);
    mlc_os_unmap(a, 2 * n);
  }
  mlc_os_unmap(r, 4 * n);
  mlc_os_unmap(next, pg);
}
END_TEST

START_TEST(test_ncpus_matches_affinity) {
  cpu_set_t set;
  ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
  ck_assert_uint_eq(mlc_os_ncpus(), (unsigned)CPU_COUNT(&set));
  /* Counted from the mask the kernel gives (the system call, not glibc's wrapper):
     a thread allowed one CPU, then all of them again. */
  int last = -1;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) last = c;
  ck_assert_int_ge(last, 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(last, &one);
  ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
  ck_assert_uint_eq(mlc_os_ncpus(), 1);
  ck_assert_int_eq(sched_setaffinity(0, sizeof(set), &set), 0);
  ck_assert_uint_eq(mlc_os_ncpus(), (unsigned)CPU_COUNT(&set));
}
END_TEST

/* When the kernel refuses memory, every path returns NULL with ENOMEM and the allocator
   stays usable: the same calls succeed once memory is available again. */
START_TEST(test_fault_injection) {
  mlc_arena_t *a = new_arena();
  void *obj;
  mlc_os_fail_after(0);
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[5], &obj, 1), 0);
  ck_assert_ptr_null(mlc_arena_large_alloc(a, 100000, 0, false));
  errno = 0;
  ck_assert_ptr_null(malloc(64 << 20));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(calloc(1, 40 << 20));
  ck_assert_int_eq(errno, ENOMEM);
  /* realloc that must move a huge block into a new mapping fails and keeps the old. */
  mlc_os_fail_after(-1);
  char *h = malloc(5 << 20);
  memset(h, 3, 5 << 20);
  mlc_os_fail_after(0);
  errno = 0;
  char *h2 = realloc(h, 200 << 20);
  if (!h2) {
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_int_eq(h[(5 << 20) - 1], 3);
  } else {
    h = h2; /* grown in place: mremap needs no new mapping */
  }
  mlc_os_fail_after(-1);
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[5], &obj, 1), 1);
  ck_assert_uint_eq(mlc_pagemap_class(obj), 5);
  void *l = mlc_arena_large_alloc(a, 100000, 0, false);
  ck_assert_ptr_nonnull(l);
  void *big = malloc(64 << 20);
  ck_assert_ptr_nonnull(big);
  free(big);
  free(h);
  mlc_arena_large_free(mlc_pagemap_entry(l), l);
  mlc_bin_free_batch(&obj, 1, 5);
}
END_TEST

/* The countdown lets some calls through first: failure in the middle of a multi-step
   operation (a chunk mapped, its page-map leaf not) leaves nothing half-registered. */
START_TEST(test_fault_midway) {
  for (long n = 0; n < 4; n++) {
    mlc_arena_t *a = new_arena();
    mlc_os_fail_after(n);
    void *objs[4096];
    unsigned got = mlc_bin_alloc_batch(&a->bins[1], objs, 10);
    mlc_os_fail_after(-1);
    for (unsigned i = 0; i < got; i++) ck_assert_uint_eq(mlc_pagemap_class(objs[i]), 1);
    if (got) mlc_bin_free_batch(objs, got, 1);
    ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], objs, 10), 10);
  }
}
END_TEST

/* Calls that fail leave errno as the program had it: melloc must not change it. */
START_TEST(test_errno_kept) {
  size_t all = ~(size_t)0 << 24; /* more address space than a process can have free */
  errno = 1234;
  ck_assert_ptr_null(mlc_os_map(all, MLC_PAGE));
  ck_assert_ptr_null(mlc_os_map(all, MLC_CHUNK));
  ck_assert_ptr_null(mlc_os_reserve(all, MLC_CHUNK));
  mlc_os_write_fd(-1, "x", 1);
  ck_assert_int_eq(mlc_os_dup_cloexec(-1, 100), -1);
  mlc_os_close(-1);
  ck_assert_uint_ge(mlc_os_ncpus(), 1);
  ck_assert_uint_ge(mlc_os_rss_bytes(), 1);
  ck_assert_int_eq(errno, 1234);
}
END_TEST

/* ---- The real thing: a seccomp filter that refuses what sandboxes refuse ---- */

/* In a child: the failed condition on stderr, exit status 1. */
#define REQUIRE(e)                                                            \
  do {                                                                        \
    if (!(e)) {                                                               \
      fprintf(stderr, "%s:%d: child: %s\n", __FILE__, __LINE__, #e);          \
      _exit(1);                                                               \
    }                                                                         \
  } while (0)

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG3_LOW offsetof(struct seccomp_data, args[3])
#else
#define ARG3_LOW (offsetof(struct seccomp_data, args[3]) + 4)
#endif

/* Makes madvise, membarrier and mremap fail with EPERM in this process (and, with
   map_fixed, mmap with MAP_FIXED: melloc's fallback for a refused purge).  false when
   the kernel (or an emulator such as qemu-user) will not install the filter. */
static bool refuse_by_seccomp(bool map_fixed) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 8, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 7, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mremap, 6, 0),
#ifdef __NR_mmap
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 2, 0),
#else
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffff, 2, 0),
#endif
#ifdef __NR_mmap2
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap2, 1, 0),
#else
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffff, 1, 0),
#endif
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    /* mmap: refused only with MAP_FIXED, and only when asked */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG3_LOW),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, map_fixed ? MAP_FIXED : 0, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof(f) / sizeof(f[0])), f};
  /* Through syscall(): a filter melloc does not see (its prctl() would stop the
     collector and membarrier for good, gc.c), so that the refusals are the kernel's. */
  if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  if (syscall(SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return false;
  /* An emulator may accept the call and filter nothing: check. */
  char *p = mmap(NULL, 4 * MLC_GRANULE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  errno = 0;
  bool filtered = madvise(p, mlc_os_page_size(), MADV_DONTNEED) != 0 && errno == EPERM;
  munmap(p, 4 * MLC_GRANULE);
  return filtered;
}

/* Under the filter: purged memory still reads as zero to calloc, the statistics count
   the refusals, huge realloc (mremap refused) keeps the contents, the collector runs
   (membarrier refused).  map_fixed: the purge's fallback is refused too, so the memory
   stays dirty and the collector still has nothing to retry.  Exit 77: no filter here. */
static void sandboxed_child(bool map_fixed) {
  mlc_boot();
  mlc_arena_t *a = mlc_arena_new(203);
  REQUIRE(a != NULL);
  size_t kp = mlc_os_page_size(), n = MLC_MAX(8 * MLC_PAGE, 2 * kp);
  char *keep = mlc_arena_large_alloc(a, MLC_PAGE, 0, false);
  char *p = mlc_arena_large_alloc(a, n, kp, false);
  char *h = malloc(5 << 20);
  REQUIRE(keep && p && h);
  memset(p, 0x5a, n);
  for (size_t i = 0; i < (5 << 20); i += 4096) h[i] = (char)(i >> 12);
  melloc_stats_t s0, s1;
  s0.size = sizeof(s0);
  melloc_stats_get(&s0);
  if (!refuse_by_seccomp(map_fixed)) _exit(77);

  mlc_chunk_t *c = mlc_pagemap_entry(p);
  mlc_arena_large_free(c, p);
  size_t purged = mlc_arena_purge(a, mlc_os_now_ns(), 0);
  REQUIRE(!mlc_arena_purgeable(a)); /* nothing to retry: the collector may retire */
  REQUIRE(mlc_arena_validate(a));
  if (map_fixed) {
    REQUIRE(purged == 0);
    REQUIRE((unsigned char)p[100] == 0x5a); /* not given back, so still counted dirty */
  } else {
    REQUIRE(purged >= n);
    REQUIRE(p[100] == 0 && p[n - 1] == 0);
  }
  char *z = mlc_arena_large_alloc(a, n, kp, true);
  REQUIRE(z == p);
  for (size_t i = 0; i < n; i++) REQUIRE(z[i] == 0);

  /* Huge realloc: growing by mremap is refused, so the block is copied. */
  char *h2 = realloc(h, 40 << 20);
  REQUIRE(h2 != NULL);
  for (size_t i = 0; i < (5 << 20); i += 4096) REQUIRE(h2[i] == (char)(i >> 12));
  h2 = realloc(h2, 6 << 20); /* shrinking in place needs no mremap */
  REQUIRE(h2 != NULL);
  for (size_t i = 0; i < (5 << 20); i += 4096) REQUIRE(h2[i] == (char)(i >> 12));
  free(h2);

  /* The collector's pass with membarrier refused. */
  void *objs[64];
  for (int i = 0; i < 64; i++) objs[i] = malloc(100);
  for (int i = 0; i < 64; i++) free(objs[i]);
  melloc_collect();

  s1.size = sizeof(s1);
  REQUIRE(melloc_stats_get(&s1) == 0);
  REQUIRE(s1.page_size == kp);
  REQUIRE(s1.purges_refused > s0.purges_refused);
  REQUIRE(map_fixed ? s1.purges_failed > s0.purges_failed : s1.purges_failed == s0.purges_failed);
  REQUIRE(s1.remaps_refused > s0.remaps_refused);
  REQUIRE(s1.membarriers_refused > s0.membarriers_refused);
  REQUIRE(s1.gc_passes > s0.gc_passes);
  _exit(0);
}

static void run_sandboxed(bool map_fixed) {
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) sandboxed_child(map_fixed);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
    printf("SKIP: this kernel (or emulator) will not install a seccomp filter\n");
    return;
  }
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sandboxed child: status %#x", st);
}

START_TEST(test_seccomp_refuses) { run_sandboxed(false); }
END_TEST

START_TEST(test_seccomp_refuses_fallback_too) { run_sandboxed(true); }
END_TEST

/* The bare thread (gc.c's collector where glibc must not count it): thread-local storage
   of its own, zero-filled, so that errno there is not the creator's; the process's
   stack protector canary, not zero; a second thread on the same region starts from
   zero again, not from what the first one left. */
static int bare_seen_errno, bare_seen_state;
static uintptr_t bare_seen_canary;
static int bare_done; /* Atomic */

/* The stack protector's canary where it belongs to the thread (where the bare thread
   must copy it); 0 where it is a global variable (arm64). */
static uintptr_t stack_canary(void) {
  uintptr_t c = 0;
#if MLC_BARE_THREAD && defined(__x86_64__)
  __asm__ volatile("mov %%fs:0x28, %0" : "=r"(c));
#elif MLC_BARE_THREAD && defined(__s390x__)
  c = *(volatile uintptr_t *)((char *)__builtin_thread_pointer() + 0x28);
#elif MLC_BARE_THREAD && defined(__powerpc64__)
  __asm__ volatile("ld %0, -0x7010(13)" : "=r"(c));
#endif
  return c;
}

static MLC_NOINLINE int bare_stack_user(const char *s) {
  char buf[64];
  strncpy(buf, s, sizeof(buf) - 1);
  buf[sizeof(buf) - 1] = '\0';
  return (int)strlen(buf);
}

static int bare_fn(void *arg) {
  (void)arg;
  bare_seen_errno = errno;
  bare_seen_state = mlc_tsd.state;
  bare_seen_canary = stack_canary();
  errno = EBADF;
  mlc_tsd.state = 77;
  __atomic_store_n(&bare_done, bare_stack_user("melloc"), __ATOMIC_RELEASE);
  return 0;
}

START_TEST(test_bare_thread) {
  free(malloc(64)); /* this thread's mlc_tsd in use */
  int state = mlc_tsd.state;
  for (int round = 0; round < 2; round++) {
    __atomic_store_n(&bare_done, 0, __ATOMIC_RELAXED);
    bare_seen_errno = bare_seen_state = -1;
    errno = EINTR;
    long tid = 0;
    bool ok = mlc_os_bare_spawn(bare_fn, &mlc_tsd, &mlc_tsd + 1, &tid);
    ck_assert_int_eq(errno, EINTR);
    if (!MLC_BARE_THREAD) {
      ck_assert(!ok);
      return;
    }
    ck_assert(ok);
    ck_assert_int_gt(tid, 0);
    /* Not a futex wait, whose EAGAIN (the thread was quicker) would be in errno:
       sched_yield() never fails. */
    while (__atomic_load_n(&bare_done, __ATOMIC_ACQUIRE) == 0) sched_yield();
    ck_assert_int_eq(bare_done, 6);
    ck_assert_int_eq(bare_seen_errno, 0);
    ck_assert_int_eq(bare_seen_state, 0);
    ck_assert(bare_seen_canary == stack_canary());
    ck_assert_int_eq(errno, EINTR); /* the creator's own */
    ck_assert_int_eq(mlc_tsd.state, state);
    for (int i = 0; i < 20000 && !mlc_os_thread_gone(tid); i++) usleep(100);
    ck_assert(mlc_os_thread_gone(tid));
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("os");
  TCase *tc = tcase_create("os");
  tcase_add_test(tc, test_map_aligned);
  tcase_add_test(tc, test_purge_zeroes);
  tcase_add_test(tc, test_purge_refused);
  tcase_add_test(tc, test_remap_membarrier_refused);
  tcase_add_test(tc, test_errno_kept);
  tcase_add_test(tc, test_seccomp_refuses);
  tcase_add_test(tc, test_seccomp_refuses_fallback_too);
  tcase_add_test(tc, test_ncpus_matches_affinity);
  tcase_add_test(tc, test_grow_several_mappings);
  tcase_add_test(tc, test_fault_injection);
  tcase_add_test(tc, test_fault_midway);
  tcase_add_test(tc, test_bare_thread);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
