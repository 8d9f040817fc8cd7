/* SPDX-License-Identifier: MIT */
/*
 * Statistics and the glibc extensions built on them (malloc_trim, malloc_stats,
 * mallinfo, mallinfo2, mallopt, malloc_info), and the statistics printed at exit.
 * Everything here is a slow path: counters come from per-bin and per-arena state that
 * is updated under locks the slow paths already hold, merged when read.
 */
#include "internal.h"

#include "arena.h"
#include "base.h"
#include "bin.h"
#include "chunk.h"
#include "gc.h"
#include "init.h"
#include "os.h"
#include "prof.h"
#include "sizeclass.h"
#include "stats.h"
#include "tcache.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

_Static_assert(MLC_NCLASSES - 1 <= MELLOC_STATS_NCLASSES + MELLOC_STATS_NCLASSES_MORE,
               "melloc_stats_t has room for every size class");

/* Size class i + 1 of st: classes, then classes_more. */
static melloc_class_stats_t *mlc_stats_class(melloc_stats_t *st, unsigned i) {
  return i < MELLOC_STATS_NCLASSES ? &st->classes[i] : &st->classes_more[i - MELLOC_STATS_NCLASSES];
}

void mlc_stats_gather(melloc_stats_t *st, bool resident) {
  size_t size = st->size;
  memset(st, 0, sizeof(*st));
  st->size = size;
  st->version = MELLOC_STATS_VERSION;
  if (!mlc_boot()) return;
  st->narenas = mlc_narenas;
  uint64_t cached[MLC_NCLASSES];
  mlc_tcache_cached_objects(cached);
  for (unsigned c = 1; c < MLC_NCLASSES; c++) {
    melloc_class_stats_t *cs = mlc_stats_class(st, c - 1);
    cs->size = mlc_class_size[c];
    for (unsigned i = 0; i < mlc_narenas; i++) {
      uint64_t m, f;
      size_t n;
      mlc_bin_stats(&mlc_arenas[i]->bins[c], &m, &f, &n);
      cs->nmalloc += m;
      cs->nfree += f;
      cs->slabs += n;
    }
    uint64_t out = cs->nmalloc - cs->nfree;
    cs->live = out > cached[c] ? out - cached[c] : 0;
    st->small_allocated += cs->live * cs->size;
    st->cached += cached[c] * cs->size;
  }
  for (unsigned i = 0; i < mlc_narenas; i++) {
    size_t large, mapped;
    mlc_arena_stats(mlc_arenas[i], &large, &mapped);
    st->large_allocated += large;
    st->mapped += mapped;
  }
  st->mapped += mlc_arena_spares_mapped();
  size_t lcached = mlc_tcache_cached_large_bytes();
  st->large_allocated = st->large_allocated > lcached ? st->large_allocated - lcached : 0;
  st->cached += lcached;
  size_t huge_live, huge_held, huge_cached;
  mlc_huge_stats(&huge_live, &huge_held, &huge_cached);
  st->huge_allocated = huge_live;
  st->mapped += huge_held + huge_cached + mlc_base_mapped();
  st->allocated = st->small_allocated + st->large_allocated + st->huge_allocated;
  st->resident = resident ? mlc_os_rss_bytes() : 0;
  st->purged = (size_t)mlc_load(&mlc_gc_bytes_purged);
  st->gc_passes = mlc_load(&mlc_gc_passes);
  st->gc_objects_returned = mlc_load(&mlc_gc_objects_returned);
  mlc_os_counts_t oc;
  mlc_os_counts(&oc);
  st->page_size = mlc_os_page_size();
  st->purges_refused = oc.purge_refused;
  st->purges_failed = oc.purge_failed;
  st->membarriers_refused = oc.membarrier_refused;
  st->remaps_refused = oc.remap_refused;
  mlc_prof_stats(&st->prof_samples, &st->prof_bytes);
}

/* ---- Printing, a line at a time through the callback ---- */

static void mlc_write_stderr(void *opaque, const char *text) {
  (void)opaque;
  mlc_os_write_stderr(text, strlen(text));
}

typedef struct {
  melloc_write_fn write;
  void *opaque;
} mlc_out_t;

static void mlc_out(mlc_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mlc_out(mlc_out_t *o, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  mlc_vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  o->write(o->opaque, buf);
}

static void mlc_stats_text(mlc_out_t *o, melloc_stats_t *st) {
  mlc_out(o, "___ melloc %s%s statistics ___\n", PACKAGE_VERSION,
          mlc_config_hardened ? " hardened" : "");
  mlc_out(o, "arenas:              %u\n", st->narenas);
  mlc_out(o, "mapped:              %zu bytes\n", st->mapped);
  mlc_out(o, "resident:            %zu bytes\n", st->resident);
  mlc_out(o, "allocated:           %zu bytes (small %zu, large %zu, huge %zu)\n", st->allocated,
          st->small_allocated, st->large_allocated, st->huge_allocated);
  mlc_out(o, "cached in threads:   %zu bytes\n", st->cached);
  mlc_out(o, "purged:              %zu bytes\n", st->purged);
  mlc_out(o, "collector:           %llu passes, %llu objects returned from caches\n",
          (unsigned long long)st->gc_passes, (unsigned long long)st->gc_objects_returned);
  mlc_out(o, "page size:           %zu bytes\n", st->page_size);
  mlc_out(o, "kernel refused:      %llu purges (%llu not done), %llu membarriers, %llu remaps\n",
          (unsigned long long)st->purges_refused, (unsigned long long)st->purges_failed,
          (unsigned long long)st->membarriers_refused, (unsigned long long)st->remaps_refused);
  if (st->prof_samples)
    mlc_out(o, "heap profile:        %llu live samples, standing for %llu bytes\n",
            (unsigned long long)st->prof_samples, (unsigned long long)st->prof_bytes);
  mlc_out(o, "%8s %14s %14s %12s %8s\n", "size", "nmalloc", "nfree", "live", "slabs");
  for (unsigned i = 0; i < MLC_NCLASSES - 1; i++) {
    const melloc_class_stats_t *c = mlc_stats_class(st, i);
    if (!c->nmalloc) continue;
    mlc_out(o, "%8zu %14llu %14llu %12llu %8llu\n", c->size, (unsigned long long)c->nmalloc,
            (unsigned long long)c->nfree, (unsigned long long)c->live, (unsigned long long)c->slabs);
  }
}

static void mlc_stats_json(mlc_out_t *o, melloc_stats_t *st) {
  mlc_out(o, "{\"version\": \"%s\", \"stats_version\": %u, \"narenas\": %u, ", PACKAGE_VERSION,
          st->version, st->narenas);
  mlc_out(o, "\"mapped\": %zu, \"resident\": %zu, \"allocated\": %zu, ", st->mapped, st->resident,
          st->allocated);
  mlc_out(o, "\"small_allocated\": %zu, \"large_allocated\": %zu, \"huge_allocated\": %zu, ",
          st->small_allocated, st->large_allocated, st->huge_allocated);
  mlc_out(o, "\"cached\": %zu, \"purged\": %zu, ", st->cached, st->purged);
  mlc_out(o, "\"gc\": {\"passes\": %llu, \"objects_returned\": %llu}, ",
          (unsigned long long)st->gc_passes, (unsigned long long)st->gc_objects_returned);
  mlc_out(o, "\"page_size\": %zu, \"refused\": {\"purges\": %llu, \"purges_failed\": %llu, "
             "\"membarriers\": %llu, \"remaps\": %llu}, ",
          st->page_size, (unsigned long long)st->purges_refused,
          (unsigned long long)st->purges_failed, (unsigned long long)st->membarriers_refused,
          (unsigned long long)st->remaps_refused);
  mlc_out(o, "\"prof\": {\"samples\": %llu, \"bytes\": %llu}, \"classes\": [",
          (unsigned long long)st->prof_samples, (unsigned long long)st->prof_bytes);
  for (unsigned i = 0; i < MLC_NCLASSES - 1; i++) {
    const melloc_class_stats_t *c = mlc_stats_class(st, i);
    mlc_out(o, "%s{\"size\": %zu, \"nmalloc\": %llu, \"nfree\": %llu, \"live\": %llu, \"slabs\": %llu}",
            i ? ", " : "", c->size, (unsigned long long)c->nmalloc, (unsigned long long)c->nfree,
            (unsigned long long)c->live, (unsigned long long)c->slabs);
  }
  mlc_out(o, "]}\n");
}

MLC_EXPORT int melloc_stats_get(melloc_stats_t *stats) {
  if (!stats || stats->size < offsetof(melloc_stats_t, narenas)) return EINVAL;
  melloc_stats_t full;
  full.size = stats->size;
  mlc_stats_gather(&full, true);
  size_t n = MLC_MIN(stats->size, sizeof(full));
  memcpy(stats, &full, n);
  stats->size = n;
  return 0;
}

MLC_EXPORT int melloc_stats_print(melloc_write_fn write, void *opaque, const char *format) {
  bool json;
  if (!format || !strcmp(format, "text")) json = false;
  else if (!strcmp(format, "json")) json = true;
  else return EINVAL;
  mlc_out_t o = {write ? write : mlc_write_stderr, opaque};
  melloc_stats_t st;
  st.size = sizeof(st);
  mlc_stats_gather(&st, true);
  if (json) mlc_stats_json(&o, &st);
  else mlc_stats_text(&o, &st);
  return 0;
}

static int mlc_stats_fd = -1; /* Atomic: a duplicate of stderr for the exit report */

void mlc_stats_keep_stderr(void) {
  if (__atomic_load_n(&mlc_stats_fd, __ATOMIC_ACQUIRE) >= 0) return;
  int fd = mlc_os_dup_cloexec(2, 100);
  int expected = -1;
  if (fd >= 0 && !__atomic_compare_exchange_n(&mlc_stats_fd, &expected, fd, false,
                                              __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    mlc_os_close(fd);
}

static void mlc_write_fd(void *opaque, const char *text) {
  mlc_os_write_fd(*(int *)opaque, text, strlen(text));
}

/* Statistics at exit when MELLOC_CONF asked for them. */
__attribute__((destructor)) static void mlc_stats_at_exit(void) {
  if (mlc_load_acq(&mlc_boot_state) != 2 || !mlc_load(&mlc_opt.stats_print)) return;
  int fd = __atomic_load_n(&mlc_stats_fd, __ATOMIC_ACQUIRE);
  if (fd < 0) fd = 2;
  int saved = errno;
  melloc_stats_print(mlc_write_fd, &fd, mlc_load(&mlc_opt.stats_json) ? "json" : "text");
  errno = saved;
}

/* ---- The glibc extensions ---- */

#ifndef MELLOC_PREFIX_ONLY

int malloc_trim(size_t pad);
void malloc_stats(void);
int mallopt(int param, int value);
int malloc_info(int options, FILE *fp);

MLC_EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  int saved = errno;
  size_t before_cached = 0, after_cached = 0;
  melloc_stats_t st;
  st.size = sizeof(st);
  mlc_stats_gather(&st, false);
  before_cached = st.cached;
  size_t purged = mlc_gc_collect_now();
  mlc_stats_gather(&st, false);
  after_cached = st.cached;
  errno = saved;
  return purged > 0 || after_cached < before_cached;
}

MLC_EXPORT void malloc_stats(void) { melloc_stats_print(NULL, NULL, "text"); }

/* glibc's struct mallinfo2 and struct mallinfo, field for field. */
struct mlc_mallinfo2 {
  size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct mlc_mallinfo {
  int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

struct mlc_mallinfo2 mallinfo2(void);
struct mlc_mallinfo mallinfo(void);

static struct mlc_mallinfo2 mlc_mallinfo2_now(void) {
  melloc_stats_t st;
  st.size = sizeof(st);
  mlc_stats_gather(&st, false);
  struct mlc_mallinfo2 mi;
  memset(&mi, 0, sizeof(mi));
  mi.arena = st.mapped - st.huge_allocated; /* non-mmapped space, as glibc reports it */
  mi.hblks = 0;
  mi.hblkhd = st.huge_allocated;
  mi.uordblks = st.allocated;
  mi.fordblks = st.mapped > st.allocated ? st.mapped - st.allocated : 0;
  mi.fsmblks = st.cached;
  mi.usmblks = 0;
  mi.keepcost = 0;
  return mi;
}

MLC_EXPORT struct mlc_mallinfo2 mallinfo2(void) { return mlc_mallinfo2_now(); }

MLC_EXPORT struct mlc_mallinfo mallinfo(void) {
  struct mlc_mallinfo2 m = mlc_mallinfo2_now();
  struct mlc_mallinfo r = {(int)m.arena,    (int)m.ordblks,  (int)m.smblks,   (int)m.hblks,
                           (int)m.hblkhd,   (int)m.usmblks,  (int)m.fsmblks,  (int)m.uordblks,
                           (int)m.fordblks, (int)m.keepcost};
  return r;
}

/* glibc's tuning parameters do not apply to melloc (MELLOC_CONF does): accepted and
   ignored, as jemalloc and mimalloc do. */
MLC_EXPORT int mallopt(int param, int value) {
  (void)param;
  (void)value;
  return 1;
}

MLC_EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0 || !fp) {
    errno = EINVAL;
    return -1;
  }
  melloc_stats_t st;
  st.size = sizeof(st);
  mlc_stats_gather(&st, false);
  fprintf(fp, "<malloc version=\"melloc-%s\">\n<total type=\"mapped\" size=\"%zu\"/>\n"
              "<total type=\"allocated\" size=\"%zu\"/>\n<total type=\"cached\" size=\"%zu\"/>\n"
              "</malloc>\n",
          PACKAGE_VERSION, st.mapped, st.allocated, st.cached);
  return 0;
}

#endif /* MELLOC_PREFIX_ONLY */
