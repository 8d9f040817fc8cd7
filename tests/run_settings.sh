#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The public-API and process-level tests again under other settings, as glibc and jemalloc do: the
# collector on a 1 ms interval, thread caches off, one arena.
set -u
pass=0
fail=0
for conf in "gc_interval_ms:1,decay_ms:0" "tcache:false" "narenas:1"; do
  for t in test_api test_threads test_process test_unshare; do
    if [ ! -x "tests/integration/$t" ]; then
      echo "FAIL: tests/integration/$t not built"
      fail=$((fail + 1))
      continue
    fi
    if MELLOC_CONF=$conf "tests/integration/$t" >"settings-$t.log" 2>&1; then
      echo "ok: $t with MELLOC_CONF=$conf"
      pass=$((pass + 1))
    else
      echo "FAIL: $t with MELLOC_CONF=$conf"
      tail -5 "settings-$t.log"
      fail=$((fail + 1))
    fi
  done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
