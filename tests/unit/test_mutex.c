/* SPDX-License-Identifier: MIT */
/* The lock discipline (mutex.h): in debug builds a lock taken out of rank order, taken
   twice, or released by a thread that does not hold it aborts; `_locked` functions can
   ask whether their caller holds the lock.  Release builds check nothing. */
#include "unit.h"

#include "mutex.h"

#include <pthread.h>

static mlc_mutex_t low = MLC_MUTEX_INITIALIZER(MLC_RANK_GC);
static mlc_mutex_t high = MLC_MUTEX_INITIALIZER(MLC_RANK_BASE);
static mlc_mutex_t high2 = MLC_MUTEX_INITIALIZER(MLC_RANK_BASE);
static mlc_mutex_t bin_a = MLC_MUTEX_INITIALIZER(MLC_RANK_BIN);
static mlc_mutex_t bin_b = MLC_MUTEX_INITIALIZER(MLC_RANK_BIN);

/* Ascending ranks are the order: nothing to report, and ownership is seen. */
START_TEST(test_in_order) {
  ck_assert(!mlc_config_debug || !mlc_mutex_owned(&low));
  mlc_mutex_lock(&low);
  mlc_mutex_lock(&high);
  ck_assert(mlc_mutex_owned(&low));
  ck_assert(mlc_mutex_owned(&high));
  mlc_mutex_unlock(&high);
  ck_assert(!mlc_config_debug || !mlc_mutex_owned(&high));
  mlc_mutex_unlock(&low);
  /* The ranks the fork handlers hold several of at once. */
  mlc_mutex_lock(&bin_a);
  mlc_mutex_lock(&bin_b);
  mlc_mutex_unlock(&bin_a);
  mlc_mutex_unlock(&bin_b);
}
END_TEST

/* Another thread's lock is not the caller's. */
static void *hold_low(void *arg) {
  (void)arg;
  mlc_mutex_lock(&low);
  return NULL;
}
START_TEST(test_owned_per_thread) {
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, hold_low, NULL), 0);
  pthread_join(t, NULL);
  ck_assert(!mlc_config_debug || !mlc_mutex_owned(&low));
}
END_TEST

START_TEST(test_out_of_order_aborts) {
  mlc_mutex_lock(&high);
  mlc_mutex_lock(&low);
}
END_TEST

START_TEST(test_same_rank_aborts) {
  mlc_mutex_lock(&high);
  mlc_mutex_lock(&high2);
}
END_TEST

START_TEST(test_twice_aborts) {
  mlc_mutex_lock(&bin_a);
  mlc_mutex_lock(&bin_a);
}
END_TEST

START_TEST(test_unlock_not_held_aborts) { mlc_mutex_unlock(&low); }
END_TEST

int main(void) {
  Suite *s = suite_create("mutex");
  TCase *tc = tcase_create("order");
  tcase_add_test(tc, test_in_order);
  tcase_add_test(tc, test_owned_per_thread);
  if (mlc_config_debug) {
    tcase_add_test_raise_signal(tc, test_out_of_order_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_same_rank_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_twice_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, test_unlock_not_held_aborts, SIGABRT);
  }
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
