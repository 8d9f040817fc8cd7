/* SPDX-License-Identifier: MIT */
/* For the heap-misuse tests (test_errors, test_errors_hardened, test_harden): a misuse
   runs in this program re-executed (/proc/self/exe --misuse NAME), which first prints
   the pointer it is about to misuse on stdout; the parent collects the child's exit
   status, stdout and stderr.  Include after <check.h>. */
#ifndef MLC_TEST_MISUSE_H
#define MLC_TEST_MISUSE_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Keeps the compiler from seeing (and warning about, or folding away) the misuse. */
static inline void *hide(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

/* In a re-executed child, the pointer about to be misused goes to stdout first. */
static int report_fd = -1;

static inline void report(const void *p) {
  if (report_fd < 0) return;
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "0x%lx\n", (unsigned long)(uintptr_t)p);
  if (write(report_fd, buf, (size_t)n) != n) _exit(3);
}

/* Aborting on purpose: no core files. */
static inline void no_core(void) {
  struct rlimit r = {0, 0};
  setrlimit(RLIMIT_CORE, &r);
}

/* Reads fd to EOF into buf (NUL-terminated, truncated to size - 1). */
static inline void read_all(int fd, char *buf, size_t size) {
  size_t n = 0;
  for (;;) {
    char tmp[256];
    ssize_t r = read(fd, tmp, sizeof(tmp));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    for (ssize_t i = 0; i < r && n + 1 < size; i++) buf[n++] = tmp[i];
  }
  buf[n] = '\0';
}

struct child_result {
  int status;
  char out[256];
  char err[1024];
};

/* Runs this program as argv0 with "--misuse name" and MELLOC_CONF=conf (unset when
   NULL), MELLOC_TRACE unset, and collects its exit status, stdout and stderr. */
static inline void run_child(const char *argv0, const char *name, const char *conf,
                             struct child_result *res) {
  static char *envp[1024];
  static char conf_var[128];
  int k = 0;
  for (char **e = environ; *e && k < 1000; e++) {
    if (strncmp(*e, "MELLOC_CONF=", 12) == 0 || strncmp(*e, "MELLOC_TRACE=", 13) == 0) continue;
    envp[k++] = *e;
  }
  if (conf) {
    snprintf(conf_var, sizeof(conf_var), "MELLOC_CONF=%s", conf);
    envp[k++] = conf_var;
  }
  envp[k] = NULL;

  int out[2], err[2];
  ck_assert_int_eq(pipe(out), 0);
  ck_assert_int_eq(pipe(err), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    char *argv[] = {(char *)argv0, (char *)"--misuse", (char *)name, NULL};
    execve("/proc/self/exe", argv, envp);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  /* Both outputs are far below a pipe's capacity: reading one after the other is safe. */
  read_all(out[0], res->out, sizeof(res->out));
  read_all(err[0], res->err, sizeof(res->err));
  close(out[0]);
  close(err[0]);
  ck_assert_int_eq(waitpid(pid, &res->status, 0), pid);
}

/* The pointer the child reported (its stdout, one line "0x...\n"), without the newline;
   fails the test when the report is not that. */
static inline void child_pointer(struct child_result *res, const char *name) {
  size_t olen = strlen(res->out);
  ck_assert_msg(olen > 3 && strncmp(res->out, "0x", 2) == 0 && res->out[olen - 1] == '\n' &&
                    strchr(res->out, '\n') == res->out + olen - 1,
                "%s: bad pointer report '%s'", name, res->out);
  res->out[olen - 1] = '\0';
}

#endif
