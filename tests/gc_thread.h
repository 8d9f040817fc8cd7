/* SPDX-License-Identifier: MIT */
/* For tests: find the collector thread by its name in /proc/self/task, count the
   process's threads, make sure a collector runs. */
#ifndef MLC_TEST_GC_THREAD_H
#define MLC_TEST_GC_THREAD_H

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <melloc.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
/* glibc's view of the process (glibc 2.32): test_glibc_view, test_static_tls. */
#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define HAVE_SINGLE_THREADED 1
#endif
#endif

/* The tid of the thread named melloc-gc, or 0.  Allocates (opendir, fopen). */
static inline long mlc_test_gc_thread(void) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  long found = 0;
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    /* Room for the longest d_name, so that the path is never cut (gcc's
       -Wformat-truncation under _FORTIFY_SOURCE=2 checks it). */
    char path[sizeof(e->d_name) + sizeof("/proc/self/task//comm")], name[64] = "";
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fgets(name, sizeof(name), f) && strcmp(name, "melloc-gc\n") == 0) found = atol(e->d_name);
    fclose(f);
  }
  if (d) closedir(d);
  return found;
}

/* Threads in this process, counted without allocating (opendir would call malloc). */
static inline int mlc_test_count_threads(void) {
  char buf[4096];
  int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -1;
  int count = 0;
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      unsigned short reclen = *(unsigned short *)(buf + off + 16);
      const char *name = buf + off + 19;
      if (name[0] != '.') count++;
      off += reclen;
    }
  }
  close(fd);
  return count;
}

/* For a single-threaded process that has mapped more than 8 MiB: true once a collector
   runs beside it (two threads).  The collector retires when it has nothing to do, which
   with a short interval can happen between two looks; an allocation that goes past
   the thread cache (a large block) starts it again, before it returns.  (The thread
   names itself once it runs, so its name may lag: count threads, not names.) */
static inline bool mlc_test_collector_up(void) {
  for (int i = 0; i < 200; i++) {
    if (mlc_test_count_threads() == 2) return true;
    void *volatile p = malloc(1 << 20);
    free(p);
    if (mlc_test_count_threads() == 2) return true;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* Whether no thread of this process can change its credentials: one uid, not root, one
   gid, no capability, not a set-id program.  melloc's collector is then a thread glibc does not
   count, on x86-64 (gc.c); a process that can change them (root) gets a pthread, which
   glibc's setuid() reaches. */
static inline bool mlc_test_creds_fixed(void) {
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getauxval(AT_SECURE) || getresuid(&ru, &eu, &su) || getresgid(&rg, &eg, &sg)) return false;
  if (ru != eu || eu != su || eu == 0 || rg != eg || eg != sg) return false;
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
  memset(d, 0, sizeof(d));
  if (syscall(SYS_capget, &h, d) != 0) return false;
  return (d[0].permitted | d[1].permitted | d[0].effective | d[1].effective) == 0;
}

/* Whether melloc's collector here is the thread glibc does not count: glibc on x86-64,
   arm64, ppc64 or s390x, no sanitizer, credentials that cannot change. */
static inline bool mlc_test_expect_bare(void) {
#if (defined(__x86_64__) || defined(__aarch64__) ||                                   \
     (defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)) || defined(__s390x__)) && \
    defined(__LP64__) && defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) &&      \
    !defined(__SANITIZE_THREAD__)
  return mlc_test_creds_fixed();
#else
  return false;
#endif
}

/* root: becomes nobody (uid and gid 65534, no supplementary group, so no capability
   either), dumpable as an ordinary process is.  false where it could not. */
static inline bool mlc_test_become_nobody(void) {
  if (geteuid() != 0) return false;
  /* The tests re-execute themselves (/proc/self/exe, which needs no search permission
     on the directories above it), and the dynamic loader must then find libmelloc.so in
     a build tree nobody may not enter (mktemp -d makes 0700 directories): it is opened
     now and preloaded as /proc/self/fd/N, whose soname satisfies the program's need. */
  Dl_info info;
  if (dladdr((void *)melloc_version, &info) && info.dli_fname && strstr(info.dli_fname, ".so")) {
    int fd = open(info.dli_fname, O_RDONLY);
    char pre[64];
    if (fd >= 0) {
      snprintf(pre, sizeof(pre), "/proc/self/fd/%d", fd);
      setenv("LD_PRELOAD", pre, 1);
    }
  }
  if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
      setresuid(65534, 65534, 65534) != 0)
    return false;
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  return true;
}

#endif
