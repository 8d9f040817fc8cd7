/* SPDX-License-Identifier: MIT */
/* large: big blocks, where the cost is in pages, not in bookkeeping.  A window
   of -w live blocks of 32 KiB..4 MiB (log-uniform) is churned -n times: free
   a random slot, allocate a new block and write one byte in each of its pages,
   as a program filling a buffer would.  Page faults cost 10-15 us here, so an
   allocator that returns freed pages to the OS and faults them in again at
   once is slow; one that keeps everything shows up in peak RSS instead. */
#include "common.h"

int main(int argc, char **argv) {
  opt_check(argc, argv, "nwsS", "[-n ops] [-w window] [-s min-size] [-S max-size]");
  long long n = opt_ll(argc, argv, 'n', 20000);
  size_t window = (size_t)opt_ll(argc, argv, 'w', 40);
  size_t lo = (size_t)opt_ll(argc, argv, 's', 32 << 10);
  size_t hi = (size_t)opt_ll(argc, argv, 'S', 4 << 20);
  if (n < 0 || window < 1 || lo < 1 || hi < lo) die("arguments");
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uint64_t seed = 7, sum = 0;
  struct {
    unsigned char *p;
    size_t sz;
  } w[window];
  memset(w, 0, sizeof w);

  for (long long i = 0; i < n + (long long)window; i++) {
    size_t k = i < (long long)window ? (size_t)i : rng_next(&seed) % window;
    if (w[k].p) {
      sum += w[k].p[w[k].sz - 1];
      free(w[k].p);
    }
    w[k].sz = rng_log_range(&seed, lo, hi);
    w[k].p = malloc(w[k].sz);
    if (!w[k].p) die("malloc");
    for (size_t off = 0; off < w[k].sz; off += page) w[k].p[off] = (unsigned char)i;
    w[k].p[w[k].sz - 1] = (unsigned char)i;
  }
  for (size_t k = 0; k < window; k++) free(w[k].p);
  printf("checksum=%llu\n", (unsigned long long)sum);
  return 0;
}
