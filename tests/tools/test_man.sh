#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The man pages: groff and man-db (the way lintian runs them) render them without a
# warning, and they keep up with the code: every melloc_* function of the header is in
# melloc(3), every MELLOC_CONF key of src/options.c in melloc(7), every option of the
# command in melloc(1).
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/tap.sh"
ok() { tap_ok "$1"; }
bad() { # NAME [DETAILS]
  tap_not_ok "$1"
  [ -z "${2:-}" ] || tap_diag "$2"
}
# roff source with the escapes that stand for '-' undone, for the name checks
plain() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$1"; }

for m in 1 3 7; do
  page=$src/man/melloc.$m
  if [ ! -f "$page" ]; then
    bad "man/melloc.$m missing"
    continue
  fi
  if tap_have groff; then
    out=$(LC_ALL=C.UTF-8 groff -ww -z -man "$page" 2>&1)
    if [ -z "$out" ]; then ok "melloc.$m: groff -ww -z -man silent"; else bad "melloc.$m: groff -ww -z -man silent" "$out"; fi
  else
    tap_skip "melloc.$m: groff -ww -z -man silent" "no groff"
  fi
  # man-db's man (lintian's check); it runs groff, so it needs both.
  if tap_have man && tap_have groff && man --help 2>&1 | grep -q -- '--warnings'; then
    out=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
    if [ -z "$out" ]; then ok "melloc.$m: man --warnings silent"; else bad "melloc.$m: man --warnings silent" "$out"; fi
  else
    tap_skip "melloc.$m: man --warnings silent" "no man-db man with groff"
  fi
  if grep -q "^\.TH MELLOC $m " "$page"; then ok "melloc.$m: .TH section $m"; else bad "melloc.$m: .TH"; fi
  # the version in the page footer is the package's
  v=$(sed -n 's/^AC_INIT(\[melloc\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
  if grep -q "^\.TH MELLOC $m [0-9-]* \"melloc $v\"" "$page"; then
    ok "melloc.$m: version $v"
  else
    bad "melloc.$m: .TH does not say melloc $v"
  fi
done

# Every public function is named in melloc(3)'s NAME and SYNOPSIS.
funcs=$(grep -o 'MELLOC_API[^(]* \**melloc_[a-z0-9_]*(' "$src/include/melloc.h.in" |
  grep -o 'melloc_[a-z0-9_]*' | sort -u)
[ -n "$funcs" ] || bad "no functions found in include/melloc.h.in"
for f in $funcs; do
  name=$(sed -n '/^\.SH NAME/,/^\.SH/p' "$src/man/melloc.3" | plain /dev/stdin | grep -c "\b$f\b")
  syn=$(sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p' "$src/man/melloc.3" | grep -c "$f(")
  if [ "$name" -gt 0 ] && [ "$syn" -gt 0 ]; then ok "melloc.3 documents $f"; else bad "melloc.3 lacks $f"; fi
done
# ... and every standard name the library exports.
for f in $(grep -v '^#' "$src/abi/standard-names.txt"); do
  if grep -q "^\.BR $f ()" "$src/man/melloc.3"; then ok "melloc.3 names $f()"; else bad "melloc.3 lacks $f()"; fi
done

# The value of a constant the options table names (a number stays itself).
constant() {
  case $1 in
  MLC_SMALL_MAX) sed -n 's/^#define MLC_SMALL_MAX \([0-9]*\)$/\1/p' "$src/src/sizeclass_tables.h" ;;
  MLC_MAX_ARENAS) sed -n 's/^#define MLC_MAX_ARENAS \([0-9]*\)$/\1/p' "$src/src/arena.h" ;;
  MLC_OPT_HOUR_MS) sed -n 's/^#define MLC_OPT_HOUR_MS \([0-9]*\)$/\1/p' "$src/src/options.c" ;;
  *) echo "$1" ;;
  esac
}

# Every MELLOC_CONF key has an entry in melloc(7), with its range as the code has it.
keys=$(sed -n 's/^ *{"\([a-z_]*\)", MLC_OPT_[A-Z0-9]*, .*/\1/p' "$src/src/options.c")
[ -n "$keys" ] || bad "no keys found in src/options.c"
for k in $keys; do
  if grep -Eq "^\.(BI|BR) $k:" "$src/man/melloc.7"; then ok "melloc.7 documents $k"; else bad "melloc.7 lacks $k"; fi
done
while IFS= read -r line; do
  k=$(echo "$line" | sed -n 's/^ *{"\([a-z_]*\)", MLC_OPT_U64, \([0-9]*\), \([0-9A-Z_]*\),.*/\1 \2 \3/p')
  [ -n "$k" ] || continue
  set -- $k
  hi=$(constant "$3")
  entry=$(awk -v k="$1" '$0 ~ "^\\.BI " k ":" {p = 1; next} /^\.TP/ {p = 0} p' "$src/man/melloc.7")
  if echo "$entry" | grep -q "$2 to $hi"; then ok "melloc.7: $1 range $2 to $hi"; else bad "melloc.7: $1 range is not '$2 to $hi'"; fi
done <"$src/src/options.c"

# ... and its default as the table in src/options.c has it (narenas: the CPUs, at run time).
while IFS= read -r line; do
  k=$(echo "$line" | sed -n 's/^ *{"\([a-z_]*\)", MLC_OPT_\([A-Z0-9]*\), [0-9A-Z_]*, [0-9A-Z_]*, \([A-Za-z0-9_]*\),.*/\1 \2 \3/p')
  [ -n "$k" ] || continue
  set -- $k
  name=$1
  want=$(constant "$3")
  [ "$name" = stats_format ] && want=$([ "$3" = 1 ] && echo json || echo text)
  [ "$name" = narenas ] && continue
  # text settings: the default is the table's last field, a string
  [ "$2" = STR ] && want=$(echo "$line" | sed -n 's/.*, "\([^"]*\)"},$/\1/p')
  entry=$(awk -v k="$name" '$0 ~ "^\\.(BI|BR) " k ":" {p = 1; next} /^\.TP/ {p = 0} p' "$src/man/melloc.7" |
    tr '\n' ' ' | sed -e 's/\.BR* //g')
  if echo "$entry" | grep -Eq "Default: $want\b"; then
    ok "melloc.7: $name default $want"
  else
    bad "melloc.7: $name default is not '$want'" "$entry"
  fi
done <"$src/src/options.c"

# Every option in the command's usage is in melloc(1).
for o in $(grep -o -- '--[a-z]*' "$src/tools/melloc.c" | sort -u); do
  [ "$o" = "--" ] && continue
  if plain "$src/man/melloc.1" | grep -q -- "$o"; then ok "melloc.1 documents $o"; else bad "melloc.1 lacks $o"; fi
done

tap_done
