/* SPDX-License-Identifier: MIT */
/* For tests: find the collector thread by its name in /proc/self/task. */
#ifndef MLC_TEST_GC_THREAD_H
#define MLC_TEST_GC_THREAD_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
