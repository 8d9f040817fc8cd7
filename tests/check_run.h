/* SPDX-License-Identifier: MIT */
/* Runs a check suite the way every test program of melloc does: forked tests, the
   summary on stdout, exit status 0 only when every test passed.  Also what a test needs
   to run under an emulator (qemu-user, which CI uses for other architectures): checks
   that cannot run there are left out and said so, never silently, and time limits
   scale with CK_TIMEOUT_MULTIPLIER as check's own do. */
#ifndef MLC_CHECK_RUN_H
#define MLC_CHECK_RUN_H

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Checks left out of the suite, with the reason: printed after check's summary as
   "SKIP: NAME: REASON" (one line per check, loop iterations counted), so that whoever
   reads the output or counts it (.ci/cross.sh) sees them.  A program whose every check
   was left out exits 77, automake's SKIP. */
enum { MLC_CHECK_MAX_SKIPS = 32 };
struct mlc_check_skip_s {
  const char *name, *why;
  int n;
};
static struct mlc_check_skip_s mlc_check_skips[MLC_CHECK_MAX_SKIPS];
static int mlc_check_nskips;

static inline void mlc_check_skip(const char *name, int n, const char *why) {
  if (mlc_check_nskips < MLC_CHECK_MAX_SKIPS)
    mlc_check_skips[mlc_check_nskips++] = (struct mlc_check_skip_s){name, why, n};
}

/* tcase_add_test and tcase_add_loop_test, unless why (a reason) is not NULL. */
#define mlc_tcase_add_test_unless(why, tc, fn) \
  ((why) ? mlc_check_skip(#fn, 1, (why)) : tcase_add_test((tc), fn))
#define mlc_tcase_add_loop_test_unless(why, tc, fn, start, end) \
  ((why) ? mlc_check_skip(#fn, (end) - (start), (why)) : tcase_add_loop_test((tc), fn, (start), (end)))

/* After srunner_run_all: prints the skips; the exit status for RAN checks run and
   FAILED of them failed. */
static inline int mlc_check_finish(int ran, int failed) {
  for (int i = 0; i < mlc_check_nskips; i++)
    for (int k = 0; k < mlc_check_skips[i].n; k++)
      printf("SKIP: %s: %s\n", mlc_check_skips[i].name, mlc_check_skips[i].why);
  fflush(stdout);
  if (failed) return EXIT_FAILURE;
  return ran == 0 && mlc_check_nskips > 0 ? 77 : EXIT_SUCCESS;
}

static inline int mlc_check_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int ran = srunner_ntests_run(sr);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return mlc_check_finish(ran, failed);
}

/* The factor that check applies to its timeouts (CK_TIMEOUT_MULTIPLIER, 1 when unset),
   for a test's own time limits: an emulator runs the same work many times slower. */
static inline long mlc_check_time_scale(void) {
  const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
  long k = m ? atol(m) : 1;
  return k >= 1 ? k : 1;
}

/* Whether this program can execute itself again through /proc/self/exe: NULL when it
   can, else the reason it cannot.  Under qemu-user without binfmt_misc the kernel is
   handed a foreign binary and execve fails with ENOEXEC.  The probe runs the program
   with MLC_CHECK_EXEC_PROBE set, which makes it exit 0 at once (see below). */
static inline const char *mlc_check_reexec_refused(void) {
  static int done;
  static char why[160];
  if (done) return why[0] ? why : NULL;
  done = 1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, sizeof(why), "cannot fork to probe /proc/self/exe: %s", strerror(errno));
    return why;
  }
  if (pid == 0) {
    setenv("MLC_CHECK_EXEC_PROBE", "1", 1);
    execl("/proc/self/exe", "exec-probe", (char *)NULL);
    _exit(errno > 0 && errno < 100 ? 100 + errno : 99);
  }
  int st;
  if (waitpid(pid, &st, 0) != pid) st = -1;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return NULL;
  if (WIFEXITED(st) && WEXITSTATUS(st) > 100)
    snprintf(why, sizeof(why), "cannot re-execute /proc/self/exe: %s%s",
             strerror(WEXITSTATUS(st) - 100),
             WEXITSTATUS(st) - 100 == ENOEXEC ? " (an emulator without binfmt_misc)" : "");
  else
    snprintf(why, sizeof(why), "cannot re-execute /proc/self/exe: the probe ended with status %#x",
             (unsigned)st);
  return why;
}

/* The probe's other half: runs before main, does not allocate. */
__attribute__((constructor)) static void mlc_check_exec_probe_answer(void) {
  if (getenv("MLC_CHECK_EXEC_PROBE")) _exit(0);
}

/* For a main that re-executes itself with settings of its own (MELLOC_CONF, read once
   at start-up) when execv has returned: the program cannot run as it must, and says so
   with what would run it.  Exits 77 (SKIP). */
static inline void mlc_check_reexec_failed(const char *conf) {
  printf("SKIP: cannot re-execute /proc/self/exe with MELLOC_CONF=%s: %s%s; "
         "start it with MELLOC_CONF=%s\n",
         conf, strerror(errno), errno == ENOEXEC ? " (an emulator without binfmt_misc)" : "",
         conf);
  exit(77);
}

#endif
