#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The melloc command on real programs, against the build tree: the program's stdout and
# exit status are its own, the statistics come on stderr in the format asked for, and
# --conf reaches the library, --hardened preloads the hardened library.  MELLOC_LIB is the
# library to preload and MELLOC_HARDENED_LIB the hardened one (make check sets them; the
# latter empty when configured with --disable-hardened, whose checks are then a SKIP);
# MELLOC_CMD the command (default ./tools/melloc, run from the build directory).
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/tap.sh"
cmd=${MELLOC_CMD:-./tools/melloc}
lib=${MELLOC_LIB:-$(pwd)/.libs/libmelloc.so}
export MELLOC_LIB=$lib
hlib=${MELLOC_HARDENED_LIB-$(pwd)/.libs/libmelloc-hardened.so}
if [ -n "$hlib" ]; then
  [ -f "$hlib" ] || tap_bail "test_melloc_cmd: $hlib not built"
  export MELLOC_HARDENED_LIB=$hlib
fi
unset MELLOC_CONF LD_PRELOAD PYTHONMALLOC
if [ ! -x "$cmd" ] || [ ! -f "$lib" ]; then
  tap_bail "test_melloc_cmd: $cmd or $lib not built"
fi
if why=$(tap_preload_mismatch "$lib"); then
  tap_skip "the melloc command on real programs" "the host's programs cannot load $lib: $why"
  tap_done
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# check NAME COMMAND...: passes when COMMAND succeeds; on failure the log shows the
# start of the program's stderr.
check() {
  local name=$1
  shift
  if "$@"; then
    tap_ok "$name"
  else
    tap_not_ok "$name"
    [ -s "$tmp/err" ] && tap_diag "stderr: $(head -c 600 "$tmp/err")"
  fi
  return 0
}
have_python=false
tap_have python3 && have_python=true
# json_check FILE EXPRESSION: the file is one JSON object d for which EXPRESSION holds.
json_check() {
  python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"
}

# 1. sort on melloc: the same output as without it, and its statistics on stderr even
# though coreutils close stderr at exit (gnulib's close_stdout, an atexit handler): the
# library keeps a duplicate of stderr for its exit report.
seq 1 200000 | awk '{print ($1 * 7919) % 100003, $1}' >"$tmp/input"
sort -n "$tmp/input" >"$tmp/ref.out"
"$cmd" --stats sort -n "$tmp/input" >"$tmp/out" 2>"$tmp/err"
st=$?
check "sort: exit status 0" [ "$st" -eq 0 ]
check "sort: stdout identical to running it directly" cmp -s "$tmp/ref.out" "$tmp/out"
check "sort: nothing of melloc's on stdout" bash -c "! grep -q melloc '$tmp/out'"
check "sort: statistics on stderr after close_stdout" grep -q '^___ melloc [0-9.]* statistics ___$' "$tmp/err"

# 1b. A program that keeps stderr open and ends with exit(): bash, with some work.
work='for ((i = 0; i < 20000; i++)); do a[i]=$i-$i; done; echo "${#a[@]} ${a[19999]}"'
bash -c "$work" >"$tmp/bash.ref"
"$cmd" --stats -- bash -c "$work" >"$tmp/out" 2>"$tmp/err"
st=$?
check "bash: exit status 0, stdout identical" bash -c "[ $st -eq 0 ] && cmp -s '$tmp/bash.ref' '$tmp/out'"
check "bash: text statistics on stderr, header first" \
  bash -c "head -1 '$tmp/err' | grep -q '^___ melloc [0-9.]* statistics ___\$'"
# The statistics are the program's own: it allocated, so a class row has nmalloc > 0.
check "bash: statistics count the program's allocations" \
  grep -Eq '^ +[0-9]+ +[1-9][0-9]* +[0-9]+ +[0-9]+ +[0-9]+$' "$tmp/err"

# 2. Without --stats: no statistics, but the library is loaded (it answers a bad setting).
"$cmd" sort -n "$tmp/input" >"$tmp/out" 2>"$tmp/err"
st=$?
check "no --stats: same output, no statistics" \
  bash -c "[ $st -eq 0 ] && cmp -s '$tmp/ref.out' '$tmp/out' && ! grep -q '___ melloc' '$tmp/err'"
"$cmd" --conf no_such_key:1 true 2>"$tmp/err"
check "--conf reaches the library (it warns about an unknown key)" \
  grep -q "melloc: MELLOC_CONF: unknown key 'no_such_key:1'" "$tmp/err"

# 3. Exit statuses are preserved, signals too (as the shell reports them).
"$cmd" -- sh -c 'exit 7' 2>"$tmp/err"
check "exit status 7 preserved" [ $? -eq 7 ]
"$cmd" --stats false 2>"$tmp/err"
check "exit status 1 of false preserved" [ $? -eq 1 ]
# (the braces keep bash's "Terminated" notice off the log)
{ "$cmd" sh -c 'kill -TERM $$'; st=$?; } 2>/dev/null
check "death by SIGTERM preserved (status 143)" [ $st -eq 143 ]

# 4. The arguments reach the program untouched, options after PROGRAM included.
"$cmd" printf '%s|' a 'b c' --stats -- '' >"$tmp/out" 2>"$tmp/err"
check "arguments passed untouched" [ "$(cat "$tmp/out")" = 'a|b c|--stats|--||' ]

# 5. JSON statistics parse, and --conf settings show in them.  Python's own
# small-object allocator (pymalloc) serves most of its objects from arenas it maps
# itself, so the run whose mallocs are counted sets PYTHONMALLOC=malloc: then every
# object is a malloc, and the 100000 strings the dictionary keeps alive at once must
# all have come out of melloc's bins.
py_checks="python: exit status 0
python: stdout identical
--stats=json: stderr is one JSON object with the statistics
--conf narenas:1 shows as \"narenas\": 1
python's allocations are counted (PYTHONMALLOC=malloc)
MELLOC_CONF kept, --conf appended and winning
existing MELLOC_CONF still applies"
if $have_python; then
  # The interpreter itself: python3 may be a wrapper script (pyenv) whose every process
  # would print its statistics.
  py=$(python3 -c 'import sys; print(sys.executable)')
  code='d = {i: str(i) * 3 for i in range(100000)}; print(sum(len(v) for v in d.values()))'
  ref=$("$py" -c "$code")
  PYTHONMALLOC=malloc "$cmd" --stats=json --conf narenas:1 -- "$py" -c "$code" >"$tmp/out" 2>"$tmp/err"
  st=$?
  check "python: exit status 0" [ "$st" -eq 0 ]
  check "python: stdout identical ($ref)" [ "$(cat "$tmp/out")" = "$ref" ]
  check "--stats=json: stderr is one JSON object with the statistics" \
    json_check "$tmp/err" 'len(d["classes"]) == 42 and d["allocated"] == d["small_allocated"] + d["large_allocated"] + d["huge_allocated"] and d["version"]'
  check "--conf narenas:1 shows as \"narenas\": 1" json_check "$tmp/err" 'd["narenas"] == 1'
  check "python's allocations are counted (PYTHONMALLOC=malloc)" \
    json_check "$tmp/err" 'sum(c["nmalloc"] for c in d["classes"]) >= 100000'
  # Two --conf options and an existing MELLOC_CONF add up; the command's settings win.
  MELLOC_CONF=narenas:3,stats_format:text "$cmd" --conf narenas:2 --conf tcache:false --stats=json "$py" -c pass \
    2>"$tmp/err"
  check "MELLOC_CONF kept, --conf appended and winning" json_check "$tmp/err" 'd["narenas"] == 2'
  MELLOC_CONF=narenas:3 "$cmd" --stats=json "$py" -c pass 2>"$tmp/err"
  check "existing MELLOC_CONF still applies" json_check "$tmp/err" 'd["narenas"] == 3'
else
  while IFS= read -r name; do
    tap_skip "$name" "no python3"
  done <<<"$py_checks"
fi

# 6. An existing LD_PRELOAD is kept, after melloc.
LD_PRELOAD=/nonexistent-preload.so "$cmd" sh -c 'echo "$LD_PRELOAD"' >"$tmp/out" 2>"$tmp/err"
check "LD_PRELOAD prepended to" [ "$(cat "$tmp/out")" = "$lib:/nonexistent-preload.so" ]
"$cmd" sh -c 'echo "$LD_PRELOAD,$MELLOC_CONF"' >"$tmp/out" 2>"$tmp/err"
check "no --stats/--conf: LD_PRELOAD is the library, MELLOC_CONF unset" [ "$(cat "$tmp/out")" = "$lib," ]

# 7. --version and --help.
"$cmd" --version >"$tmp/out" 2>"$tmp/err"
st=$?
check "--version: status 0" [ "$st" -eq 0 ]
check "--version prints 'melloc VERSION'" grep -Eqx 'melloc [0-9]+\.[0-9]+\.[0-9]+' "$tmp/out"
v=$(sed -n 's/^AC_INIT(\[melloc\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
check "--version matches configure.ac ($v)" [ "$(cat "$tmp/out")" = "melloc $v" ]
"$cmd" --help >"$tmp/out" 2>"$tmp/err"
st=$?
check "--help: status 0, usage on stdout" bash -c "[ $st -eq 0 ] && grep -q '^Usage: melloc' '$tmp/out' && [ ! -s '$tmp/err' ]"
# The default library's path (as long as the libdir: /usr/lib/x86_64-linux-gnu in the
# Debian package) is on a line of its own, so the text fits 80 columns wherever installed.
check "--help: every line fits 80 columns" awk 'length($0) > 80 { exit 1 }' "$tmp/out"
check "--help: the default library on a line of its own" grep -Eq '^ +/[^ ]*/libmelloc\.so\.0$' "$tmp/out"
check "--help: the hardened library on a line of its own" grep -Eq '^ +/[^ ]*/libmelloc-hardened\.so\.0$' "$tmp/out"

# 8. Usage errors: status 2, a message on stderr, nothing run.
"$cmd" --no-such-option true >"$tmp/out" 2>"$tmp/err"
st=$?
check "unknown option: status 2 and usage on stderr" \
  bash -c "[ $st -eq 2 ] && grep -q \"unknown option '--no-such-option'\" '$tmp/err' && grep -q '^Usage:' '$tmp/err' && [ ! -s '$tmp/out' ]"
"$cmd" --stats >"$tmp/out" 2>"$tmp/err"
st=$?
check "missing PROGRAM: status 2 with a message" bash -c "[ $st -eq 2 ] && grep -q 'no PROGRAM' '$tmp/err'"
"$cmd" -- >"$tmp/out" 2>"$tmp/err"
check "missing PROGRAM after --: status 2" [ $? -eq 2 ]
"$cmd" --stats=xml true >"$tmp/out" 2>"$tmp/err"
check "--stats=xml: status 2" [ $? -eq 2 ]
"$cmd" --conf >"$tmp/out" 2>"$tmp/err"
check "--conf without an argument: status 2" [ $? -eq 2 ]
"$cmd" --conf narenas1 true >"$tmp/out" 2>"$tmp/err"
check "--conf not KEY:VALUE: status 2" [ $? -eq 2 ]

# 9. A missing library or program: status 127 and one clear line.
MELLOC_LIB=/nonexistent/libmelloc.so "$cmd" echo hello >"$tmp/out" 2>"$tmp/err"
st=$?
check "missing library: status 127" [ "$st" -eq 127 ]
check "missing library: one line naming it, program not run" \
  bash -c "[ \$(wc -l <'$tmp/err') -eq 1 ] && grep -q '/nonexistent/libmelloc.so' '$tmp/err' && [ ! -s '$tmp/out' ]"
"$cmd" ./no-such-program-here >"$tmp/out" 2>"$tmp/err"
st=$?
check "missing program: status 127 with its name" bash -c "[ $st -eq 127 ] && grep -q 'no-such-program-here' '$tmp/err'"
"$cmd" /dev/null >"$tmp/out" 2>"$tmp/err"
check "program that cannot run: status 126" [ $? -eq 126 ]

# 10. --hardened: the hardened library instead of the default one, with the other options.
hardened_checks="--hardened: LD_PRELOAD is the hardened library, MELLOC_LIB not used
--hardened: only the hardened library is loaded
--hardened --stats: same output, the hardened library's statistics
--conf and --stats before --hardened: all three apply
--hardened: a missing hardened library is status 127, naming it"
if [ -z "$hlib" ]; then
  while IFS= read -r name; do
    tap_skip "$name" "configured with --disable-hardened"
  done <<<"$hardened_checks"
else
  MELLOC_LIB=/nonexistent/libmelloc.so "$cmd" --hardened sh -c 'echo "$LD_PRELOAD"' >"$tmp/out" 2>"$tmp/err"
  check "--hardened: LD_PRELOAD is the hardened library, MELLOC_LIB not used" [ "$(cat "$tmp/out")" = "$hlib" ]
  "$cmd" --hardened cat /proc/self/maps >"$tmp/out" 2>"$tmp/err"
  check "--hardened: only the hardened library is loaded" \
    bash -c "grep -q '/libmelloc-hardened\.so' '$tmp/out' && ! grep -q '/libmelloc\.so' '$tmp/out'"
  "$cmd" --hardened --stats sort -n "$tmp/input" >"$tmp/out" 2>"$tmp/err"
  st=$?
  check "--hardened --stats: same output, the hardened library's statistics" \
    bash -c "[ $st -eq 0 ] && cmp -s '$tmp/ref.out' '$tmp/out' && head -1 '$tmp/err' | grep -q '^___ melloc [0-9.]* hardened statistics ___\$'"
  "$cmd" --conf narenas:1 --stats --hardened bash -c 'echo "$LD_PRELOAD"' >"$tmp/out" 2>"$tmp/err"
  check "--conf and --stats before --hardened: all three apply" \
    bash -c "[ \"\$(cat '$tmp/out')\" = '$hlib' ] && grep -q ' hardened statistics ___\$' '$tmp/err' && grep -Eq '^arenas: +1\$' '$tmp/err'"
  MELLOC_HARDENED_LIB=/nonexistent/libmelloc-hardened.so "$cmd" --hardened echo hello >"$tmp/out" 2>"$tmp/err"
  st=$?
  check "--hardened: a missing hardened library is status 127, naming it" \
    bash -c "[ $st -eq 127 ] && grep -q '/nonexistent/libmelloc-hardened.so' '$tmp/err' && [ ! -s '$tmp/out' ]"
fi

tap_done
