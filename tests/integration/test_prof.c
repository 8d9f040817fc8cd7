/* SPDX-License-Identifier: MIT */
/* The heap profiler through the public API.  main() re-executes the test with
   MELLOC_CONF=prof:true,prof_sample_bytes:512 (and a dump prefix in a directory of its
   own); each test runs in its own forked process, whose profile starts empty (a fork
   child's does).  The dumps are read back here: a gzip reader for the stored blocks
   melloc writes (CRC checked) and a minimal protobuf reader for profile.proto; stack
   addresses are named with dladdr (the test is linked with -export-dynamic).

   Why 10% is a safe bound.  A sample stands for s/p(s) bytes, p(s) = 1 - exp(-s/M), and
   the estimate's variance over a site is the sum of s^2 (1 - p)/p, at most s*M per
   object ((1 - p)/p <= M/s).  So the standard deviation of a site of X bytes is at most
   sqrt(X*M): with M = 512 bytes (instead of the default 512 KiB, which would sample the
   1 MiB site about twice) it is 2.2% of 1 MiB, 0.55% of 16 MiB and 0.28% of 64 MiB, and
   10% is more than 4.5 standard deviations for each site (a false failure about once in
   300,000 runs).  At this rate most blocks of 1 KiB and more are sampled, and each
   sampled small block takes a run of three pages: the test peaks at about 130 MiB. */
#define _GNU_SOURCE
#include <check.h>

#include "../check_run.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <melloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_MEAN 512
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static char dir[256]; /* the dump directory (MELLOC_PROF_TEST_DIR) */

/* ---- Reading a dump ---- */

typedef struct {
  uint8_t *data;
  size_t len;
} buf_t;

static uint32_t crc32_of(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The file's contents, ungzipped (stored blocks only, which is what melloc writes). */
static buf_t read_gz(const char *path) {
  buf_t out = {0};
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *raw = malloc((size_t)n);
  ck_assert_int_eq(fread(raw, 1, (size_t)n, f), n);
  fclose(f);
  ck_assert_msg(n >= 18 && raw[0] == 0x1f && raw[1] == 0x8b && raw[2] == 8, "%s: not gzip", path);
  ck_assert_int_eq(raw[3], 0); /* no optional fields */
  out.data = malloc((size_t)n);
  size_t i = 10;
  for (;;) {
    ck_assert_uint_le(i + 5, (size_t)n);
    uint8_t h = raw[i];
    ck_assert_msg(((h >> 1) & 3) == 0, "not a stored block");
    size_t len = raw[i + 1] | (size_t)raw[i + 2] << 8;
    size_t nlen = raw[i + 3] | (size_t)raw[i + 4] << 8;
    ck_assert_uint_eq(len, (~nlen) & 0xffff);
    i += 5;
    ck_assert_uint_le(i + len, (size_t)n);
    memcpy(out.data + out.len, raw + i, len);
    out.len += len;
    i += len;
    if (h & 1) break;
  }
  ck_assert_uint_eq(i + 8, (size_t)n);
  ck_assert_uint_eq(le32(raw + i), crc32_of(out.data, out.len));
  ck_assert_uint_eq(le32(raw + i + 4), (uint32_t)out.len);
  free(raw);
  return out;
}

typedef struct {
  const uint8_t *p, *end;
} rd_t;

static uint64_t rd_varint(rd_t *r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    ck_assert_msg(r->p < r->end, "truncated varint");
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  ck_abort_msg("varint too long");
  return 0;
}

/* The next field: its number and wire type; for type 2 *sub is its contents, for type
   0 *v its value. */
static bool rd_field(rd_t *r, unsigned *field, uint64_t *v, rd_t *sub) {
  if (r->p >= r->end) return false;
  uint64_t key = rd_varint(r);
  *field = (unsigned)(key >> 3);
  switch (key & 7) {
    case 0: *v = rd_varint(r); break;
    case 2: {
      uint64_t n = rd_varint(r);
      ck_assert_uint_le(n, (uint64_t)(r->end - r->p));
      sub->p = r->p;
      sub->end = r->p + n;
      r->p += n;
      break;
    }
    case 1: r->p += 8; break;
    case 5: r->p += 4; break;
    default: ck_abort_msg("wire type %u", (unsigned)(key & 7));
  }
  return true;
}

enum { MAXV = 8, MAXSTR = 4096, MAXLOC = 65536, MAXSAMP = 65536, MAXDEPTH = 130 };

typedef struct {
  unsigned nloc;
  uint64_t loc[MAXDEPTH];
  int64_t v[MAXV];
} sample_t;

typedef struct {
  unsigned nstr, ntypes, nsamples, nlocs, nmaps;
  char *str[MAXSTR];
  int64_t type[MAXV], unit[MAXV];
  sample_t *samples;
  uint64_t loc_id[MAXLOC], loc_addr[MAXLOC];
  int64_t map_file[64];
  int64_t default_type, period;
} prof_t;

/* Packed or not: the repeated varints of a field. */
static unsigned rd_repeated(rd_t *r, unsigned field_type, uint64_t v, rd_t sub, uint64_t *out, unsigned max) {
  unsigned n = 0;
  if (field_type == 0) {
    out[n++] = v;
    return n;
  }
  while (sub.p < sub.end && n < max) out[n++] = rd_varint(&sub);
  (void)r;
  return n;
}

static prof_t *parse_profile(const buf_t *b) {
  prof_t *pr = calloc(1, sizeof(*pr));
  pr->samples = calloc(MAXSAMP, sizeof(sample_t));
  rd_t r = {b->data, b->data + b->len}, sub;
  unsigned f;
  uint64_t v;
  while (rd_field(&r, &f, &v, &sub)) {
    if (f == 1) { /* sample_type */
      rd_t s = sub, ss;
      unsigned g;
      uint64_t w;
      while (rd_field(&s, &g, &w, &ss)) {
        if (g == 1) pr->type[pr->ntypes] = (int64_t)w;
        if (g == 2) pr->unit[pr->ntypes] = (int64_t)w;
      }
      pr->ntypes++;
    } else if (f == 2) {
      ck_assert_uint_lt(pr->nsamples, MAXSAMP);
      sample_t *sm = &pr->samples[pr->nsamples++];
      rd_t s = sub, ss;
      unsigned g;
      uint64_t w;
      while (rd_field(&s, &g, &w, &ss)) {
        const uint8_t *start = s.p;
        (void)start;
        if (g == 1) sm->nloc += rd_repeated(&s, ss.p ? 2 : 0, w, ss, sm->loc + sm->nloc, MAXDEPTH - sm->nloc);
        if (g == 2) {
          uint64_t vals[MAXV];
          unsigned k = rd_repeated(&s, 2, w, ss, vals, MAXV);
          for (unsigned j = 0; j < k; j++) sm->v[j] = (int64_t)vals[j];
        }
        ss.p = NULL;
      }
    } else if (f == 3) {
      rd_t s = sub, ss;
      unsigned g;
      uint64_t w;
      while (rd_field(&s, &g, &w, &ss))
        if (g == 5 && pr->nmaps < 64) pr->map_file[pr->nmaps] = (int64_t)w;
      pr->nmaps++;
    } else if (f == 4) {
      rd_t s = sub, ss;
      unsigned g;
      uint64_t w;
      ck_assert_uint_lt(pr->nlocs, MAXLOC);
      while (rd_field(&s, &g, &w, &ss)) {
        if (g == 1) pr->loc_id[pr->nlocs] = w;
        if (g == 3) pr->loc_addr[pr->nlocs] = w;
      }
      pr->nlocs++;
    } else if (f == 6) {
      ck_assert_uint_lt(pr->nstr, MAXSTR);
      size_t n = (size_t)(sub.end - sub.p);
      char *s = malloc(n + 1);
      memcpy(s, sub.p, n);
      s[n] = '\0';
      pr->str[pr->nstr++] = s;
    } else if (f == 12) {
      pr->period = (int64_t)v;
    } else if (f == 14) {
      pr->default_type = (int64_t)v;
    }
  }
  ck_assert_uint_ge(pr->nstr, 1);
  ck_assert_str_eq(pr->str[0], "");
  return pr;
}

static prof_t *load_profile(const char *path) {
  buf_t b = read_gz(path);
  prof_t *pr = parse_profile(&b);
  free(b.data);
  return pr;
}

static const char *pstr(const prof_t *pr, int64_t i) {
  ck_assert_msg(i >= 0 && (uint64_t)i < pr->nstr, "string index %lld", (long long)i);
  return pr->str[i];
}

/* Index of the sample type named name. */
static int type_index(const prof_t *pr, const char *name) {
  for (unsigned i = 0; i < pr->ntypes; i++)
    if (!strcmp(pstr(pr, pr->type[i]), name)) return (int)i;
  ck_abort_msg("no sample type %s", name);
  return -1;
}

static uint64_t loc_addr(const prof_t *pr, uint64_t id) {
  for (unsigned i = 0; i < pr->nlocs; i++)
    if (pr->loc_id[i] == id) return pr->loc_addr[i];
  ck_abort_msg("location %llu missing", (unsigned long long)id);
  return 0;
}

/* Whether sample s has a frame in the function named fn. */
static bool sample_in(const prof_t *pr, const sample_t *s, const char *fn) {
  for (unsigned k = 0; k < s->nloc; k++) {
    Dl_info info;
    uint64_t a = loc_addr(pr, s->loc[k]);
    if (dladdr((void *)(uintptr_t)a, &info) && info.dli_sname && !strcmp(info.dli_sname, fn))
      return true;
  }
  return false;
}

/* Sum of value type over the samples with a frame in fn. */
static int64_t site_sum(const prof_t *pr, const char *fn, const char *type) {
  int t = type_index(pr, type);
  int64_t sum = 0;
  for (unsigned i = 0; i < pr->nsamples; i++)
    if (sample_in(pr, &pr->samples[i], fn)) sum += pr->samples[i].v[t];
  return sum;
}

static int64_t total(const prof_t *pr, const char *type) {
  int t = type_index(pr, type);
  int64_t sum = 0;
  for (unsigned i = 0; i < pr->nsamples; i++) sum += pr->samples[i].v[t];
  return sum;
}

/* ---- Three sites ---- */

static void **blocks_big, **blocks_mid, **blocks_small;
static size_t nbig, nmid, nsmall;

/* Exported (the build hides symbols by default), so that dladdr names them. */
#if defined(__clang__)
#define SITE __attribute__((noinline, visibility("default")))
#else
#define SITE __attribute__((noinline, noclone, visibility("default")))
#endif
/* Blocks of sizes[i % n] (sizes that are their own usable size: class sizes and whole
   pages) until total bytes; returns the bytes. */
static size_t fill(void ***out, size_t *count, size_t total_bytes, const size_t *sizes, size_t n) {
  size_t cap = total_bytes / sizes[0] + 16, got = 0, k = 0;
  /* The array of pointers is not part of the site's truth: from mmap, not malloc. */
  void **a = mmap(NULL, (cap + 1) * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) abort();
  a[0] = (void *)cap; /* for free_all */
  *out = a + 1;
  while (got < total_bytes) {
    size_t s = sizes[k % n];
    void *p = malloc(s);
    /* not ck_assert: check's assertions allocate (and free) to record the place, which
       would count in the site's alloc_* */
    if (!p) abort();
    memset(p, (int)k, s);
    (*out)[k++] = p;
    got += s;
  }
  *count = k;
  return got;
}

SITE size_t alloc_big_site(void) {
  static const size_t sizes[] = {16 * KiB, 64 * KiB, 256 * KiB, 3 * MiB};
  size_t r = fill(&blocks_big, &nbig, 64 * MiB, sizes, 4);
  __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays on the stack */
  return r;
}

SITE size_t alloc_mid_site(void) {
  static const size_t sizes[] = {4096, 8192, 5120};
  size_t r = fill(&blocks_mid, &nmid, 16 * MiB, sizes, 3);
  __asm__ volatile("" ::: "memory");
  return r;
}

SITE size_t alloc_small_site(void) {
  static const size_t sizes[] = {64, 256, 1024, 48};
  size_t r = fill(&blocks_small, &nsmall, 1 * MiB, sizes, 4);
  __asm__ volatile("" ::: "memory");
  return r;
}

/* 1 MiB of small blocks, each then grown to twice its size by realloc (class sizes
   whose doubles are class sizes): 2 MiB live.  A sampled block is a run that could
   grow in place; it must move as an unsampled block does, or the site counts twice. */
static void **blocks_re;
static size_t nre;
SITE size_t alloc_realloc_site(void) {
  static const size_t sizes[] = {48, 80, 112, 160, 224, 320, 448, 640, 1024};
  fill(&blocks_re, &nre, 1 * MiB, sizes, 9);
  size_t total = 0;
  for (size_t i = 0; i < nre; i++) {
    size_t s = sizes[i % 9] * 2;
    void *q = realloc(blocks_re[i], s);
    if (!q) abort();
    blocks_re[i] = q;
    total += s;
  }
  __asm__ volatile("" ::: "memory");
  return total;
}

static void free_all(void **b, size_t n) {
  for (size_t i = 0; i < n; i++) free(b[i]);
  munmap(b - 1, ((size_t)b[-1] + 1) * sizeof(void *));
}

static void dump_to(const char *name, char *path, size_t size) {
  snprintf(path, size, "%s/%s", dir, name);
  int err = melloc_prof_dump(path);
  ck_assert_msg(err == 0, "melloc_prof_dump(%s): %s", path, strerror(err));
}

static void check_close(const char *what, int64_t est, size_t truth) {
  double rel = ((double)est - (double)truth) / (double)truth;
  printf("%-18s true %10zu  estimated %10lld  (%+.2f%%)\n", what, truth, (long long)est, rel * 100);
  ck_assert_msg(rel < 0.10 && rel > -0.10, "%s: estimated %lld bytes, true %zu (%+.1f%%)", what,
                (long long)est, truth, rel * 100);
}

/* Estimated in-use bytes per function within 10% (see the top), the freed site gone
   from inuse but in alloc, and the statistics that count samples. */
START_TEST(test_estimates) {
  size_t tbig = alloc_big_site();
  size_t tmid = alloc_mid_site();
  size_t tsmall = alloc_small_site();
  free_all(blocks_mid, nmid);
  melloc_stats_t st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ck_assert_int_eq(melloc_stats_get(&st), 0);
  ck_assert_uint_ge(st.version, 3);
  ck_assert_uint_gt(st.prof_samples, 1000);
  ck_assert_msg(st.prof_bytes > (tbig + tsmall) * 9 / 10, "stats: prof_bytes %llu",
                (unsigned long long)st.prof_bytes);
  char path[512];
  dump_to("estimates.pb.gz", path, sizeof(path));
  prof_t *pr = load_profile(path);
  ck_assert_uint_ge(pr->ntypes, 4);
  ck_assert_int_eq(type_index(pr, "inuse_objects"), 0);
  ck_assert_int_eq(type_index(pr, "inuse_space"), 1);
  ck_assert_int_eq(type_index(pr, "alloc_objects"), 2);
  ck_assert_int_eq(type_index(pr, "alloc_space"), 3);
  ck_assert_str_eq(pstr(pr, pr->unit[1]), "bytes");
  ck_assert_str_eq(pstr(pr, pr->default_type), "inuse_space");
  ck_assert_int_eq(pr->period, TEST_MEAN);
  /* The process's mappings, this program's among them. */
  char exe[512];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ck_assert_int_gt(n, 0);
  exe[n] = '\0';
  bool found = false;
  for (unsigned i = 0; i < pr->nmaps && i < 64; i++) found |= !strcmp(pstr(pr, pr->map_file[i]), exe);
  ck_assert_msg(found, "no mapping for %s among %u", exe, pr->nmaps);
  check_close("alloc_big_site", site_sum(pr, "alloc_big_site", "inuse_space"), tbig);
  check_close("alloc_small_site", site_sum(pr, "alloc_small_site", "inuse_space"), tsmall);
  check_close("alloc_mid_site (alloc)", site_sum(pr, "alloc_mid_site", "alloc_space"), tmid);
  ck_assert_int_eq(site_sum(pr, "alloc_mid_site", "inuse_space"), 0);
  ck_assert_int_eq(site_sum(pr, "alloc_mid_site", "inuse_objects"), 0);
  /* Objects: the big site's blocks (16 KiB and up) are all sampled, p > 1 - e^-32.  (The
     small site's object count is not checked: its 48-byte blocks are sampled with
     p = 0.09, and its standard deviation is 4%.) */
  check_close("alloc_big_site objects", site_sum(pr, "alloc_big_site", "inuse_objects"), nbig);
  /* Every sampled stack starts outside melloc (its own frames are left off). */
  for (unsigned i = 0; i < pr->nsamples; i++) {
    Dl_info info;
    ck_assert_uint_gt(pr->samples[i].nloc, 0);
    uint64_t a = loc_addr(pr, pr->samples[i].loc[0]);
    if (dladdr((void *)(uintptr_t)a, &info) && info.dli_sname)
      ck_assert_msg(strncmp(info.dli_sname, "mlc_", 4) && strncmp(info.dli_sname, "melloc_", 7),
                    "a stack starts in %s", info.dli_sname);
  }
  /* The folded stacks next to it: the live sites, outermost frame first. */
  char folded[512];
  snprintf(folded, sizeof(folded), "%s/estimates.folded", dir);
  FILE *f = fopen(folded, "r");
  ck_assert_ptr_nonnull(f);
  char line[8192];
  bool big_line = false, mid_line = false;
  while (fgets(line, sizeof(line), f)) {
    char *sp = strrchr(line, ' ');
    ck_assert_ptr_nonnull(sp);
    ck_assert_int_gt(atoll(sp + 1), 0);
    if (strstr(line, "alloc_big_site+")) big_line = true;
    if (strstr(line, "alloc_mid_site+")) mid_line = true;
    ck_assert_ptr_null(strstr(line, "alloc_small_site+") ? strstr(line, ";mlc_") : NULL);
  }
  fclose(f);
  ck_assert(big_line);
  ck_assert(!mid_line);
  free_all(blocks_big, nbig);
  free_all(blocks_small, nsmall);
}
END_TEST

/* A site whose blocks realloc grows: the estimate is of what it holds after. */
START_TEST(test_realloc_estimate) {
  size_t t = alloc_realloc_site();
  char path[512];
  dump_to("realloc.pb.gz", path, sizeof(path));
  prof_t *pr = load_profile(path);
  check_close("alloc_realloc_site", site_sum(pr, "alloc_realloc_site", "inuse_space"), t);
  free_all(blocks_re, nre);
}
END_TEST

/* A sampled small block is a run of pages: usable size at least what was asked for,
   every byte writable, realloc keeps the contents both ways. */
START_TEST(test_sampled_blocks) {
  enum { N = 200 };
  void *p[N];
  int sampled = 0;
  for (int i = 0; i < N; i++) {
    size_t s = 4096 + (size_t)(i % 3) * 1024; /* sampled with probability ~1 - e^-8 */
    p[i] = malloc(s);
    ck_assert_ptr_nonnull(p[i]);
    size_t u = malloc_usable_size(p[i]);
    ck_assert_uint_ge(u, s);
    if (u > 16384) sampled++; /* a sample is a run of pages, above the small classes */
    memset(p[i], i, u);
  }
  ck_assert_int_gt(sampled, N / 2);
  for (int i = 0; i < N; i++) {
    unsigned char *q = realloc(p[i], i % 2 ? 100 : 20000);
    ck_assert_ptr_nonnull(q);
    for (size_t k = 0; k < 100; k++) ck_assert_int_eq(q[k], (unsigned char)i);
    ck_assert_uint_ge(malloc_usable_size(q), i % 2 ? 100u : 20000u);
    free(q);
  }
  /* aligned requests that land in small classes keep their alignment when sampled */
  for (int i = 0; i < 64; i++) {
    void *a = aligned_alloc(8192, 8192);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq((uintptr_t)a % 8192, 0);
    void *b = NULL;
    ck_assert_int_eq(posix_memalign(&b, 4096, 4096), 0);
    ck_assert_uint_eq((uintptr_t)b % 4096, 0);
    void *c = calloc(1, 4096);
    for (int k = 0; k < 4096; k++) ck_assert_int_eq(((char *)c)[k], 0);
    free(a);
    free(b);
    free(c);
  }
  melloc_stats_t st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ck_assert_int_eq(melloc_stats_get(&st), 0);
  ck_assert_uint_lt(st.prof_samples, 50); /* all freed: only the suite's own remain */
}
END_TEST

/* The fork child's profile starts empty and its default dump name has its own PID. */
START_TEST(test_fork) {
  size_t t = alloc_small_site();
  (void)t;
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    melloc_stats_t st;
    memset(&st, 0, sizeof(st));
    st.size = sizeof(st);
    if (melloc_stats_get(&st) != 0 || st.prof_samples != 0) _exit(1);
    void *x = malloc(100000);
    if (melloc_prof_dump(NULL) != 0) _exit(2);
    free(x);
    _exit(0);
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
  char path[512];
  snprintf(path, sizeof(path), "%s/p.%d.0.pb.gz", dir, (int)pid);
  prof_t *pr = load_profile(path);
  /* Only the child's own block, nothing of the parent's small site. */
  ck_assert_int_eq(site_sum(pr, "alloc_small_site", "inuse_space"), 0);
  ck_assert_int_eq(total(pr, "inuse_space"), 102400);
  /* the parent's profile still has its site */
  char ppath[512];
  dump_to("parent.pb.gz", ppath, sizeof(ppath));
  prof_t *pp = load_profile(ppath);
  ck_assert_int_gt(site_sum(pp, "alloc_small_site", "inuse_space"), 0);
  free_all(blocks_small, nsmall);
}
END_TEST

/* Dumps while threads allocate, free and exit. */
static int stop_threads;
static void *churn(void *arg) {
  (void)arg;
  void *keep[64] = {0};
  for (int i = 0; i < 2000; i++) {
    int k = i % 64;
    free(keep[k]);
    keep[k] = malloc((size_t)(16 + (i * 37) % 9000));
  }
  for (int k = 0; k < 64; k++) free(keep[k]);
  return NULL;
}

static void *spawner(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&stop_threads, __ATOMIC_RELAXED)) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  }
  return NULL;
}

START_TEST(test_threads_exit_during_dump) {
  pthread_t sp;
  ck_assert_int_eq(pthread_create(&sp, NULL, spawner, NULL), 0);
  for (int i = 0; i < 20; i++) {
    char name[64], path[512];
    snprintf(name, sizeof(name), "threads.%d.pb.gz", i);
    dump_to(name, path, sizeof(path));
    prof_t *pr = load_profile(path);
    ck_assert_uint_ge(pr->ntypes, 4);
    usleep(2000);
  }
  __atomic_store_n(&stop_threads, 1, __ATOMIC_RELAXED);
  pthread_join(sp, NULL);
}
END_TEST

/* A path that cannot be written: its errno value, and the program goes on. */
START_TEST(test_bad_path) {
  ck_assert_int_eq(melloc_prof_dump("/nonexistent-melloc-dir/x.pb.gz"), ENOENT);
  ck_assert_int_eq(melloc_prof_dump(dir), EISDIR);
  void *p = malloc(100);
  ck_assert_ptr_nonnull(p);
  free(p);
  char path[512];
  dump_to("after.pb.gz", path, sizeof(path));
}
END_TEST

/* Reset: alloc counts start again, in-use counts stay. */
START_TEST(test_reset) {
  size_t t = alloc_small_site();
  melloc_prof_reset();
  char path[512];
  dump_to("reset.pb.gz", path, sizeof(path));
  prof_t *pr = load_profile(path);
  ck_assert_int_eq(site_sum(pr, "alloc_small_site", "alloc_space"), 0);
  check_close("after reset", site_sum(pr, "alloc_small_site", "inuse_space"), t);
  free_all(blocks_small, nsmall);
}
END_TEST

/* The settings read back; none may change once running. */
START_TEST(test_settings) {
  char v[256];
  ck_assert_int_eq(melloc_option_get("prof", v, sizeof(v)), 0);
  ck_assert_str_eq(v, "true");
  ck_assert_int_eq(melloc_option_get("prof_sample_bytes", v, sizeof(v)), 0);
  ck_assert_str_eq(v, "512");
  ck_assert_int_eq(melloc_option_get("prof_depth", v, sizeof(v)), 0);
  ck_assert_str_eq(v, "64");
  ck_assert_int_eq(melloc_option_get("prof_prefix", v, sizeof(v)), 0);
  char want[300];
  snprintf(want, sizeof(want), "%s/p", dir);
  ck_assert_str_eq(v, want);
  ck_assert_int_eq(melloc_option_set("prof", "false"), EPERM);
  ck_assert_int_eq(melloc_option_set("prof_sample_bytes", "4096"), EPERM);
  ck_assert_int_eq(melloc_option_set("prof_prefix", "/tmp/x"), EPERM);
  ck_assert_int_eq(melloc_option_set("prof_prefix", want), 0);
  ck_assert_int_eq(melloc_option_set("prof_depth", "0"), EINVAL);
  ck_assert_int_eq(melloc_option_set("prof_leak", "true"), 0);
  ck_assert_int_eq(melloc_option_set("prof_leak", "false"), 0);
}
END_TEST

/* ---- Child programs: the leak report, the dump for pprof ---- */

SITE void *leak_site(size_t n) {
  void *p = malloc(n);
  __asm__ volatile("" ::: "memory");
  return p;
}

void *leak_kept[4096]; /* reachable, as a leak often is: the report counts what is live */
SITE int leak_child(void) {
  for (int i = 0; i < 4096; i++) leak_kept[i] = leak_site(1024);
  void *q = malloc(2000000); /* freed: not in the report */
  free(q);
  return 0;
}

/* The leak report names the exact site. */
START_TEST(test_leak_report) {
  char cmd[1024], out[512];
  snprintf(out, sizeof(out), "%s/leak.err", dir);
  snprintf(cmd, sizeof(cmd),
           "MELLOC_CONF=prof:true,prof_leak:true,prof_sample_bytes:4096 /proc/%d/exe --leak-child 2>%s",
           (int)getpid(), out);
  ck_assert_int_eq(system(cmd), 0);
  FILE *f = fopen(out, "r");
  ck_assert_ptr_nonnull(f);
  char line[2048], first[2048] = "";
  bool header = false;
  while (fgets(line, sizeof(line), f)) {
    if (!strncmp(line, "melloc: leak report:", 20)) header = true;
    if (!strncmp(line, "melloc: leak:", 13) && !first[0]) snprintf(first, sizeof(first), "%s", line);
  }
  fclose(f);
  ck_assert(header);
  /* "melloc: leak: N bytes in M objects allocated at leak_site+0x.. <- leak_child+..." */
  ck_assert_msg(strstr(first, " allocated at leak_site+0x") != NULL, "first leak line: %s", first);
  ck_assert_msg(strstr(first, "<- leak_child+0x") != NULL, "first leak line: %s", first);
  long long bytes = atoll(first + 14);
  ck_assert_msg(bytes > 4096LL * 1024 * 8 / 10 && bytes < 4096LL * 1024 * 12 / 10, "leak: %lld bytes", bytes);
}
END_TEST

/* --dump PATH: the three sites, the middle one freed, a dump at PATH (for pprof). */
static int dump_child(const char *path) {
  alloc_big_site();
  alloc_mid_site();
  alloc_small_site();
  free_all(blocks_mid, nmid);
  int err = melloc_prof_dump(path);
  if (err) fprintf(stderr, "melloc_prof_dump: %s\n", strerror(err));
  return err ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--leak-child")) return leak_child();
  if (argc == 3 && !strcmp(argv[1], "--dump")) return dump_child(argv[2]);
  const char *d = getenv("MELLOC_PROF_TEST_DIR");
  if (!d) {
    /* Again with profiling on (settings are read once, at start). */
    char tmpl[] = "/tmp/melloc-prof-test.XXXXXX";
    if (!mkdtemp(tmpl)) return 99;
    char conf[512];
    const char *old = getenv("MELLOC_CONF");
    snprintf(conf, sizeof(conf), "%s%sprof:true,prof_sample_bytes:%d,prof_prefix:%s/p", old ? old : "",
             old && *old ? "," : "", TEST_MEAN, tmpl);
    setenv("MELLOC_CONF", conf, 1);
    setenv("MELLOC_PROF_TEST_DIR", tmpl, 1);
    pid_t pid = fork();
    if (pid == 0) {
      execv("/proc/self/exe", argv);
      _exit(99);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    char rm[600];
    snprintf(rm, sizeof(rm), "rm -rf '%s'", tmpl);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmpl);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
  }
  snprintf(dir, sizeof(dir), "%s", d);
  char v[16];
  if (melloc_option_get("prof", v, sizeof(v)) != 0 || strcmp(v, "true") != 0) {
    printf("SKIP: profiling is not available in this build (%s)\n", v);
    return 77;
  }
  Suite *s = suite_create("prof");
  TCase *tc = tcase_create("prof");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_estimates);
  tcase_add_test(tc, test_realloc_estimate);
  tcase_add_test(tc, test_sampled_blocks);
  tcase_add_test(tc, test_fork);
  tcase_add_test(tc, test_threads_exit_during_dump);
  tcase_add_test(tc, test_bad_path);
  tcase_add_test(tc, test_reset);
  tcase_add_test(tc, test_settings);
  tcase_add_test(tc, test_leak_report);
  suite_add_tcase(s, tc);
  return mlc_check_run(s);
}
