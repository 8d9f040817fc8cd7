/* SPDX-License-Identifier: MIT */
/* setfam: the allocation shape of espresso (the Berkeley logic minimiser; Zorn and
   Grunwald's allocation benchmarks, which mimalloc-bench runs): families of cubes, each
   cube a bit set of a few words, a family an array of them grown by realloc as cubes are
   added.  One thread.  Each step replaces one of 64 live families by a new one of 8-64
   cubes of 2-8 words (its array grown by half, plus one, whenever it fills), then works
   on it as espresso's cube operations do: for pairs of its cubes a temporary set
   (malloc'd, then freed) holds their intersection, and a non-empty one goes into a
   second family of results, which is dropped at the end of the step.  Most blocks are
   8-40-byte temporaries freed at once; the families' arrays are reallocated to a few
   KiB.  -n steps. */
#include "common.h"

typedef uint32_t word_t;

typedef struct {
  size_t words, count, cap; /* words per cube, cubes, room for cubes */
  word_t *data;
} family_t;

static family_t *fam_new(size_t words, size_t cap) {
  family_t *f = malloc(sizeof *f);
  if (!f) die("malloc");
  f->words = words;
  f->count = 0;
  f->cap = cap;
  f->data = malloc(cap * words * sizeof(word_t));
  if (!f->data) die("malloc");
  return f;
}

static void fam_free(family_t *f) {
  if (f) {
    free(f->data);
    free(f);
  }
}

/* Appends a copy of cube c, growing the array by half (and one) when it is full. */
static void fam_add(family_t *f, const word_t *c) {
  if (f->count == f->cap) {
    f->cap = f->cap + f->cap / 2 + 1;
    f->data = realloc(f->data, f->cap * f->words * sizeof(word_t));
    if (!f->data) die("realloc");
  }
  memcpy(f->data + f->count * f->words, c, f->words * sizeof(word_t));
  f->count++;
}

int main(int argc, char **argv) {
  opt_check(argc, argv, "n", "[-n steps]");
  long long steps = opt_ll(argc, argv, 'n', 100000);
  if (steps < 1) die("arguments");
  enum { LIVE = 64 };
  family_t *live[LIVE] = {0};
  uint64_t s = 0xe5b7e550ull, sum = 0;
  for (long long k = 0; k < steps; k++) {
    size_t words = rng_range(&s, 2, 8), n = rng_range(&s, 8, 64);
    family_t *f = fam_new(words, 4);
    word_t *cube = malloc(words * sizeof(word_t));
    if (!cube) die("malloc");
    for (size_t i = 0; i < n; i++) {
      for (size_t w = 0; w < words; w++) cube[w] = (word_t)rng_next(&s) | (word_t)rng_next(&s);
      fam_add(f, cube);
    }
    free(cube);
    /* Cube operations: pairs of cubes, each intersection in a set of its own. */
    family_t *out = fam_new(words, 2);
    size_t pairs = n * 2;
    for (size_t p = 0; p < pairs; p++) {
      const word_t *a = f->data + rng_range(&s, 0, n - 1) * words;
      const word_t *b = f->data + rng_range(&s, 0, n - 1) * words;
      word_t *t = malloc(words * sizeof(word_t));
      if (!t) die("malloc");
      word_t any = 0;
      for (size_t w = 0; w < words; w++) any |= t[w] = a[w] & b[w];
      if (any) fam_add(out, t);
      free(t);
    }
    sum += out->count;
    fam_free(out);
    size_t slot = rng_range(&s, 0, LIVE - 1);
    fam_free(live[slot]);
    live[slot] = f;
  }
  for (size_t i = 0; i < LIVE; i++) {
    if (live[i]) sum += live[i]->count;
    fam_free(live[i]);
  }
  sink = sum;
  printf("checksum=%llu\n", (unsigned long long)sum);
  return 0;
}
