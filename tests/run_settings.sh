#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The public-API and process-level tests again under other settings, as glibc and jemalloc do: the
# collector on a 1 ms interval, thread caches off, one arena, and the heap profiler on
# (sampling every 64 KiB on average, 8 times the default rate).
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/tap.sh"
for conf in "gc_interval_ms:1,decay_ms:0" "tcache:false" "narenas:1" "prof:true,prof_sample_bytes:65536"; do
  for t in test_api test_threads test_process test_unshare; do
    [ -x "tests/integration/$t" ] || tap_bail "tests/integration/$t not built"
    MELLOC_CONF=$conf "tests/integration/$t" >"settings-$t.log" 2>&1
    st=$?
    if [ "$st" -eq 0 ]; then
      tap_ok "$t with MELLOC_CONF=$conf"
    elif [ "$st" -eq 77 ]; then
      tap_skip "$t with MELLOC_CONF=$conf" "$(sed -n 's/^SKIP: //p' "settings-$t.log" | head -n 1)"
    else
      tap_not_ok "$t with MELLOC_CONF=$conf"
      tap_diag "exit status $st; the end of its output:"
      tap_diag "$(tail -n 20 "settings-$t.log")"
    fi
  done
done
tap_done
