/* SPDX-License-Identifier: MIT */
/*
 * Helpers that never allocate: formatting for messages and traces, fatal errors and
 * assertions.
 */
#include "internal.h"

#include "os.h"
#include "util.h"

#include <stdlib.h>

extern char **environ;

bool mlc_trace_on;

static size_t mlc_fmt_num(char *tmp, unsigned long long v, unsigned base) {
  size_t n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v);
  return n;
}

size_t mlc_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap) {
  size_t o = 0;
  /* c is evaluated once, written or not: %s advances its pointer in it. */
#define MLC_PUT(c)                     \
  do {                                 \
    char c_ = (c);                     \
    if (o + 1 < size) buf[o] = c_;     \
    o++;                               \
  } while (0)
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      MLC_PUT(*f);
      continue;
    }
    f++;
    size_t width = 0;
    while (*f >= '0' && *f <= '9') width = width * 10 + (size_t)(*f++ - '0');
    int lng = 0;
    bool zu = false;
    while (*f == 'l') {
      lng++;
      f++;
    }
    if (*f == 'z') {
      zu = true;
      f++;
    }
    char tmp[32];
    size_t n = 0;
    bool neg = false;
    switch (*f) {
      case 's': {
        const char *s = va_arg(ap, const char *);
        if (!s) s = "(null)";
        for (size_t len = strlen(s); len < width; len++) MLC_PUT(' ');
        while (*s) MLC_PUT(*s++);
        continue;
      }
      case 'c':
        MLC_PUT((char)va_arg(ap, int));
        continue;
      case 'd': {
        /* Read exactly the type the format names: long is 32 bits on 32-bit targets. */
        long long v = zu         ? (long long)va_arg(ap, ssize_t)
                      : lng >= 2 ? va_arg(ap, long long)
                      : lng      ? (long long)va_arg(ap, long)
                                 : (long long)va_arg(ap, int);
        unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
        neg = v < 0;
        n = mlc_fmt_num(tmp, u, 10);
        break;
      }
      case 'u':
      case 'x': {
        unsigned long long v = zu         ? (unsigned long long)va_arg(ap, size_t)
                               : lng >= 2 ? va_arg(ap, unsigned long long)
                               : lng      ? (unsigned long long)va_arg(ap, unsigned long)
                                          : (unsigned long long)va_arg(ap, unsigned);
        n = mlc_fmt_num(tmp, v, *f == 'x' ? 16 : 10);
        break;
      }
      case 'p': {
        uintptr_t v = (uintptr_t)va_arg(ap, void *);
        MLC_PUT('0');
        MLC_PUT('x');
        n = mlc_fmt_num(tmp, v, 16);
        break;
      }
      case '%':
        MLC_PUT('%');
        continue;
      default:
        MLC_PUT('?');
        if (!*f) f--;
        continue;
    }
    for (size_t len = n + (neg ? 1 : 0) + (*f == 'p' ? 2 : 0); len < width; len++) MLC_PUT(' ');
    if (neg) MLC_PUT('-');
    while (n) MLC_PUT(tmp[--n]);
  }
  if (size) buf[o < size ? o : size - 1] = '\0';
#undef MLC_PUT
  return o < size ? o : (size ? size - 1 : 0);
}

size_t mlc_snprintf(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = mlc_vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

const char *mlc_getenv(const char *name) {
  size_t len = strlen(name);
  if (!environ) return NULL;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
  return NULL;
}

void mlc_fatal(const char *what, const void *ptr) {
  char buf[256];
  size_t n = mlc_snprintf(buf, sizeof(buf), "melloc: %s: pointer %p\n", what, ptr);
  mlc_os_write_stderr(buf, n);
  abort();
}

void mlc_fatal_in(const char *call, const char *what, const void *ptr) {
  char buf[256];
  size_t n = mlc_snprintf(buf, sizeof(buf), "melloc: %s(): %s: pointer %p\n", call, what, ptr);
  mlc_os_write_stderr(buf, n);
  abort();
}

void mlc_assert_fail(const char *expr, const char *file, int line) {
  char buf[512];
  size_t n =
      mlc_snprintf(buf, sizeof(buf), "melloc: assertion failed: %s (%s:%d)\n", expr, file, line);
  mlc_os_write_stderr(buf, n);
  abort();
}

void mlc_trace_printf(const char *fmt, ...) {
  char buf[512];
  size_t n = mlc_snprintf(buf, sizeof(buf), "melloc[%d]: ", (int)mlc_os_gettid());
  va_list ap;
  va_start(ap, fmt);
  n += mlc_vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
  va_end(ap);
  buf[n++] = '\n';
  mlc_os_write_stderr(buf, n);
}

/* ---- Arithmetic ---- */

double mlc_log_unit(double u) {
  /* u = m 2^e, m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(z), z = (m - 1) / (m + 1), |z| <
     0.172: the series z + z^3/3 + z^5/5 + ... reaches 1e-16 by its 11th term. */
  union {
    double d;
    uint64_t i;
  } v = {u};
  /* u is normal (2^-53 <= u): its exponent, then m in [1/2, 1) */
  int e = (int)((v.i >> 52) & 0x7ff) - 1022;
  v.i = (v.i & ~((uint64_t)0x7ff << 52)) | ((uint64_t)1022 << 52);
  double m = v.d;
  if (m < 0.70710678118654752440) {
    m *= 2;
    e--;
  }
  static const double inv_odd[] = {1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11,
                                   1.0 / 9,  1.0 / 7,  1.0 / 5,  1.0 / 3,  1.0};
  double z = (m - 1) / (m + 1), z2 = z * z, s = 0;
  for (unsigned k = 0; k < sizeof(inv_odd) / sizeof(inv_odd[0]); k++) s = s * z2 + inv_odd[k];
  return 2 * z * s + e * 0.69314718055994530942;
}

double mlc_one_minus_exp_neg(double x) {
  if (!(x > 0)) return 0;
  if (x > 40) return 1;
  /* x = y 2^n with y < 1/2; -expm1(-y) = y (1 - y/2 (1 - y/3 (1 - ...))), to its 14th
     term (y^14 / 14! < 1e-15 y); then exp(-x) = exp(-y)^(2^n), n <= 7. */
  int n = 0;
  double y = x;
  while (y >= 0.5) {
    y *= 0.5;
    n++;
  }
  static const double inv[] = {1.0 / 14, 1.0 / 13, 1.0 / 12, 1.0 / 11, 1.0 / 10, 1.0 / 9, 1.0 / 8,
                               1.0 / 7,  1.0 / 6,  1.0 / 5,  1.0 / 4,  1.0 / 3,  1.0 / 2};
  double s = 1;
  for (unsigned k = 0; k < sizeof(inv) / sizeof(inv[0]); k++) s = 1 - y * inv[k] * s;
  double r = y * s; /* 1 - exp(-y) */
  if (n == 0) return r;
  double e = 1 - r;
  while (n--) e *= e;
  return 1 - e;
}
