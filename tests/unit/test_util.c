/* SPDX-License-Identifier: MIT */
/* util.c's formatting reads exactly the type each conversion names: on 32-bit targets
   long is 32 bits and long long 64, so reading one for the other shifts every argument
   after it.  Each case is checked against libc's snprintf, with an int after it. */
#include "unit.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <sys/types.h>

#include "util.h"

#define SAME_AS_LIBC(fmt, ...)                                                         \
  do {                                                                                 \
    char want_[128], got_[128];                                                        \
    int n_ = snprintf(want_, sizeof(want_), fmt, __VA_ARGS__);                         \
    size_t m_ = mlc_snprintf(got_, sizeof(got_), fmt, __VA_ARGS__);                    \
    ck_assert_str_eq(got_, want_);                                                     \
    ck_assert_uint_eq(m_, (size_t)n_);                                                 \
  } while (0)

START_TEST(test_length_modifiers) {
  SAME_AS_LIBC("%d %u %x|%d", INT_MIN, UINT_MAX, 0xbeefu, 42);
  SAME_AS_LIBC("%ld %lu %lx|%d", LONG_MIN, ULONG_MAX, (unsigned long)0xbeef, 42);
  SAME_AS_LIBC("%ld %ld|%d", (long)-5, (long)7, 42);
  SAME_AS_LIBC("%lld %llu %llx|%d", LLONG_MIN, ULLONG_MAX, 0x123456789abcdefull, 42);
  SAME_AS_LIBC("%zu %zd %zx|%d", SIZE_MAX, (ssize_t)-1, (size_t)0xbeef, 42);
  SAME_AS_LIBC("%lu %llu %zu %u|%d", 1ul, 2ull, (size_t)3, 4u, 42);
  SAME_AS_LIBC("%5d|%3s|%8zu|%c%%", 42, "ab", (size_t)12345, 'x');
  SAME_AS_LIBC("%p|%d", (void *)(uintptr_t)0x1234, 42);
}
END_TEST

/* Output that does not fit is cut, NUL-terminated, and the length says what was kept
   (a %s that did not fit used to loop for ever: its pointer advanced only when written). */
START_TEST(test_truncation) {
  char buf[4];
  ck_assert_uint_eq(mlc_snprintf(buf, sizeof(buf), "%s", "abcdef"), 3);
  ck_assert_str_eq(buf, "abc");
  ck_assert_uint_eq(mlc_snprintf(buf, sizeof(buf), "%llu", 123456789ull), 3);
  ck_assert_str_eq(buf, "123");
}
END_TEST

/* The profiler's arithmetic (util.h) against libm: relative error under 1e-12 over the
   ranges prof.c uses (uniform draws down to 2^-53; size / mean from a byte over a
   terabyte to far above 40), and exact ends. */
static double rel_err(double got, double want) { return fabs(got - want) / fabs(want); }

START_TEST(test_log_unit) {
  ck_assert(mlc_log_unit(1.0) == 0.0);
  ck_assert(rel_err(mlc_log_unit(0x1p-53), -53 * log(2.0)) < 1e-14);
  ck_assert(rel_err(mlc_log_unit(0.5), log(0.5)) < 1e-15);
  double worst = 0;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double u = ((double)(x >> 11) + 1.0) * 0x1p-53;
    if (i % 4 == 0) u = ldexp(u, -(i % 50)) + 0x1p-53; /* many near 0 */
    if (u > 1) u = 1;
    if (u == 1) continue;
    double e = rel_err(mlc_log_unit(u), log(u));
    if (e > worst) worst = e;
  }
  ck_assert_msg(worst < 1e-12, "ln: worst relative error %g", worst);
}
END_TEST

START_TEST(test_one_minus_exp_neg) {
  ck_assert(mlc_one_minus_exp_neg(0) == 0);
  ck_assert(mlc_one_minus_exp_neg(41) == 1);
  ck_assert(mlc_one_minus_exp_neg(1e9) == 1);
  double worst = 0;
  /* 1 byte / 1 TiB (the smallest ratio the options allow) up to 64: both sides of 1/2
     (the series alone) and of each halving. */
  for (double x = 0x1p-40; x < 64; x *= 1.0009765625) {
    double e = rel_err(mlc_one_minus_exp_neg(x), -expm1(-x));
    if (e > worst) worst = e;
  }
  ck_assert_msg(worst < 1e-12, "1 - exp(-x): worst relative error %g", worst);
  /* 64 bytes at the default mean of 512 KiB: the weight 1 / p of a sample. */
  ck_assert(rel_err(1 / mlc_one_minus_exp_neg(64.0 / 524288), 1 / -expm1(-64.0 / 524288)) < 1e-14);
}
END_TEST

int main(void) {
  Suite *s = suite_create("util");
  TCase *tc = tcase_create("format");
  tcase_add_test(tc, test_length_modifiers);
  tcase_add_test(tc, test_truncation);
  suite_add_tcase(s, tc);
  TCase *tm = tcase_create("arithmetic");
  tcase_add_test(tm, test_log_unit);
  tcase_add_test(tm, test_one_minus_exp_neg);
  suite_add_tcase(s, tm);
  return mlc_unit_run(s);
}
