#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pkg-config from the build tree, as the README says to use it before installing:
# PKG_CONFIG_PATH=<build dir> finds melloc-uninstalled.pc, and a program compiled and
# linked with its flags runs at once on the build tree's library (dynamic), or with
# melloc linked in (-static, with --static's flags); in both, malloc is melloc's.
# The same for melloc-hardened-uninstalled.pc and the hardened library, which the
# program tells from the default one by its statistics header.
# Environment (make check sets it): abs_top_builddir, top_srcdir, CC; MELLOC_HARDENED_LIB
# (empty when configured with --disable-hardened: its checks are then a SKIP).
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/tap.sh"
build=${abs_top_builddir:-$(pwd)}
cc=${CC:-cc}
hardened_lib=${MELLOC_HARDENED_LIB-$build/.libs/libmelloc-hardened.so}
[ -f "$build/melloc-uninstalled.pc" ] || tap_bail "test_pkgconfig: $build/melloc-uninstalled.pc not made (configure)"
[ -f "$build/.libs/libmelloc.so" ] || tap_bail "test_pkgconfig: $build/.libs/libmelloc.so not built"
if [ -n "$hardened_lib" ]; then
  [ -f "$build/melloc-hardened-uninstalled.pc" ] ||
    tap_bail "test_pkgconfig: $build/melloc-hardened-uninstalled.pc not made (configure)"
  [ -f "$hardened_lib" ] || tap_bail "test_pkgconfig: $hardened_lib not built"
fi
# names MODULE: the names of the checks of one module.
names() {
  echo "pkg-config finds the build tree's $1
$1: a program built with its flags compiles and links
$1: it runs on the build tree's library, with melloc's malloc
$1: --static: it links a static program
$1: the static program runs with melloc's malloc"
}
if ! tap_have pkg-config; then
  for m in melloc melloc-hardened; do
    while IFS= read -r n; do tap_skip "$n" "no pkg-config"; done <<< "$(names $m)"
  done
  tap_done
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset LD_LIBRARY_PATH LD_PRELOAD PKG_CONFIG_DISABLE_UNINSTALLED
export PKG_CONFIG_PATH=$build

want=$(sed -n 's/^AC_INIT(\[melloc\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")

cat > "$tmp/prog.c" << 'EOF'
#include <melloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *(*alloc_fn)(size_t);

/* The statistics' first line: "___ melloc VERSION statistics ___", or from the hardened
   library "___ melloc VERSION hardened statistics ___". */
static char header[256];
static void first_line(void *opaque, const char *text) {
  size_t n = strlen(header);
  (void)opaque;
  if (!strchr(header, '\n')) snprintf(header + n, sizeof(header) - n, "%s", text);
}

/* Arguments: "default" or "hardened", the library it must run on; then, optionally, the
   path of that library, which must be among its mappings. */
int main(int argc, char **argv) {
  /* melloc's malloc: the standard name and the melloc_ name are one function. */
  alloc_fn volatile std = malloc, mel = melloc_malloc;
  /* Usable size: the class's 112 bytes, or in the hardened library exactly the request
     (its canary follows it). */
  char *p = calloc(1, 100);
  size_t usable = argc > 1 && strcmp(argv[1], "hardened") == 0 ? 100 : 112;
  if (std != mel || p == NULL || melloc_usable_size(p) != usable) return 1;
  free(p);
  if (strcmp(melloc_version(), MELLOC_VERSION_STRING) != 0) return 2;
  if (argc < 2 || melloc_stats_print(first_line, NULL, "text") != 0) return 4;
  if ((strstr(header, " hardened statistics ___\n") != NULL) != (strcmp(argv[1], "hardened") == 0)) {
    printf("not the %s library: %s", argv[1], header);
    return 4;
  }
  /* The library it runs on, from its own mappings. */
  if (argc > 2) {
    char line[4096];
    int found = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(line, sizeof(line), f))
      if (strstr(line, argv[2])) found = 1;
    if (f) fclose(f);
    if (!found) return 3;
  }
  puts("ok");
  return 0;
}
EOF

# check_module MODULE LIB KIND: the build tree's MODULE.pc gives the flags of a program
# that runs on LIB (a .so; with -static its .a), as the KIND (default or hardened) library.
check_module() {
  local m=$1 lib=$2 kind=$3 got cflags libs lname out st
  got=$(pkg-config --modversion "$m" 2>&1)
  cflags=$(pkg-config --cflags "$m" | sed 's/ *$//')
  libs=$(pkg-config --libs "$m" | sed 's/ *$//')
  # libmelloc-hardened.so: -lmelloc-hardened
  lname=${lib##*/lib}
  lname=${lname%.so}
  if [ "$got" = "$want" ] && [ "$cflags" = "-I$build/include" ] && [ "${libs##* }" = "-l$lname" ]; then
    tap_ok "pkg-config finds the build tree's $m"
  else
    tap_not_ok "pkg-config finds the build tree's $m"
    tap_diag "version '$got' (want $want), cflags '$cflags', libs '$libs' (want -l$lname last)"
  fi

  # shellcheck disable=SC2046 # pkg-config prints a list of options
  if $cc -Wall -Werror -o "$tmp/prog" "$tmp/prog.c" $(pkg-config --cflags --libs "$m") > "$tmp/cc.log" 2>&1; then
    tap_ok "$m: a program built with its flags compiles and links"
    out=$("$tmp/prog" "$kind" "$lib" 2>&1)
    st=$?
    if [ "$st" -eq 0 ] && [ "$out" = ok ]; then
      tap_ok "$m: it runs on the build tree's library, with melloc's malloc"
    else
      tap_not_ok "$m: it runs on the build tree's library, with melloc's malloc"
      tap_diag "status $st: $out"
    fi
  else
    tap_not_ok "$m: a program built with its flags compiles and links"
    tap_diag "$(cat "$tmp/cc.log")"
    tap_not_ok "$m: it runs on the build tree's library, with melloc's malloc"
  fi

  # shellcheck disable=SC2046
  if [ ! -f "${lib%.so}.a" ]; then
    tap_skip "$m: --static: it links a static program" "no static library (--disable-static)"
    tap_skip "$m: the static program runs with melloc's malloc" "no static library (--disable-static)"
  elif $cc -static -o "$tmp/prog-static" "$tmp/prog.c" $(pkg-config --cflags --libs --static "$m") \
    > "$tmp/cc.log" 2>&1; then
    tap_ok "$m: --static: it links a static program"
    out=$("$tmp/prog-static" "$kind" 2>&1)
    st=$?
    if [ "$st" -eq 0 ] && [ "$out" = ok ]; then
      tap_ok "$m: the static program runs with melloc's malloc"
    else
      tap_not_ok "$m: the static program runs with melloc's malloc"
      tap_diag "status $st: $out"
    fi
  else
    tap_not_ok "$m: --static: it links a static program"
    tap_diag "$(cat "$tmp/cc.log")"
    tap_not_ok "$m: the static program runs with melloc's malloc"
  fi
}

check_module melloc "$build/.libs/libmelloc.so" default
if [ -n "$hardened_lib" ]; then
  check_module melloc-hardened "$hardened_lib" hardened
else
  while IFS= read -r n; do tap_skip "$n" "configured with --disable-hardened"; done <<< "$(names melloc-hardened)"
fi

tap_done
