/* SPDX-License-Identifier: MIT */
/* The futex calls of os.c, the timed wait above all: its timeout reaches the kernel in
   the kernel's layout.  A wrong layout makes a wait return at once (the nanoseconds
   lost) or never (a 64-bit field read from two 32-bit ones).  Built twice: with the
   library's flags (test_futex) and with os.c compiled for Debian's time64 ABI
   (test_futex_time64: -D_TIME_BITS=64 -D_FILE_OFFSET_BITS=64), where libc's struct
   timespec differs from SYS_futex's on 32-bit targets. */
#include "unit.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>

#define MS ((uint64_t)1000000)

/* Nanoseconds a timed wait of ns on a word that never changes lasts. */
static uint64_t timed_wait(uint64_t ns) {
  int word = 1;
  uint64_t t0 = mlc_os_now_ns();
  mlc_os_futex_wait_ns(&word, 1, ns);
  return mlc_os_now_ns() - t0;
}

/* The nanoseconds field: 50 ms is 0 s and 50,000,000 ns. */
START_TEST(test_wait_ms) {
  uint64_t t = timed_wait(50 * MS);
  ck_assert_msg(t >= 50 * MS && t < 5000 * MS, "a 50 ms wait took %llu ns",
                (unsigned long long)t);
}
END_TEST

/* The seconds field too. */
START_TEST(test_wait_seconds) {
  uint64_t t = timed_wait(1020 * MS);
  ck_assert_msg(t >= 1020 * MS && t < 5000 * MS, "a 1.02 s wait took %llu ns",
                (unsigned long long)t);
}
END_TEST

/* errno is kept whether the wait times out (ETIMEDOUT) or the word differs (EAGAIN). */
START_TEST(test_wait_keeps_errno) {
  errno = EXDEV;
  ck_assert_uint_ge(timed_wait(MS), MS);
  ck_assert_int_eq(errno, EXDEV);
  int word = 2;
  uint64_t t0 = mlc_os_now_ns();
  mlc_os_futex_wait_ns(&word, 1, 10000 * MS);
  ck_assert_uint_lt(mlc_os_now_ns() - t0, 5000 * MS); /* it compared the word */
  ck_assert_int_eq(errno, EXDEV);
}
END_TEST

/* The untimed wait and the wake keep errno too: application threads call both (a
   contended lock, the hardened quarantine's gate), and a wait on a word that already
   changed answers EAGAIN at once; a wake of a misaligned word answers EINVAL. */
START_TEST(test_wait_wake_keep_errno) {
  int word = 2;
  errno = ENOTDIR;
  mlc_os_futex_wait(&word, 1);
  ck_assert_int_eq(errno, ENOTDIR);
  errno = 0;
  ck_assert_int_eq(syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0), -1);
  ck_assert_int_eq(errno, EAGAIN); /* what the call above kept from the program */
  static int pair[2];
  int *odd = (int *)((uintptr_t)pair + 1);
  errno = 0;
  ck_assert_int_eq(syscall(SYS_futex, odd, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0), -1);
  ck_assert_int_eq(errno, EINVAL);
  errno = ENOTDIR;
  mlc_os_futex_wake(odd, 1);
  ck_assert_int_eq(errno, ENOTDIR);
  mlc_os_futex_wake(&word, 1);
  ck_assert_int_eq(errno, ENOTDIR);
}
END_TEST

/* A wake ends a long wait on the same word. */
static int wake_word = 1;
static void *waker(void *arg) {
  (void)arg;
  mlc_os_sleep_ns(20 * MS);
  __atomic_store_n(&wake_word, 0, __ATOMIC_RELEASE);
  mlc_os_futex_wake(&wake_word, 1);
  return NULL;
}

START_TEST(test_wake_ends_wait) {
  pthread_t t;
  uint64_t t0 = mlc_os_now_ns();
  ck_assert_int_eq(pthread_create(&t, NULL, waker, NULL), 0);
  while (__atomic_load_n(&wake_word, __ATOMIC_ACQUIRE) == 1)
    mlc_os_futex_wait_ns(&wake_word, 1, 10000 * MS);
  ck_assert_uint_lt(mlc_os_now_ns() - t0, 5000 * MS);
  pthread_join(t, NULL);
}
END_TEST

#ifdef SYS_futex_time64
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

/* A kernel older than 5.1 has no futex_time64: a seccomp filter (in this test's forked
   process only) makes it answer ENOSYS, and the wait must fall back to SYS_futex with
   its own layout. */
START_TEST(test_wait_without_time64) {
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_futex_time64, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};
  ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    /* qemu-user refuses every filter (it would apply to qemu itself). */
    ck_assert_int_eq(errno, EINVAL);
    fprintf(stderr, "test_wait_without_time64: no seccomp filter here, fallback not run\n");
    return;
  }
  int word = 1;
  errno = 0;
  ck_assert_int_eq(syscall(SYS_futex_time64, &word, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0), -1);
  ck_assert_int_eq(errno, ENOSYS);
  errno = EXDEV;
  uint64_t t = timed_wait(50 * MS);
  ck_assert_msg(t >= 50 * MS && t < 5000 * MS, "a 50 ms wait took %llu ns",
                (unsigned long long)t);
  t = timed_wait(1020 * MS);
  ck_assert_msg(t >= 1020 * MS && t < 5000 * MS, "a 1.02 s wait took %llu ns",
                (unsigned long long)t);
  ck_assert_int_eq(errno, EXDEV);
}
END_TEST
#endif

int main(void) {
  Suite *s = suite_create("futex");
  TCase *tc = tcase_create("futex");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_wait_ms);
  tcase_add_test(tc, test_wait_seconds);
  tcase_add_test(tc, test_wait_keeps_errno);
  tcase_add_test(tc, test_wait_wake_keep_errno);
  tcase_add_test(tc, test_wake_ends_wait);
#ifdef SYS_futex_time64
  tcase_add_test(tc, test_wait_without_time64);
#endif
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
