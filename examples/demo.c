/* SPDX-License-Identifier: MIT */
/* melloc demo: allocations and frees of every kind, then a thread that goes idle while
   the wall-clock collector gives its memory back.  `make demo` prints that story;
   `make demo TRACE=1` (MELLOC_CONF=trace:true, or MELLOC_TRACE=1) adds, in a debug
   build (--enable-debug), the trace of what happens inside on stderr: arena
   assignment, slab creation, cache flushes, collector passes. */
#include <fcntl.h>
#include <melloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long rss_kb(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
  if (fd >= 0) close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *p = strchr(buf, ' ');
  return p ? strtol(p + 1, NULL, 10) * sysconf(_SC_PAGESIZE) / 1024 : -1;
}

static void *worker(void *arg) {
  (void)arg;
  enum { N = 200000 };
  static void *v[N];
  for (int i = 0; i < N; i++) {
    size_t n = 16 + (size_t)(i % 64) * 16;
    v[i] = malloc(n);
    memset(v[i], 1, n);
  }
  printf("worker: allocated %d small objects, rss %ld kB\n", N, rss_kb());
  for (int i = 0; i < N; i++) free(v[i]);
  printf("worker: freed them all, rss %ld kB; now idle, never calling malloc again\n", rss_kb());
  fflush(stdout);
  pause();
  return NULL;
}

int main(void) {
  char trace[8] = "false";
  melloc_option_get("trace", trace, sizeof(trace));
  printf("melloc %s, trace %s\n", melloc_version(),
         strcmp(trace, "true") == 0 ? "on (stderr)"
                                    : "off (make demo TRACE=1 in a debug build turns it on)");
  char *small = malloc(24);
  strcpy(small, "hello, melloc");
  printf("malloc(24)      -> %p, usable %zu bytes: \"%s\"\n", (void *)small, melloc_usable_size(small), small);
  char *large = calloc(1, 100000);
  printf("calloc(100000)  -> %p, usable %zu bytes (a page run)\n", (void *)large, melloc_usable_size(large));
  char *huge = malloc(8 << 20);
  printf("malloc(8 MiB)   -> %p (a mapping of its own)\n", (void *)huge);
  huge = realloc(huge, 32 << 20);
  printf("realloc(32 MiB) -> %p (grown by mremap, no copy)\n", (void *)huge);
  void *aligned = aligned_alloc(4096, 5000);
  printf("aligned_alloc(4096, 5000) -> %p\n", aligned);
  free(small);
  free(large);
  free(huge);
  free(aligned);

  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  sleep(1);
  for (int s = 1; s <= 8; s++) {
    sleep(1);
    printf("main: %d s after the worker went idle, rss %ld kB\n", s, rss_kb());
  }
  printf("the collector returned the idle thread's memory on the wall-clock timer\n");
  return 0;
}
