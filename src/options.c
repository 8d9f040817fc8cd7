/* SPDX-License-Identifier: MIT */
/*
 * MELLOC_CONF: comma-separated key:value pairs, parsed once at boot without allocating.
 * A bad pair is reported on one line of stderr and the default is kept.
 */
#include "internal.h"

#include "init.h"
#include "os.h"
#include "util.h"

#include <stdlib.h>

void mlc_options_default(mlc_options_t *opt) {
  opt->narenas = 0;
  opt->tcache = true;
  opt->gc = true;
  opt->gc_interval_ms = 1000;
  opt->decay_ms = 5000;
  opt->stats_print = false;
  opt->stats_json = false;
}

static void mlc_options_warn(const char *why, const char *key, size_t klen, const char *val,
                             size_t vlen) {
  char k[64], v[64], buf[256];
  size_t kn = MLC_MIN(klen, sizeof(k) - 1), vn = MLC_MIN(vlen, sizeof(v) - 1);
  memcpy(k, key, kn);
  k[kn] = '\0';
  memcpy(v, val, vn);
  v[vn] = '\0';
  size_t n = mlc_snprintf(buf, sizeof(buf), "melloc: MELLOC_CONF: %s '%s%s%s', default kept\n",
                          why, k, vlen || val > key + klen ? ":" : "", v);
  mlc_os_write_stderr(buf, n);
}

static bool mlc_parse_bool(const char *v, size_t n, bool *out) {
  if ((n == 4 && !memcmp(v, "true", 4)) || (n == 2 && !memcmp(v, "on", 2)) ||
      (n == 1 && v[0] == '1')) {
    *out = true;
    return true;
  }
  if ((n == 5 && !memcmp(v, "false", 5)) || (n == 3 && !memcmp(v, "off", 3)) ||
      (n == 1 && v[0] == '0')) {
    *out = false;
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

#define MLC_KEY(s) (klen == sizeof(s) - 1 && !memcmp(key, s, klen))

void mlc_options_parse(mlc_options_t *opt, const char *conf) {
  if (!conf) return;
  const char *p = conf;
  while (*p) {
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *key = p;
    size_t klen = colon ? (size_t)(colon - p) : (size_t)(end - p);
    const char *val = colon ? colon + 1 : end;
    size_t vlen = (size_t)(end - val);
    uint64_t u;
    bool b;
    if (klen == 0 && !colon) {
      /* Empty pair (",,"): ignored. */
    } else if (!colon || vlen == 0) {
      mlc_options_warn("malformed pair", key, klen, val, vlen);
    } else if (MLC_KEY("narenas")) {
      if (mlc_parse_u64(val, vlen, 1, 256, &u)) opt->narenas = (unsigned)u;
      else mlc_options_warn("bad value (1..256)", key, klen, val, vlen);
    } else if (MLC_KEY("tcache")) {
      if (mlc_parse_bool(val, vlen, &b)) opt->tcache = b;
      else mlc_options_warn("bad value (true/false)", key, klen, val, vlen);
    } else if (MLC_KEY("gc")) {
      if (mlc_parse_bool(val, vlen, &b)) opt->gc = b;
      else mlc_options_warn("bad value (true/false)", key, klen, val, vlen);
    } else if (MLC_KEY("gc_interval_ms")) {
      if (mlc_parse_u64(val, vlen, 1, 3600000, &u)) opt->gc_interval_ms = u;
      else mlc_options_warn("bad value (1..3600000)", key, klen, val, vlen);
    } else if (MLC_KEY("decay_ms")) {
      if (mlc_parse_u64(val, vlen, 0, 3600000, &u)) opt->decay_ms = u;
      else mlc_options_warn("bad value (0..3600000)", key, klen, val, vlen);
    } else if (MLC_KEY("stats_print")) {
      if (mlc_parse_bool(val, vlen, &b)) opt->stats_print = b;
      else mlc_options_warn("bad value (true/false)", key, klen, val, vlen);
    } else if (MLC_KEY("stats_format")) {
      if (vlen == 4 && !memcmp(val, "json", 4)) opt->stats_json = true;
      else if (vlen == 4 && !memcmp(val, "text", 4)) opt->stats_json = false;
      else mlc_options_warn("bad value (text/json)", key, klen, val, vlen);
    } else if (MLC_KEY("trace")) {
      if (mlc_parse_bool(val, vlen, &b)) mlc_trace_on = mlc_config_debug && b;
      else mlc_options_warn("bad value (true/false)", key, klen, val, vlen);
    } else {
      mlc_options_warn("unknown key", key, klen, val, vlen);
    }
    p = *end ? end + 1 : end;
  }
}
