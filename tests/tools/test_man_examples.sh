#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The man pages say what the program does:
#   - every C example (an EXAMPLES block that is not a shell session) compiles with
#     -Wall -Werror against the build tree's header and library, and runs;
#   - melloc(3)'s SYNOPSIS compiles after <melloc.h> (its prototypes are the header's),
#     and its melloc_stats_t listing has the header's fields, at the header's offsets;
#   - every MELLOC_CONF setting in an example (MELLOC_CONF=..., --conf ...) of the pages
#     and the README is accepted by the library, and every message an example shows is
#     the library's, word for word;
#   - melloc(1)'s example output and STATISTICS section name the lines, columns and JSON
#     keys that melloc --stats prints, no more and no fewer.
# Environment (make check sets it): abs_top_builddir, MELLOC_LIB, top_srcdir, CC, CFLAGS.
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/tap.sh"
build=${abs_top_builddir:-$(pwd)}
lib=${MELLOC_LIB:-$build/.libs/libmelloc.so}
cmd=${MELLOC_CMD:-$build/tools/melloc}
cc=${CC:-cc}
for f in "$lib" "$cmd" "$build/include/melloc.h"; do
  [ -e "$f" ] || tap_bail "test_man_examples: $f not built"
done
unset MELLOC_CONF MELLOC_TRACE LD_PRELOAD
export MELLOC_LIB=$lib
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# roff to text, for the escapes the pages use in examples.
unroff() {
  sed -e 's/\\-/-/g' -e 's/\\e/\\/g' -e "s/\\\\(aq/'/g" -e 's/\\(dq/"/g' -e 's/\\&//g' \
    -e 's/\\f[BIRP]//g' -e 's/\\~/ /g'
}

# blocks PAGE SECTION PREFIX: writes each .nf/.fi block of that section to PREFIX.1,
# PREFIX.2, ... (requests dropped, escapes undone) and prints their names.
blocks() {
  awk -v sec="$2" -v out="$3" '
    /^\.SH / { insec = ($0 == ".SH " sec); next }
    !insec { next }
    /^\.nf/ { n++; inblk = 1; f = out "." n; printf "" > f; print f; next }
    /^\.fi/ { inblk = 0; close(f); next }
    inblk && !/^\./ { print > f }
  ' "$1" | while read -r f; do
    unroff < "$f" > "$f.txt" && mv "$f.txt" "$f" && echo "$f"
  done
}

# compile NAME FILE.c OUT: -Wall -Werror, against the build tree's header and library.
compile() {
  # shellcheck disable=SC2086 # CFLAGS is a list of options
  if $cc ${CFLAGS:-} -Wall -Werror -I"$build/include" -o "$3" "$2" "$lib" \
    -Wl,-rpath,"$(dirname "$lib")" -lpthread > "$tmp/cc.log" 2>&1; then
    tap_ok "$1 compiles with -Wall -Werror"
    return 0
  fi
  tap_not_ok "$1 compiles with -Wall -Werror"
  tap_diag "$(cat "$tmp/cc.log")"
  return 1
}

# ---- C examples ----
for m in 1 3 7; do
  page=$src/man/melloc.$m
  for b in $(blocks "$page" EXAMPLES "$tmp/ex$m"); do
    head -n 1 "$b" | grep -q '^\$ ' && continue # a shell session
    name="melloc.$m example ${b##*.}"
    if grep -q 'main(' "$b"; then
      cp "$b" "$b.c"
    else # a fragment of a program
      { echo '#include <melloc.h>'; echo 'int main(void) {'; cat "$b"; echo 'return 0; }'; } > "$b.c"
    fi
    compile "$name" "$b.c" "$b.bin" || continue
    if "$b.bin" > "$b.out" 2> "$b.err"; then
      tap_ok "$name runs"
    else
      tap_not_ok "$name runs"
      tap_diag "$(cat "$b.err")"
    fi
    # melloc(3)'s program prints what it says it prints.
    if [ "$m" = 3 ]; then
      if grep -Eq '^[0-9]+ bytes allocated, [0-9]+ cached$' "$b.out" && grep -qx 'decay_ms 3000' "$b.out" &&
        grep -q '^{"version": ' "$b.out"; then
        tap_ok "$name prints the statistics, decay_ms 3000 and the JSON object"
      else
        tap_not_ok "$name prints the statistics, decay_ms 3000 and the JSON object"
        tap_diag "$(cat "$b.out")"
      fi
    fi
  done
done

# ---- melloc(3)'s SYNOPSIS and structure listing against the header ----
# .B and .BI lines to text: .BI runs its arguments together, as roff prints them.
awk '/^\.SH SYNOPSIS/ { p = 1; next } /^\.SH/ { p = 0 }
  p && /^\.B / { sub(/^\.B /, ""); gsub(/"/, ""); print }
  p && /^\.BI / {
    sub(/^\.BI /, ""); line = ""
    while (length($0)) {
      if (substr($0, 1, 1) == "\"") { i = index(substr($0, 2), "\""); line = line substr($0, 2, i - 1); $0 = substr($0, i + 2) }
      else { i = index($0, " "); if (!i) i = length($0) + 1; line = line substr($0, 1, i - 1); $0 = substr($0, i) }
      sub(/^ +/, "")
    }
    print line
  }' "$src/man/melloc.3" | unroff > "$tmp/synopsis.c"
grep -q '^#include <melloc.h>$' "$tmp/synopsis.c" || tap_not_ok "melloc.3 SYNOPSIS includes <melloc.h>"
echo 'int main(void) { return 0; }' >> "$tmp/synopsis.c"
compile "melloc.3 SYNOPSIS: its declarations are the header's and it" "$tmp/synopsis.c" "$tmp/synopsis" || true

# The listing of melloc_stats_t and melloc_class_stats_t, renamed, beside the header's.
b=$(blocks "$src/man/melloc.3" DESCRIPTION "$tmp/desc" | xargs -r grep -l 'typedef struct melloc_stats_s' | head -n 1)
fields() { # the field names of struct $1 in file $2
  sed -e 's,/\*.*\*/,,' "$2" | tr '\n' ' ' | sed -n "s/.*typedef struct $1 {\([^}]*\)}.*/\1/p" |
    tr ';' '\n' | sed -e 's/^ *[a-z_0-9]* *//' -e 's/\[[^]]*\]//g' | tr ',' '\n' | tr -d ' *' | sed '/^$/d'
}
if [ -z "$b" ]; then
  tap_not_ok "melloc.3 lists melloc_stats_t"
else
  {
    echo '#include <melloc.h>'
    echo '#include <stddef.h>'
    sed -e 's/melloc_\(class_\)*stats_\([st]\)\b/man_\1stats_\2/g' "$b" > "$tmp/listing.h"
    # the class structure first: the other one uses it
    awk '/typedef struct man_class_stats_s/ { c = 1 } c' "$tmp/listing.h"
    awk '/typedef struct man_class_stats_s/ { exit } 1' "$tmp/listing.h"
    for s in stats class_stats; do
      echo "_Static_assert(sizeof(man_${s}_t) == sizeof(melloc_${s}_t), \"size of melloc_${s}_t\");"
      for f in $(fields "melloc_${s}_s" "$build/include/melloc.h"); do
        echo "_Static_assert(offsetof(man_${s}_t, $f) == offsetof(melloc_${s}_t, $f), \"$f\");"
      done
    done
    echo 'int main(void) { return 0; }'
  } > "$tmp/structs.c"
  compile "melloc.3's melloc_stats_t listing has the header's fields and offsets, and it" \
    "$tmp/structs.c" "$tmp/structs" || true
fi

# Every misuse message of melloc(3) and the README ("melloc: CALL(): PROBLEM: pointer")
# is one that test_errors provokes and checks, word for word: a case of its table names
# the call and the problem (written out, or through one of its macros).
misuse=$( (unroff < "$src/man/melloc.3"; cat "$src/README") |
  grep -o 'melloc: [a-z_]*(): [a-z][a-z ()]*: pointer 0x' | sed -e 's/^melloc: //' -e 's/: pointer 0x$//' | sort -u)
[ -n "$misuse" ] || tap_not_ok "melloc.3 shows the misuse messages"
errors_c=$tmp/test_errors.c # the table's entries joined onto one line each
tr '\n' ' ' < "$src/tests/integration/test_errors.c" | sed 's/  */ /g; s/#define/\n#define/g; s/;/;\n/g' > "$errors_c"
while IFS= read -r w; do
  [ -n "$w" ] || continue
  call=${w%%(): *}
  what=${w#*(): }
  macro=$(sed -n "s/^#define \([A-Z_]*\) \"$what\" .*/\1/p" "$errors_c" | head -n 1)
  if grep -qE "\"$call\", (\"$(printf '%s' "$what" | sed 's/[()]/\\&/g')\"${macro:+|$macro})\}" "$errors_c"; then
    tap_ok "misuse message '$w' is one test_errors checks"
  else
    tap_not_ok "misuse message '$w' is one test_errors checks"
  fi
done <<< "$misuse"

# The rest runs host programs (/bin/true, sort) with the library preloaded.
if why=$(tap_preload_mismatch "$lib"); then
  tap_skip "the examples' settings, messages and statistics on the library" \
    "the host's programs cannot load $lib: $why"
  tap_done
fi

# ---- Settings in the examples ----
# Every KEY:VALUE list given to MELLOC_CONF= or --conf in the pages' examples and the
# README is accepted: the library warns about none of it.
confs=$(for m in 1 3 7; do blocks "$src/man/melloc.$m" EXAMPLES "$tmp/conf$m" | xargs -r cat; done |
  cat - "$src/README" | grep -Eo '(MELLOC_CONF=|--conf[ =])[a-z_]+:[^ ,`]+(,[a-z_]+:[^ ,`]+)*' |
  sed -E 's/^(MELLOC_CONF=|--conf[ =])//' | sort -u)
[ -n "$confs" ] || tap_not_ok "settings found in the examples"
for c in $confs; do
  LD_PRELOAD=$lib MELLOC_CONF=$c /bin/true 2> "$tmp/err"
  if grep -q '^melloc: MELLOC_CONF' "$tmp/err"; then
    tap_not_ok "example setting $c is accepted"
    tap_diag "$(cat "$tmp/err")"
  else
    tap_ok "example setting $c is accepted"
  fi
done

# Every "melloc: MELLOC_CONF: ... 'PAIR'..." line of the pages is what the library prints
# for that pair.
for m in 1 3 7; do
  for sec in DESCRIPTION EXAMPLES; do
    # shellcheck disable=SC2046 # a list of files
    grep -h "^melloc: MELLOC_CONF: .*'[^']*'" /dev/null $(blocks "$src/man/melloc.$m" $sec "$tmp/msg$m$sec")
  done
done > "$tmp/messages"
[ -s "$tmp/messages" ] || tap_not_ok "melloc.7 shows the settings' messages"
while IFS= read -r want; do
  pair=$(echo "$want" | sed "s/.*'\([^']*\)'.*/\1/")
  got=$(LD_PRELOAD=$lib MELLOC_CONF=$pair /bin/true 2>&1)
  if [ "$got" = "$want" ]; then
    tap_ok "MELLOC_CONF=$pair prints the message of the example"
  else
    tap_not_ok "MELLOC_CONF=$pair prints the message of the example"
    tap_diag "page: $want"
    tap_diag "library: $got"
  fi
done < "$tmp/messages"

# ---- melloc(1): the statistics it shows and explains are those printed ----
seq 1 50000 | sort -R > "$tmp/input"
"$cmd" --stats sort -n "$tmp/input" > /dev/null 2> "$tmp/stats.txt"
"$cmd" --stats=json sort -n "$tmp/input" > /dev/null 2> "$tmp/stats.json"
# The names of the text report: the summary lines' labels, then the table's columns.
names() { sed -n 's/^\([a-z][a-z ]*\): .*/\1/p' "$1"; grep -E '^ +size ' "$1" | tr -s ' ' '\n' | sed '/^$/d'; }
names "$tmp/stats.txt" > "$tmp/real.names"
if [ "$(wc -l < "$tmp/real.names")" -lt 10 ]; then
  tap_not_ok "melloc --stats prints a report"
  tap_diag "$(cat "$tmp/stats.txt")"
fi
ex=$(blocks "$src/man/melloc.1" EXAMPLES "$tmp/m1" | xargs -r grep -l 'statistics ___' | head -n 1)
names "${ex:-/dev/null}" > "$tmp/example.names"
if cmp -s "$tmp/real.names" "$tmp/example.names"; then
  tap_ok "melloc.1's example output has the lines and columns of melloc --stats, in order"
else
  tap_not_ok "melloc.1's example output has the lines and columns of melloc --stats, in order"
  tap_diag "$(diff "$tmp/real.names" "$tmp/example.names")"
fi
if grep -q "^___ melloc $(sed -n 's/^AC_INIT(\[melloc\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac") statistics ___$" \
  "${ex:-/dev/null}"; then
  tap_ok "melloc.1's example output has the version's header line"
else
  tap_not_ok "melloc.1's example output has the version's header line"
fi
# The STATISTICS section: a .TP entry (".B name:" or ".B column") per line and column.
awk '/^\.SH STATISTICS/ { p = 1; next } /^\.SH/ { p = 0 } p && prev == ".TP" && /^\.B / {
    sub(/^\.B /, ""); sub(/:$/, ""); print } { prev = $0 }' "$src/man/melloc.1" > "$tmp/explained.names"
if cmp -s "$tmp/real.names" "$tmp/explained.names"; then
  tap_ok "melloc.1's STATISTICS explains each line and column of melloc --stats, in order"
else
  tap_not_ok "melloc.1's STATISTICS explains each line and column of melloc --stats, in order"
  tap_diag "$(diff "$tmp/real.names" "$tmp/explained.names")"
fi
# The JSON keys it lists.
grep -o '"[a-z_]*":' "$tmp/stats.json" | tr -d '":' | sort -u > "$tmp/real.keys"
# (from "with the keys" to "included.": the names in bold, the words between quoted)
sed -n '/^\.SH STATISTICS/,/^\.SH EXIT/p' "$src/man/melloc.1" | unroff |
  sed -n '/the keys$/,/included\.$/p' | grep -E '^\.(B|BR|RB) ' |
  sed -e 's/^\.[BR]* //' -e 's/"[^"]*"/ /g' | tr ' ,()' '\n\n\n\n' | grep -E '^[a-z_]+$' |
  sort -u > "$tmp/doc.keys"
if [ -s "$tmp/real.keys" ] && cmp -s "$tmp/real.keys" "$tmp/doc.keys"; then
  tap_ok "melloc.1's STATISTICS names every key of --stats=json"
else
  tap_not_ok "melloc.1's STATISTICS names every key of --stats=json"
  tap_diag "$(diff "$tmp/real.keys" "$tmp/doc.keys")"
fi

tap_done
