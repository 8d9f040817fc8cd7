/* SPDX-License-Identifier: MIT */
/* unshare() and setns() that the kernel allows only to a single-threaded process work
   under melloc as on glibc, with the collector running before the call: at once, and
   after the program has allocated and idled (the collector's passes in between).  Also
   util-linux's unshare(1) under LD_PRELOAD.  Skipped, with the reason, where the
   kernel or the container refuses the same calls to a single-threaded process. */
#define _GNU_SOURCE
#include <check.h>

#include "../check_run.h"
#include "../gc_thread.h"
#include "../process.h"
#include <errno.h>
#include <fcntl.h>
#include <melloc.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long interval_ms(void) {
  char v[32];
  return melloc_option_get("gc_interval_ms", v, sizeof(v)) == 0 ? atol(v) : 1000;
}

/* Runs fn in a forked child and checks it exits 0; the child is single-threaded at the
   start (no collector exists in a fork child until it has lived an interval). */
static void in_child(int (*fn)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) _exit(fn());
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st), "child ended by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  ck_assert_msg(WEXITSTATUS(st) == 0, "child failed at step %d", WEXITSTATUS(st));
}

/* A single-threaded process here may use them: what glibc's unshare would do.  A
   fork child that has not allocated is single-threaded, unless something beside the
   program runs threads in it: qemu-user runs one of its own in every process, so the
   kernel refuses these calls to every program it emulates. */
static int probe(void) {
  if (mlc_test_count_threads() != 1) return 3;
  int fd = open("/proc/self/ns/mnt", O_RDONLY);
  if (fd < 0 || syscall(SYS_setns, fd, CLONE_NEWNS) != 0 || syscall(SYS_unshare, CLONE_NEWNS) != 0 ||
      syscall(SYS_setns, fd, CLONE_NEWNS) != 0)
    return 2;
  if (syscall(SYS_unshare, CLONE_NEWUSER) != 0) return 1;
  return 0;
}

/* The calls, with the collector running just before. */
static int with_collector(int idle_ms) {
  mlc_test_allocate_much();
  if (mlc_test_collector_expected() && !mlc_test_collector_up()) return 10;
  if (idle_ms) {
    /* Allocate and idle: the collector's passes return the caches meanwhile. */
    for (int i = 0; i < 5; i++) {
      mlc_test_allocate_much();
      mlc_test_sleep_ms(idle_ms / 5);
    }
  }
  /* The collector runs (again) right before the calls. */
  if (mlc_test_collector_expected() && !mlc_test_collector_up()) return 18;
  /* A mount namespace of its own and back (setns into a mount namespace needs a
     process whose threads do not share the file-system state, i.e. one thread). */
  int fd = open("/proc/self/ns/mnt", O_RDONLY);
  if (fd < 0) return 11;
  errno = 1234;
  if (setns(fd, CLONE_NEWNS) != 0) return 12; /* the namespace it is in */
  if (unshare(CLONE_NEWNS) != 0) return 13;
  if (setns(fd, CLONE_NEWNS) != 0) return 14;
  if (errno != 1234) return 15; /* calls that succeed leave errno alone */
  close(fd);
  mlc_test_allocate_much();
  /* A user namespace. */
  if (unshare(CLONE_NEWUSER) != 0) return 16;
  /* An invalid call fails as the kernel says, errno included. */
  errno = 0;
  if (setns(-1, 0) != -1 || errno != EBADF) return 17;
  /* And memory still works afterwards. */
  mlc_test_allocate_much();
  return 0;
}

static int now(void) { return with_collector(0); }
static int after_idle(void) {
  long ms = 5 * interval_ms();
  return with_collector(ms < 50 ? 50 : ms > 5000 ? 5000 : ms);
}

START_TEST(test_unshare_at_once) { in_child(now); }
END_TEST

START_TEST(test_unshare_after_idle) { in_child(after_idle); }
END_TEST

/* Why /usr/bin/unshare cannot load this program's library, or NULL: it is built for
   another architecture (an i386 or emulated build on an amd64 host), so the dynamic
   loader would ignore LD_PRELOAD and the check below would test glibc. */
static const char *foreign_unshare(void) {
  unsigned char self[20], other[20];
  int a = open("/proc/self/exe", O_RDONLY), b = open("/usr/bin/unshare", O_RDONLY);
  bool same = a >= 0 && b >= 0 && read(a, self, sizeof(self)) == (ssize_t)sizeof(self) &&
              read(b, other, sizeof(other)) == (ssize_t)sizeof(other) &&
              self[4] == other[4] && self[5] == other[5] && self[18] == other[18] &&
              self[19] == other[19]; /* ELF class, byte order, machine */
  if (a >= 0) close(a);
  if (b >= 0) close(b);
  return same || b < 0 ? NULL
                       : "/usr/bin/unshare is built for another architecture: it cannot "
                         "preload this build's library";
}

/* util-linux unshare(1) under LD_PRELOAD, with the collector started early. */
START_TEST(test_unshare_command) {
  const char *lib = getenv("MELLOC_LIB");
  if (!lib || access("/usr/bin/unshare", X_OK) != 0) {
    /* Counted as a failure: make check sets MELLOC_LIB, and util-linux is essential. */
    ck_abort_msg("MELLOC_LIB unset or /usr/bin/unshare missing");
  }
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    setenv("LD_PRELOAD", lib, 1);
    setenv("MELLOC_CONF", "gc_interval_ms:1", 1);
    execl("/usr/bin/unshare", "unshare", "--user", "--map-root-user", "/usr/bin/id", "-u",
          (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  char out[64] = "";
  ssize_t n = read(fds[0], out, sizeof(out) - 1);
  close(fds[0]);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "unshare(1) status %#x", st);
  ck_assert_int_gt(n, 0);
  ck_assert_str_eq(out, "0\n");
}
END_TEST

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(probe());
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
    printf("SKIP: a process that has created no thread has more than one here (an "
           "emulator's own, as qemu-user's): the kernel refuses these calls to it\n");
    return 77;
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    const char *refused =
        WIFEXITED(st) && WEXITSTATUS(st) == 1 ? "user namespaces" : "mount namespaces to root";
    printf("SKIP: this kernel or container refuses %s to a single-threaded process "
           "(glibc alike)\n",
           refused);
    return 77;
  }
  Suite *s = suite_create("unshare");
  TCase *tc = tcase_create("single-threaded calls");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_unshare_at_once);
  tcase_add_test(tc, test_unshare_after_idle);
  mlc_tcase_add_test_unless(foreign_unshare(), tc, test_unshare_command);
  suite_add_tcase(s, tc);
  return mlc_check_run(s);
}
