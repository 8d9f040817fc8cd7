/* SPDX-License-Identifier: MIT */
/* The wall-clock collector, in real time: an idle thread's cache and the freed pages go
   back to the kernel without the program calling malloc again.  main() re-executes the
   test with a short interval and decay (MELLOC_CONF) so that it runs in seconds. */
#define _GNU_SOURCE
#include <check.h>

#include "../check_run.h"
#include "../rss.h"
#include "../gc_thread.h"
#include <dirent.h>
#include <fcntl.h>
#include <melloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static size_t rss_kb(void) { return mlc_test_rss_kb(); }

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static long gc_thread(void) { return mlc_test_gc_thread(); }

/* Waits up to limit_ms (times CK_TIMEOUT_MULTIPLIER, as the waits below) for the
   collector thread to exist (want 1) or not (want 0). */
static bool gc_thread_becomes(int want, long limit_ms) {
  limit_ms *= mlc_check_time_scale();
  for (long t = 0; t < limit_ms; t += 20) {
    if ((gc_thread() != 0) == want) return true;
    sleep_ms(20);
  }
  return (gc_thread() != 0) == want;
}

enum { TOTAL = 96 << 20 };

/* Allocates TOTAL bytes of objects of 16..1024 bytes and frees them all. */
static void churn(void) {
  size_t cap = TOTAL / 16;
  void **v = mmap(NULL, cap * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (v == MAP_FAILED) abort(); /* no ck_assert: also runs outside a test (lifetime) */
  size_t n = 0, bytes = 0;
  unsigned s = 12345;
  while (bytes < TOTAL && n < cap) {
    s = s * 1103515245 + 12345;
    size_t sz = 16 + (s >> 8) % 1009;
    v[n] = malloc(sz);
    if (!v[n]) abort();
    memset(v[n], 1, sz);
    bytes += sz;
    n++;
  }
  for (size_t i = 0; i < n; i++) free(v[i]);
  munmap(v, cap * sizeof(void *));
}

/* Polls (without allocating) until resident memory is at most target, for up to
   limit_ms.  Returns the last reading. */
static size_t wait_rss_below(size_t target, long limit_ms) {
  limit_ms *= mlc_check_time_scale();
  size_t r = rss_kb();
  for (long t = 0; t < limit_ms && r > target; t += 100) {
    sleep_ms(100);
    r = rss_kb();
  }
  return r;
}

/* Resident memory that threads which never allocate add, per thread, measured in main:
   0 natively (glibc reuses their stacks); qemu-user keeps memory of its own for every
   thread it has run (about 280 KiB on arm64).  The checks below allow it for the two
   threads they start (the worker, the collector): the emulator's, not the allocator's. */
static size_t thread_kb;
static void *nothing(void *arg) { return arg; }
static size_t measure_thread_kb(void) {
  /* In a child: the threads (and what the emulator keeps of them) stay out of this
     process, whose memory the checks measure. */
  int fds[2];
  if (pipe(fds) != 0) return 0;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    enum { WARM = 4, N = 32 };
    pthread_t t;
    size_t before = 0, kb = 0;
    for (int i = 0; i < WARM + N; i++) {
      if (i == WARM) before = rss_kb();
      if (pthread_create(&t, NULL, nothing, NULL) != 0) _exit(1);
      pthread_join(t, NULL);
    }
    size_t after = rss_kb();
    if (after > before) kb = (after - before) / N;
    _exit(write(fds[1], &kb, sizeof(kb)) == (ssize_t)sizeof(kb) ? 0 : 1);
  }
  close(fds[1]);
  size_t kb = 0;
  if (pid < 0 || read(fds[0], &kb, sizeof(kb)) != (ssize_t)sizeof(kb)) kb = 0;
  close(fds[0]);
  if (pid > 0) waitpid(pid, NULL, 0);
  return kb;
}

/* What melloc says of its memory, for a failure's message: whether what stays resident
   is still melloc's (mapped, cached, not purged) or not (the kernel's or an emulator's). */
static const char *melloc_view(void) {
  static char buf[256];
  melloc_stats_t st;
  st.size = sizeof(st);
  if (melloc_stats_get(&st) != 0) return "no statistics";
  snprintf(buf, sizeof(buf),
           "melloc: mapped %zu kB, allocated %zu kB, cached %zu kB, purged %zu kB, %llu passes, "
           "%llu purges refused",
           st.mapped >> 10, st.allocated >> 10, st.cached >> 10, st.purged >> 10,
           (unsigned long long)st.gc_passes, (unsigned long long)st.purges_refused);
  return buf;
}

/* At most 5% of the work's peak left, beyond base. */
static size_t target_kb(size_t base, size_t peak) { return base + (peak - base) / 20 + 2 * thread_kb; }

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int worker_ready;

static void *idle_worker(void *arg) {
  (void)arg;
  churn();
  pthread_mutex_lock(&m);
  worker_ready = 1;
  pthread_cond_broadcast(&cv);
  /* Block forever: this thread never calls malloc again. */
  for (;;) pthread_cond_wait(&cv, &m);
  return NULL;
}

/* Work done on a thread that then blocks forever: its cache and the pages come back. */
START_TEST(test_idle_thread) {
  size_t base = rss_kb();
  pthread_t t;
  pthread_create(&t, NULL, idle_worker, NULL);
  pthread_mutex_lock(&m);
  while (!worker_ready) pthread_cond_wait(&cv, &m);
  pthread_mutex_unlock(&m);
  size_t peak = base + TOTAL / 1024;
  size_t after = wait_rss_below(target_kb(base, peak), 10000);
  ck_assert_msg(after <= target_kb(base, peak),
                "rss %zu kB, base %zu kB, peak ~%zu kB (threads' own: %zu kB each); %s", after,
                base, peak, thread_kb, melloc_view());
}
END_TEST

/* Work done on the main thread, which then sleeps. */
START_TEST(test_idle_main) {
  size_t base = rss_kb();
  churn();
  size_t peak = base + TOTAL / 1024;
  size_t after = wait_rss_below(target_kb(base, peak), 10000);
  ck_assert_msg(after <= target_kb(base, peak),
                "rss %zu kB, base %zu kB, peak ~%zu kB (threads' own: %zu kB each); %s", after,
                base, peak, thread_kb, melloc_view());
}
END_TEST

/* Once the process has lived one interval (100 ms here), an allocation's slow path
   starts the collector. */
static void start_collector(void) {
  sleep_ms(150);
  free(malloc(1 << 20));
}

/* One collector thread, named melloc-gc, with every signal blocked. */
START_TEST(test_gc_thread) {
  start_collector();
  ck_assert(gc_thread_becomes(1, 2000)); /* it names itself when it starts */
  long tid = gc_thread();
  ck_assert_int_ne(tid, 0);
  char path[128], line[256];
  snprintf(path, sizeof(path), "/proc/self/task/%ld/status", tid);
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  unsigned long long blocked = 0;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "SigBlk: %llx", &blocked) == 1) break;
  fclose(f);
  int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD, SIGPIPE, SIGPROF};
  for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
    ck_assert_msg(blocked & (1ull << (sigs[i] - 1)), "signal %d not blocked", sigs[i]);
}
END_TEST

/* fork() with the collector running: the child gets a collector of its own (its work
   maps much, so it starts at once) and its idle memory comes back too. */
START_TEST(test_fork) {
  start_collector();
  ck_assert(gc_thread_becomes(1, 2000));
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    size_t base = rss_kb();
    churn();
    if (!gc_thread_becomes(1, 2000)) _exit(10);
    size_t peak = base + TOTAL / 1024;
    size_t after = wait_rss_below(target_kb(base, peak), 10000);
    _exit(after <= target_kb(base, peak) ? 0 : 11);
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

/* A fork child's first thread: glibc gives it the stack, and so the pthread_t, of the
   parent's collector, which the child does not have.  Its allocations must start the
   child's collector all the same (they did not while melloc recognised its collector
   by the pthread_t it had created). */
static void *churn_thread(void *arg) {
  churn();
  return arg;
}
START_TEST(test_fork_thread_on_collector_stack) {
  start_collector();
  ck_assert(gc_thread_becomes(1, 2000));
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    pthread_t t;
    if (pthread_create(&t, NULL, churn_thread, NULL) != 0) _exit(12);
    if (pthread_join(t, NULL) != 0) _exit(13);
    _exit(gc_thread_becomes(1, 2000) ? 0 : 10);
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert(WIFEXITED(st));
  ck_assert_msg(WEXITSTATUS(st) == 0, "child: status %d (10: no collector after 96 MiB)",
                WEXITSTATUS(st));
}
END_TEST

/* A process that never allocates never starts a collector: a fresh process (this
   program re-executed) counts its threads before doing anything else. */
START_TEST(test_lazy_start) {
  pid_t pid = fork();
  if (pid == 0) {
    char *args[] = {"test_collector", "--count-threads", NULL};
    execv("/proc/self/exe", args);
    _exit(127);
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 1); /* one thread: main */
}
END_TEST

/* Runs this program again as "--lifetime MODE" with MELLOC_CONF=conf; its exit status. */
static int run_lifetime(const char *mode, const char *conf) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("MELLOC_CONF", conf, 1);
    execl("/proc/self/exe", "test_collector", "--lifetime", mode, (char *)NULL);
    _exit(127);
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st), "child ended by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return WEXITSTATUS(st);
}

/* Waits up to limit_ms for the process to have n threads, without allocating (an
   allocation every poll would keep the main thread's cache busy). */
static bool threads_become(int n, long limit_ms) {
  limit_ms *= mlc_check_time_scale();
  for (long t = 0; t < limit_ms; t += 20) {
    if (mlc_test_count_threads() == n) return true;
    sleep_ms(20);
  }
  return mlc_test_count_threads() == n;
}

/* The collector thread's lifetime, seen from a fresh process (exit status: 0 passed,
   else the step that failed). */
static int lifetime(const char *mode) {
  if (!strcmp(mode, "short")) {
    /* A short command: allocates a little and ends long before its first interval
       (10 s): it never has a second thread. */
    for (int i = 0; i < 2000; i++) free(malloc(16 + i % 4000));
    void *p = malloc(100000);
    free(p);
    return mlc_test_count_threads() == 1 ? 0 : 1;
  }
  if (!strcmp(mode, "eager")) {
    /* The same interval, but the process maps more than 8 MiB: the collector starts. */
    void *p = malloc(16 << 20);
    memset(p, 1, 16 << 20);
    free(p);
    return threads_become(2, 2000) ? 0 : 2;
  }
  if (!strcmp(mode, "interval")) {
    /* Interval 200 ms: nothing before it, then the first allocation slow path after it
       starts the collector. */
    free(malloc(100));
    if (mlc_test_count_threads() != 1) return 3;
    sleep_ms(300);
    free(malloc(1 << 20));
    return threads_become(2, 2000) ? 0 : 4;
  }
  if (!strcmp(mode, "leaves")) {
    /* Interval 100 ms, decay 300 ms: once everything is given back and every cache
       parked, the collector goes; new work brings one back. */
    size_t base = rss_kb();
    churn();
    if (!threads_become(2, 2000)) return 5;
    if (!threads_become(1, 10000)) return 6;
    size_t peak = base + TOTAL / 1024;
    if (rss_kb() > target_kb(base, peak)) return 7; /* and the memory came back */
    churn();
    if (!threads_become(2, 2000)) return 8;
    if (!threads_become(1, 10000)) return 9;
    return 0;
  }
  if (!strcmp(mode, "quiet")) {
    /* Interval 1 s, decay 60 s.  While a thread keeps calling the allocator (a
       malloc/free pair every millisecond), the pages the work freed stay for the decay;
       once no thread has called it for a quarter interval after a pass, they go back
       without waiting for it (a quiet process, gc.c).  What the collector gives back
       regardless of decay (the chunks left empty beyond the few it keeps spare) is
       about half of the work's memory: an eighth must stay while the thread is busy.
       A quarter interval is long enough for a loaded machine not to leave the thread
       without a call for one (100 ms was seen). */
    size_t base = rss_kb();
    churn();
    size_t peak = base + TOTAL / 1024;
    if (!threads_become(2, 2000)) return 10;
    long busy_ms = 1500 * mlc_check_time_scale();
    for (long t = 0; t < busy_ms; t++) {
      free(malloc(64));
      sleep_ms(1);
    }
    if (rss_kb() < base + (peak - base) / 8) return 11; /* went back while busy */
    if (wait_rss_below(target_kb(base, peak), 3000) > target_kb(base, peak)) return 12;
    return 0;
  }
  if (!strcmp(mode, "burst")) {
    /* Interval 4 s, decay 60 s.  A burst of work and nothing after it: the collector
       (started by the burst's mappings) passes a quarter interval after it starts and
       finds the work; the probe a quarter interval later finds the process quiet and
       gives everything back, about 2 s after the work.  Without the probe the memory
       stays until the pass after next (8 s: a busy one, then a quiet one). */
    size_t base = rss_kb();
    churn();
    size_t peak = base + TOTAL / 1024;
    if (!threads_become(2, 2000)) return 15;
    if (wait_rss_below(target_kb(base, peak), 3500) > target_kb(base, peak)) return 16;
    return 0;
  }
  if (!strcmp(mode, "quiet-off")) {
    /* The same with gc_quiet:false: decay_ms holds in a quiet process too. */
    size_t base = rss_kb();
    churn();
    size_t peak = base + TOTAL / 1024;
    if (!threads_become(2, 2000)) return 13;
    sleep_ms(1000 * mlc_check_time_scale());
    if (rss_kb() < base + (peak - base) / 8) return 14;
    return 0;
  }
  if (!strcmp(mode, "refused")) {
    /* Interval 2 s.  The kernel refuses every new thread (RLIMIT_NPROC 0, which binds
       all but root): the collector cannot start; once threads are allowed again, it
       is not asked for on every slow path but an interval after the refusal. */
    struct rlimit old, none = {0, 0};
    if (getrlimit(RLIMIT_NPROC, &old) != 0) return 50;
    none.rlim_max = old.rlim_max;
    if (setrlimit(RLIMIT_NPROC, &none) != 0) return 51;
    churn(); /* more than 8 MiB mapped: every slow path would start it */
    if (mlc_test_count_threads() != 1) return 52;
    if (setrlimit(RLIMIT_NPROC, &old) != 0) return 53;
    for (int i = 1; i <= 8; i++) free(malloc((size_t)i << 22)); /* slow paths */
    if (mlc_test_count_threads() != 1) return 54;
    sleep_ms(2200);
    for (int i = 1; i <= 8; i++) free(malloc((size_t)i << 22));
    return threads_become(2, 2000) ? 0 : 55;
  }
#ifdef HAVE_SINGLE_THREADED
  if (!strcmp(mode, "userns")) {
    /* A process whose collector glibc does not count gains every capability in a user
       namespace of its own (melloc's unshare() stops the collector for the call): the
       collector made after it is a pthread, which glibc's setuid() reaches. */
    churn();
    if (!threads_become(2, 2000)) return 60;
    if (__libc_single_threaded != 1) return 61;
    if (unshare(CLONE_NEWUSER) != 0) return 62;
    if (mlc_test_creds_fixed()) return 63; /* the namespace's capabilities */
    churn();
    if (!threads_become(2, 2000)) return 64;
    return __libc_single_threaded == 0 ? 0 : 65;
  }
  if (!strcmp(mode, "glibc")) {
    /* What glibc sees: a collector it does not count leaves it single-threaded (stdio
       without stream locks, mutexes without atomics), before and after the collector
       gives the work's memory back; a pthread collector does not. */
    bool bare = mlc_test_expect_bare();
    if (!__libc_single_threaded) return 20;
    size_t base = rss_kb();
    churn();
    size_t peak = base + TOTAL / 1024;
    if (!threads_become(2, 2000)) return 21;
    if (__libc_single_threaded != bare) return bare ? 22 : 23;
    if (wait_rss_below(target_kb(base, peak), 10000) > target_kb(base, peak)) return 24;
    if (__libc_single_threaded != bare) return bare ? 25 : 26;
    return 0;
  }
#endif
  return 100;
}

/* The collector is a thread glibc does not count where the credentials cannot change
   (gc.c), and single-threaded programs keep glibc's single-thread paths. */
START_TEST(test_glibc_view) {
  int st = run_lifetime("glibc", "gc_interval_ms:100,decay_ms:300");
  ck_assert_msg(st == 0, "glibc's view: failed at step %d (collector %s expected)", st,
                mlc_test_expect_bare() ? "uncounted" : "counted");
}
END_TEST

/* A process that may not make threads (RLIMIT_NPROC) asks again an interval later. */
START_TEST(test_refused) {
  int st = run_lifetime("refused", "gc_interval_ms:2000,decay_ms:300");
  ck_assert_msg(st == 0, "refused: failed at step %d", st);
}
END_TEST

#ifdef HAVE_SINGLE_THREADED
START_TEST(test_userns) {
  int st = run_lifetime("userns", "gc_interval_ms:100,decay_ms:300");
  ck_assert_msg(st == 0, "userns: failed at step %d", st);
}
END_TEST
#endif

/* Whether this process could enter a user namespace of its own (a fork child tries). */
static bool userns_works(void) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(syscall(SYS_unshare, CLONE_NEWUSER) == 0 ? 0 : 1);
  int st;
  return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

START_TEST(test_lifetime) {
  static const char *modes[][2] = {
      {"short", "gc_interval_ms:10000"},
      {"eager", "gc_interval_ms:10000"},
      {"interval", "gc_interval_ms:200"},
      {"leaves", "gc_interval_ms:100,decay_ms:300"},
      {"quiet", "gc_interval_ms:1000,decay_ms:60000"},
      {"quiet-off", "gc_interval_ms:100,decay_ms:60000,gc_quiet:false"},
      {"burst", "gc_interval_ms:4000,decay_ms:60000"},
  };
  int st = run_lifetime(modes[_i][0], modes[_i][1]);
  ck_assert_msg(st == 0, "lifetime %s: failed at step %d", modes[_i][0], st);
}
END_TEST

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--count-threads") == 0) return mlc_test_count_threads();
  if (argc > 2 && strcmp(argv[1], "--lifetime") == 0) return lifetime(argv[2]);
  if (!getenv("MELLOC_CONF")) {
    setenv("MELLOC_CONF", "gc_interval_ms:100,decay_ms:300", 1);
    execv("/proc/self/exe", argv);
    mlc_check_reexec_failed("gc_interval_ms:100,decay_ms:300");
  }
#ifdef MLC_TEST_UNPRIVILEGED
  /* Again as an ordinary user (root becomes nobody), whose collector glibc does not
     count (test_glibc_view). */
  if (mlc_test_become_nobody()) printf("note: running as nobody\n");
#endif
  const char *noexec = mlc_check_reexec_refused();
#ifdef HAVE_SINGLE_THREADED
  const char *no_single = noexec;
#else
  const char *no_single = "glibc before 2.32 has no __libc_single_threaded";
#endif
  thread_kb = measure_thread_kb();
  if (thread_kb)
    printf("note: each thread adds %zu kB of resident memory that is not the allocator's "
           "(the thread library's or an emulator's); the checks allow it\n",
           thread_kb);
  Suite *s = suite_create("collector");
  TCase *tc = tcase_create("real time");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_idle_thread);
  tcase_add_test(tc, test_idle_main);
  tcase_add_test(tc, test_gc_thread);
  tcase_add_test(tc, test_fork);
  tcase_add_test(tc, test_fork_thread_on_collector_stack);
  mlc_tcase_add_test_unless(noexec, tc, test_lazy_start);
  mlc_tcase_add_loop_test_unless(noexec, tc, test_lifetime, 0, 7);
  mlc_tcase_add_test_unless(no_single, tc, test_glibc_view);
  const char *rooted = noexec ? noexec : geteuid() == 0 ? "root: RLIMIT_NPROC does not bind" : NULL;
  mlc_tcase_add_test_unless(rooted, tc, test_refused);
#ifdef HAVE_SINGLE_THREADED
  const char *no_bare = no_single                 ? no_single
                        : !mlc_test_expect_bare() ? "the collector is a pthread here already"
                        : !userns_works()         ? "no user namespaces here"
                                                  : NULL;
  mlc_tcase_add_test_unless(no_bare, tc, test_userns);
#endif
  suite_add_tcase(s, tc);
  return mlc_check_run(s);
}
