/* SPDX-License-Identifier: MIT */
/* bigbuf: big buffers replaced at random, each zero-initialised by the program (as
   C++'s std::make_unique<char[]>(n) does: operator new, then a memset of all of it).
   -w live buffers of -s..-S bytes (uniform); -n times one of them, at random, is freed
   and replaced by a new one of a new size.  The cost is in pages: an allocator that
   hands back freed pages and faults them in again (or maps each buffer anew) pays the
   kernel's zeroing and a fault per page on top of the program's own memset. */
#include "common.h"

int main(int argc, char **argv) {
  opt_check(argc, argv, "nwsS", "[-n replacements] [-w buffers] [-s min-size] [-S max-size]");
  long long n = opt_ll(argc, argv, 'n', 2000);
  size_t window = (size_t)opt_ll(argc, argv, 'w', 20);
  size_t lo = (size_t)opt_ll(argc, argv, 's', 5 << 20);
  size_t hi = (size_t)opt_ll(argc, argv, 'S', 25 << 20);
  if (n < 0 || window < 1 || lo < 1 || hi < lo) die("arguments");
  uint64_t seed = 11, sum = 0;
  struct {
    unsigned char *p;
    size_t sz;
  } w[window];
  memset(w, 0, sizeof w);
  for (long long i = 0; i < n + (long long)window; i++) {
    size_t k = i < (long long)window ? (size_t)i : rng_next(&seed) % window;
    if (w[k].p) {
      sum += w[k].p[w[k].sz / 2];
      free(w[k].p);
    }
    size_t sz = rng_range(&seed, lo, hi);
    unsigned char *p = malloc(sz);
    if (!p) die("malloc");
    escape(p); /* else gcc turns malloc and memset into calloc */
    memset(p, 0, sz);
    p[sz / 2] = (unsigned char)i;
    w[k].p = p;
    w[k].sz = sz;
  }
  for (size_t k = 0; k < window; k++) {
    sum += w[k].p[w[k].sz / 2];
    free(w[k].p);
  }
  sink = sum;
  printf("checksum=%llu\n", (unsigned long long)sum);
  return 0;
}
