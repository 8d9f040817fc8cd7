/* SPDX-License-Identifier: MIT */
/*
 * Settings: MELLOC_CONF (comma-separated key:value pairs, parsed once at boot without
 * allocating) and melloc_option_get/set.  One table describes every key: its kind, its
 * range, its default, whether it may change once the allocator runs, and what else a
 * change at run time must do.  Adding a key is adding a field to mlc_options_t and an
 * entry here.  A bad pair in MELLOC_CONF is reported on one line of stderr and the
 * default is kept.
 */
#include "internal.h"

#include "arena.h"
#include "gc.h"
#include "init.h"
#include "os.h"
#include "prof.h"
#include "sizeclass.h"
#include "stats.h"
#include "util.h"

#include <stdlib.h>

/* Longest interval and decay delay: an hour. */
#define MLC_OPT_HOUR_MS 3600000

typedef enum {
  MLC_OPT_BOOL,  /* true/on/1 or false/off/0 */
  MLC_OPT_U64,   /* decimal, lo..hi */
  MLC_OPT_WORD,  /* words[0] (0) or words[1] (1) */
  MLC_OPT_STR,   /* text of 1..size-1 bytes (a char array field); no comma, as MELLOC_CONF
                    separates pairs with them */
} mlc_opt_kind_t;

typedef struct mlc_opt_desc_s {
  const char *name;
  mlc_opt_kind_t kind;
  uint64_t lo, hi; /* MLC_OPT_U64: the accepted range */
  uint64_t def;    /* the default */
  bool runtime;    /* may change after boot (melloc_option_set) */
  size_t offset;   /* the field of mlc_options_t that holds it, */
  size_t size;     /* and its size (bool, unsigned, uint64_t or size_t) */
  /* After a run-time change to v, or NULL. */
  void (*set_hook)(uint64_t v);
  /* What the allocator uses now, when that is not the stored value, or NULL. */
  uint64_t (*now)(void);
  const char *const *words; /* MLC_OPT_WORD: its two values (0 and 1), else NULL */
  const char *str_def;      /* MLC_OPT_STR: the default */
} mlc_opt_desc_t;

#define MLC_OPT_FIELD(f) offsetof(mlc_options_t, f), sizeof(((mlc_options_t *)0)->f)

static void mlc_opt_gc_set(uint64_t v) {
  if (v) mlc_gc_start();
}
static void mlc_opt_gc_interval_set(uint64_t v) {
  (void)v;
  mlc_gc_wake(); /* the sleeping collector picks the new interval up */
}
static void mlc_opt_stats_print_set(uint64_t v) {
  if (v) mlc_stats_keep_stderr();
}
static void mlc_opt_trace_set(uint64_t v) { mlc_trace_on = mlc_config_debug && v; }
static uint64_t mlc_opt_trace_now(void) { return mlc_trace_on; }
static uint64_t mlc_opt_narenas_now(void) { return mlc_narenas_now(); }
/* Profiling asked for but refused at start (no unwinder) reads false. */
static uint64_t mlc_opt_prof_now(void) { return mlc_prof_active(); }

static const char *const mlc_opt_formats[2] = {"text", "json"};

/* name, kind, lo, hi, default, runtime, field, set_hook, now, words, text default */
static const mlc_opt_desc_t mlc_opt_table[] = {
    {"narenas", MLC_OPT_U64, 1, MLC_MAX_ARENAS, 0, false, MLC_OPT_FIELD(narenas), NULL, mlc_opt_narenas_now, NULL, NULL},
    {"tcache", MLC_OPT_BOOL, 0, 1, true, false, MLC_OPT_FIELD(tcache), NULL, NULL, NULL, NULL},
    {"tcache_max", MLC_OPT_U64, 0, MLC_SMALL_MAX, MLC_SMALL_MAX, false, MLC_OPT_FIELD(tcache_max), NULL, NULL, NULL, NULL},
    {"tcache_swing", MLC_OPT_U64, 0, (uint64_t)64 << 20, (uint64_t)1 << 20, false, MLC_OPT_FIELD(tcache_swing), NULL, NULL, NULL, NULL},
    {"gc", MLC_OPT_BOOL, 0, 1, true, true, MLC_OPT_FIELD(gc), mlc_opt_gc_set, NULL, NULL, NULL},
    {"gc_interval_ms", MLC_OPT_U64, 1, MLC_OPT_HOUR_MS, 1000, true, MLC_OPT_FIELD(gc_interval_ms), mlc_opt_gc_interval_set, NULL, NULL, NULL},
    {"decay_ms", MLC_OPT_U64, 0, MLC_OPT_HOUR_MS, 3000, true, MLC_OPT_FIELD(decay_ms), NULL, NULL, NULL, NULL},
    {"gc_quiet", MLC_OPT_BOOL, 0, 1, true, true, MLC_OPT_FIELD(gc_quiet), NULL, NULL, NULL, NULL},
    {"stats_print", MLC_OPT_BOOL, 0, 1, false, true, MLC_OPT_FIELD(stats_print), mlc_opt_stats_print_set, NULL, NULL, NULL},
    {"stats_format", MLC_OPT_WORD, 0, 1, 0, true, MLC_OPT_FIELD(stats_json), NULL, NULL, mlc_opt_formats, NULL},
    {"trace", MLC_OPT_BOOL, 0, 1, false, true, MLC_OPT_FIELD(trace), mlc_opt_trace_set, mlc_opt_trace_now, NULL, NULL},
    {"prof", MLC_OPT_BOOL, 0, 1, false, false, MLC_OPT_FIELD(prof), NULL, mlc_opt_prof_now, NULL, NULL},
    {"prof_sample_bytes", MLC_OPT_U64, 1, 1099511627776, 524288, false, MLC_OPT_FIELD(prof_sample_bytes), NULL, NULL, NULL, NULL},
    {"prof_depth", MLC_OPT_U64, 1, 128, 64, false, MLC_OPT_FIELD(prof_depth), NULL, NULL, NULL, NULL},
    {"prof_prefix", MLC_OPT_STR, 1, 199, 0, false, MLC_OPT_FIELD(prof_prefix), NULL, NULL, NULL, "melloc.prof"},
    {"prof_dump_at_exit", MLC_OPT_BOOL, 0, 1, false, true, MLC_OPT_FIELD(prof_dump_at_exit), NULL, NULL, NULL, NULL},
    {"prof_leak", MLC_OPT_BOOL, 0, 1, false, true, MLC_OPT_FIELD(prof_leak), NULL, NULL, NULL, NULL},
};
#define MLC_NOPTS (sizeof(mlc_opt_table) / sizeof(mlc_opt_table[0]))

/* The field d describes in opt: relaxed atomics, as run-time changes race with readers. */
static void mlc_opt_store(mlc_options_t *opt, const mlc_opt_desc_t *d, uint64_t v) {
  void *f = (char *)opt + d->offset;
  if (d->kind == MLC_OPT_STR) return; /* mlc_opt_store_str */
  switch (d->size) {
    case sizeof(bool): mlc_store((bool *)f, v != 0); break;
    case sizeof(unsigned): mlc_store((unsigned *)f, (unsigned)v); break;
    default: mlc_store((uint64_t *)f, v); break;
  }
}

static uint64_t mlc_opt_load(const mlc_options_t *opt, const mlc_opt_desc_t *d) {
  const void *f = (const char *)opt + d->offset;
  switch (d->size) {
    case sizeof(bool): return mlc_load((const bool *)f);
    case sizeof(unsigned): return mlc_load((const unsigned *)f);
    default: return mlc_load((const uint64_t *)f);
  }
}

/* A size_t field is stored as the unsigned or uint64_t of its width. */
_Static_assert(sizeof(size_t) == sizeof(uint64_t) || sizeof(size_t) == sizeof(unsigned),
               "size_t fields are stored as uint64_t or unsigned");

/* A text option's value (checked: shorter than its field). */
static void mlc_opt_store_str(mlc_options_t *opt, const mlc_opt_desc_t *d, const char *v, size_t n) {
  char *f = (char *)opt + d->offset;
  memcpy(f, v, n);
  f[n] = '\0';
}

void mlc_options_default(mlc_options_t *opt) {
  memset(opt, 0, sizeof(*opt));
  for (size_t i = 0; i < MLC_NOPTS; i++) {
    const mlc_opt_desc_t *d = &mlc_opt_table[i];
    if (d->kind == MLC_OPT_STR)
      mlc_opt_store_str(opt, d, d->str_def, strlen(d->str_def));
    else
      mlc_opt_store(opt, d, d->def);
  }
}

static const mlc_opt_desc_t *mlc_opt_find(const char *key, size_t klen) {
  for (size_t i = 0; i < MLC_NOPTS; i++)
    if (strlen(mlc_opt_table[i].name) == klen && !memcmp(mlc_opt_table[i].name, key, klen))
      return &mlc_opt_table[i];
  return NULL;
}

static bool mlc_word_is(const char *v, size_t n, const char *word) {
  return strlen(word) == n && !memcmp(v, word, n);
}

static bool mlc_parse_u64(const char *v, size_t n, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (n == 0 || n > 19) return false;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return false;
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  if (x < lo || x > hi) return false;
  *out = x;
  return true;
}

static bool mlc_opt_parse_value(const mlc_opt_desc_t *d, const char *v, size_t n, uint64_t *out) {
  static const char *const yes[] = {"true", "on", "1"}, *const no[] = {"false", "off", "0"};
  switch (d->kind) {
    case MLC_OPT_BOOL:
      for (size_t i = 0; i < 3; i++) {
        if (mlc_word_is(v, n, yes[i])) return *out = 1, true;
        if (mlc_word_is(v, n, no[i])) return *out = 0, true;
      }
      return false;
    case MLC_OPT_U64:
      return mlc_parse_u64(v, n, d->lo, d->hi, out);
    case MLC_OPT_WORD:
      for (uint64_t i = 0; i < 2; i++)
        if (mlc_word_is(v, n, d->words[i])) return *out = i, true;
      return false;
    case MLC_OPT_STR:
      /* *out is the length; the caller copies the text */
      if (n < d->lo || n > d->hi || memchr(v, ',', n) || memchr(v, '\0', n)) return false;
      return *out = n, true;
  }
  return false;
}

/* The value as text, as melloc_option_get reports it. */
static size_t mlc_opt_format(const mlc_opt_desc_t *d, uint64_t v, char *buf, size_t size) {
  switch (d->kind) {
    case MLC_OPT_BOOL:
      return mlc_snprintf(buf, size, "%s", v ? "true" : "false");
    case MLC_OPT_WORD:
      return mlc_snprintf(buf, size, "%s", d->words[v != 0]);
    case MLC_OPT_STR:
      return mlc_snprintf(buf, size, "%s", (const char *)&mlc_opt + d->offset);
    case MLC_OPT_U64:
      break;
  }
  return mlc_snprintf(buf, size, "%llu", (unsigned long long)v);
}

/* The accepted values, as the messages print them. */
static void mlc_opt_range(const mlc_opt_desc_t *d, char *buf, size_t size) {
  if (d->kind == MLC_OPT_BOOL)
    mlc_snprintf(buf, size, "true/false");
  else if (d->kind == MLC_OPT_WORD)
    mlc_snprintf(buf, size, "%s/%s", d->words[0], d->words[1]);
  else if (d->kind == MLC_OPT_STR)
    mlc_snprintf(buf, size, "text of %llu..%llu bytes without a comma", (unsigned long long)d->lo,
                 (unsigned long long)d->hi);
  else
    mlc_snprintf(buf, size, "%llu..%llu", (unsigned long long)d->lo, (unsigned long long)d->hi);
}

static void mlc_options_warn(const char *why, const char *pair, size_t len) {
  char p[96], buf[256];
  size_t n = MLC_MIN(len, sizeof(p) - 1);
  memcpy(p, pair, n);
  p[n] = '\0';
  n = mlc_snprintf(buf, sizeof(buf), "melloc: MELLOC_CONF: %s '%s', default kept\n", why, p);
  mlc_os_write_stderr(buf, n);
}

void mlc_options_parse(mlc_options_t *opt, const char *conf) {
  if (!conf) return;
  const char *p = conf;
  while (*p) {
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    size_t len = (size_t)(end - p);
    const char *colon = memchr(p, ':', len);
    if (len == 0) {
      /* An empty pair (",,") is ignored. */
    } else if (!colon || colon + 1 == end) {
      mlc_options_warn("malformed pair", p, len);
    } else {
      const mlc_opt_desc_t *d = mlc_opt_find(p, (size_t)(colon - p));
      uint64_t v;
      if (!d) {
        mlc_options_warn("unknown key", p, len);
      } else if (!mlc_opt_parse_value(d, colon + 1, (size_t)(end - colon - 1), &v)) {
        char range[64], why[96];
        mlc_opt_range(d, range, sizeof(range));
        mlc_snprintf(why, sizeof(why), "bad value (%s)", range);
        mlc_options_warn(why, p, len);
      } else if (d->kind == MLC_OPT_STR) {
        mlc_opt_store_str(opt, d, colon + 1, (size_t)v);
      } else {
        mlc_opt_store(opt, d, v);
      }
    }
    p = *end ? end + 1 : end;
  }
}

/* What the allocator uses now for d. */
static uint64_t mlc_opt_current(const mlc_opt_desc_t *d) {
  return d->now ? d->now() : mlc_opt_load(&mlc_opt, d);
}

int mlc_option_get(const char *name, char *value, size_t len) {
  if (!name) return ENOENT;
  const mlc_opt_desc_t *d = mlc_opt_find(name, strlen(name));
  if (!d) return ENOENT;
  if (!mlc_boot()) return ENOMEM;
  char buf[256];
  size_t n = mlc_opt_format(d, d->kind == MLC_OPT_STR ? 0 : mlc_opt_current(d), buf, sizeof(buf));
  if (!value || len <= n) return ERANGE;
  memcpy(value, buf, n + 1);
  return 0;
}

int mlc_option_set(const char *name, const char *value) {
  if (!name) return ENOENT;
  const mlc_opt_desc_t *d = mlc_opt_find(name, strlen(name));
  if (!d) return ENOENT;
  uint64_t v;
  if (!value || !mlc_opt_parse_value(d, value, strlen(value), &v)) return EINVAL;
  if (!mlc_boot()) return ENOMEM;
  if (d->kind == MLC_OPT_STR) /* none may change at run time */
    return strlen(value) == v && !strcmp((const char *)&mlc_opt + d->offset, value) ? 0 : EPERM;
  if (!d->runtime) return mlc_opt_current(d) == v ? 0 : EPERM;
  mlc_opt_store(&mlc_opt, d, v);
  if (d->set_hook) d->set_hook(v);
  return 0;
}
