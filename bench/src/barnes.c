/* SPDX-License-Identifier: MIT */
/* barnes: a Barnes-Hut n-body simulation, the shape of the Olden suite's
   "barnes" that mimalloc-bench runs (issue 17's barnes row): mostly compute,
   with an octree of cells rebuilt by malloc every step and freed at its end,
   and bodies allocated one by one at the start.  What an allocator changes here
   is where it puts the tree's nodes (cache lines, pages, TLB reach) more than
   the time it spends in malloc itself.

   Each step: build the octree by inserting the bodies in their list order
   (cells of 112 bytes, malloc'd as they are needed), compute each cell's mass
   and centre of mass, walk the tree for every body's acceleration (opening
   criterion theta), move the bodies (leapfrog), free the tree.  The bodies
   start in a Plummer sphere (clustered, as in Olden) from a fixed seed, so every
   allocator computes the same thing; the checksum is a function of the final
   positions. */
#include "common.h"

#include <math.h>

typedef struct body {
  double pos[3], vel[3], acc[3];
  double mass, phi;
  struct body *next;
} body_t; /* 96 bytes */

/* A child is a cell or a body; the low bit of the pointer says which. */
typedef struct cell {
  double mass, pos[3];
  uintptr_t sub[8];
  double size;
  unsigned nbody;
  unsigned pad;
} cell_t; /* 112 bytes */

static inline int is_body(uintptr_t c) { return (int)(c & 1); }
static inline body_t *as_body(uintptr_t c) { return (body_t *)(c & ~(uintptr_t)1); }
static inline cell_t *as_cell(uintptr_t c) { return (cell_t *)c; }

static long long cells_made;

static cell_t *new_cell(const double centre[3], double size) {
  cell_t *c = malloc(sizeof *c);
  if (!c) die("malloc");
  memset(c, 0, sizeof *c);
  for (int k = 0; k < 3; k++) c->pos[k] = centre[k]; /* geometric centre until summed */
  c->size = size;
  cells_made++;
  return c;
}

static int octant(const cell_t *c, const double p[3]) {
  return (p[0] >= c->pos[0]) | (p[1] >= c->pos[1]) << 1 | (p[2] >= c->pos[2]) << 2;
}

static void child_centre(const cell_t *c, int o, double out[3]) {
  double q = c->size / 4;
  for (int k = 0; k < 3; k++) out[k] = c->pos[k] + ((o >> k) & 1 ? q : -q);
}

static void insert(cell_t *c, body_t *b, int depth) {
  for (;;) {
    int o = octant(c, b->pos);
    uintptr_t s = c->sub[o];
    if (!s) {
      c->sub[o] = (uintptr_t)b | 1;
      return;
    }
    if (is_body(s)) {
      body_t *other = as_body(s);
      if (depth > 60) { /* coincident bodies: nudge rather than split forever */
        b->pos[0] += 1e-9;
        continue;
      }
      double cc[3];
      child_centre(c, o, cc);
      cell_t *n = new_cell(cc, c->size / 2);
      n->sub[octant(n, other->pos)] = (uintptr_t)other | 1;
      c->sub[o] = (uintptr_t)n;
      s = (uintptr_t)n;
    }
    c = as_cell(s);
    depth++;
  }
}

/* Mass and centre of mass, bottom up. */
static void summarise(cell_t *c) {
  double m = 0, p[3] = {0, 0, 0};
  unsigned n = 0;
  for (int o = 0; o < 8; o++) {
    uintptr_t s = c->sub[o];
    if (!s) continue;
    if (is_body(s)) {
      body_t *b = as_body(s);
      m += b->mass;
      for (int k = 0; k < 3; k++) p[k] += b->mass * b->pos[k];
      n++;
    } else {
      cell_t *d = as_cell(s);
      summarise(d);
      m += d->mass;
      for (int k = 0; k < 3; k++) p[k] += d->mass * d->pos[k];
      n += d->nbody;
    }
  }
  c->mass = m;
  for (int k = 0; k < 3; k++) c->pos[k] = m > 0 ? p[k] / m : c->pos[k];
  c->nbody = n;
}

static const double eps2 = 0.0025, theta2 = 0.5 * 0.5;

static void accumulate(body_t *b, const double pos[3], double mass) {
  double d[3], r2 = eps2;
  for (int k = 0; k < 3; k++) {
    d[k] = pos[k] - b->pos[k];
    r2 += d[k] * d[k];
  }
  double inv = 1.0 / sqrt(r2), inv3 = mass * inv * inv * inv;
  b->phi -= mass * inv;
  for (int k = 0; k < 3; k++) b->acc[k] += d[k] * inv3;
}

static void gravity(body_t *b, const cell_t *c) {
  for (int o = 0; o < 8; o++) {
    uintptr_t s = c->sub[o];
    if (!s) continue;
    if (is_body(s)) {
      body_t *other = as_body(s);
      if (other != b) accumulate(b, other->pos, other->mass);
      continue;
    }
    const cell_t *d = as_cell(s);
    double r2 = 0;
    for (int k = 0; k < 3; k++) {
      double x = d->pos[k] - b->pos[k];
      r2 += x * x;
    }
    if (d->size * d->size < theta2 * r2)
      accumulate(b, d->pos, d->mass);
    else
      gravity(b, d);
  }
}

static void free_tree(cell_t *c) {
  for (int o = 0; o < 8; o++)
    if (c->sub[o] && !is_body(c->sub[o])) free_tree(as_cell(c->sub[o]));
  free(c);
}

static double uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

int main(int argc, char **argv) {
  opt_check(argc, argv, "ns", "[-n bodies] [-s steps]");
  long long nbody = opt_ll(argc, argv, 'n', 20000);
  long long steps = opt_ll(argc, argv, 's', 10);
  if (nbody < 2 || nbody > 10000000 || steps < 1) die("arguments");

  /* Plummer sphere: radius from the cumulative mass, direction uniform;
     velocities small and random (the checksum only needs determinism). */
  uint64_t seed = 42;
  body_t *first = NULL, **tail = &first;
  for (long long i = 0; i < nbody; i++) {
    body_t *b = malloc(sizeof *b);
    if (!b) die("malloc");
    memset(b, 0, sizeof *b);
    double u = uniform(&seed) * 0.999 + 0.0005;
    double r = 1.0 / sqrt(pow(u, -2.0 / 3.0) - 1.0);
    double z = 2 * uniform(&seed) - 1, t = 2 * M_PI * uniform(&seed), rxy = sqrt(1 - z * z);
    b->pos[0] = r * rxy * cos(t);
    b->pos[1] = r * rxy * sin(t);
    b->pos[2] = r * z;
    for (int k = 0; k < 3; k++) b->vel[k] = (uniform(&seed) - 0.5) * 0.1;
    b->mass = 1.0 / (double)nbody;
    *tail = b;
    tail = &b->next;
  }

  const double dt = 0.0125;
  for (long long step = 0; step < steps; step++) {
    double lo = 1e300, hi = -1e300;
    for (body_t *b = first; b; b = b->next)
      for (int k = 0; k < 3; k++) {
        if (b->pos[k] < lo) lo = b->pos[k];
        if (b->pos[k] > hi) hi = b->pos[k];
      }
    double centre[3] = {(lo + hi) / 2, (lo + hi) / 2, (lo + hi) / 2};
    cell_t *root = new_cell(centre, (hi - lo) * 1.0001 + 1e-9);
    for (body_t *b = first; b; b = b->next) insert(root, b, 0);
    summarise(root);
    for (body_t *b = first; b; b = b->next) {
      b->acc[0] = b->acc[1] = b->acc[2] = b->phi = 0;
      gravity(b, root);
    }
    for (body_t *b = first; b; b = b->next)
      for (int k = 0; k < 3; k++) {
        b->vel[k] += b->acc[k] * dt;
        b->pos[k] += b->vel[k] * dt;
      }
    free_tree(root);
  }

  double sum = 0;
  uint64_t check = 0;
  body_t *b = first;
  while (b) {
    body_t *next = b->next;
    sum += b->pos[0] + 2 * b->pos[1] + 3 * b->pos[2];
    free(b);
    b = next;
  }
  memcpy(&check, &sum, sizeof check);
  sink = check;
  printf("cells=%lld\nchecksum=%llu\n", cells_made, (unsigned long long)check);
  return 0;
}
