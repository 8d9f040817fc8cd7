#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pkg-config from the build tree, as the README says to use it before installing:
# PKG_CONFIG_PATH=<build dir> finds melloc-uninstalled.pc, and a program compiled and
# linked with its flags runs at once on the build tree's library (dynamic), or with
# melloc linked in (-static, with --static's flags); in both, malloc is melloc's.
# Environment (make check sets it): abs_top_builddir, top_srcdir, CC.
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/tap.sh"
build=${abs_top_builddir:-$(pwd)}
cc=${CC:-cc}
[ -f "$build/melloc-uninstalled.pc" ] || tap_bail "test_pkgconfig: $build/melloc-uninstalled.pc not made (configure)"
[ -f "$build/.libs/libmelloc.so" ] || tap_bail "test_pkgconfig: $build/.libs/libmelloc.so not built"
names="pkg-config finds the build tree's melloc
a program built with its flags compiles and links
it runs on the build tree's library, with melloc's malloc
--static: it links a static program
the static program runs with melloc's malloc"
if ! tap_have pkg-config; then
  while IFS= read -r n; do tap_skip "$n" "no pkg-config"; done <<< "$names"
  tap_done
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset LD_LIBRARY_PATH LD_PRELOAD PKG_CONFIG_DISABLE_UNINSTALLED
export PKG_CONFIG_PATH=$build

want=$(sed -n 's/^AC_INIT(\[melloc\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
got=$(pkg-config --modversion melloc 2>&1)
cflags=$(pkg-config --cflags melloc | sed 's/ *$//')
if [ "$got" = "$want" ] && [ "$cflags" = "-I$build/include" ]; then
  tap_ok "pkg-config finds the build tree's melloc"
else
  tap_not_ok "pkg-config finds the build tree's melloc"
  tap_diag "version '$got' (want $want), cflags '$cflags'"
fi

cat > "$tmp/prog.c" << 'EOF'
#include <melloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *(*alloc_fn)(size_t);

int main(int argc, char **argv) {
  /* melloc's malloc: the standard name and the melloc_ name are one function. */
  alloc_fn volatile std = malloc, mel = melloc_malloc;
  char *p = calloc(1, 100);
  if (std != mel || p == NULL || melloc_usable_size(p) != 112) return 1;
  free(p);
  if (strcmp(melloc_version(), MELLOC_VERSION_STRING) != 0) return 2;
  /* The library it runs on, from its own mappings. */
  if (argc > 1) {
    char line[4096];
    int found = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(line, sizeof(line), f))
      if (strstr(line, argv[1])) found = 1;
    if (f) fclose(f);
    if (!found) return 3;
  }
  puts("ok");
  return 0;
}
EOF

# shellcheck disable=SC2046 # pkg-config prints a list of options
if $cc -Wall -Werror -o "$tmp/prog" "$tmp/prog.c" $(pkg-config --cflags --libs melloc) > "$tmp/cc.log" 2>&1; then
  tap_ok "a program built with its flags compiles and links"
  out=$("$tmp/prog" "$build/.libs/libmelloc.so" 2>&1)
  st=$?
  if [ "$st" -eq 0 ] && [ "$out" = ok ]; then
    tap_ok "it runs on the build tree's library, with melloc's malloc"
  else
    tap_not_ok "it runs on the build tree's library, with melloc's malloc"
    tap_diag "status $st: $out"
  fi
else
  tap_not_ok "a program built with its flags compiles and links"
  tap_diag "$(cat "$tmp/cc.log")"
  tap_not_ok "it runs on the build tree's library, with melloc's malloc"
fi

# shellcheck disable=SC2046
if [ ! -f "$build/.libs/libmelloc.a" ]; then
  tap_skip "--static: it links a static program" "no static library (--disable-static)"
  tap_skip "the static program runs with melloc's malloc" "no static library (--disable-static)"
elif $cc -static -o "$tmp/prog-static" "$tmp/prog.c" $(pkg-config --cflags --libs --static melloc) \
  > "$tmp/cc.log" 2>&1; then
  tap_ok "--static: it links a static program"
  out=$("$tmp/prog-static" 2>&1)
  st=$?
  if [ "$st" -eq 0 ] && [ "$out" = ok ]; then
    tap_ok "the static program runs with melloc's malloc"
  else
    tap_not_ok "the static program runs with melloc's malloc"
    tap_diag "status $st: $out"
  fi
else
  tap_not_ok "--static: it links a static program"
  tap_diag "$(cat "$tmp/cc.log")"
  tap_not_ok "the static program runs with melloc's malloc"
fi

tap_done
