/* SPDX-License-Identifier: MIT */
/* bignum: the allocation shape of cfrac (Zorn and Grunwald's allocation benchmarks,
   which mimalloc-bench runs): factoring by continued fractions with a precision
   library whose every operation mallocs its result and frees its operands.  Numbers
   of 16-bit digits behind an 8-byte header (10..24 bytes), reference counted; one
   thread.  Each step makes the next term of a recurrence x' = a x + y (a a random
   digit), keeps it under 7 digits (cfrac's numbers are about the square root of a
   40-digit one) by dividing it by random digits, works out two more terms from it that
   it drops (cfrac's temporaries: P, Q and the partial quotient), and tries the first
   10 primes on it as cfrac tries its factor base: a division per prime, and more while
   one divides it.  Every result is a new block and every operand is released as soon
   as it is used, so almost all blocks live for a few calls: a small-object malloc/free
   stream of mixed sizes, last in first out.  -n steps. */
#include "common.h"

typedef struct {
  uint32_t refs, n; /* n digits, the highest nonzero (0 for zero) */
  uint16_t d[];
} bn_t;

static bn_t *bn_new(uint32_t n) {
  bn_t *b = malloc(sizeof(bn_t) + (n ? n : 1) * sizeof(uint16_t));
  if (!b) die("malloc");
  b->refs = 1;
  b->n = n;
  return b;
}

static bn_t *bn_ref(bn_t *b) {
  b->refs++;
  return b;
}

static void bn_unref(bn_t *b) {
  if (b && --b->refs == 0) free(b);
}

static bn_t *bn_trim(bn_t *b) {
  while (b->n && b->d[b->n - 1] == 0) b->n--;
  return b;
}

static bn_t *bn_small(uint32_t v) {
  bn_t *b = bn_new(2);
  b->d[0] = (uint16_t)v;
  b->d[1] = (uint16_t)(v >> 16);
  return bn_trim(b);
}

/* a * m: a new number; a is released. */
static bn_t *bn_mul_small(bn_t *a, uint32_t m) {
  bn_t *r = bn_new(a->n + 1);
  uint32_t carry = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    uint32_t t = (uint32_t)a->d[i] * m + carry;
    r->d[i] = (uint16_t)t;
    carry = t >> 16;
  }
  r->d[a->n] = (uint16_t)carry;
  bn_unref(a);
  return bn_trim(r);
}

/* a + b: a new number; both released. */
static bn_t *bn_add(bn_t *a, bn_t *b) {
  uint32_t n = (a->n > b->n ? a->n : b->n) + 1, carry = 0;
  bn_t *r = bn_new(n);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t t = carry + (i < a->n ? a->d[i] : 0) + (i < b->n ? b->d[i] : 0);
    r->d[i] = (uint16_t)t;
    carry = t >> 16;
  }
  bn_unref(a);
  bn_unref(b);
  return bn_trim(r);
}

/* a / m (m > 0): a new number and *rem; a is released. */
static bn_t *bn_divmod_small(bn_t *a, uint32_t m, uint32_t *rem) {
  bn_t *q = bn_new(a->n);
  uint32_t r = 0;
  for (uint32_t i = a->n; i-- > 0;) {
    uint32_t t = (r << 16) | a->d[i];
    q->d[i] = (uint16_t)(t / m);
    r = t % m;
  }
  *rem = r;
  bn_unref(a);
  return bn_trim(q);
}

static const uint32_t primes[25] = {2,  3,  5,  7,  11, 13, 17, 19, 23, 29, 31, 37, 41,
                                    43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97};

int main(int argc, char **argv) {
  opt_check(argc, argv, "n", "[-n steps]");
  long long steps = opt_ll(argc, argv, 'n', 1000000);
  if (steps < 1) die("arguments");
  uint64_t s = 0xcf4acull, sum = 0;
  bn_t *x = bn_small(1), *y = bn_small(0);
  for (long long k = 0; k < steps; k++) {
    /* The next term: x' = a x + y, y' = x. */
    bn_t *t = bn_mul_small(bn_ref(x), (uint32_t)rng_range(&s, 1, 65535));
    bn_t *u = bn_add(t, y);
    y = x;
    x = u;
    uint32_t r;
    while (x->n > 6) x = bn_divmod_small(x, (uint32_t)rng_range(&s, 2, 65535), &r);
    while (y->n > 6) y = bn_divmod_small(y, (uint32_t)rng_range(&s, 2, 65535), &r);
    /* Temporaries, released at once. */
    for (int j = 0; j < 2; j++) {
      bn_t *w = bn_add(bn_mul_small(bn_ref(x), (uint32_t)rng_range(&s, 1, 65535)), bn_ref(y));
      sum += w->n;
      bn_unref(w);
    }
    /* The factor base: each prime divides a copy as long as it can. */
    bn_t *v = bn_ref(x);
    for (int p = 0; p < 10 && v->n; p++) {
      for (;;) {
        bn_t *q = bn_divmod_small(bn_ref(v), primes[p], &r);
        if (r != 0 || q->n == 0) {
          bn_unref(q);
          break;
        }
        bn_unref(v);
        v = q;
        sum++;
      }
      sum += r;
    }
    sum += v->n;
    bn_unref(v);
  }
  sum += x->n + y->n;
  bn_unref(x);
  bn_unref(y);
  sink = sum;
  printf("checksum=%llu\n", (unsigned long long)sum);
  return 0;
}
