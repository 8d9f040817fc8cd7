/* SPDX-License-Identifier: MIT */
/* Runs a check suite the way every test program of melloc does: forked tests, the
   summary on stdout, exit status 0 only when every test passed. */
#ifndef MLC_CHECK_RUN_H
#define MLC_CHECK_RUN_H

#include <check.h>
#include <stdlib.h>

static inline int mlc_check_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
