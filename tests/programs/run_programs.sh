#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Real programs on melloc through LD_PRELOAD, each checked for the same output (and
# exit status) as with the system allocator.  MELLOC_LIB is the library to preload.
set -u
lib=${MELLOC_LIB:-$(pwd)/.libs/libmelloc.so}
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ ! -f "$lib" ]; then
  echo "run_programs: $lib not found" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

# compare NAME COMMAND...: runs COMMAND with and without melloc, compares stdout and status.
compare() {
  local name=$1
  shift
  "$@" >"$tmp/ref.out" 2>"$tmp/ref.err"
  local ref=$?
  LD_PRELOAD=$lib "$@" >"$tmp/mel.out" 2>"$tmp/mel.err"
  local got=$?
  if [ "$ref" -ne "$got" ] || ! cmp -s "$tmp/ref.out" "$tmp/mel.out"; then
    echo "FAIL: $name (status $ref vs $got)"
    diff "$tmp/ref.out" "$tmp/mel.out" | head -5
    head -5 "$tmp/mel.err"
    fail=$((fail + 1))
  elif [ ! -s "$tmp/ref.out" ]; then
    echo "FAIL: $name printed nothing"
    fail=$((fail + 1))
  else
    echo "ok: $name"
    pass=$((pass + 1))
  fi
}

# The library really is the one in use: its settings parser answers.
if LD_PRELOAD=$lib MELLOC_CONF=no_such_key:1 /bin/true 2>&1 | grep -q "melloc: MELLOC_CONF: unknown key 'no_such_key:1'"; then
  echo "ok: preloaded library is active"
  pass=$((pass + 1))
else
  echo "FAIL: preloaded library did not answer"
  fail=$((fail + 1))
fi

# Loaded late, with dlopen (Python's ctypes), not preloaded: its initial-exec
# thread-local storage must fit in the space glibc keeps for such libraries.
if command -v python3 >/dev/null; then
  if out=$(python3 -c '
import ctypes, sys
m = ctypes.CDLL(sys.argv[1])
m.melloc_malloc.restype = ctypes.c_void_p
m.melloc_usable_size.restype = ctypes.c_size_t
p = m.melloc_malloc(ctypes.c_size_t(100))
print(m.melloc_usable_size(ctypes.c_void_p(p)))
m.melloc_free(ctypes.c_void_p(p))' "$lib" 2>&1) && [ "$out" = 112 ]; then
    echo "ok: dlopen from python (ctypes)"
    pass=$((pass + 1))
  else
    echo "FAIL: dlopen from python (ctypes): $out"
    fail=$((fail + 1))
  fi
fi

if command -v python3 >/dev/null; then
  compare "python (PYTHONMALLOC=malloc)" env PYTHONMALLOC=malloc python3 "$src/tests/programs/workload.py"
fi

# A shell pipeline of coreutils, each process on melloc.
seq 1 300000 | awk '{print ($1 * 7919) % 100003, $1}' >"$tmp/input"
pipeline() {
  sort -n "$tmp/input" | uniq -c -w 5 | sort -k2,2 -s | awk '{s += $1; print $2} END {print s}' |
    tr '0-9' 'a-j' | sha256sum
}
export -f pipeline 2>/dev/null
export tmp
compare "shell pipeline (sort, uniq, awk, tr, sha256sum)" bash -c pipeline

if command -v sqlite3 >/dev/null; then
  compare "sqlite3" sqlite3 :memory: "create table t(a, b); with recursive c(x) as (select 1 union all select x + 1 from c where x < 200000) insert into t select x, hex(randomblob(0)) || x from c; select count(*), sum(a), max(length(b)) from t; create index i on t(b); select count(distinct substr(b, 1, 3)) from t;"
fi

if command -v git >/dev/null; then
  (cd "$tmp" && git init -q repo && cd repo && for i in $(seq 1 200); do echo "line $i" >>f; done &&
    git add f && git -c user.name=t -c user.email=t@t commit -qm one) >/dev/null 2>&1
  compare "git log and diff" git -C "$tmp/repo" log --format=%s --stat
fi

compare "grep over a tree" grep -r --include=*.c -c "mlc_" "$src/src"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
