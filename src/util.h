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

#endif /* MLC_UTIL_H */
