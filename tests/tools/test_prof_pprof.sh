#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The heap profiler's dumps as other tools read them: go tool pprof (Debian's golang-go)
# names the three allocation sites of tests/integration/test_prof --dump (the middle one
# freed: in alloc_space, not in inuse_space); melloc --prof writes PREFIX.PID.SEQ.pb.gz
# and .folded for each process of a program; bad prof_* settings give one warning line.
# Checks that need go (or binutils, which pprof symbolises with) are a SKIP where they
# are not installed; those that need test_prof (built only with libcheck) too.
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/tap.sh"
cmd=${MELLOC_CMD:-./tools/melloc}
lib=${MELLOC_LIB:-$(pwd)/.libs/libmelloc.so}
export MELLOC_LIB=$lib
unset MELLOC_CONF LD_PRELOAD PYTHONMALLOC
[ -x "$cmd" ] && [ -f "$lib" ] || tap_bail "test_prof_pprof: $cmd or $lib not built"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The melloc command on the host's programs (sh, cat): where those cannot load this
# build's library (a 32-bit or cross build), a SKIP; the dump checks below still run.
if why=$(tap_preload_mismatch "$lib"); then
  tap_skip "melloc --prof and bad prof_* settings on the host's programs" "the host's programs cannot load $lib: $why"
else
  # melloc --prof=PREFIX: one dump per process at exit, named after its PID.
  "$cmd" --prof="$tmp/cmd" sh -c 'echo $$ > '"$tmp"'/pid; exec cat /dev/null' 2>"$tmp/err"
  pid=$(cat "$tmp/pid" 2>/dev/null)
  if [ -n "$pid" ] && [ -s "$tmp/cmd.$pid.0.pb.gz" ] && [ -f "$tmp/cmd.$pid.0.folded" ] &&
    [ "$(od -An -tx1 -N3 "$tmp/cmd.$pid.0.pb.gz" | tr -d ' ')" = 1f8b08 ]; then
    tap_ok "melloc --prof=PREFIX writes PREFIX.PID.0.pb.gz (gzip) and .folded"
  else
    tap_not_ok "melloc --prof=PREFIX writes PREFIX.PID.0.pb.gz (gzip) and .folded"
    tap_diag "files: $(ls "$tmp")" "stderr: $(head -c 400 "$tmp/err")"
  fi
  if [ ! -s "$tmp/err" ]; then tap_ok "melloc --prof: nothing on stderr"; else tap_not_ok "melloc --prof: nothing on stderr"; tap_diag "$(head -c 400 "$tmp/err")"; fi
  if "$cmd" --prof=a,b true 2>/dev/null; then tap_not_ok "melloc --prof=a,b refused"; else tap_ok "melloc --prof=a,b refused"; fi

  # Bad values: one line each, and the program runs.
  for pair in prof_depth:0 prof_depth:129 prof_sample_bytes:0 prof_sample_bytes:1099511627777 prof:maybe prof_leak:2; do
    out=$("$cmd" --conf "$pair" sh -c 'exit 7' 2>&1)
    st=$?
    if [ $st -eq 7 ] && [ "$(printf '%s\n' "$out" | grep -c "melloc: MELLOC_CONF: .*'$pair', default kept")" = 1 ] &&
      [ "$(printf '%s\n' "$out" | wc -l)" = 1 ]; then
      tap_ok "MELLOC_CONF=$pair: one warning, default kept"
    else
      tap_not_ok "MELLOC_CONF=$pair: one warning, default kept"
      tap_diag "status $st, output: $out"
    fi
  done
fi

prog=tests/integration/test_prof
if [ ! -x "$prog" ]; then
  tap_skip "test_prof --dump" "tests/integration/test_prof not built (no libcheck)"
  tap_done
fi
MELLOC_CONF=prof:true,prof_sample_bytes:512 "$prog" --dump "$tmp/three.pb.gz" 2>"$tmp/err"
if [ -s "$tmp/three.pb.gz" ]; then tap_ok "test_prof --dump writes a profile"; else
  tap_not_ok "test_prof --dump writes a profile"
  tap_diag "$(head -c 400 "$tmp/err")"
  tap_done
fi

if ! tap_have go || ! go tool pprof -h >/dev/null 2>&1; then
  tap_skip "go tool pprof reads the profile" "no go (Debian: apt-get install golang-go)"
  tap_done
fi
if ! tap_have addr2line || ! tap_have nm; then
  tap_skip "go tool pprof reads the profile" "binutils (addr2line, nm), which pprof symbolises with, are not installed"
  tap_done
fi
export HOME=${HOME:-$tmp} GOCACHE=$tmp/gocache GOTOOLCHAIN=local
inuse=$(go tool pprof -top -nodecount=200 "$tmp/three.pb.gz" 2>"$tmp/perr")
alloc=$(go tool pprof -top -nodecount=200 -sample_index=alloc_space "$tmp/three.pb.gz" 2>>"$tmp/perr")
for fn in alloc_big_site alloc_small_site; do
  if printf '%s\n' "$inuse" | grep -q "$fn"; then tap_ok "pprof -top (inuse_space) names $fn"; else
    tap_not_ok "pprof -top (inuse_space) names $fn"
    tap_diag "$inuse" "$(head -c 600 "$tmp/perr")"
  fi
done
if printf '%s\n' "$inuse" | grep -q alloc_mid_site; then
  tap_not_ok "pprof -top (inuse_space): the freed alloc_mid_site is gone"
  tap_diag "$inuse"
else
  tap_ok "pprof -top (inuse_space): the freed alloc_mid_site is gone"
fi
for fn in alloc_big_site alloc_mid_site alloc_small_site; do
  if printf '%s\n' "$alloc" | grep -q "$fn"; then tap_ok "pprof -top -sample_index=alloc_space names $fn"; else
    tap_not_ok "pprof -top -sample_index=alloc_space names $fn"
    tap_diag "$alloc"
  fi
done
# -traces and -diff_base read it too
if go tool pprof -traces "$tmp/three.pb.gz" 2>/dev/null | grep -q alloc_big_site; then
  tap_ok "pprof -traces shows the stacks"
else
  tap_not_ok "pprof -traces shows the stacks"
fi
if go tool pprof -top -diff_base="$tmp/three.pb.gz" "$tmp/three.pb.gz" >/dev/null 2>&1; then
  tap_ok "pprof -diff_base reads two dumps"
else
  tap_not_ok "pprof -diff_base reads two dumps"
fi
tap_done
