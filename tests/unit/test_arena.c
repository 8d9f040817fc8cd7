/* SPDX-License-Identifier: MIT */
#include "unit.h"

static mlc_arena_t *new_arena(void) {
  mlc_boot();
  mlc_arena_t *a = mlc_arena_new(201);
  ck_assert_ptr_nonnull(a);
  return a;
}

/* Threads get arenas round-robin. */
START_TEST(test_round_robin) {
  mlc_boot();
  mlc_arena_t *first = mlc_arena_choose();
  for (unsigned i = 1; i <= 2 * mlc_narenas; i++) {
    mlc_arena_t *a = mlc_arena_choose();
    ck_assert_uint_eq(a->ind, (first->ind + i) % mlc_narenas);
  }
}
END_TEST

/* The arena count follows the CPUs the process may use. */
START_TEST(test_narenas_default) {
  mlc_boot();
  if (mlc_opt.narenas == 0) ck_assert_uint_eq(mlc_narenas, mlc_os_ncpus());
}
END_TEST

START_TEST(test_large_alignment_and_reuse) {
  bool freed;
  mlc_arena_t *a = new_arena();
  for (size_t align = MLC_PAGE; align <= MLC_CHUNK / 4; align <<= 1) {
    char *p = mlc_arena_large_alloc(a, 20000, align, false);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % align, 0);
    ck_assert_uint_eq(mlc_arena_large_check(mlc_pagemap_entry(p), p, &freed) << MLC_PAGE_SHIFT, 20480);
    mlc_arena_large_free(mlc_pagemap_entry(p), p);
  }
  /* A freed run is reused at once. */
  char *p = mlc_arena_large_alloc(a, 50000, 0, false);
  mlc_arena_large_free(mlc_pagemap_entry(p), p);
  char *q = mlc_arena_large_alloc(a, 50000, 0, false);
  ck_assert_ptr_eq(p, q);
  mlc_arena_large_free(mlc_pagemap_entry(q), q);
}
END_TEST

/* Best fit: of two holes that hold a request, the smaller is used, in whichever chunk
   it is; an exact fit ends the search. */
START_TEST(test_large_best_fit) {
  mlc_arena_t *a = new_arena();
  size_t pg = MLC_PAGE;
  char *big = mlc_arena_large_alloc(a, 10 * pg, 0, false);
  char *sep1 = mlc_arena_large_alloc(a, pg * 3, 0, false);
  char *mid = mlc_arena_large_alloc(a, 5 * pg, 0, false);
  char *sep2 = mlc_arena_large_alloc(a, pg * 3, 0, false);
  ck_assert(big && sep1 && mid && sep2);
  ck_assert_ptr_eq(sep1, big + 10 * pg); /* one chunk, back to back */
  ck_assert_ptr_eq(mid, sep1 + 3 * pg);
  mlc_arena_large_free(mlc_pagemap_entry(big), big);
  mlc_arena_large_free(mlc_pagemap_entry(mid), mid);
  char *q = mlc_arena_large_alloc(a, 4 * pg, 0, false);
  ck_assert_ptr_eq(q, mid); /* the 5-page hole, not the first (10 pages) */
  char *r = mlc_arena_large_alloc(a, 10 * pg, 0, false);
  ck_assert_ptr_eq(r, big); /* exact fit */
  char *blocks[] = {q, r, sep1, sep2};
  for (int i = 0; i < 4; i++) mlc_arena_large_free(mlc_pagemap_entry(blocks[i]), blocks[i]);
}
END_TEST

START_TEST(test_large_resize_in_place) {
  bool freed;
  mlc_arena_t *a = new_arena();
  char *p = mlc_arena_large_alloc(a, 3 * MLC_PAGE, 0, false);
  mlc_chunk_t *c = mlc_pagemap_entry(p);
  ck_assert(mlc_arena_large_resize(c, p, 10 * MLC_PAGE));
  ck_assert_uint_eq(mlc_arena_large_check(c, p, &freed), 10);
  char *q = mlc_arena_large_alloc(a, MLC_PAGE, 0, false);
  ck_assert_ptr_eq(q, p + 10 * MLC_PAGE);
  ck_assert(!mlc_arena_large_resize(c, p, 11 * MLC_PAGE)); /* q is in the way */
  ck_assert(mlc_arena_large_resize(c, p, 2 * MLC_PAGE));
  ck_assert_uint_eq(mlc_arena_large_check(c, p, &freed), 2);
  mlc_arena_large_free(c, q);
  mlc_arena_large_free(c, p);
}
END_TEST

/* realloc's growing block (mlc_arena_large_alloc_room): at the start of a free run with
   its room after it; an allocation that best fits the run right after it takes that
   run's end, and the block grows in place into its room.  (Placed by best fit alone,
   the next allocation took the page after it and the block moved at its next step.) */
START_TEST(test_large_room) {
  bool freed;
  mlc_arena_t *a = new_arena();
  char *g = mlc_arena_large_alloc_room(a, 3 * MLC_PAGE, 200);
  ck_assert_ptr_nonnull(g);
  mlc_chunk_t *c = mlc_pagemap_entry(g);
  size_t gi = (size_t)(g - (char *)c) >> MLC_PAGE_SHIFT;
  ck_assert(mlc_chunk_pages_free(c, gi + 3, 200));
  char *q = mlc_arena_large_alloc(a, MLC_PAGE, 0, false);
  ck_assert_ptr_nonnull(q);
  ck_assert(q < g || q >= g + 203 * MLC_PAGE);
  ck_assert(mlc_arena_large_resize(c, g, 203 * MLC_PAGE));
  ck_assert_uint_eq(mlc_arena_large_check(c, g, &freed), 203);
  mlc_arena_large_free(mlc_pagemap_entry(q), q);
  mlc_arena_large_free(c, g);
}
END_TEST

/* A growing block keeps that protection as long as it lives, however many blocks grow
   after it: the arena used to remember its last four, and a block placed after the
   others' had taken the start of the first one's room. */
START_TEST(test_large_room_remembered) {
  mlc_arena_t *a = new_arena();
  /* A chunk with one free run of 200 pages, and a growing block at its start. */
  char *x = mlc_arena_large_alloc(a, (size_t)(MLC_CHUNK_FREE_PAGES - 200) * MLC_PAGE, 0, false);
  ck_assert_ptr_nonnull(x);
  mlc_chunk_t *c = mlc_pagemap_entry(x);
  char *g = mlc_arena_large_alloc_room(a, 3 * MLC_PAGE, 60);
  ck_assert_ptr_eq(g, x + (size_t)(MLC_CHUNK_FREE_PAGES - 200) * MLC_PAGE);
  /* Four more growing blocks, each too long for that run: a chunk of its own each. */
  char *others[4];
  for (int k = 0; k < 4; k++) {
    others[k] = mlc_arena_large_alloc_room(a, 3 * MLC_PAGE, MLC_CHUNK_FREE_PAGES - 3);
    ck_assert_ptr_nonnull(others[k]);
    ck_assert_ptr_ne(mlc_pagemap_entry(others[k]), c);
  }
  /* The best fit for one page is the run after g: its far end. */
  char *q = mlc_arena_large_alloc(a, MLC_PAGE, 0, false);
  ck_assert_ptr_eq(mlc_pagemap_entry(q), c);
  ck_assert_ptr_eq(q, (char *)c + MLC_CHUNK - MLC_PAGE);
  ck_assert(mlc_arena_validate(a));
  mlc_arena_large_free(c, q);
  for (int k = 0; k < 4; k++) mlc_arena_large_free(mlc_pagemap_entry(others[k]), others[k]);
  mlc_arena_large_free(c, g);
  mlc_arena_large_free(c, x);
}
END_TEST

/* Past the bound on free pages, a growing block goes to the middle of the longest free
   run, the room of the growing block before it, rather than to a new chunk with room
   for its own size only: blocks grown side by side then share the rooms and need not
   move.  A block no run holds three times over gets room for its own size. */
START_TEST(test_large_room_split_past_bound) {
  mlc_arena_t *a = new_arena();
  enum { MAXG = 1024 };
  static char *g[MAXG];
  size_t ng = 0;
  /* Growing blocks with rooms to the chunks' end, until the arena holds the bound. */
  while ((a->nrefs * MLC_CHUNK_FREE_PAGES - a->used_pages) * MLC_PAGE < MLC_ROOM_FREE_BYTES) {
    ck_assert_uint_lt(ng, MAXG);
    g[ng] = mlc_arena_large_alloc_room(a, 3 * MLC_PAGE, MLC_CHUNK_FREE_PAGES);
    ck_assert_ptr_nonnull(g[ng]);
    ng++;
  }
  size_t nrefs = a->nrefs;
  /* Every chunk holds one of them at its start and the rest of it free. */
  mlc_chunk_t *c = a->refs[nrefs - 1].chunk;
  ck_assert_ptr_eq(g[ng - 1], (char *)c + MLC_CHUNK_HEADER_PAGES * MLC_PAGE);
  size_t len = MLC_CHUNK_FREE_PAGES - 3;
  char *s = mlc_arena_large_alloc_room(a, 5 * MLC_PAGE, MLC_CHUNK_FREE_PAGES);
  ck_assert_ptr_eq(s, g[ng - 1] + (3 + (len - 5) / 2) * MLC_PAGE);
  ck_assert_uint_eq(a->nrefs, nrefs);
  /* s is marked growing too: what best fits the run after it goes to its far end. */
  ck_assert(mlc_chunk_after_growing(c, (size_t)(s - (char *)c) / MLC_PAGE + 5));
  /* Too long for a third of any free run: room for its own size, at the far end of
     another block's room (every chunk but c has one run that long). */
  size_t n = len / 3 + 1;
  char *big = mlc_arena_large_alloc_room(a, n * MLC_PAGE, MLC_CHUNK_FREE_PAGES);
  ck_assert_ptr_nonnull(big);
  ck_assert_ptr_ne(mlc_pagemap_entry(big), c);
  ck_assert_ptr_eq(big + 2 * n * MLC_PAGE, (char *)mlc_pagemap_entry(big) + MLC_CHUNK);
  ck_assert_uint_eq(a->nrefs, nrefs);
  ck_assert(mlc_arena_validate(a));
  mlc_arena_large_free(mlc_pagemap_entry(big), big);
  mlc_arena_large_free(c, s);
  for (size_t k = 0; k < ng; k++) mlc_arena_large_free(mlc_pagemap_entry(g[k]), g[k]);
  ck_assert(mlc_arena_validate(a));
}
END_TEST

/* Freed pages stay resident until the decay delay has passed; then a purge gives them
   back and they read as zero (and calloc knows it need not clear them). */
START_TEST(test_purge_after_decay) {
  mlc_arena_t *a = new_arena();
  size_t kp = mlc_os_page_size(), n = MLC_MAX(8 * MLC_PAGE, 2 * kp);
  char *keep = mlc_arena_large_alloc(a, MLC_PAGE, 0, false); /* keeps the chunk in use */
  /* Whole kernel pages, so that freeing them lets a purge give all of them back. */
  char *p = mlc_arena_large_alloc(a, n, kp, false);
  memset(p, 0x5a, n);
  mlc_chunk_t *c = mlc_pagemap_entry(p);
  mlc_arena_large_free(c, p);
  uint64_t t0 = c->free_ns;
  ck_assert_uint_eq(mlc_arena_purge(a, t0 + 1000, 1000000), 0);
  ck_assert_uint_eq((unsigned char)p[100], 0x5a);
  ck_assert_uint_ge(mlc_arena_purge(a, t0 + 2000000, 1000000), n);
  ck_assert_uint_eq((unsigned char)p[100], 0);
  ck_assert_uint_eq((unsigned char)p[n - 1], 0);
  char *z = mlc_arena_large_alloc(a, n, kp, true);
  ck_assert_ptr_eq(z, p);
  for (size_t i = 0; i < n; i++) ck_assert_uint_eq((unsigned char)z[i], 0);
  mlc_arena_large_free(c, z);
  mlc_arena_large_free(c, keep);
}
END_TEST

/* With kernel pages larger than melloc's 4 KiB unit (64 KiB here: real under a 64 KiB
   kernel, pretended on a smaller one, where whole 64 KiB are whole pages too), a purge
   never touches a kernel page that is partly in use: the live bytes stay, the free
   units beside them stay dirty (calloc still zeroes them), and the chunk stops counting
   as purgeable until a free, so the collector can retire.  Once the rest of the kernel
   page is free, it is given back whole. */
START_TEST(test_purge_whole_kernel_pages) {
  mlc_os_page_pretend(MLC_GRANULE);
  size_t kp = mlc_os_purge_unit(), up = kp / MLC_PAGE;
  ck_assert_uint_eq(kp, MLC_GRANULE);
  mlc_arena_t *a = new_arena();
  char *p = mlc_arena_large_alloc(a, kp, kp, false); /* one whole kernel page */
  ck_assert_uint_eq((uintptr_t)p % kp, 0);
  memset(p, 0x5a, kp);
  mlc_chunk_t *c = mlc_pagemap_entry(p);
  size_t i = ((uintptr_t)p - (uintptr_t)c) / MLC_PAGE;
  /* Its upper half becomes free (and dirty), its lower half stays live. */
  ck_assert(mlc_arena_large_resize(c, p, kp / 2));
  ck_assert(mlc_arena_purgeable(a));
  ck_assert_uint_eq(mlc_arena_purge(a, mlc_os_now_ns(), 0), 0);
  for (size_t k = 0; k < kp; k += 512) ck_assert_uint_eq((unsigned char)p[k], 0x5a);
  ck_assert_uint_eq((unsigned char)p[kp - 1], 0x5a);
  ck_assert(c->dirty[(i + up / 2) / 64] >> ((i + up / 2) % 64) & 1);
  ck_assert(!mlc_arena_purgeable(a));
  ck_assert(mlc_arena_validate(a));
  /* Taking those units reports them dirty, so that calloc zeroes them. */
  mlc_mutex_lock(&a->lock);
  ck_assert(mlc_chunk_take(c, i + up / 2, up / 2));
  mlc_chunk_give(c, i + up / 2, up / 2);
  mlc_mutex_unlock(&a->lock);
  /* The whole kernel page free: given back, all of it. */
  char *keep = mlc_arena_large_alloc(a, MLC_PAGE, 0, false); /* keeps the chunk in use */
  mlc_arena_large_free(c, p);
  ck_assert(mlc_arena_purgeable(a));
  ck_assert_uint_ge(mlc_arena_purge(a, mlc_os_now_ns(), 0), kp);
  for (size_t k = 0; k < kp; k += 512) ck_assert_uint_eq((unsigned char)p[k], 0);
  ck_assert(!mlc_arena_purgeable(a));
  ck_assert(mlc_arena_validate(a));
  mlc_arena_large_free(c, keep);
}
END_TEST

/* A wholly free chunk becomes a spare that every arena shares: the next arena that
   needs a chunk takes it, whichever arena freed it.  Purging with no delay unmaps it. */
START_TEST(test_spare_chunk) {
  mlc_arena_t *a = new_arena(), *b = mlc_arena_new(202);
  ck_assert_ptr_nonnull(b);
  size_t before = mlc_arena_spares_mapped();
  char *p = mlc_arena_large_alloc(a, 100 * MLC_PAGE, 0, false);
  ck_assert_uint_eq(a->mapped, MLC_CHUNK);
  mlc_arena_large_free(mlc_pagemap_entry(p), p);
  ck_assert_uint_eq(a->mapped, 0);
  ck_assert_uint_eq(mlc_arena_spares_mapped(), before + MLC_CHUNK);
  char *q = mlc_arena_large_alloc(b, 100 * MLC_PAGE, 0, false);
  ck_assert_ptr_eq(q, p); /* the same chunk, now b's */
  ck_assert_ptr_eq(((mlc_chunk_t *)mlc_pagemap_entry(q))->arena, b);
  ck_assert_uint_eq(mlc_arena_spares_mapped(), before);
  ck_assert_uint_eq(b->mapped, MLC_CHUNK);
  mlc_arena_large_free(mlc_pagemap_entry(q), q);
  ck_assert_uint_eq(b->mapped, 0);
  ck_assert(mlc_arena_purgeable(a)); /* any arena's pass sees the spare */
  ck_assert_uint_ge(mlc_arena_spares_purge(mlc_os_now_ns(), 0), MLC_CHUNK);
  ck_assert_uint_eq(mlc_arena_spares_mapped(), 0);
  ck_assert_ptr_null(mlc_pagemap_entry(q));
}
END_TEST

/* k runs of a, each a whole chunk's free pages, in a calloc'd array. */
static char **whole_chunk_runs(mlc_arena_t *a, size_t k) {
  char **runs = calloc(k, sizeof(char *));
  ck_assert_ptr_nonnull(runs);
  for (size_t i = 0; i < k; i++) {
    runs[i] = mlc_arena_large_alloc(a, (size_t)MLC_CHUNK_FREE_PAGES * MLC_PAGE, 0, false);
    ck_assert_ptr_nonnull(runs[i]);
  }
  return runs;
}

/* Chunks freed together wait as spares past the fixed bound (8 per arena) while they
   and the chunks in use stay under the recent peak of chunks in use; the collector's
   purge keeps them until the decay delay, then unmaps them. */
START_TEST(test_spares_follow_peak) {
  mlc_arena_t *a = new_arena();
  size_t k = 8 * (size_t)mlc_narenas + 4, before = mlc_arena_spares_mapped();
  char **runs = whole_chunk_runs(a, k);
  ck_assert_uint_eq(a->mapped, k * MLC_CHUNK);
  for (size_t i = 0; i < k; i++) mlc_arena_large_free(mlc_pagemap_entry(runs[i]), runs[i]);
  ck_assert_uint_eq(a->mapped, 0);
  ck_assert_uint_eq(mlc_arena_spares_mapped(), before + k * MLC_CHUNK);
  uint64_t now = mlc_os_now_ns();
  ck_assert_uint_eq(mlc_arena_spares_purge(now, (uint64_t)3600 * 1000000000u), 0);
  ck_assert_uint_eq(mlc_arena_spares_mapped(), before + k * MLC_CHUNK);
  ck_assert_uint_ge(mlc_arena_spares_purge(now, 0), k * MLC_CHUNK);
  ck_assert_uint_eq(mlc_arena_spares_mapped(), 0);
  for (size_t i = 0; i < k; i++) ck_assert_ptr_null(mlc_pagemap_entry(runs[i]));
  free(runs);
}
END_TEST

/* Spares go back to the arenas oldest first: chunks freed in any order come back in
   the order they were first mapped, so that a program that frees everything and
   builds it again gets its old layout, over the pages it made resident. */
START_TEST(test_spares_oldest_first) {
  mlc_arena_t *a = new_arena();
  mlc_arena_spares_purge(mlc_os_now_ns(), 0); /* none from before */
  char **runs = whole_chunk_runs(a, 3);
  for (size_t i = 1; i < 3; i++)
    ck_assert_uint_lt(((mlc_chunk_t *)mlc_pagemap_entry(runs[i - 1]))->serial,
                      ((mlc_chunk_t *)mlc_pagemap_entry(runs[i]))->serial);
  static const size_t order[] = {2, 0, 1}; /* most recently freed first would give 1, 0, 2 */
  for (size_t k = 0; k < 3; k++) mlc_arena_large_free(mlc_pagemap_entry(runs[order[k]]), runs[order[k]]);
  ck_assert_uint_eq(mlc_arena_spares_mapped(), 3 * MLC_CHUNK);
  for (size_t i = 0; i < 3; i++) {
    char *p = mlc_arena_large_alloc(a, (size_t)MLC_CHUNK_FREE_PAGES * MLC_PAGE, 0, false);
    ck_assert_ptr_eq(p, runs[i]);
  }
  ck_assert(mlc_arena_validate(a));
  for (size_t i = 0; i < 3; i++) mlc_arena_large_free(mlc_pagemap_entry(runs[i]), runs[i]);
  ck_assert_uint_ge(mlc_arena_spares_purge(mlc_os_now_ns(), 0), 3 * MLC_CHUNK);
  free(runs);
}
END_TEST

/* The collector's purge begins a new window for the peak once per decay delay; one
   that begins in the middle of a phase's frees forgets nothing of the phase: the
   chunks freed after it still wait, up to the peak before it. */
START_TEST(test_spares_peak_survives_window) {
  mlc_arena_t *a = new_arena();
  size_t k = 8 * (size_t)mlc_narenas + 4, before = mlc_arena_spares_mapped();
  char **runs = whole_chunk_runs(a, k);
  for (size_t i = 0; i < 4; i++) mlc_arena_large_free(mlc_pagemap_entry(runs[i]), runs[i]);
  /* A window turns (the first began at 0 on the clock, more than a second ago); what
     waits is younger than the delay and stays. */
  uint64_t second = 1000000000u, now = mlc_os_now_ns();
  ck_assert_uint_ge(now, second);
  ck_assert_uint_eq(mlc_arena_spares_purge(now, second), 0);
  for (size_t i = 4; i < k; i++) mlc_arena_large_free(mlc_pagemap_entry(runs[i]), runs[i]);
  ck_assert_uint_eq(mlc_arena_spares_mapped(), before + k * MLC_CHUNK);
  ck_assert_uint_ge(mlc_arena_spares_purge(mlc_os_now_ns(), 0), k * MLC_CHUNK);
  free(runs);
}
END_TEST

/* An arena with no resident free granule of its own takes one of another arena's chunk
   before it touches fresh pages; the granule stays that chunk's: freed, it goes back
   to the chunk's arena, which purges it. */
START_TEST(test_slab_borrows_resident_granule) {
  mlc_boot();
  /* Two arenas of their own in the registry (each test runs in a child process). */
  mlc_arena_t *a = mlc_arena_new(0), *b = mlc_arena_new(1);
  ck_assert(a && b);
  mlc_arenas[0] = a;
  mlc_arenas[1] = b;
  mlc_narenas = 2;
  static void *objs[MLC_SLAB_MAX_OBJS];
  unsigned n = mlc_class_nobjs[1];
  void *keep, *x, *y;
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], objs, n), n);
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], &keep, 1), 1); /* a second slab */
  uintptr_t granule = (uintptr_t)objs[0] & ~(uintptr_t)(MLC_GRANULE - 1);
  memset(objs[0], 0x5a, 64); /* resident */
  mlc_bin_free_batch(objs, n, 1); /* the first slab empties: a free, dirty granule */
  ck_assert_uint_eq(b->mapped, 0);
  ck_assert_uint_eq(mlc_bin_alloc_batch(&b->bins[2], &x, 1), 1);
  ck_assert_uint_eq((uintptr_t)x & ~(uintptr_t)(MLC_GRANULE - 1), granule);
  ck_assert_uint_eq(b->mapped, 0); /* no chunk of its own */
  ck_assert_ptr_eq(((mlc_chunk_t *)mlc_pagemap_entry(x))->arena, a);
  ck_assert_uint_eq(mlc_pagemap_class(x), 2);
  /* No resident granule left anywhere: b's next slab is in a chunk of its own. */
  unsigned m = mlc_class_nobjs[2];
  ck_assert_uint_eq(mlc_bin_alloc_batch(&b->bins[2], objs, m), m);
  ck_assert_uint_eq(b->mapped, MLC_CHUNK);
  ck_assert_uint_eq(mlc_bin_alloc_batch(&b->bins[2], &y, 1), 1);
  ck_assert_ptr_eq(((mlc_chunk_t *)mlc_pagemap_entry(y))->arena, b);
  /* The borrowed slab empties (b's bin has others): back to a's chunk. */
  mlc_bin_free_batch(&x, 1, 2);
  mlc_bin_free_batch(objs, m - 1, 2);
  ck_assert_uint_eq(mlc_pagemap_class((void *)granule), 0);
  ck_assert(mlc_arena_validate(a));
  ck_assert(mlc_arena_validate(b));
  ck_assert(mlc_arena_purgeable(a));
  ck_assert_uint_ge(mlc_arena_purge(a, mlc_os_now_ns(), 0), MLC_GRANULE);
  mlc_bin_free_batch(&objs[m - 1], 1, 2);
  mlc_bin_free_batch(&y, 1, 2);
  mlc_bin_free_batch(&keep, 1, 1);
  ck_assert(mlc_arena_validate(a));
  ck_assert(mlc_arena_validate(b));
}
END_TEST

/* A slab's granule is reused by another class once free. */
START_TEST(test_granule_reuse_across_classes) {
  mlc_arena_t *a = new_arena();
  void *objs[4096];
  unsigned n = mlc_class_nobjs[1];
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], objs, n), n);
  void *one;
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], &one, 1), 1); /* second slab */
  uintptr_t granule = (uintptr_t)objs[0];
  mlc_bin_free_batch(objs, n, 1); /* first slab empties, goes back */
  void *big;
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[20], &big, 1), 1);
  ck_assert_uint_eq((uintptr_t)big & ~(MLC_GRANULE - 1), granule);
  ck_assert_uint_eq(mlc_pagemap_class(big), 20);
}
END_TEST

/* Slabs and large runs share chunks: slabs from the top granule down, runs from the
   lowest page up, and the pages either kind frees are taken by the other. */
START_TEST(test_slabs_and_runs_share_chunks) {
  mlc_arena_t *a = new_arena();
  void *obj;
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[1], &obj, 1), 1);
  char *c = (char *)((uintptr_t)obj & ~MLC_CHUNK_MASK);
  ck_assert_ptr_eq(obj, c + MLC_CHUNK - MLC_GRANULE); /* the top granule */
  char *run = mlc_arena_large_alloc(a, 40 * MLC_PAGE, 0, false);
  ck_assert_ptr_eq(run, c + MLC_CHUNK_HEADER_PAGES * MLC_PAGE); /* the lowest free page */
  ck_assert_uint_eq(a->mapped, MLC_CHUNK);
  /* Large runs fill the chunk up to the slab; freed, their pages hold slabs. */
  char *fill = mlc_arena_large_alloc(a, MLC_CHUNK - MLC_GRANULE - 40 * MLC_PAGE -
                                         MLC_CHUNK_HEADER_PAGES * MLC_PAGE, 0, false);
  ck_assert_ptr_eq(fill, run + 40 * MLC_PAGE);
  ck_assert_uint_eq(a->mapped, MLC_CHUNK);
  mlc_arena_large_free(mlc_pagemap_entry(fill), fill);
  void *objs[MLC_SLAB_MAX_OBJS];
  unsigned cls = 20, n = mlc_class_nobjs[cls];
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[cls], objs, n), n);
  ck_assert_ptr_eq((char *)objs[0], c + MLC_CHUNK - 2 * MLC_GRANULE); /* next granule down */
  ck_assert_uint_eq(a->mapped, MLC_CHUNK);
  ck_assert(mlc_arena_validate(a));
  /* That slab's granule, freed, is reused by a large run (the bin keeps one slab, so
     give it a second one first). */
  void *second;
  ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[cls], &second, 1), 1);
  mlc_bin_free_batch(objs, n, cls);
  char *big = mlc_arena_large_alloc(a, MLC_CHUNK - 3 * MLC_GRANULE - 40 * MLC_PAGE -
                                        MLC_CHUNK_HEADER_PAGES * MLC_PAGE, 0, false);
  ck_assert_ptr_eq(big, run + 40 * MLC_PAGE);
  ck_assert_uint_eq(a->mapped, MLC_CHUNK);
  ck_assert(mlc_arena_validate(a));
  mlc_bin_free_batch(&second, 1, cls);
  mlc_arena_large_free(mlc_pagemap_entry(big), big);
  mlc_arena_large_free(mlc_pagemap_entry(run), run);
  mlc_bin_free_batch(&obj, 1, 1);
  ck_assert(mlc_arena_validate(a));
}
END_TEST

/* The summaries kept for speed (free runs by length, free and dirty granules, free
   pages) match a recount after every step of a random mix of runs, aligned runs,
   resizes, slabs and purges. */
/* The refs (the arena's chunks with copies of their run masks, packed) follow the chunk
   list through growth past the arena's inline room and removals from the middle; a large
   block goes to the newest chunk that fits, as when the search walked the list. */
START_TEST(test_refs_follow_chunks) {
  mlc_arena_t *a = new_arena();
  enum { N = 3 * MLC_ARENA_REFS_INLINE };
  char *p[N];
  for (int k = 0; k < N; k++) {
    p[k] = mlc_arena_large_alloc(a, MLC_LARGE_MAX, 0, false); /* one per chunk */
    ck_assert_ptr_nonnull(p[k]);
    ck_assert(k == 0 || mlc_pagemap_entry(p[k]) != mlc_pagemap_entry(p[k - 1]));
    ck_assert_uint_eq(a->nrefs, (size_t)k + 1);
    ck_assert(mlc_arena_validate(a));
  }
  ck_assert_ptr_ne(a->refs, a->refs_inline);
  /* Chunks in the middle and at both ends leave the arena, wholly free. */
  static const int gone[] = {0, 5, 17, 30, N - 1};
  for (size_t g = 0; g < sizeof(gone) / sizeof(gone[0]); g++) {
    mlc_arena_large_free(mlc_pagemap_entry(p[gone[g]]), p[gone[g]]);
    p[gone[g]] = NULL;
    ck_assert(mlc_arena_validate(a));
  }
  ck_assert_uint_eq(a->nrefs, N - 5);
  /* Every chunk left has the same free run after its block: the newest one takes it. */
  size_t rest = (MLC_CHUNK_FREE_PAGES - (MLC_LARGE_MAX >> MLC_PAGE_SHIFT)) << MLC_PAGE_SHIFT;
  char *q = mlc_arena_large_alloc(a, rest, 0, false);
  ck_assert_ptr_eq(q, p[N - 2] + MLC_LARGE_MAX);
  ck_assert(mlc_arena_validate(a));
  /* With its copy of the run mask up to date, the next one goes to the chunk before. */
  char *r = mlc_arena_large_alloc(a, rest, 0, false);
  ck_assert_ptr_eq(r, p[N - 3] + MLC_LARGE_MAX);
  mlc_arena_large_free(mlc_pagemap_entry(q), q);
  mlc_arena_large_free(mlc_pagemap_entry(r), r);
  for (int k = 0; k < N; k++)
    if (p[k]) mlc_arena_large_free(mlc_pagemap_entry(p[k]), p[k]);
  ck_assert_uint_eq(a->nrefs, 0);
  ck_assert(mlc_arena_validate(a));
}
END_TEST

START_TEST(test_chunk_state_random) {
  mlc_arena_t *a = new_arena();
  enum { N = 64 };
  char *runs[N] = {0};
  void *objs[N] = {0};
  uint64_t x = 12345;
  for (int step = 0; step < 3000; step++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned r = (unsigned)(x >> 33), k = r % N;
    switch ((r >> 8) % 4) {
    case 0: /* a run of 1..400 pages, sometimes aligned */
      if (!runs[k]) {
        size_t align = (r >> 12) % 4 == 0 ? (size_t)MLC_PAGE << ((r >> 14) % 6) : 0;
        runs[k] = mlc_arena_large_alloc(a, (size_t)(1 + (r >> 16) % 400) * MLC_PAGE, align, false);
        ck_assert_ptr_nonnull(runs[k]);
        if (align) ck_assert_uint_eq((uintptr_t)runs[k] % align, 0);
      } else {
        mlc_arena_large_free(mlc_pagemap_entry(runs[k]), runs[k]);
        runs[k] = NULL;
      }
      break;
    case 1: /* grow or shrink in place */
      if (runs[k]) mlc_arena_large_resize(mlc_pagemap_entry(runs[k]), runs[k], (size_t)(1 + (r >> 16) % 60) * MLC_PAGE);
      break;
    case 2: { /* an object of a large class: whole slabs come and go */
      unsigned cls = MLC_NCLASSES - 1 - (r >> 12) % 3;
      if (!objs[k]) {
        ck_assert_uint_eq(mlc_bin_alloc_batch(&a->bins[cls], &objs[k], 1), 1);
      } else {
        mlc_bin_free_batch(&objs[k], 1, mlc_pagemap_class(objs[k]));
        objs[k] = NULL;
      }
      break;
    }
    default:
      if ((r >> 12) % 50 == 0) mlc_arena_purge(a, mlc_os_now_ns(), 0);
      break;
    }
    ck_assert_msg(mlc_arena_validate(a), "chunk state wrong after step %d", step);
  }
  for (int k = 0; k < N; k++) {
    if (runs[k]) mlc_arena_large_free(mlc_pagemap_entry(runs[k]), runs[k]);
    if (objs[k]) mlc_bin_free_batch(&objs[k], 1, mlc_pagemap_class(objs[k]));
  }
  ck_assert(mlc_arena_validate(a));
}
END_TEST

int main(void) {
  Suite *s = suite_create("arena");
  TCase *tc = tcase_create("arena");
  tcase_add_test(tc, test_round_robin);
  tcase_add_test(tc, test_narenas_default);
  tcase_add_test(tc, test_large_alignment_and_reuse);
  tcase_add_test(tc, test_large_best_fit);
  tcase_add_test(tc, test_large_resize_in_place);
  tcase_add_test(tc, test_large_room);
  tcase_add_test(tc, test_large_room_remembered);
  tcase_add_test(tc, test_large_room_split_past_bound);
  tcase_add_test(tc, test_purge_after_decay);
  tcase_add_test(tc, test_purge_whole_kernel_pages);
  tcase_add_test(tc, test_spare_chunk);
  tcase_add_test(tc, test_slab_borrows_resident_granule);
  tcase_add_test(tc, test_spares_follow_peak);
  tcase_add_test(tc, test_spares_oldest_first);
  tcase_add_test(tc, test_spares_peak_survives_window);
  tcase_add_test(tc, test_granule_reuse_across_classes);
  tcase_add_test(tc, test_slabs_and_runs_share_chunks);
  tcase_add_test(tc, test_refs_follow_chunks);
  tcase_add_test(tc, test_chunk_state_random);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
