#!/bin/bash
# SPDX-License-Identifier: MIT
# A thread-scaling run on a machine with many cores, in one go (bench/README.md,
# "Thread scaling"): the machine's ceiling (bench/ceiling.py), mixed and larson at
# 1, 2, 4, ... threads up to the CPU count, cache-thrash and cache-scratch from 2, and
# the tables and chart of bench/scaling.py, all under OUT.
#
#   bench/scripts/scaling.sh OUT [run.py options, e.g. --no-install --bin-dir DIR --melloc LIB]
#
# SCALING_RUNS (default 3), SCALING_MIXED_SCALE (8), SCALING_LARSON_SCALE (4) and
# SCALING_CEILING_SCALE (2) set the rounds and the work; at the defaults a 16-CPU
# machine takes about 8 minutes.
set -u
out=${1:?usage: scaling.sh OUT [run.py options]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${SCALING_RUNS:-3}
ncpu=$(getconf _NPROCESSORS_ONLN)
threads=1
for ((t = 2; t <= ncpu; t *= 2)); do threads="$threads,$t"; done
multi=${threads#1,}
larson=$(echo "$threads" | sed 's/\([0-9]*\)/larson-t\1/g')
mkdir -p "$out"
status=0
python3 "$here/ceiling.py" -w mixed-t1,larson-t1 -c "$ncpu" -r "$runs" --scale "${SCALING_CEILING_SCALE:-2}" \
  "$@" -o "$out/ceiling" || status=1
python3 "$here/run.py" -w mixed -t "$threads" -r "$runs" --scale "${SCALING_MIXED_SCALE:-8}" --no-chart \
  "$@" -o "$out/mixed" || status=1
python3 "$here/run.py" -w "$larson" -t "$threads" -r "$runs" --scale "${SCALING_LARSON_SCALE:-4}" --no-chart \
  "$@" -o "$out/larson" || status=1
if [ -n "$multi" ] && [ "$multi" != "$threads" ]; then
  python3 "$here/run.py" -w cache-thrash,cache-scratch -t "$multi" -r "$runs" --no-chart \
    "$@" -o "$out/cache" || status=1
fi
sums=()
for d in mixed larson cache; do [ -f "$out/$d/summary.json" ] && sums+=("$out/$d/summary.json"); done
[ ${#sums[@]} -gt 0 ] && python3 "$here/scaling.py" "${sums[@]}" -o "$out" \
  --title "Per-thread throughput, $ncpu CPUs (median of $runs)" || status=1
exit $status
