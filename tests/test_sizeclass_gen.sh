#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# src/sizeclass_tables.h is what tools/sizeclass_gen.py writes, byte for byte: a class
# layout changed by hand in the header (or in the generator alone) fails here.
# test_sizeclass checks the tables' properties; this checks where they come from.
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/tap.sh"
if ! tap_have python3; then
  tap_skip "tools/sizeclass_gen.py writes src/sizeclass_tables.h" "no python3 (Debian: apt-get install python3)"
else
  out=$(python3 "$src/tools/sizeclass_gen.py" 2>&1)
  if [ "$out" = "$(cat "$src/src/sizeclass_tables.h")" ]; then
    tap_ok "tools/sizeclass_gen.py writes src/sizeclass_tables.h"
  else
    tap_not_ok "tools/sizeclass_gen.py writes src/sizeclass_tables.h"
    tap_diag "$(printf '%s\n' "$out" | diff - "$src/src/sizeclass_tables.h" | head -n 20)"
  fi
fi
tap_done
