/* SPDX-License-Identifier: MIT */
/* What a process can see of the collector thread, against what glibc does: a process
   whose threads all end with pthread_exit exits with status 0, also as a fork child; a
   process-directed signal is taken by one of the program's threads (its handler never
   runs on the collector), and SIGTERM ends the process; setuid() reaches the collector
   as it reaches every thread (glibc broadcasts it); a process that sandboxes itself with
   seccomp has no collector from then on, and one that drops its capabilities has no
   collector that keeps them.  Each case runs in a fresh process (this program
   re-executed with --case NAME) that first makes sure the collector runs, so that the
   case tests something; the parent waits for it with a time limit, so that a hang is a
   failure and not a stuck test. */
#define _GNU_SOURCE
#include <check.h>

#include "../check_run.h"
#include "../gc_thread.h"
#include "../process.h"
#include <errno.h>
#include <fcntl.h>
#include <melloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- Helpers for the cases (they run in the re-executed process) ---- */

/* Exits with 91 unless the collector thread runs now (where the settings start one).
   The process is single-threaded here. */
static void require_collector(void) {
  if (!mlc_test_collector_expected()) return;
  if (!mlc_test_collector_up()) {
    fprintf(stderr, "case: no collector thread to test against\n");
    _exit(91);
  }
}

static void *worker_allocates(void *arg) {
  (void)arg;
  for (int i = 0; i < 10000; i++) free(malloc(32 + i % 512));
  mlc_test_sleep_ms(100);
  return NULL;
}

static int case_pthread_exit(void) {
  mlc_test_allocate_much();
  require_collector();
  pthread_t t;
  if (pthread_create(&t, NULL, worker_allocates, NULL) != 0) return 92;
  pthread_exit(NULL); /* the worker ends later: then the process must end, status 0 */
}

static void *fork_from_thread(void *arg) {
  (void)arg;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) _exit(93);
  if (pid == 0) {
    /* The child: this thread is its only one.  It starts a collector, and returning
       from this function is the process's last thread ending. */
    mlc_test_allocate_much();
    require_collector();
    return NULL;
  }
  int st;
  for (int i = 0; i < 3000; i++) { /* 30 s */
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    mlc_test_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  _exit(94); /* the child did not end */
}

static int case_fork_thread_exit(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, fork_from_thread, NULL) != 0) return 92;
  pthread_join(t, NULL);
  return 95; /* not reached: the thread exits the process */
}

static volatile sig_atomic_t handled, handled_wrong;
static long worker_tid;

static void on_usr1(int sig) {
  (void)sig;
  if (syscall(SYS_gettid) == __atomic_load_n(&worker_tid, __ATOMIC_RELAXED))
    handled++;
  else
    handled_wrong++;
}

static void *signal_worker(void *arg) {
  (void)arg;
  __atomic_store_n(&worker_tid, syscall(SYS_gettid), __ATOMIC_RELAXED);
  for (;;) pause();
  return NULL;
}

/* A process-directed signal that the main thread blocks is handled by the one thread
   that does not block it: the program's worker, never the collector. */
static int case_signal_handler(void) {
  mlc_test_allocate_much();
  require_collector();
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  pthread_t t;
  if (pthread_create(&t, NULL, signal_worker, NULL) != 0) return 92;
  while (__atomic_load_n(&worker_tid, __ATOMIC_RELAXED) == 0) mlc_test_sleep_ms(1);
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);
  for (int i = 0; i < 200; i++) {
    sig_atomic_t before = handled + handled_wrong;
    kill(getpid(), SIGUSR1);
    for (int k = 0; k < 1000 && handled + handled_wrong == before; k++) mlc_test_sleep_ms(1);
  }
  if (handled_wrong) return 96;
  if (handled != 200) return 97;
  return 0;
}

/* Every program thread blocks the signal: it stays pending (as on glibc) and the
   collector does not take it; the main thread gets it once it unblocks it. */
static int case_signal_pending(void) {
  mlc_test_allocate_much();
  require_collector();
  __atomic_store_n(&worker_tid, syscall(SYS_gettid), __ATOMIC_RELAXED); /* main's */
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);
  kill(getpid(), SIGUSR1);
  mlc_test_sleep_ms(300);
  if (handled || handled_wrong) return 96;
  pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
  return handled == 1 && handled_wrong == 0 ? 0 : 97;
}

static int ready_fd = -1;

/* Tells the parent the process is ready for its signal, then idles. */
static void ready_then_idle(void) {
  if (write(ready_fd, "r", 1) != 1) _exit(98);
  for (;;) pause();
}

/* SIGTERM, default action: ends the process (main waits in pause). */
static int case_sigterm(void) {
  mlc_test_allocate_much();
  require_collector();
  ready_then_idle();
  return 0;
}

static void *idle_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) free(malloc(64));
  ready_then_idle();
  return NULL;
}

/* SIGTERM after main ended with pthread_exit: the worker takes it, the process ends. */
static int case_sigterm_after_main_exit(void) {
  mlc_test_allocate_much();
  require_collector();
  pthread_t t;
  if (pthread_create(&t, NULL, idle_worker, NULL) != 0) return 92;
  pthread_exit(NULL);
}

/* setuid() in a threaded process changes the credentials of every thread (glibc
   signals each one): the collector's too, as the kernel shows them. */
static int case_setuid(void) {
  if (getuid() != 0) return 77;
  mlc_test_allocate_much();
  require_collector();
  long tid = 0;
  for (int i = 0; i < 100 && tid == 0; i++) { /* it names itself once it runs */
    tid = mlc_test_gc_thread();
    if (!tid) mlc_test_sleep_ms(10);
  }
  if (setgid(65534) != 0 || setuid(65534) != 0) return 99;
  if (tid == 0) return 0;
  /* glibc skips a thread that is ending (its function has returned): when the collector
     retires at the moment of the call (with gc_interval_ms:1 it often does), the kernel
     lists it a moment longer with the old credentials -- as it would any thread of the
     program's that ends then.  So the credentials must change or the thread must go
     within a second; a collector that stays on with the old ones fails. */
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/self/task/%ld/status", tid);
  for (int tries = 0; tries < 100; tries++) {
    FILE *f = fopen(path, "r");
    if (!f) return 0; /* it has ended: nothing to compare */
    int uid_ok = 0, gid_ok = 0;
    unsigned r, e, s, fs;
    while (fgets(line, sizeof(line), f)) {
      if (sscanf(line, "Uid: %u %u %u %u", &r, &e, &s, &fs) == 4) uid_ok = r == 65534 && e == 65534;
      if (sscanf(line, "Gid: %u %u %u %u", &r, &e, &s, &fs) == 4) gid_ok = r == 65534 && e == 65534;
    }
    fclose(f);
    if (uid_ok && gid_ok) return 0;
    mlc_test_sleep_ms(10);
  }
  return 100;
}

/* The atexit handler glibc runs when the process's last thread ends, on whichever thread
   ends last -- possibly the collector: it must have a stack like the program's threads
   (a 64 KiB one crashed this handler). */
static void deep_exit_handler(void) {
  volatile char big[256 * 1024];
  memset((char *)big, 1, sizeof(big));
  if (big[7] != 1 || write(ready_fd, "x", 1) != 1) _exit(101);
}

static void *worker_frees_much(void *arg) {
  (void)arg;
  mlc_test_sleep_ms(100); /* main has ended by now */
  enum { N = 2000 };
  void **v = malloc(N * sizeof(void *));
  for (int i = 0; i < N; i++) {
    v[i] = malloc(60000);
    if (!v[i]) _exit(90);
    memset(v[i], 1, 60000);
  }
  for (int i = 0; i < N; i++) free(v[i]);
  free(v);
  return NULL; /* the last program thread ends; the collector gives back ~120 MB */
}

static int case_exit_handler(void) {
  atexit(deep_exit_handler);
  mlc_test_allocate_much();
  require_collector();
  pthread_t t;
  if (pthread_create(&t, NULL, worker_frees_much, NULL) != 0) return 92;
  pthread_exit(NULL);
}

/* root drops every capability of its one thread (capset(), as libcap's cap_set_proc()
   does) while a collector runs: capabilities belong to each thread, and glibc changes
   no other's.  The collector running after it must have none either. */
int capset(void *header, void *data);
static int case_capset(bool through_syscall) {
  if (geteuid() != 0) return 77;
  if (!mlc_test_collector_expected()) return 0; /* gc:false, tcache:false: no collector */
  mlc_test_allocate_much();
  require_collector();
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
  memset(d, 0, sizeof(d));
  /* libcap 2.43 and later call syscall(SYS_capset), which melloc does not see: the
     collector must drop them itself, at its next pass. */
  if ((through_syscall ? syscall(SYS_capset, &h, d) : capset(&h, d)) != 0) return 99;
  long limit_ms = 5000 * mlc_check_time_scale();
  for (long t = 0; t < limit_ms; t += 20) {
    mlc_test_allocate_much(); /* work for a collector, if the call stopped it */
    long tid = mlc_test_gc_thread();
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/self/task/%ld/status", tid);
    FILE *f = tid ? fopen(path, "r") : NULL;
    unsigned long long prm = ~0ull, eff = ~0ull;
    while (f && fgets(line, sizeof(line), f)) {
      sscanf(line, "CapPrm: %llx", &prm);
      sscanf(line, "CapEff: %llx", &eff);
    }
    if (f) fclose(f);
    if (f && prm == 0 && eff == 0) return 0;
    if (f && !through_syscall) return 100; /* at once for capset() */
    mlc_test_sleep_ms(20);
  }
  return 101;
}

/* OpenSSH's pre-authentication child: no_new_privs, then a system call filter that
   kills the process on any call but a few, then work.  The collector that ran stops
   before the filter (no unfiltered thread in a sandboxed process), and none starts after
   it, in the process or in a fork child (its system calls would be fatal). */
#define ALLOW(nr) \
  BPF_JUMP(BPF_JMP + BPF_JEQ + BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET + BPF_K, SECCOMP_RET_ALLOW)
static int case_seccomp(void) {
  mlc_test_allocate_much();
  require_collector();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 95;
  if (mlc_test_collector_expected() && mlc_test_count_threads() != 1) return 93;
  struct sock_filter insns[] = {
      BPF_STMT(BPF_LD + BPF_W + BPF_ABS, offsetof(struct seccomp_data, nr)),
      ALLOW(SYS_brk),
      ALLOW(SYS_mmap),
      ALLOW(SYS_munmap),
      ALLOW(SYS_mprotect),
      ALLOW(SYS_madvise),
      ALLOW(SYS_mremap),
      ALLOW(SYS_futex),
      ALLOW(SYS_exit),
      ALLOW(SYS_exit_group),
      ALLOW(SYS_read),
      ALLOW(SYS_write),
      ALLOW(SYS_rt_sigprocmask),
      ALLOW(SYS_nanosleep),
      ALLOW(SYS_clock_nanosleep),
      ALLOW(SYS_clock_gettime),
      ALLOW(SYS_getpid),
      ALLOW(SYS_clone),
      ALLOW(SYS_wait4),
      ALLOW(SYS_rt_sigreturn),
      ALLOW(SYS_set_robust_list), /* glibc's fork() in the child */
#ifdef SYS_mmap2
      ALLOW(SYS_mmap2),
#endif
#ifdef SYS_futex_time64
      ALLOW(SYS_futex_time64),
      ALLOW(SYS_clock_nanosleep_time64),
      ALLOW(SYS_clock_gettime64),
#endif
#ifdef SECCOMP_RET_KILL_PROCESS
      BPF_STMT(BPF_RET + BPF_K, SECCOMP_RET_KILL_PROCESS),
#else
      BPF_STMT(BPF_RET + BPF_K, SECCOMP_RET_KILL),
#endif
  };
  struct sock_fprog prog = {(unsigned short)(sizeof(insns) / sizeof(insns[0])), insns};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return 95;
  /* More than 8 MiB mapped: every allocation slow path would start a collector now;
     a full collection on the program's own thread must not call membarrier. */
  for (int i = 0; i < 3; i++) {
    mlc_test_sleep_ms(50);
    mlc_test_allocate_much();
  }
  melloc_collect();
  malloc_trim(0);
  pid_t pid = fork();
  if (pid == 0) {
    /* Blocks of new sizes, each past the thread cache: allocation slow paths. */
    for (int i = 1; i <= 8; i++) {
      char *p = malloc((size_t)i << 22);
      if (!p) _exit(90);
      p[0] = 1;
      free(p);
    }
    mlc_test_allocate_much();
    _exit(0);
  }
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return 96;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 94;
}

/* Whether this kernel lets a process install a seccomp filter (not a container that
   refuses it, not qemu-user). */
static bool seccomp_works(void) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    struct sock_filter allow = BPF_STMT(BPF_RET + BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {1, &allow};
    _exit(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
                  prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0
              ? 0
              : 1);
  }
  int st;
  return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int run_case(const char *name) {
  if (!strcmp(name, "pthread-exit")) return case_pthread_exit();
  if (!strcmp(name, "fork-thread-exit")) return case_fork_thread_exit();
  if (!strcmp(name, "signal-handler")) return case_signal_handler();
  if (!strcmp(name, "signal-pending")) return case_signal_pending();
  if (!strcmp(name, "sigterm")) return case_sigterm();
  if (!strcmp(name, "sigterm-after-main-exit")) return case_sigterm_after_main_exit();
  if (!strcmp(name, "setuid")) return case_setuid();
  if (!strcmp(name, "exit-handler")) return case_exit_handler();
  if (!strcmp(name, "seccomp")) return case_seccomp();
  if (!strcmp(name, "capset")) return case_capset(false);
  if (!strcmp(name, "capset-syscall")) return case_capset(true);
  fprintf(stderr, "unknown case %s\n", name);
  return 2;
}

/* ---- The parent's side ---- */

enum { LIMIT_MS = 30000 }; /* times CK_TIMEOUT_MULTIPLIER */

/* Runs case NAME in a fresh process.  signal: sent once the case says it is ready (0:
   none).  Returns the wait status, and in *wrote (if not NULL) whether the case wrote to
   its pipe after that; fails the test when the process has not ended within LIMIT_MS
   (it is killed). */
static int run_case_wrote(const char *name, int signal, bool *wrote) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    char fd[16];
    snprintf(fd, sizeof(fd), "%d", fds[1]);
    execl("/proc/self/exe", "test_process", "--case", name, fd, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  if (signal) {
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    ck_assert_int_eq(kill(pid, signal), 0);
  }
  int st = 0;
  long waited = 0, limit_ms = LIMIT_MS * mlc_check_time_scale();
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (waited >= limit_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      ck_abort_msg("case %s: the process did not end within %ld ms", name, limit_ms);
    }
    mlc_test_sleep_ms(10);
    waited += 10;
  }
  char c;
  bool w = read(fds[0], &c, 1) == 1; /* the writer has ended: no wait */
  close(fds[0]);
  if (wrote) *wrote = w;
  return st;
}

static int run(const char *name, int signal) { return run_case_wrote(name, signal, NULL); }

static void expect_exit(const char *name, int st, int code) {
  ck_assert_msg(WIFEXITED(st), "case %s: ended by signal %d", name,
                WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  ck_assert_msg(WEXITSTATUS(st) == code, "case %s: exit status %d, expected %d", name,
                WEXITSTATUS(st), code);
}

START_TEST(test_pthread_exit) { expect_exit("pthread-exit", run("pthread-exit", 0), 0); }
END_TEST

START_TEST(test_fork_child_thread_returns) {
  expect_exit("fork-thread-exit", run("fork-thread-exit", 0), 0);
}
END_TEST

START_TEST(test_signal_handler_thread) {
  expect_exit("signal-handler", run("signal-handler", 0), 0);
}
END_TEST

START_TEST(test_signal_stays_pending) {
  expect_exit("signal-pending", run("signal-pending", 0), 0);
}
END_TEST

START_TEST(test_sigterm) {
  static const char *cases[] = {"sigterm", "sigterm-after-main-exit"};
  int st = run(cases[_i], SIGTERM);
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "case %s: status %#x", cases[_i], st);
}
END_TEST

/* The handler ran to its end (it wrote to the pipe) and the process ended with status
   0, five times (the collector ends last in most of them). */
START_TEST(test_exit_handler_stack) {
  for (int k = 0; k < 5; k++) {
    bool wrote = false;
    int st = run_case_wrote("exit-handler", 0, &wrote);
    expect_exit("exit-handler", st, 0);
    ck_assert_msg(wrote, "case exit-handler: the atexit handler did not run to its end");
  }
}
END_TEST

START_TEST(test_setuid_reaches_collector) {
  int st = run("setuid", 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 77) return; /* not root: nothing to change */
  expect_exit("setuid", st, 0);
}
END_TEST

START_TEST(test_capset_reaches_collector) { expect_exit("capset", run("capset", 0), 0); }
END_TEST

START_TEST(test_capset_syscall_reaches_collector) {
  expect_exit("capset-syscall", run("capset-syscall", 0), 0);
}
END_TEST

START_TEST(test_seccomp_sandbox) {
  int st = run("seccomp", 0);
  ck_assert_msg(!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS,
                "case seccomp: killed by its own filter (SIGSYS): a system call of melloc's");
  expect_exit("seccomp", st, 0);
}
END_TEST

int main(int argc, char **argv) {
  if (argc > 3 && strcmp(argv[1], "--case") == 0) {
    ready_fd = atoi(argv[3]);
    return run_case(argv[2]);
  }
#ifdef MLC_TEST_UNPRIVILEGED
  /* Again as an ordinary user (root becomes nobody): the collector is then a thread
     glibc does not count (gc.c), and must behave the same. */
  if (mlc_test_become_nobody()) printf("note: running as nobody\n");
#endif
  const char *noexec = mlc_check_reexec_refused();
  Suite *s = suite_create("process");
  TCase *tc = tcase_create("as on glibc");
  tcase_set_timeout(tc, 120);
  mlc_tcase_add_test_unless(noexec, tc, test_pthread_exit);
  mlc_tcase_add_test_unless(noexec, tc, test_fork_child_thread_returns);
  mlc_tcase_add_test_unless(noexec, tc, test_signal_handler_thread);
  mlc_tcase_add_test_unless(noexec, tc, test_signal_stays_pending);
  mlc_tcase_add_loop_test_unless(noexec, tc, test_sigterm, 0, 2);
  const char *not_root = noexec ? noexec : getuid() != 0 ? "needs root" : NULL;
  mlc_tcase_add_test_unless(not_root, tc, test_setuid_reaches_collector);
  mlc_tcase_add_test_unless(not_root, tc, test_capset_reaches_collector);
  mlc_tcase_add_test_unless(not_root, tc, test_capset_syscall_reaches_collector);
  const char *no_seccomp = noexec ? noexec : !seccomp_works() ? "no seccomp filters here" : NULL;
  mlc_tcase_add_test_unless(no_seccomp, tc, test_seccomp_sandbox);
  mlc_tcase_add_test_unless(noexec, tc, test_exit_handler_stack);
  suite_add_tcase(s, tc);
  return mlc_check_run(s);
}
