/* SPDX-License-Identifier: MIT */
/* util.c's formatting reads exactly the type each conversion names: on 32-bit targets
   long is 32 bits and long long 64, so reading one for the other shifts every argument
   after it.  Each case is checked against libc's snprintf, with an int after it. */
#include "unit.h"

#include <limits.h>
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

int main(void) {
  Suite *s = suite_create("util");
  TCase *tc = tcase_create("format");
  tcase_add_test(tc, test_length_modifiers);
  tcase_add_test(tc, test_truncation);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
