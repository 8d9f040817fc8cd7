/* SPDX-License-Identifier: MIT */
/* frag: memory efficiency under a program whose size mix changes over time.
   Each of -r rounds runs phases that leave holes for the next one:
     1. allocate -n small blocks (16..64/128/256 bytes, the range moves by round)
     2. free 90% of all live blocks at random (the survivors pin their pages)
     3. allocate n/20 larger blocks (512 B..16 KiB)
     4. free 70% at random
     5. allocate n/2 medium blocks (64 B..1 KiB)
     6. free 80% at random; the survivors carry into the next round.
   Every block is written when allocated.  The program counts the bytes it has
   asked for and not yet freed (its bookkeeping array included) and prints the
   peak as "live_peak_bytes=N"; the driver divides the peak RSS by it. */
#include "common.h"

struct obj {
  void *p;
  size_t sz;
};

static struct obj *pool;
static size_t count, cap;
static size_t live, live_peak;
static uint64_t seed = 99;

static void account(long long delta) {
  live += (size_t)delta;
  if (live > live_peak) live_peak = live;
}

static void add(size_t n, size_t lo, size_t hi) {
  if (count + n > cap) {
    size_t ncap = (count + n) * 2;
    struct obj *np = realloc(pool, ncap * sizeof *np);
    if (!np) die("realloc");
    account((long long)((ncap - cap) * sizeof *np));
    pool = np;
    cap = ncap;
  }
  for (size_t i = 0; i < n; i++) {
    size_t sz = rng_log_range(&seed, lo, hi);
    void *p = malloc(sz);
    if (!p) die("malloc");
    touch(p, sz, i);
    pool[count].p = p;
    pool[count].sz = sz;
    count++;
    account((long long)sz);
  }
}

/* Free each live block with probability pct/100, keeping the order of the rest. */
static void cull(unsigned pct) {
  size_t keep = 0;
  uint64_t sum = 0;
  for (size_t i = 0; i < count; i++) {
    if (rng_next(&seed) % 100 < pct) {
      sum += peek(pool[i].p, pool[i].sz);
      live -= pool[i].sz;
      free(pool[i].p);
    } else {
      pool[keep++] = pool[i];
    }
  }
  count = keep;
  sink += sum;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "rn", "[-r rounds] [-n small-blocks-per-round]");
  long long rounds = opt_ll(argc, argv, 'r', 6);
  size_t n = (size_t)opt_ll(argc, argv, 'n', 400000);
  if (rounds < 0) die("arguments");

  for (long long r = 0; r < rounds; r++) {
    add(n, 16, (size_t)64 << (r % 3));
    cull(90);
    add(n / 20, 512, 16384);
    cull(70);
    add(n / 2, 64, 1024);
    cull(80);
  }
  cull(100);
  free(pool);
  printf("live_peak_bytes=%zu\n", live_peak);
  return 0;
}
