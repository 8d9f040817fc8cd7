/* SPDX-License-Identifier: MIT */
/* melloc linked into a static program (libtool -all-static) whose own thread-local
   storage is large.  The linker puts melloc's initialised TLS variable (.tdata), its
   zero-initialised ones (.tbss) and libc's errno among the program's, here with 1 MiB
   of the program's .tbss between the first and the others; the collector thread glibc
   does not count (gc.c) gets TLS of its own, which must reach every melloc variable
   (one that reached only some crashed the process at its first start).  Runs as nobody
   when started as root, so that it is that thread; exit 0 when the collector ran and
   gave the work's memory back, 77 where melloc is a shared library (--disable-static);
   TAP on stdout for .ci/cross.sh's count. */
#define _GNU_SOURCE
#include "../gc_thread.h"
#include "../rss.h"
#include <dlfcn.h>
#include <melloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__thread char big_tbss[1 << 20];
__thread char big_tdata[1 << 20] = {1};

/* The collector's run in this process: 0, or the step that failed. */
static int scenario(void) {
  big_tbss[5] = 1;
  big_tdata[7] = 2;
  size_t base = mlc_test_rss_kb();
  enum { N = 32 };
  void *v[N];
  for (int i = 0; i < N; i++) {
    v[i] = malloc(1 << 20);
    if (!v[i]) return 90;
    memset(v[i], 1, 1 << 20);
  }
  for (int i = 0; i < N; i++) free(v[i]);
  bool seen = false;
  size_t rss = 0;
  for (int t = 0; t < 1000; t++) { /* 10 s */
    seen = seen || mlc_test_count_threads() == 2;
    rss = mlc_test_rss_kb();
    if (seen && rss < base + 8192) break;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  printf("# collector seen: %d, rss %zu kB (base %zu kB, peak ~%zu kB)\n", seen, rss, base,
         base + N * 1024);
  if (!seen) return 1;
  if (rss >= base + 8192) return 2;
#ifdef HAVE_SINGLE_THREADED
  if (__libc_single_threaded != mlc_test_expect_bare()) return 3;
#endif
  return big_tbss[5] == 1 && big_tdata[7] == 2 ? 0 : 4;
}

/* TAP on stdout (one check), the exit status for automake's driver. */
int main(void) {
  Dl_info info; /* a static program has no dynamic symbol table: dladdr() fails */
  if (dladdr((void *)melloc_version, &info) && info.dli_fname && strstr(info.dli_fname, ".so")) {
    printf("1..0 # SKIP melloc is a shared library in this build (--disable-static)\n");
    return 77;
  }
  if (geteuid() == 0 && !mlc_test_become_nobody()) {
    printf("1..0 # SKIP root that cannot become nobody\n");
    return 77;
  }
  printf("1..1\n");
  fflush(stdout);
  int st = scenario();
  if (st == 0)
    printf("ok 1 - the collector runs and gives the memory back\n");
  else
    printf("not ok 1 - the collector runs and gives the memory back (step %d)\n", st);
  return st == 0 ? 0 : 1;
}
