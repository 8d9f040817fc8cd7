/* SPDX-License-Identifier: MIT */
#include "unit.h"

#include <stdio.h>
#include <unistd.h>

/* Runs the parser with stderr captured; returns what it printed. */
static char captured[1024];
static void parse(mlc_options_t *o, const char *conf) {
  mlc_options_default(o);
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  int saved = dup(2);
  dup2(fds[1], 2);
  mlc_options_parse(o, conf);
  dup2(saved, 2);
  close(saved);
  close(fds[1]);
  ssize_t n = read(fds[0], captured, sizeof(captured) - 1);
  captured[n > 0 ? n : 0] = '\0';
  close(fds[0]);
}

START_TEST(test_every_key) {
  mlc_options_t o;
  parse(&o, "narenas:3,tcache:false,gc:off,gc_interval_ms:25,decay_ms:0,stats_print:true,"
            "stats_format:json");
  ck_assert_str_eq(captured, "");
  ck_assert_uint_eq(o.narenas, 3);
  ck_assert(!o.tcache);
  ck_assert(!o.gc);
  ck_assert_uint_eq(o.gc_interval_ms, 25);
  ck_assert_uint_eq(o.decay_ms, 0);
  ck_assert(o.stats_print);
  ck_assert(o.stats_json);
}
END_TEST

static const struct {
  const char *conf, *message;
} bad[] = {
    {"narenas:0", "melloc: MELLOC_CONF: bad value (1..256) 'narenas:0', default kept\n"},
    {"narenas:x", "melloc: MELLOC_CONF: bad value (1..256) 'narenas:x', default kept\n"},
    {"tcache:maybe", "melloc: MELLOC_CONF: bad value (true/false) 'tcache:maybe', default kept\n"},
    {"gc_interval_ms:0", "melloc: MELLOC_CONF: bad value (1..3600000) 'gc_interval_ms:0', default kept\n"},
    {"bogus:1", "melloc: MELLOC_CONF: unknown key 'bogus:1', default kept\n"},
    {"narenas", "melloc: MELLOC_CONF: malformed pair 'narenas', default kept\n"},
    {"decay_ms:", "melloc: MELLOC_CONF: malformed pair 'decay_ms:', default kept\n"},
    {"stats_format:xml", "melloc: MELLOC_CONF: bad value (text/json) 'stats_format:xml', default kept\n"},
};

/* A bad pair prints one line naming it and keeps the default; the rest still apply. */
START_TEST(test_bad_pairs) {
  mlc_options_t o, d;
  mlc_options_default(&d);
  char conf[128];
  snprintf(conf, sizeof(conf), "%s,gc_interval_ms:7", bad[_i].conf);
  parse(&o, conf);
  ck_assert_str_eq(captured, bad[_i].message);
  ck_assert_uint_eq(o.narenas, d.narenas);
  ck_assert(o.tcache == d.tcache);
  ck_assert_uint_eq(o.decay_ms, d.decay_ms);
  ck_assert(o.stats_json == d.stats_json);
  ck_assert_uint_eq(o.gc_interval_ms, 7);
}
END_TEST

START_TEST(test_empty_and_null) {
  mlc_options_t o, d;
  mlc_options_default(&d);
  parse(&o, "");
  ck_assert_str_eq(captured, "");
  parse(&o, ",,");
  ck_assert_str_eq(captured, "");
  ck_assert_uint_eq(o.gc_interval_ms, d.gc_interval_ms);
  mlc_options_parse(&o, NULL);
  ck_assert_uint_eq(o.decay_ms, d.decay_ms);
}
END_TEST

int main(void) {
  Suite *s = suite_create("options");
  TCase *tc = tcase_create("parse");
  tcase_add_test(tc, test_every_key);
  tcase_add_loop_test(tc, test_bad_pairs, 0, (int)(sizeof(bad) / sizeof(bad[0])));
  tcase_add_test(tc, test_empty_and_null);
  suite_add_tcase(s, tc);
  return mlc_unit_run(s);
}
