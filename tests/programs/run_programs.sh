#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Real programs on melloc through LD_PRELOAD, each checked for the same output (and
# exit status) as with the system allocator.  MELLOC_LIB is the library to preload.
# A program that is not installed (python3, sqlite3, git) is reported as a SKIP.
set -u
lib=${MELLOC_LIB:-$(pwd)/.libs/libmelloc.so}
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/tap.sh"
if [ ! -f "$lib" ]; then
  tap_bail "run_programs: $lib not found"
fi
if why=$(tap_preload_mismatch "$lib"); then
  tap_skip "real programs on $lib" "the host's programs cannot load it: $why"
  tap_done
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# compare NAME COMMAND...: runs COMMAND with and without melloc, compares stdout and status.
compare() {
  local name=$1
  shift
  "$@" >"$tmp/ref.out" 2>"$tmp/ref.err"
  local ref=$?
  LD_PRELOAD=$lib "$@" >"$tmp/mel.out" 2>"$tmp/mel.err"
  local got=$?
  if [ "$ref" -ne "$got" ] || ! cmp -s "$tmp/ref.out" "$tmp/mel.out"; then
    tap_not_ok "$name"
    tap_diag "status $ref without melloc, $got with it"
    tap_diag "$(diff "$tmp/ref.out" "$tmp/mel.out" | head -5)"
    tap_diag "$(head -5 "$tmp/mel.err")"
  elif [ ! -s "$tmp/ref.out" ]; then
    tap_not_ok "$name"
    tap_diag "it printed nothing"
  else
    tap_ok "$name"
  fi
}

# The library really is the one in use: its settings parser answers.
if LD_PRELOAD=$lib MELLOC_CONF=no_such_key:1 /bin/true 2>&1 | grep -q "melloc: MELLOC_CONF: unknown key 'no_such_key:1'"; then
  tap_ok "preloaded library is active"
else
  tap_not_ok "preloaded library is active"
fi

# Loaded late, with dlopen (Python's ctypes), not preloaded: its initial-exec
# thread-local storage must fit in the space glibc keeps for such libraries.
if tap_have python3; then
  if out=$(python3 -c '
import ctypes, sys
m = ctypes.CDLL(sys.argv[1])
m.melloc_malloc.restype = ctypes.c_void_p
m.melloc_usable_size.restype = ctypes.c_size_t
p = m.melloc_malloc(ctypes.c_size_t(100))
print(m.melloc_usable_size(ctypes.c_void_p(p)))
m.melloc_free(ctypes.c_void_p(p))' "$lib" 2>&1) && [ "$out" = 112 ]; then
    tap_ok "dlopen from python (ctypes)"
  else
    tap_not_ok "dlopen from python (ctypes)"
    tap_diag "$out"
  fi
  compare "python (PYTHONMALLOC=malloc)" env PYTHONMALLOC=malloc python3 "$src/tests/programs/workload.py"
else
  tap_skip "dlopen from python (ctypes)" "no python3"
  tap_skip "python (PYTHONMALLOC=malloc)" "no python3"
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

if tap_have sqlite3; then
  compare "sqlite3" sqlite3 :memory: "create table t(a, b); with recursive c(x) as (select 1 union all select x + 1 from c where x < 200000) insert into t select x, hex(randomblob(0)) || x from c; select count(*), sum(a), max(length(b)) from t; create index i on t(b); select count(distinct substr(b, 1, 3)) from t;"
else
  tap_skip "sqlite3" "no sqlite3"
fi

if tap_have git; then
  (cd "$tmp" && git init -q repo && cd repo && for i in $(seq 1 200); do echo "line $i" >>f; done &&
    git add f && git -c user.name=t -c user.email=t@t commit -qm one) >/dev/null 2>&1
  compare "git log and diff" git -C "$tmp/repo" log --format=%s --stat
else
  tap_skip "git log and diff" "no git"
fi

compare "grep over a tree" grep -r --include=*.c -c "mlc_" "$src/src"

tap_done
