/* SPDX-License-Identifier: MIT */
/*
 * Formatting and environment helpers that never allocate: safe inside malloc, before
 * initialisation and in a fork child.
 */
#ifndef MLC_UTIL_H
#define MLC_UTIL_H

#include "internal.h"

#include <stdarg.h>

/* A vsnprintf subset: %s %c %d %u %x %p %%, with a width and l/ll/z length modifiers.  Always
   NUL-terminates; returns the length written (truncated to size - 1). */
size_t mlc_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
size_t mlc_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* getenv() without allocating, usable before libc's own initialisation is complete. */
const char *mlc_getenv(const char *name);

/* Arithmetic without libm, for the heap profiler's sampling: no division in a loop
   (a sample costs ~400 ns when each term divides; prof.c draws once a sample and
   weighs each record).  ln(u) for 0 < u <= 1, and 1 - exp(-x) for x >= 0, both to
   within 1e-12 relatively (tests/unit/test_util.c holds them to libm's). */
double mlc_log_unit(double u);
double mlc_one_minus_exp_neg(double x);

#endif /* MLC_UTIL_H */
