/* SPDX-License-Identifier: MIT */
/* pareto: the shape of OLogN's alloc-test (ithare.com, "Testing Memory
   Allocators ... While Trying to Simulate Real-World Loads", 2018), which
   mimalloc-bench runs as alloc-test1 and alloc-testN.  Each of -t threads owns
   2^18 / t slots and fills about half of them; then -n times it picks a slot,
   hot slots far more often than cold ones (an 80/20 rule applied six times over
   seven slot ranges: the smallest range, 0.0064% of the slots, is picked 26% of
   the time), and frees the block there after reading every byte of it, or, when
   the slot is empty, mallocs a block and writes every byte.  Sizes run from
   5 bytes to 1 KiB, each power-of-two range half as likely as the one before
   (so half the blocks are 5..8 bytes), uniform within a range.  The threads
   share nothing.  What it measures: the small-block paths with a working set
   where a few slots churn and most of the heap stays put. */
#include "common.h"
#include <pthread.h>

#define TOTAL_SLOTS (1u << 18)

static long long iters;
static unsigned nslots;

/* The seven slot ranges, hottest first: range k is picked with probability
   pick_share[k] = C(6,k) 0.8^(6-k) 0.2^k (the terms of (0.8 + 0.2)^6, so they sum
   to 1) and holds pick_share[6 - k] of the slots: range 0 is 0.0064% of the slots
   and takes 26% of the picks, range 6 is 26% of the slots and takes 0.0064%. */
static const double pick_share[7] = {0.262144, 0.393216, 0.245760, 0.081920, 0.015360, 0.001536, 0.000064};

struct picker {
  uint64_t below[6]; /* a 64-bit draw under below[k] picks range k (else range 6) */
  unsigned start[8]; /* range k is slots [start[k], start[k + 1]) */
};

static void picker_init(struct picker *pk, unsigned n) {
  double acc = 0;
  for (int k = 0; k < 6; k++) {
    acc += pick_share[k];
    pk->below[k] = (uint64_t)(acc * 18446744073709551615.0);
  }
  pk->start[0] = 0;
  for (int k = 0; k < 7; k++) {
    unsigned len = (unsigned)(n * pick_share[6 - k]);
    if (len == 0) len = 1;
    pk->start[k + 1] = pk->start[k] + len;
  }
  pk->start[7] = n; /* the rounding's remainder goes to the coldest range */
}

static unsigned pick(const struct picker *pk, uint64_t *s) {
  uint64_t r = rng_next(s);
  int k = 0;
  while (k < 6 && r >= pk->below[k]) k++;
  unsigned len = pk->start[k + 1] - pk->start[k];
  return pk->start[k] + (unsigned)(rng_next(s) % len);
}

/* 5..1024 bytes: range j (sizes 2^(j+2)+1 .. 2^(j+3)) with probability 2^-(j+1),
   the last range taking what is left. */
static size_t pick_size(uint64_t *s) {
  uint64_t r = rng_next(s);
  unsigned j = r & 0x7f ? (unsigned)__builtin_ctzll(r & 0x7f) : 7;
  size_t base = (size_t)1 << (j + 2);
  return base + 1 + (size_t)((r >> 8) % base);
}

static void fill(unsigned char *p, size_t sz) { memset(p, (int)(sz & 0xff), sz); }

static uint64_t read_all(const unsigned char *p, size_t sz) {
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 8 <= sz; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    sum += w;
  }
  for (; i < sz; i++) sum += p[i];
  return sum;
}

struct slot {
  unsigned char *p;
  size_t sz;
};

static void *worker(void *arg) {
  uint64_t seed = 41 + (uintptr_t)arg * 0x1000193, sum = 0;
  struct picker pk;
  picker_init(&pk, nslots);
  struct slot *slot = calloc(nslots, sizeof *slot);
  if (!slot) die("calloc");
  for (unsigned i = 0; i < nslots; i++) {
    if (rng_next(&seed) & 1) continue;
    size_t sz = pick_size(&seed);
    slot[i].p = malloc(sz);
    if (!slot[i].p) die("malloc");
    slot[i].sz = sz;
    fill(slot[i].p, sz);
  }
  for (long long n = 0; n < iters; n++) {
    struct slot *x = &slot[pick(&pk, &seed)];
    if (x->p) {
      sum += read_all(x->p, x->sz);
      free(x->p);
      x->p = NULL;
    } else {
      size_t sz = pick_size(&seed);
      x->p = malloc(sz);
      if (!x->p) die("malloc");
      x->sz = sz;
      fill(x->p, sz);
    }
  }
  for (unsigned i = 0; i < nslots; i++) {
    if (!slot[i].p) continue;
    sum += read_all(slot[i].p, slot[i].sz);
    free(slot[i].p);
  }
  free(slot);
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "tn", "[-t threads] [-n operations per thread]");
  int threads = (int)opt_ll(argc, argv, 't', 1);
  iters = opt_ll(argc, argv, 'n', 10000000);
  if (threads < 1 || threads > 64 || iters < 0) die("arguments");
  nslots = TOTAL_SLOTS / (unsigned)threads;
  pthread_t t[64];
  for (int i = 0; i < threads; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) die("pthread_create");
  uint64_t sum = 0;
  for (int i = 0; i < threads; i++) {
    void *r;
    pthread_join(t[i], &r);
    sum += (uintptr_t)r;
  }
  printf("checksum=%llu\n", (unsigned long long)sum);
  return 0;
}
