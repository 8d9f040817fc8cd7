/* SPDX-License-Identifier: MIT */
/* For tests: find the collector thread by its name in /proc/self/task, count the
   process's threads, make sure a collector runs. */
#ifndef MLC_TEST_GC_THREAD_H
#define MLC_TEST_GC_THREAD_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

#endif
