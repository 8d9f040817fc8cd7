/* SPDX-License-Identifier: MIT */
/*
 * Heap misuse: melloc aborts with one line on stderr that names the problem and the
 * pointer, "melloc: <what>: pointer 0x<hex>\n".
 *
 * Two ways in.  The "signal" cases run each misuse inside check's forked test process
 * and expect SIGABRT.  The "message" cases re-execute this program (/proc/self/exe) with
 * "--misuse NAME", optionally with MELLOC_CONF=tcache:false (settings are read once at
 * boot, so a fresh process is the only way to change them), capture its stdout (where
 * the child first prints the pointer it is about to misuse) and stderr through pipes,
 * and assert it died of SIGABRT with exactly the expected line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>

#include "../check_run.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <melloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* 1 in test_errors_hardened, the same tests linked against libmelloc-hardened.so.0: the
   hardened heap may catch a misuse earlier, or name it otherwise. */
#ifndef MELLOC_TEST_HARDENED
#define MELLOC_TEST_HARDENED 0
#endif

void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

extern char **environ;

#define MiB ((size_t)1 << 20)

/* Keeps the compiler from seeing (and warning about, or folding away) the misuse. */
static void *hide(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

/* In a re-executed child, the pointer about to be misused goes to stdout first. */
static int report_fd = -1;

static void report(const void *p) {
  if (report_fd < 0) return;
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "0x%lx\n", (unsigned long)(uintptr_t)p);
  if (write(report_fd, buf, (size_t)n) != n) _exit(3);
}

/* Aborting on purpose: no core files. */
static void no_core(void) {
  struct rlimit r = {0, 0};
  setrlimit(RLIMIT_CORE, &r);
}

/* ---- The misuses ---- */

static char global_buf[64];

static void misuse_free_stack(void) {
  char buf[64];
  memset(buf, 1, sizeof(buf));
  report(buf);
  free(hide(buf));
}

static void misuse_free_global(void) {
  report(global_buf);
  free(hide(global_buf));
}

static void misuse_free_large_interior(void) {
  char *p = malloc(100000);
  if (!p) _exit(4);
  report(p + 16);
  free(hide(p + 16));
}

static void misuse_realloc_large_interior(void) {
  char *p = malloc(100000);
  if (!p) _exit(4);
  report(p + 4096);
  if (realloc(hide(p + 4096), 100001)) _exit(5); /* same page count: realloc's fast path */
}

static void misuse_usable_size_large_interior(void) {
  char *p = malloc(100000);
  if (!p) _exit(4);
  report(p + 4096);
  if (malloc_usable_size(hide(p + 4096)) > 0) _exit(5);
}

static void misuse_free_huge_interior(void) {
  char *p = malloc(8 * MiB);
  if (!p) _exit(4);
  report(p + 4096);
  free(hide(p + 4096));
}

static void misuse_double_free_huge(void) {
  void *p = malloc(8 * MiB);
  if (!p) _exit(4);
  report(p);
  free(p);
  free(hide(p));
}

/* Above the size kept in the huge cache: the first free unmaps it, so the second finds
   no block at all. */
static void misuse_double_free_huge_unmapped(void) {
  void *p = malloc(100 * MiB);
  if (!p) _exit(4);
  report(p);
  free(p);
  free(hide(p));
}

static void misuse_double_free_large(void) {
  void *p = malloc(100000);
  if (!p) _exit(4);
  report(p);
  free(p);
  free(hide(p));
}

/* With the thread cache off, small frees reach the bins (and their checks) at once. */
static void misuse_double_free_small(void) {
  void *p = malloc(64);
  if (!p) _exit(4);
  report(p);
  free(p);
  free(hide(p));
}

static void misuse_free_small_interior(void) {
  char *p = malloc(64);
  if (!p) _exit(4);
  report(p + 8);
  free(hide(p + 8));
}

/* With the thread cache on, a bad small free is caught when the cache flushes to the
   bins: the cache holds at most 256 objects of a class and flushes half when full, so
   600 more frees of the same size push the bad one through. */
enum { FLUSH_BLOCKS = 600 };
static void *flush_blocks[FLUSH_BLOCKS];

static void alloc_flush_blocks(void) {
  for (int i = 0; i < FLUSH_BLOCKS; i++)
    if (!(flush_blocks[i] = malloc(64))) _exit(4);
}

static void free_flush_blocks(void) {
  for (int i = 0; i < FLUSH_BLOCKS; i++) free(flush_blocks[i]);
}

static void misuse_double_free_small_cached(void) {
  void *p = malloc(64);
  if (!p) _exit(4);
  alloc_flush_blocks();
  report(p);
  free(p);
  free(hide(p));
  free_flush_blocks();
}

static void misuse_free_small_interior_cached(void) {
  char *p = malloc(64);
  if (!p) _exit(4);
  alloc_flush_blocks();
  report(p + 8);
  free(hide(p + 8));
  free_flush_blocks();
}

/* The other ways of freeing free: a later free() is a double free. */
static void misuse_free_sized_then_free(void) {
  void *p = malloc(100);
  if (!p) _exit(4);
  report(p);
  free_sized(p, 100);
  free(hide(p));
}

static void misuse_free_aligned_sized_then_free(void) {
  void *p = aligned_alloc(64, 128);
  if (!p) _exit(4);
  report(p);
  free_aligned_sized(p, 64, 128);
  free(hide(p));
}

static void misuse_realloc_zero_then_free(void) {
  void *p = malloc(100);
  if (!p) _exit(4);
  report(p);
  if (realloc(p, 0) != NULL) _exit(5);
  free(hide(p));
}

static void misuse_melloc_free_stack(void) {
  char buf[32];
  memset(buf, 2, sizeof(buf));
  report(buf);
  melloc_free(hide(buf));
}

/* A garbage pointer above the 48-bit user address space (a corrupted pointer): a
   message, not a segfault. */
static void misuse_free_wild_high(void) {
  void *p = (void *)(uintptr_t)0xdead000000001000ull;
  report(p);
  free(hide(p));
}

static void misuse_realloc_stack(void) {
  char buf[32];
  memset(buf, 3, sizeof(buf));
  report(buf);
  void *q = realloc(hide(buf), 100);
  free(q);
}

static void misuse_usable_size_stack(void) {
  char buf[32];
  memset(buf, 4, sizeof(buf));
  report(buf);
  if (malloc_usable_size(hide(buf)) == 12345) _exit(6);
}

struct misuse {
  const char *name;
  void (*fn)(void);
  const char *conf; /* MELLOC_CONF for the child, or NULL for the defaults */
  const char *what; /* the message */
};

static const struct misuse misuses[] = {
    {"free-stack", misuse_free_stack, NULL, "invalid free (pointer not allocated by melloc)"},
    {"free-global", misuse_free_global, NULL, "invalid free (pointer not allocated by melloc)"},
    {"melloc-free-stack", misuse_melloc_free_stack, NULL,
     "invalid free (pointer not allocated by melloc)"},
    {"free-large-interior", misuse_free_large_interior, NULL,
     "invalid free (not the start of a block)"},
    {"realloc-large-interior", misuse_realloc_large_interior, NULL,
     "invalid realloc (not the start of a block)"},
    {"usable-size-large-interior", misuse_usable_size_large_interior, NULL,
     "invalid pointer (not the start of a block)"},
    {"free-huge-interior", misuse_free_huge_interior, NULL,
     "invalid free (not the start of a block)"},
    {"double-free-huge", misuse_double_free_huge, NULL, "double free"},
    {"double-free-huge-unmapped", misuse_double_free_huge_unmapped, NULL,
     "invalid free (pointer not allocated by melloc)"},
    {"double-free-large", misuse_double_free_large, NULL, "double free or invalid pointer"},
    {"double-free-small", misuse_double_free_small, "tcache:false", "double free"},
    {"free-small-interior", misuse_free_small_interior, "tcache:false",
     "invalid free (not the start of a block)"},
    {"double-free-small-cached", misuse_double_free_small_cached, NULL, "double free"},
    {"free-small-interior-cached", misuse_free_small_interior_cached, NULL,
     "invalid free (not the start of a block)"},
    {"free-sized-then-free", misuse_free_sized_then_free, "tcache:false", "double free"},
    {"free-aligned-sized-then-free", misuse_free_aligned_sized_then_free, "tcache:false",
     "double free"},
    {"realloc-zero-then-free", misuse_realloc_zero_then_free, "tcache:false", "double free"},
    {"free-wild-high", misuse_free_wild_high, NULL,
     "invalid free (pointer not allocated by melloc)"},
    {"realloc-stack", misuse_realloc_stack, NULL,
     "invalid realloc (pointer not allocated by melloc)"},
    {"usable-size-stack", misuse_usable_size_stack, NULL,
     "invalid pointer (not allocated by melloc)"},
};

#define NMISUSES ((int)(sizeof(misuses) / sizeof(misuses[0])))

static const struct misuse *find_misuse(const char *name) {
  for (int i = 0; i < NMISUSES; i++)
    if (strcmp(misuses[i].name, name) == 0) return &misuses[i];
  return NULL;
}

/* ---- In-process: the misuse raises SIGABRT ---- */

/* The message is checked by the exec'ed cases; here it would only clutter the log. */
static void quiet_stderr(void) {
  int fd = open("/dev/null", O_WRONLY);
  if (fd >= 0) {
    dup2(fd, 2);
    close(fd);
  }
  no_core();
}

START_TEST(test_free_stack_aborts) {
  quiet_stderr();
  misuse_free_stack();
}
END_TEST

START_TEST(test_free_large_interior_aborts) {
  quiet_stderr();
  misuse_free_large_interior();
}
END_TEST

START_TEST(test_free_global_aborts) {
  quiet_stderr();
  misuse_free_global();
}
END_TEST

START_TEST(test_double_free_huge_aborts) {
  quiet_stderr();
  misuse_double_free_huge();
}
END_TEST

START_TEST(test_double_free_large_aborts) {
  quiet_stderr();
  misuse_double_free_large();
}
END_TEST

START_TEST(test_free_huge_interior_aborts) {
  quiet_stderr();
  misuse_free_huge_interior();
}
END_TEST

/* With the thread cache on (the default here), once the cache flushes. */
START_TEST(test_free_small_interior_aborts) {
  quiet_stderr();
  misuse_free_small_interior_cached();
}
END_TEST

START_TEST(test_double_free_small_aborts) {
  quiet_stderr();
  misuse_double_free_small_cached();
}
END_TEST

/* ---- Re-executed: the exact message ---- */

/* Reads fd to EOF into buf (NUL-terminated, truncated to size - 1). */
static void read_all(int fd, char *buf, size_t size) {
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

/* Runs this program with "--misuse name" and MELLOC_CONF=conf (unset when NULL),
   MELLOC_TRACE unset, and collects its exit status, stdout and stderr. */
static void run_child(const char *name, const char *conf, struct child_result *res) {
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
    char *argv[] = {(char *)"test_errors", (char *)"--misuse", (char *)name, NULL};
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

START_TEST(test_misuse_message) {
  const struct misuse *m = &misuses[_i];
  struct child_result res;
  run_child(m->name, m->conf, &res);
  ck_assert_msg(WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGABRT,
                "%s: child did not abort (status 0x%x), stderr: %s", m->name, res.status,
                res.err);
  /* The child printed the pointer, one line. */
  size_t olen = strlen(res.out);
  ck_assert_msg(olen > 3 && strncmp(res.out, "0x", 2) == 0 && res.out[olen - 1] == '\n' &&
                    strchr(res.out, '\n') == res.out + olen - 1,
                "%s: bad pointer report '%s'", m->name, res.out);
  res.out[olen - 1] = '\0';
  char want[512];
  snprintf(want, sizeof(want), "melloc: %s: pointer %s\n", m->what, res.out);
  ck_assert_msg(strcmp(res.err, want) == 0, "%s: stderr is\n'%s'\nwant\n'%s'", m->name, res.err,
                want);
}
END_TEST

/* The harness itself: a child that does not misuse the heap exits normally and says
   nothing, so the aborts above are the misuses' doing. */
START_TEST(test_child_without_misuse) {
  struct child_result res;
  run_child("none", "tcache:false", &res);
  ck_assert_msg(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0, "status 0x%x",
                res.status);
  ck_assert_str_eq(res.out, "ok\n");
  ck_assert_str_eq(res.err, "");
}
END_TEST

/* ---- main ---- */

/* The re-executed child: one misuse, which must not return. */
static int run_misuse(const char *name) {
  no_core();
  if (strcmp(name, "none") == 0) {
    void *p = malloc(64);
    free(p);
    if (write(1, "ok\n", 3) != 3) return 3;
    return 0;
  }
  const struct misuse *m = find_misuse(name);
  if (!m) return 2;
  report_fd = 1;
  m->fn();
  return 1;
}

static Suite *errors_suite(void) {
  const char *noexec = mlc_check_reexec_refused();
  Suite *s = suite_create("errors");
  TCase *tc = tcase_create("signal");
  tcase_add_test_raise_signal(tc, test_free_stack_aborts, SIGABRT);
  tcase_add_test_raise_signal(tc, test_free_large_interior_aborts, SIGABRT);
  tcase_add_test_raise_signal(tc, test_free_global_aborts, SIGABRT);
  tcase_add_test_raise_signal(tc, test_double_free_huge_aborts, SIGABRT);
  tcase_add_test_raise_signal(tc, test_double_free_large_aborts, SIGABRT);
  tcase_add_test_raise_signal(tc, test_free_huge_interior_aborts, SIGABRT);
  tcase_add_test_raise_signal(tc, test_free_small_interior_aborts, SIGABRT);
  tcase_add_test_raise_signal(tc, test_double_free_small_aborts, SIGABRT);
  suite_add_tcase(s, tc);

  tc = tcase_create("message");
  tcase_set_timeout(tc, 20);
  mlc_tcase_add_test_unless(noexec, tc, test_child_without_misuse);
  mlc_tcase_add_loop_test_unless(noexec, tc, test_misuse_message, 0, NMISUSES);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--misuse") == 0) return run_misuse(argv[2]);
  SRunner *sr = srunner_create(errors_suite());
  /* Expected signals need each test in its own process. */
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int ran = srunner_ntests_run(sr);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return mlc_check_finish(ran, failed);
}
