/* SPDX-License-Identifier: MIT */
/* runone: run one benchmark process and report what it cost, like time(1).
     runone TIMEOUT_S LIB PROGRAM [ARGS...]
   LIB is the allocator to LD_PRELOAD into PROGRAM, or "-" for none; this
   process itself never runs with it.  PROGRAM inherits stdin/stdout/stderr.
   The report goes to file descriptor 3 as one line:
     status=ok|exit:N|signal:N|timeout wall_s=F user_s=F sys_s=F maxrss_kb=N
   Why not measure from run.py: Linux carries the peak RSS of the address space
   a process had before execve into its ru_maxrss, and a child spawned by
   Python starts from Python's (20+ MiB).  Forked from this small program, the
   floor is a few hundred KiB. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static volatile sig_atomic_t timed_out;
static pid_t child;

static void on_alarm(int sig) {
  (void)sig;
  timed_out = 1;
  kill(child, SIGKILL);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: runone TIMEOUT_S LIB|- PROGRAM [ARGS...]\n");
    return 2;
  }
  double timeout = strtod(argv[1], NULL);
  const char *lib = argv[2];
  FILE *report = fdopen(3, "w");
  if (!report) {
    fprintf(stderr, "runone: file descriptor 3 must be open for the report\n");
    return 2;
  }
  /* The report descriptor must not leak into the benchmark. */
  int fl = fcntl(3, F_GETFD);
  fcntl(3, F_SETFD, fl | FD_CLOEXEC);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  child = fork();
  if (child < 0) {
    perror("runone: fork");
    return 2;
  }
  if (child == 0) {
    if (strcmp(lib, "-") == 0)
      unsetenv("LD_PRELOAD");
    else
      setenv("LD_PRELOAD", lib, 1);
    execve(argv[3], argv + 3, environ);
    fprintf(stderr, "runone: cannot run %s: %s\n", argv[3], strerror(errno));
    _exit(127);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 0},
                         {(time_t)timeout, (suseconds_t)((timeout - (time_t)timeout) * 1e6)}};
  if (timeout > 0) setitimer(ITIMER_REAL, &it, NULL);

  int status;
  struct rusage ru;
  while (wait4(child, &status, 0, &ru) < 0)
    if (errno != EINTR) {
      perror("runone: wait4");
      return 2;
    }
  clock_gettime(CLOCK_MONOTONIC, &t1);

  char st[32];
  if (timed_out)
    snprintf(st, sizeof st, "timeout");
  else if (WIFSIGNALED(status))
    snprintf(st, sizeof st, "signal:%d", WTERMSIG(status));
  else if (WEXITSTATUS(status))
    snprintf(st, sizeof st, "exit:%d", WEXITSTATUS(status));
  else
    snprintf(st, sizeof st, "ok");
  fprintf(report, "status=%s wall_s=%.6f user_s=%.6f sys_s=%.6f maxrss_kb=%ld\n", st,
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
          (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss);
  fclose(report);
  return 0;
}
