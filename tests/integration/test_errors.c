/* SPDX-License-Identifier: MIT */
/*
 * Heap misuse: melloc aborts with one line on stderr that names the call, the problem
 * and the pointer, "melloc: <call>(): <what>: pointer 0x<hex>\n", before the misused
 * block can be handed out again.
 *
 * Two ways in.  The "signal" cases run each misuse inside check's forked test process
 * and expect SIGABRT.  The "message" cases re-execute this program (/proc/self/exe) with
 * "--misuse NAME", optionally with MELLOC_CONF=tcache:false (settings are read once at
 * boot, so a fresh process is the only way to change them), capture its stdout (where
 * the child first prints the pointer it is about to misuse) and stderr through pipes,
 * and assert it died of SIGABRT with exactly the expected line.  Each case runs under
 * the default settings and with the collector's interval at 1 ms.  A misuse that does
 * not abort goes on with the mallocs that would reveal the damage (the same block
 * twice, or a block inside a live one) and says what it found on stdout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>

#include "../check_run.h"
#include "../misuse.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <melloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
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

#define MiB ((size_t)1 << 20)

/* ---- The misuses ---- */

static char global_buf[64];

/* After a misuse that did not abort: mallocs of size until one returns a block that
   overlaps [bad, bad + size) or p itself twice; says which on stdout and exits 7. */
static void look_for_damage(const char *p, size_t size) {
  char msg[128];
  const char *seen = NULL;
  for (int i = 0; i < 64; i++) {
    char *q = malloc(size);
    if (q == p) {
      if (seen) {
        snprintf(msg, sizeof(msg), "handed out twice: %p\n", (void *)p);
        break;
      }
      seen = q;
    } else if (q && q < p + size && p < q + size) {
      snprintf(msg, sizeof(msg), "overlapping block: %p inside %p\n", (void *)q, (void *)p);
      seen = NULL;
      break;
    }
    if (i == 63) snprintf(msg, sizeof(msg), "not caught, no damage seen\n");
  }
  if (write(1, msg, strlen(msg)) < 0) _exit(3);
  _exit(7);
}

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
  look_for_damage(p, 100000);
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
  look_for_damage(p, 8 * MiB);
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

static void misuse_realloc_freed_huge(void) {
  void *p = malloc(8 * MiB);
  if (!p) _exit(4);
  report(p);
  free(p);
  if (realloc(hide(p), 9 * MiB)) _exit(5);
}

/* Large blocks: 20000 and 65536 bytes (5 and 16 pages) stay in the thread cache when freed. */
static void double_free_sized(size_t size) {
  void *p = malloc(size);
  if (!p) _exit(4);
  report(p);
  free(p);
  free(hide(p));
  look_for_damage(p, size);
}

static void realloc_freed_sized(size_t size) {
  char *p = malloc(size);
  if (!p) _exit(4);
  report(p);
  free(p);
  char *q = realloc(hide(p), size + 100);
  if (q == p) look_for_damage(p, size);
  _exit(5);
}

static void misuse_double_free_large(void) { double_free_sized(100000); }
static void misuse_double_free_20000(void) { double_free_sized(20000); }
static void misuse_double_free_65536(void) { double_free_sized(65536); }
static void misuse_realloc_freed_20000(void) { realloc_freed_sized(20000); }
static void misuse_realloc_freed_65536(void) { realloc_freed_sized(65536); }

/* Small blocks, 16..16384 bytes: every case is caught at the misuse itself. */
static void misuse_double_free_16(void) { double_free_sized(16); }
static void misuse_double_free_64(void) { double_free_sized(64); }
static void misuse_double_free_200(void) { double_free_sized(200); }
static void misuse_double_free_16384(void) { double_free_sized(16384); }
static void misuse_realloc_freed_small(void) { realloc_freed_sized(64); }

/* free(p); free(q); free(p): p is not on top of the cache any more. */
static void misuse_double_free_pqp(void) {
  void *p = malloc(48), *q = malloc(48);
  if (!p || !q) _exit(4);
  report(p);
  free(p);
  free(q);
  free(hide(p));
  look_for_damage(p, 48);
}

/* p pushed deep down the cache, and through a flush to its bin: 600 frees of its size
   between the two (the cache holds at most 256 of a class and flushes half when full). */
enum { FLUSH_BLOCKS = 600 };
static void *flush_blocks[FLUSH_BLOCKS];

static void misuse_double_free_small_flushed(void) {
  void *p = malloc(64);
  if (!p) _exit(4);
  for (int i = 0; i < FLUSH_BLOCKS; i++)
    if (!(flush_blocks[i] = malloc(64))) _exit(4);
  report(p);
  free(p);
  for (int i = 0; i < FLUSH_BLOCKS; i++) free(flush_blocks[i]);
  free(hide(p));
  look_for_damage(p, 64);
}

/* Freed, then the thread idles while the collector takes its cache back to the bins:
   the second free finds the block there. */
static void idle_double_free(size_t size) {
  void *p = malloc(size);
  if (!p) _exit(4);
  report(p);
  free(p);
  usleep(1500 * 1000);
  free(hide(p));
  look_for_damage(p, size);
}
static void misuse_double_free_idle_small(void) { idle_double_free(64); }
static void misuse_double_free_idle_large(void) { idle_double_free(20000); }

/* Freed by one thread, freed again by another. */
static void *free_in_thread(void *p) {
  free(hide(p));
  return NULL;
}
static void misuse_double_free_other_thread(void) {
  void *p = malloc(64);
  if (!p) _exit(4);
  /* The main thread gets its cache first: its free goes to its cache. */
  for (int i = 0; i < 100; i++) free(malloc(64));
  report(p);
  free(p);
  pthread_t t;
  if (pthread_create(&t, NULL, free_in_thread, p) != 0) _exit(4);
  pthread_join(t, NULL);
  look_for_damage(p, 64);
}

static void interior_free(size_t size, size_t off) {
  char *p = malloc(size);
  if (!p) _exit(4);
  report(p + off);
  free(hide(p + off));
  look_for_damage(p, size);
}
static void misuse_free_small_plus8(void) { interior_free(64, 8); }
static void misuse_free_small_plus1(void) { interior_free(64, 1); }
static void misuse_free_small_plus16(void) { interior_free(64, 16); }
static void misuse_free_small_plus48(void) { interior_free(96, 48); }

static void misuse_realloc_small_interior(void) {
  char *p = malloc(64);
  if (!p) _exit(4);
  report(p + 8);
  char *q = realloc(hide(p + 8), 40);
  if (q) look_for_damage(p, 64);
  _exit(5);
}

static void misuse_usable_size_freed_small(void) {
  char *p = malloc(64);
  if (!p) _exit(4);
  report(p);
  free(p);
  if (malloc_usable_size(hide(p)) == 12345) _exit(6);
  look_for_damage(p, 64);
}

static void misuse_usable_size_small_interior(void) {
  char *p = malloc(64);
  if (!p) _exit(4);
  report(p + 16);
  if (malloc_usable_size(hide(p + 16)) == 12345) _exit(6);
  _exit(5);
}

/* The other ways of freeing free: a later free() is a double free. */
static void misuse_free_sized_then_free(void) {
  void *p = malloc(100);
  if (!p) _exit(4);
  report(p);
  free_sized(p, 100);
  free(hide(p));
  look_for_damage(p, 100);
}

static void misuse_free_aligned_sized_then_free(void) {
  void *p = aligned_alloc(64, 128);
  if (!p) _exit(4);
  report(p);
  free_aligned_sized(p, 64, 128);
  free(hide(p));
  look_for_damage(p, 128);
}

static void misuse_realloc_zero_then_free(void) {
  void *p = malloc(100);
  if (!p) _exit(4);
  report(p);
  if (realloc(p, 0) != NULL) _exit(5);
  free(hide(p));
  look_for_damage(p, 100);
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
  const char *conf; /* extra MELLOC_CONF for the child, or NULL */
  const char *call; /* the call the message names */
  const char *what; /* the problem it names */
};

#define NOT_MELLOCS "invalid pointer (not allocated by melloc)"
#define NOT_A_START "invalid pointer (not the start of a block)"
#define FREED "block already freed"

static const struct misuse misuses[] = {
    {"free-stack", misuse_free_stack, NULL, "free", NOT_MELLOCS},
    {"free-global", misuse_free_global, NULL, "free", NOT_MELLOCS},
    {"melloc-free-stack", misuse_melloc_free_stack, NULL, "free", NOT_MELLOCS},
    {"free-wild-high", misuse_free_wild_high, NULL, "free", NOT_MELLOCS},
    {"realloc-stack", misuse_realloc_stack, NULL, "realloc", NOT_MELLOCS},
    {"usable-size-stack", misuse_usable_size_stack, NULL, "malloc_usable_size", NOT_MELLOCS},
    /* small blocks */
    {"double-free-16", misuse_double_free_16, NULL, "free", "double free"},
    {"double-free-64", misuse_double_free_64, NULL, "free", "double free"},
    {"double-free-200", misuse_double_free_200, NULL, "free", "double free"},
    {"double-free-16384", misuse_double_free_16384, NULL, "free", "double free"},
    {"double-free-64-uncached", misuse_double_free_64, "tcache:false", "free", "double free"},
    {"double-free-p-q-p", misuse_double_free_pqp, NULL, "free", "double free"},
    {"double-free-small-flushed", misuse_double_free_small_flushed, NULL, "free", "double free"},
    {"double-free-idle-small", misuse_double_free_idle_small, NULL, "free", "double free"},
    {"double-free-other-thread", misuse_double_free_other_thread, NULL, "free", "double free"},
    {"free-small-plus8", misuse_free_small_plus8, NULL, "free", NOT_A_START},
    {"free-small-plus1", misuse_free_small_plus1, NULL, "free", NOT_A_START},
    {"free-small-plus16", misuse_free_small_plus16, NULL, "free", NOT_A_START},
    {"free-small-plus48", misuse_free_small_plus48, NULL, "free", NOT_A_START},
    {"free-small-plus8-uncached", misuse_free_small_plus8, "tcache:false", "free", NOT_A_START},
    {"realloc-small-interior", misuse_realloc_small_interior, NULL, "realloc", NOT_A_START},
    {"realloc-freed-small", misuse_realloc_freed_small, NULL, "realloc", FREED},
    {"usable-size-freed-small", misuse_usable_size_freed_small, NULL, "malloc_usable_size", FREED},
    {"usable-size-small-interior", misuse_usable_size_small_interior, NULL, "malloc_usable_size",
     NOT_A_START},
    {"free-sized-then-free", misuse_free_sized_then_free, NULL, "free", "double free"},
    {"free-aligned-sized-then-free", misuse_free_aligned_sized_then_free, NULL, "free",
     "double free"},
    {"realloc-zero-then-free", misuse_realloc_zero_then_free, NULL, "free", "double free"},
    {"free-sized-then-free-uncached", misuse_free_sized_then_free, "tcache:false", "free",
     "double free"},
    /* large blocks */
    {"double-free-20000", misuse_double_free_20000, NULL, "free", "double free"},
    {"double-free-65536", misuse_double_free_65536, NULL, "free", "double free"},
    {"double-free-large", misuse_double_free_large, NULL, "free", "double free"},
    {"double-free-idle-large", misuse_double_free_idle_large, NULL, "free", "double free"},
    {"realloc-freed-20000", misuse_realloc_freed_20000, NULL, "realloc", FREED},
    {"realloc-freed-65536", misuse_realloc_freed_65536, NULL, "realloc", FREED},
    {"free-large-interior", misuse_free_large_interior, NULL, "free", NOT_A_START},
    {"realloc-large-interior", misuse_realloc_large_interior, NULL, "realloc", NOT_A_START},
    {"usable-size-large-interior", misuse_usable_size_large_interior, NULL, "malloc_usable_size",
     NOT_A_START},
    /* huge blocks */
    {"free-huge-interior", misuse_free_huge_interior, NULL, "free", NOT_A_START},
    {"double-free-huge", misuse_double_free_huge, NULL, "free", "double free"},
    {"double-free-huge-unmapped", misuse_double_free_huge_unmapped, NULL, "free", NOT_MELLOCS},
    {"realloc-freed-huge", misuse_realloc_freed_huge, NULL, "realloc", FREED},
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

/* With the thread cache on (the default here). */
START_TEST(test_free_small_interior_aborts) {
  quiet_stderr();
  misuse_free_small_plus16();
}
END_TEST

START_TEST(test_double_free_small_aborts) {
  quiet_stderr();
  misuse_double_free_small_flushed();
}
END_TEST

/* ---- Re-executed: the exact message ---- */

START_TEST(test_misuse_message) {
  /* Each case under the default settings, then with the collector every millisecond. */
  const struct misuse *m = &misuses[_i % NMISUSES];
  const char *gc = _i < NMISUSES ? NULL : "gc_interval_ms:1";
  char conf[128];
  if (m->conf && gc)
    snprintf(conf, sizeof(conf), "%s,%s", m->conf, gc);
  else
    snprintf(conf, sizeof(conf), "%s", m->conf ? m->conf : gc ? gc : "");
  struct child_result res;
  run_child("test_errors", m->name, conf[0] ? conf : NULL, &res);
  ck_assert_msg(WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGABRT,
                "%s (%s): child did not abort (status 0x%x), stdout: %s, stderr: %s", m->name,
                conf, res.status, res.out, res.err);
  child_pointer(&res, m->name); /* the child printed the pointer, one line */
  char want[512];
  snprintf(want, sizeof(want), "melloc: %s(): %s: pointer %s\n", m->call, m->what, res.out);
  ck_assert_msg(strcmp(res.err, want) == 0, "%s (%s): stderr is\n'%s'\nwant\n'%s'", m->name, conf,
                res.err, want);
}
END_TEST

/* The harness itself: a child that does not misuse the heap exits normally and says
   nothing, so the aborts above are the misuses' doing. */
START_TEST(test_child_without_misuse) {
  struct child_result res;
  run_child("test_errors", "none", "tcache:false", &res);
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
  tcase_set_timeout(tc, 30);
  mlc_tcase_add_test_unless(noexec, tc, test_child_without_misuse);
  mlc_tcase_add_loop_test_unless(noexec, tc, test_misuse_message, 0, 2 * NMISUSES);
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
