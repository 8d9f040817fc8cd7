#!/bin/sh
# SPDX-License-Identifier: MIT
# Check the dynamic symbol table of libmelloc.so against the version script and the
# header, both ways:
#   - every versioned export is a name of src/melloc.map, in the node the map puts it
#     in, and is declared MELLOC_API in include/melloc.h.in;
#   - every unversioned export is a standard name listed in abi/standard-names.txt;
#   - nothing else is exported (no internal mlc_* name, no stray libc or compiler name);
#   - every map name and every MELLOC_API declaration is exported, versioned, and every
#     listed standard name is exported unversioned;
#   - debian/<package>.symbols (when present; the package named after the soname:
#     debian/libmelloc0.symbols for libmelloc.so.0) lists exactly the exported symbols.
# The expected lists are parsed from those three files, never written here.
# Then the same checks on the hardened library, libmelloc-hardened.so.0 (with its own
# debian/libmelloc-hardened0.symbols), and that its dynamic symbol table is exactly
# libmelloc's: the two are built from the same sources with the same version script.
#
# Usage: tests/check_symbols.sh [path/to/libmelloc.so [path/to/libmelloc-hardened.so]]
# Environment (set by make check's AM_TESTS_ENVIRONMENT): MELLOC_LIB, MELLOC_HARDENED_LIB
# (empty when configured with --disable-hardened), top_srcdir; NM, READELF.
# Output: TAP, one check per library and one comparing them (make check runs it through
# automake's tap-driver.sh).
# Exit status: 0 pass (or skip: make check's library was not built, with
# --disable-shared or --disable-hardened), 1 mismatch, 99 hard error (a tool, an input
# file or a library named on the command line is missing).
set -u

srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
lib=${1:-${MELLOC_LIB:-.libs/libmelloc.so}}
if [ $# -ge 1 ]; then
  hlib=${2:-}
else
  hlib=${MELLOC_HARDENED_LIB-.libs/libmelloc-hardened.so}
fi
map=$srcdir/src/melloc.map
header=$srcdir/include/melloc.h.in
standard=$srcdir/abi/standard-names.txt
nm=${NM:-nm}
readelf=${READELF:-readelf}

bail() {
  echo "check_symbols: $*" >&2
  echo "Bail out! check_symbols: $*"
  exit 99
}

for f in "$map" "$header" "$standard"; do
  [ -f "$f" ] || bail "$f is missing"
done
if [ ! -f "$lib" ]; then
  [ $# -eq 0 ] || bail "$lib does not exist"
  echo "1..0 # SKIP $lib does not exist (configured with --disable-shared?)"
  exit 0
fi
[ -z "$hlib" ] || [ -f "$hlib" ] || [ $# -lt 2 ] || bail "$hlib does not exist"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_symbols.XXXXXX") || bail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

# ---- Expected: the version script, "name node" per global name ----
# Comments are /* ... */ (possibly over several lines) and # to end of line.
awk '
  { text = text $0 "\n" }
  END {
    out = ""
    while ((i = index(text, "/*")) > 0) {
      out = out substr(text, 1, i - 1) " "
      rest = substr(text, i + 2)
      j = index(rest, "*/")
      if (j == 0) { print "ERROR unterminated comment"; exit 1 }
      text = substr(rest, j + 2)
    }
    text = out text
    n = split(text, lines, "\n")
    toks = ""
    for (l = 1; l <= n; l++) {
      line = lines[l]
      sub(/#.*/, "", line)
      gsub(/[{};:]/, " & ", line)
      toks = toks " " line
    }
    nt = split(toks, t, /[ \t]+/)
    node = ""; section = ""; prev = ""; after_close = 0
    for (k = 1; k <= nt; k++) {
      w = t[k]
      if (w == "") continue
      if (after_close) { if (w == ";") after_close = 0; continue }
      if (w == "{") {
        if (node != "") { print "ERROR nested block after " node " (extern blocks are not supported)"; exit 1 }
        node = prev; section = "global"; print "NODE " node; continue
      }
      if (w == "}") { node = ""; after_close = 1; continue }
      if (node == "") { prev = w; continue }
      if ((w == "global" || w == "local") && t[k + 1] == ":") { section = w; k++; continue }
      if (w == ";") continue
      if (section == "global") {
        if (w ~ /[*?\[]/) { print "ERROR wildcard " w " in node " node; exit 1 }
        print "SYM " w " " node
      }
    }
  }' "$map" > "$tmp/map.raw" || { cat "$tmp/map.raw" >&2; bail "cannot parse $map"; }
if grep '^ERROR' "$tmp/map.raw" >&2; then bail "cannot parse $map"; fi
awk '$1 == "SYM" { print $2, $3 }' "$tmp/map.raw" | sort > "$tmp/map"
awk '$1 == "NODE" { print $2 }' "$tmp/map.raw" | sort > "$tmp/nodes"

# ---- Expected: the header's MELLOC_API declarations ----
# Drop comments and preprocessor lines, cut into declarations at ; { }, keep those that
# carry MELLOC_API, and take the first lower-case identifier followed by "(" (the
# function name; all-caps attribute macros and __attribute__ are skipped), or for a
# variable the last identifier.
awk '
  { text = text $0 "\n" }
  END {
    out = ""
    while ((i = index(text, "/*")) > 0) {
      out = out substr(text, 1, i - 1) " "
      rest = substr(text, i + 2)
      j = index(rest, "*/")
      if (j == 0) exit 1
      text = substr(rest, j + 2)
    }
    text = out text
    n = split(text, lines, "\n")
    code = ""; cont = 0
    for (l = 1; l <= n; l++) {
      line = lines[l]
      sub(/\/\/.*/, "", line)
      if (cont || line ~ /^[ \t]*#/) { cont = (line ~ /\\$/); continue }
      code = code " " line
    }
    gsub(/[{}]/, ";", code)
    nd = split(code, decls, ";")
    for (d = 1; d <= nd; d++) {
      s = decls[d]
      if (s !~ /(^|[^A-Za-z0-9_])MELLOC_API([^A-Za-z0-9_]|$)/) continue
      name = ""
      rest = s
      while (match(rest, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
        id = substr(rest, RSTART, RLENGTH)
        sub(/[ \t]*\($/, "", id)
        rest = substr(rest, RSTART + RLENGTH)
        if (id ~ /^[A-Z0-9_]+$/ || id ~ /^__/) continue
        name = id
        break
      }
      if (name == "") {
        v = s
        sub(/\[.*/, "", v); sub(/=.*/, "", v); sub(/[ \t]+$/, "", v)
        if (match(v, /[A-Za-z_][A-Za-z0-9_]*$/)) name = substr(v, RSTART, RLENGTH)
      }
      if (name != "") print name
    }
  }' "$header" | sort -u > "$tmp/header" || bail "cannot parse $header"

# ---- Expected: the unversioned standard names ----
sed -e 's/#.*//' -e 's/[ \t]//g' -e '/^$/d' "$standard" | sort -u > "$tmp/standard"

fail=0
problem() {
  fail=1
  echo "# FAIL: $*"
}

# check_lib LIB: the checks below for one library; prints a "# FAIL: ..." line per
# problem and fails when there was one.  Leaves its dynamic symbol table in $tmp/nm.raw,
# its exports ("name version", version - for an unversioned one) in $tmp/exports, and
# sets nver, nunver, nodes and symname (the Debian symbols file it compared with).
check_lib() {
  fail=0
  # ---- Actual: the dynamic symbol table ----
  if ! "$nm" -D --defined-only "$1" > "$tmp/nm.raw"; then
    bail "$nm -D --defined-only $1 failed"
  fi
  # "addr type name[@@version]"; an A symbol named like a node is the version definition.
  awk '
    NF >= 3 {
      type = $2; name = $3; ver = ""; def = 1
      if ((i = index(name, "@@")) > 0) { ver = substr(name, i + 2); name = substr(name, 1, i - 1) }
      else if ((i = index(name, "@")) > 0) { ver = substr(name, i + 1); name = substr(name, 1, i - 1); def = 0 }
      if (type == "A" && ver == "") { print "VERDEF", name; next }
      if (ver == "") print "UNVER", name
      else if (def) print "VER", name, ver
      else print "HIDDENVER", name, ver
    }' "$tmp/nm.raw" > "$tmp/nm"
  awk '$1 == "VER" { print $2, $3 }' "$tmp/nm" | sort > "$tmp/versioned"
  awk '$1 == "UNVER" { print $2 }' "$tmp/nm" | sort > "$tmp/unversioned"
  awk '$1 == "VERDEF" { print $2 }' "$tmp/nm" | sort > "$tmp/verdefs"

  { cat "$tmp/versioned"; awk '{ print $1, "-" }' "$tmp/unversioned"; } | sort > "$tmp/exports"

  # ---- Compare ----
  awk '$1 == "HIDDENVER" { print $2 "@" $3 }' "$tmp/nm" > "$tmp/hidden"
  while read -r s; do
    problem "$s is exported with a non-default version (a compatibility symbol): the ABI is never changed, only added to"
  done < "$tmp/hidden"

  awk '{ print $1 }' "$tmp/map" | uniq -d > "$tmp/dups"
  while read -r name; do
    problem "$name is listed in more than one node of src/melloc.map: a name is added once, in the node of the release that adds it"
  done < "$tmp/dups"

  while read -r name ver; do
    mapnode=$(awk -v n="$name" '$1 == n { print $2 }' "$tmp/map" | tr '\n' ' ' | sed 's/ $//')
    if [ -z "$mapnode" ]; then
      problem "$name@@$ver is exported but not listed in src/melloc.map"
    elif [ "$mapnode" != "$ver" ]; then
      problem "$name is exported in version $ver but src/melloc.map puts it in $mapnode"
    fi
    grep -qx "$name" "$tmp/header" ||
      problem "$name@@$ver is exported but has no MELLOC_API declaration in include/melloc.h.in"
  done < "$tmp/versioned"

  while read -r name; do
    if grep -qx "$name" "$tmp/standard"; then
      continue
    elif awk -v n="$name" '$1 == n { f = 1 } END { exit !f }' "$tmp/map"; then
      problem "$name is exported unversioned but src/melloc.map lists it (was the version script applied?)"
    else
      problem "$name is exported unversioned and is not a standard name in abi/standard-names.txt (an internal function must be static or hidden; a new standard entry point must be added there)"
    fi
  done < "$tmp/unversioned"

  while read -r name node; do
    awk -v n="$name" -v v="$node" '$1 == n && $2 == v { f = 1 } END { exit !f }' "$tmp/versioned" ||
      problem "$name (node $node of src/melloc.map) is not exported as $name@@$node"
    grep -qx "$name" "$tmp/header" ||
      problem "$name is in src/melloc.map but has no MELLOC_API declaration in include/melloc.h.in"
    grep -qx "$name" "$tmp/standard" &&
      problem "$name is both a versioned map name and an unversioned standard name"
  done < "$tmp/map"

  while read -r name; do
    awk -v n="$name" '$1 == n { f = 1 } END { exit !f }' "$tmp/map" ||
      problem "$name is declared MELLOC_API in include/melloc.h.in but not listed in src/melloc.map"
  done < "$tmp/header"

  while read -r name; do
    grep -qx "$name" "$tmp/unversioned" ||
      problem "$name is listed in abi/standard-names.txt but not exported unversioned (every allocation entry point is interposed, or none)"
  done < "$tmp/standard"

  while read -r node; do
    grep -qx "$node" "$tmp/verdefs" || problem "version node $node of src/melloc.map is not defined in $1"
  done < "$tmp/nodes"

  # The Debian symbols file must say the same (dpkg-gensymbols fails the package build at
  # check level 4 otherwise): catch it here, in make check, rather than in packaging.
  # The package is named after the soname (libmelloc.so.0: libmelloc0).
  soname=$("$readelf" -d "$1" 2> /dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')
  [ -n "$soname" ] || soname=${1##*/}
  symname=debian/$(echo "$soname" | sed 's/\.so\.\([0-9][0-9]*\).*$/\1/; s/\.so$//').symbols
  symfile=$srcdir/$symname
  if [ -f "$symfile" ]; then
    awk '/^ / { print $1 }' "$symfile" | sort > "$tmp/debian"
    { awk '{ print $1 "@" $2 }' "$tmp/versioned"
      awk '{ print $1 "@Base" }' "$tmp/unversioned"
      awk '{ print $1 "@" $1 }' "$tmp/verdefs"; } | sort > "$tmp/expected-debian"
    comm -13 "$tmp/debian" "$tmp/expected-debian" > "$tmp/d-missing"
    comm -23 "$tmp/debian" "$tmp/expected-debian" > "$tmp/d-extra"
    while read -r s; do
      problem "$s is exported but missing from $symname (add \" $s <first version>\")"
    done < "$tmp/d-missing"
    while read -r s; do
      problem "$s is in $symname but not exported"
    done < "$tmp/d-extra"
  fi

  nver=$(wc -l < "$tmp/versioned")
  nunver=$(wc -l < "$tmp/unversioned")
  nodes=$(tr '\n' ' ' < "$tmp/nodes" | sed 's/ $//')
  return "$fail"
}

n=0
status=0
# report LIB: one TAP line for check_lib LIB.
report() {
  n=$((n + 1))
  if check_lib "$1"; then
    echo "ok $n - $1 exports $nver versioned melloc names ($nodes) and $nunver unversioned standard names, as declared"
  else
    echo "not ok $n - $1 matches src/melloc.map, include/melloc.h.in, abi/standard-names.txt and $symname"
    echo "# exported symbols were:"
    sed 's/^/#   /' "$tmp/nm.raw"
    status=1
  fi
}

report "$lib"
cp "$tmp/exports" "$tmp/exports.default"
if [ -z "$hlib" ]; then
  why="configured with --disable-hardened"
  [ $# -eq 0 ] || why="no hardened library named on the command line"
  echo "ok 2 - the hardened library's symbols # SKIP $why"
  echo "ok 3 - the hardened library exports what $lib does # SKIP $why"
  n=3
elif [ ! -f "$hlib" ]; then
  echo "ok 2 - the hardened library's symbols # SKIP $hlib does not exist (configured with --disable-shared?)"
  echo "ok 3 - the hardened library exports what $lib does # SKIP $hlib does not exist"
  n=3
else
  report "$hlib"
  n=$((n + 1))
  if cmp -s "$tmp/exports.default" "$tmp/exports"; then
    echo "ok $n - $hlib exports exactly what $lib does ($(wc -l < "$tmp/exports") symbols, the same versions)"
  else
    echo "not ok $n - $hlib exports exactly what $lib does"
    diff "$tmp/exports.default" "$tmp/exports" | sed -n 's/^</#   only in the default library:/p; s/^>/#   only in the hardened library:/p'
    status=1
  fi
fi

# The libraries it makes every process load: its NEEDED entries are libc (and the
# dynamic linker) and what configure linked (MELLOC_LINK_LIBS: -lX is libX.so.*), and
# libgcc_s.so.1 only where the compiler could not link libgcc's unwinder in
# (MELLOC_STATIC_LIBGCC empty: each process would pay ~76 KiB for it).
n=$((n + 1))
if [ -z "${MELLOC_LINK_LIBS+set}" ]; then
  echo "ok $n - the libraries $lib loads # SKIP MELLOC_LINK_LIBS is not set (make check sets it)"
else
  allowed='libc.so.* ld-linux*.so.* ld64.so.* ld.so.*'
  for l in $MELLOC_LINK_LIBS; do
    case $l in -l*) allowed="$allowed lib${l#-l}.so.*" ;; esac
  done
  [ -n "${MELLOC_STATIC_LIBGCC:-}" ] || allowed="$allowed libgcc_s.so.*"
  bad=
  needed=
  set -f # the allowed names are patterns, never file names here
  for l in "$lib" ${hlib:+"$hlib"}; do
    [ -f "$l" ] || continue
    ln=$("$readelf" -d "$l" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' | tr '\n' ' ' | sed 's/ $//')
    [ -n "$ln" ] || bad="$bad (none found in $l: readelf -d failed?)"
    for d in $ln; do
      ok=
      for a in $allowed; do
        # shellcheck disable=SC2254
        case $d in $a) ok=1 ;; esac
      done
      [ -n "$ok" ] || bad="$bad $d (${l##*/})"
    done
    needed="$needed${needed:+; }${l##*/}: $ln"
  done
  set +f
  if [ -n "$bad" ]; then
    echo "not ok $n - the libraries load only libc and what configure linked ($MELLOC_LINK_LIBS)"
    echo "#   they also need:$bad"
    status=1
  else
    echo "ok $n - the libraries need only what configure linked ($needed)"
  fi
fi
echo "1..$n"
exit "$status"
