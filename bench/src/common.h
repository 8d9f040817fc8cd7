/* SPDX-License-Identifier: MIT */
/* Shared helpers for the melloc benchmark workloads: a fast deterministic
   random generator, an optimisation barrier, the common size mix and a tiny
   option parser.  Workloads use only libc and pthreads and call the plain
   malloc family, so any allocator can be swapped in with LD_PRELOAD.  Nothing
   here may allocate, so that the workload's own allocations are the only ones. */
#ifndef MELLOC_BENCH_COMMON_H
#define MELLOC_BENCH_COMMON_H

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* gcc and clang delete a malloc/free pair whose result is unused.  Passing
   the pointer through an empty asm with a memory clobber makes it "escape",
   so the pair must really happen, at the cost of no instruction. */
static inline void escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

/* Results are folded into this so that reads of the blocks cannot be removed. */
static volatile uint64_t sink;

/* splitmix64: a full-period 64-bit generator, good enough for workload choices
   and identical for every allocator, so each one sees the same sequence. */
static inline uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(uint64_t *s, size_t lo, size_t hi) {
  return lo + (size_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* Log-uniform in [lo, hi]: every power of two between lo and hi is equally
   likely, which is how block sizes in real programs are spread. */
static inline size_t rng_log_range(uint64_t *s, size_t lo, size_t hi) {
  int lo_bits = 63 - __builtin_clzll(lo), hi_bits = 63 - __builtin_clzll(hi);
  int b = lo_bits + (int)(rng_next(s) % (uint64_t)(hi_bits - lo_bits + 1));
  size_t base = (size_t)1 << b;
  size_t sz = base + (size_t)(rng_next(s) % base);
  return sz < lo ? lo : sz > hi ? hi : sz;
}

/* The "realistic" mix with a long tail, after the size histograms published
   for server and desktop programs: most requests are small, few are large.
     80%  16..256 bytes      15%  257..2048 bytes
     4.5% 2 KiB..16 KiB      0.5% 16 KiB..64 KiB  */
static inline size_t size_mix(uint64_t *s) {
  unsigned r = (unsigned)(rng_next(s) % 1000);
  if (r < 800) return rng_log_range(s, 16, 256);
  if (r < 950) return rng_log_range(s, 257, 2048);
  if (r < 995) return rng_log_range(s, 2049, 16384);
  return rng_log_range(s, 16385, 65536);
}

/* Write the first and last bytes (and a few words) of a block, as a program
   that fills in a new object would; the block's memory must really be touched. */
static inline void touch(void *p, size_t sz, uint64_t v) {
  unsigned char *c = p;
  size_t n = sz < 64 ? sz : 64;
  memset(c, (int)(v & 0xff), n);
  c[sz - 1] = (unsigned char)v;
}

static inline uint64_t peek(const void *p, size_t sz) {
  const unsigned char *c = p;
  return (uint64_t)c[0] + c[sz - 1];
}

/* Options are "-x value" pairs; each workload lists the letters it accepts.
   Returns the value of option `opt`, or `def` when it is absent. */
static inline long long opt_ll(int argc, char **argv, char opt, long long def) {
  for (int i = 1; i + 1 < argc; i++)
    if (argv[i][0] == '-' && argv[i][1] == opt && argv[i][2] == '\0')
      return strtoll(argv[i + 1], NULL, 0);
  return def;
}

static inline const char *opt_str(int argc, char **argv, char opt, const char *def) {
  for (int i = 1; i + 1 < argc; i++)
    if (argv[i][0] == '-' && argv[i][1] == opt && argv[i][2] == '\0') return argv[i + 1];
  return def;
}

/* Print usage and exit when -h is given or an option letter is unknown. */
static inline void opt_check(int argc, char **argv, const char *letters, const char *usage) {
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0' || a[2] != '\0' || a[1] == 'h' || !strchr(letters, a[1]) ||
        i + 1 >= argc) {
      fprintf(stderr, "usage: %s %s\n", argv[0], usage);
      exit(a[1] == 'h' ? 0 : 2);
    }
  }
}

static inline void die(const char *what) {
  fprintf(stderr, "%s failed\n", what);
  exit(1);
}

/* Resident set size in KiB, from /proc/self/statm.  open/read into a stack
   buffer rather than fopen, which would allocate through the allocator under
   test in the middle of a measurement. */
static inline long rss_kb(void) {
  char buf[128];
  long size = 0, res = 0;
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  if (sscanf(buf, "%ld %ld", &size, &res) != 2) return -1;
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

#endif
