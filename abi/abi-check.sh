#!/bin/sh
# SPDX-License-Identifier: MIT
# Compare the ABI of a freshly built libmelloc.so with the committed baseline
# (abi/libmelloc.so.0.abi, written by abidw from libabigail), or rewrite the baseline.
#
#   abi/abi-check.sh check LIB HEADERS_DIR BASELINE STANDARD_NAMES
#   abi/abi-check.sh dump  LIB HEADERS_DIR BASELINE
#
# `make abi-check` and `make abi-dump` call this with the right paths.  The check passes
# when the only differences are additions that keep old programs and old libraries
# working together:
#   - a new versioned symbol in a version node that the baseline does not have
#     (MELLOC_0.2 { ... } MELLOC_0.1;), or
#   - a new unversioned standard name listed in abi/standard-names.txt (these are never
#     versioned, see src/melloc.map).
# Anything else fails: a removed or changed function, a changed type reachable from the
# public header, a changed soname, or a symbol added to a node the baseline already has
# (a released node is closed).  Before a release that legitimately changes the baseline
# (the first release of a node), run `make abi-dump` and commit abi/ with that change.
#
# The library must be built with debug information (the default CFLAGS -g -O2 does),
# since abidw reads the types from DWARF.
set -u

ABIDW_OPTS="--drop-private-types --no-corpus-path --no-comp-dir-path --no-show-locs \
--type-id-style hash --exported-interfaces-only --drop-undefined-syms"

die() {
  echo "abi-check: $*" >&2
  exit 1
}

mode=${1:-}
lib=${2:-}
headers=${3:-}
baseline=${4:-}
standard=${5:-}
[ -n "$baseline" ] || die "usage: $0 check|dump LIB HEADERS_DIR BASELINE [STANDARD_NAMES]"

command -v abidw > /dev/null 2>&1 && command -v abidiff > /dev/null 2>&1 ||
  die "abidw and abidiff are needed: apt-get install abigail-tools (or dnf install libabigail)"
[ -f "$lib" ] || die "$lib does not exist: run make first (the check needs the shared library)"
# Follow the libtool symlink to the real file: abidw wants the ELF object.
if [ -L "$lib" ]; then
  real=$(readlink -f "$lib") || die "cannot resolve $lib"
  lib=$real
fi
if command -v readelf > /dev/null 2>&1; then
  readelf -S "$lib" 2> /dev/null | grep -q '\.debug_info' ||
    die "$lib has no debug information: configure with CFLAGS containing -g (the default)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/abi-check.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

# shellcheck disable=SC2086 # ABIDW_OPTS is a list of options
abidw $ABIDW_OPTS --headers-dir "$headers" --out-file "$tmp/current.abi" "$lib" ||
  die "abidw failed on $lib"

if [ "$mode" = dump ]; then
  cp "$tmp/current.abi" "$baseline" || die "cannot write $baseline"
  echo "abi-dump: wrote $baseline from $lib; review it with git diff and commit it"
  exit 0
fi
[ "$mode" = check ] || die "unknown mode $mode (check or dump)"
[ -f "$baseline" ] || die "$baseline is missing: run make abi-dump on the released source"
[ -f "$standard" ] || die "$standard is missing"

arch() { sed -n "1s/.* architecture='\\([^']*\\)'.*/\\1/p" "$1"; }
if [ "$(arch "$baseline")" != "$(arch "$tmp/current.abi")" ]; then
  echo "abi-check: the baseline is for $(arch "$baseline"), this build is $(arch "$tmp/current.abi"): skipped"
  exit 0
fi

fail=0

# 1. Everything but additions: abidiff's exit status is a bit mask (1 error, 2 usage,
#    4 ABI change, 8 incompatible change); with --no-added-syms, additions don't count.
abidiff --no-added-syms --no-show-locs "$baseline" "$tmp/current.abi" > "$tmp/diff" 2>&1
status=$?
if [ "$status" -ne 0 ]; then
  if [ $((status & 3)) -ne 0 ]; then
    cat "$tmp/diff" >&2
    die "abidiff could not compare (status $status)"
  fi
  echo "FAIL: the ABI changed (abidiff status $status):"
  cat "$tmp/diff"
  fail=1
fi

# 2. Additions: each added symbol needs a node the baseline does not have, or must be a
#    listed standard name.  Symbols are read from the abixml elf-symbol elements.
symbols() {
  awk -v q="'" '/<elf-symbol / {
      n = $0; sub(".*<elf-symbol name=" q, "", n); sub(q ".*", "", n)
      v = "-"
      if (index($0, " version=" q)) { v = $0; sub(".* version=" q, "", v); sub(q ".*", "", v) }
      print n, v
    }' "$1" | sort -u
}
symbols "$baseline" > "$tmp/old"
symbols "$tmp/current.abi" > "$tmp/new"
awk '{ print $2 }' "$tmp/old" | sort -u > "$tmp/oldnodes"
sed -e 's/#.*//' -e 's/[ \t]//g' -e '/^$/d' "$standard" | sort -u > "$tmp/standard"
comm -13 "$tmp/old" "$tmp/new" > "$tmp/added"
while read -r name ver; do
  if [ "$ver" = - ]; then
    if grep -qx "$name" "$tmp/standard"; then
      echo "added: $name (unversioned standard name)"
    else
      echo "FAIL: $name was added unversioned and is not a standard name in abi/standard-names.txt"
      fail=1
    fi
  elif grep -qx "$ver" "$tmp/oldnodes"; then
    echo "FAIL: $name was added to $ver, a node of the baseline: a released node is closed, add a new node (and if $ver is not released yet, run make abi-dump and commit abi/)"
    fail=1
  else
    echo "added: $name@@$ver (new node)"
  fi
done < "$tmp/added"

if [ "$fail" -ne 0 ]; then
  echo "abi-check: $lib is not ABI compatible with $baseline"
  exit 1
fi
echo "abi-check: $lib is compatible with $baseline ($(wc -l < "$tmp/added") symbols added)"
exit 0
