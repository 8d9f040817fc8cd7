/* SPDX-License-Identifier: MIT */
/*
 * Settings: MELLOC_CONF (comma-separated key:value pairs, parsed once at boot without
 * allocating) and melloc_option_get/set.  One table describes every key: its kind, its
 * range, and whether it may change once the allocator runs.  A bad pair in MELLOC_CONF
 * is reported on one line of stderr and the default is kept.
 */
#include "internal.h"

#include "gc.h"
#include "init.h"
#include "os.h"
#include "sizeclass.h"
#include "stats.h"
#include "util.h"

#include <stdlib.h>

void mlc_options_default(mlc_options_t *opt) {
  opt->narenas = 0;
  opt->tcache = true;
  opt->tcache_max = MLC_SMALL_MAX;
  opt->gc = true;
  opt->gc_interval_ms = 1000;
  opt->decay_ms = 3000;
  opt->stats_print = false;
  opt->stats_json = false;
}

typedef enum { MLC_OPT_BOOL, MLC_OPT_U64, MLC_OPT_FORMAT } mlc_opt_kind_t;

typedef struct {
  const char *name;
  mlc_opt_kind_t kind;
  uint64_t lo, hi;
  bool runtime; /* may change after boot */
  const char *range; /* as printed in messages */
} mlc_opt_desc_t;

static const mlc_opt_desc_t mlc_opt_table[] = {
    {"narenas", MLC_OPT_U64, 1, 256, false, "1..256"},
    {"tcache", MLC_OPT_BOOL, 0, 1, false, "true/false"},
    {"tcache_max", MLC_OPT_U64, 0, MLC_SMALL_MAX, false, "0..8192"},
    {"gc", MLC_OPT_BOOL, 0, 1, true, "true/false"},
    {"gc_interval_ms", MLC_OPT_U64, 1, 3600000, true, "1..3600000"},
    {"decay_ms", MLC_OPT_U64, 0, 3600000, true, "0..3600000"},
    {"stats_print", MLC_OPT_BOOL, 0, 1, true, "true/false"},
    {"stats_format", MLC_OPT_FORMAT, 0, 1, true, "text/json"},
    {"trace", MLC_OPT_BOOL, 0, 1, true, "true/false"},
};
#define MLC_NOPTS (sizeof(mlc_opt_table) / sizeof(mlc_opt_table[0]))

static const mlc_opt_desc_t *mlc_opt_find(const char *key, size_t klen) {
  for (size_t i = 0; i < MLC_NOPTS; i++)
    if (strlen(mlc_opt_table[i].name) == klen && !memcmp(mlc_opt_table[i].name, key, klen))
      return &mlc_opt_table[i];
  return NULL;
}

static bool mlc_parse_bool(const char *v, size_t n, uint64_t *out) {
  if ((n == 4 && !memcmp(v, "true", 4)) || (n == 2 && !memcmp(v, "on", 2)) ||
      (n == 1 && v[0] == '1')) {
    *out = 1;
    return true;
  }
  if ((n == 5 && !memcmp(v, "false", 5)) || (n == 3 && !memcmp(v, "off", 3)) ||
      (n == 1 && v[0] == '0')) {
    *out = 0;
    return true;
  }
  return false;
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
  switch (d->kind) {
    case MLC_OPT_BOOL:
      return mlc_parse_bool(v, n, out);
    case MLC_OPT_U64:
      return mlc_parse_u64(v, n, d->lo, d->hi, out);
    case MLC_OPT_FORMAT:
      if (n == 4 && !memcmp(v, "json", 4)) *out = 1;
      else if (n == 4 && !memcmp(v, "text", 4)) *out = 0;
      else return false;
      return true;
  }
  return false;
}

static void mlc_opt_apply(mlc_options_t *opt, const mlc_opt_desc_t *d, uint64_t v) {
  const char *n = d->name;
  if (!strcmp(n, "narenas")) opt->narenas = (unsigned)v;
  else if (!strcmp(n, "tcache")) opt->tcache = v;
  else if (!strcmp(n, "tcache_max")) opt->tcache_max = (size_t)v;
  else if (!strcmp(n, "gc")) mlc_store(&opt->gc, (bool)v);
  else if (!strcmp(n, "gc_interval_ms")) mlc_store(&opt->gc_interval_ms, v);
  else if (!strcmp(n, "decay_ms")) mlc_store(&opt->decay_ms, v);
  else if (!strcmp(n, "stats_print")) mlc_store(&opt->stats_print, (bool)v);
  else if (!strcmp(n, "stats_format")) mlc_store(&opt->stats_json, (bool)v);
  else if (!strcmp(n, "trace")) mlc_trace_on = mlc_config_debug && v;
}

static uint64_t mlc_opt_value(const mlc_options_t *opt, const mlc_opt_desc_t *d) {
  const char *n = d->name;
  if (!strcmp(n, "narenas")) return opt->narenas;
  if (!strcmp(n, "tcache")) return opt->tcache;
  if (!strcmp(n, "tcache_max")) return opt->tcache_max;
  if (!strcmp(n, "gc")) return mlc_load(&opt->gc);
  if (!strcmp(n, "gc_interval_ms")) return mlc_load(&opt->gc_interval_ms);
  if (!strcmp(n, "decay_ms")) return mlc_load(&opt->decay_ms);
  if (!strcmp(n, "stats_print")) return mlc_load(&opt->stats_print);
  if (!strcmp(n, "stats_format")) return mlc_load(&opt->stats_json);
  return mlc_trace_on;
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
      char why[64];
      if (!d) {
        mlc_options_warn("unknown key", p, len);
      } else if (!mlc_opt_parse_value(d, colon + 1, (size_t)(end - colon - 1), &v)) {
        mlc_snprintf(why, sizeof(why), "bad value (%s)", d->range);
        mlc_options_warn(why, p, len);
      } else {
        mlc_opt_apply(opt, d, v);
      }
    }
    p = *end ? end + 1 : end;
  }
}

int mlc_option_get(const char *name, char *value, size_t len) {
  if (!name) return ENOENT;
  const mlc_opt_desc_t *d = mlc_opt_find(name, strlen(name));
  if (!d) return ENOENT;
  if (!mlc_boot()) return ENOMEM;
  uint64_t v = mlc_opt_value(&mlc_opt, d);
  char buf[32];
  size_t n;
  if (d->kind == MLC_OPT_BOOL) n = mlc_snprintf(buf, sizeof(buf), "%s", v ? "true" : "false");
  else if (d->kind == MLC_OPT_FORMAT) n = mlc_snprintf(buf, sizeof(buf), "%s", v ? "json" : "text");
  else if (!strcmp(d->name, "narenas")) n = mlc_snprintf(buf, sizeof(buf), "%u", mlc_narenas_now());
  else n = mlc_snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
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
  if (!d->runtime) {
    uint64_t cur = !strcmp(d->name, "narenas") ? mlc_narenas_now() : mlc_opt_value(&mlc_opt, d);
    return cur == v ? 0 : EPERM;
  }
  mlc_opt_apply(&mlc_opt, d, v);
  if (!strcmp(d->name, "gc") && v) mlc_gc_start();
  if (!strcmp(d->name, "gc_interval_ms")) mlc_gc_wake();
  if (!strcmp(d->name, "stats_print") && v) mlc_stats_keep_stderr();
  return 0;
}
