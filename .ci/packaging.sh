#!/bin/bash
# SPDX-License-Identifier: MIT
# Packaging CI for melloc (called from .ci/run; runs by hand the same way, as root on
# Debian 12):
#   1. installs its apt dependencies (only those missing);
#   2. checks that configure.ac, debian/changelog and rpm/melloc.spec agree on the version;
#   3. builds the Debian packages with dpkg-buildpackage -b from a clean copy of the tree,
#      running make check inside the build with python3 installed, as a Debian build
#      daemon does, and checks that the Python checks ran and passed there; runs lintian
#      (no error, no warning but initial-upload-closes-no-bugs);
#   4. installs the .debs, checks the installed libraries' exported symbols (the hardened
#      library's are the default one's), compiles and runs a program against each
#      through pkg-config (dynamic and -static) and under LD_PRELOAD, runs the melloc
#      command (debian/tests/link and debian/tests/command, the autopkgtests), and
#      removes them again;
#   5. builds the RPMs from the `make dist` tarball (rpmbuild -ta --nodeps: Debian has no
#      RPM database of the build dependencies) and checks their file lists;
#   6. runs make abi-check against the committed baseline in abi/.
# Exits non-zero on the first failure.  Takes about 6 minutes on 2 cores.
#
# The test suite: dpkg-buildpackage always runs it (make check, through dh_auto_test),
# with the hardening flags of debian/rules.  The top-level CI (.ci/run) already runs it
# on the same tree, so by default (CI=true) the RPMs are built without running it again
# (rpmbuild --nocheck).  Run with PACKAGING_CHECK=1 (the default outside CI) to run it
# inside the RPM build too, as Fedora's koji would; PACKAGING_CHECK=0 skips it in both.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=.ci/apt.sh
. "$here/.ci/apt.sh"

deb_check=1
if [ -n "${PACKAGING_CHECK:-}" ]; then
  run_check=$PACKAGING_CHECK
  deb_check=$PACKAGING_CHECK
elif [ "${CI:-}" = true ]; then
  run_check=0
else
  run_check=1
fi
jobs=$(nproc 2> /dev/null || echo 2)

step() { printf '\n==== packaging: %s\n' "$*"; }
fail() {
  echo "packaging: FAIL: $*" >&2
  exit 1
}

# ---- 1. Dependencies ----
step "apt dependencies"
deps="build-essential debhelper dh-autoreconf autoconf automake libtool pkg-config check
  lintian abigail-tools rpm git python3"
missing=""
for p in $deps; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2> /dev/null || true)
  [ "$status" = "install ok installed" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
  [ "$(id -u)" -eq 0 ] || fail "missing packages:$missing (run as root to install them)"
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt_update
  # shellcheck disable=SC2086 # a list of package names
  apt-get install -y -qq --no-install-recommends $missing > /dev/null
fi
[ "$(id -u)" -eq 0 ] || fail "installing the .debs needs root"

# ---- 2. Versions ----
step "versions agree"
v_ac=$(sed -n 's/^AC_INIT(\[melloc\], *\[\([^]]*\)\].*/\1/p' configure.ac)
v_deb=$(dpkg-parsechangelog -l debian/changelog -S Version)
v_rpm=$(sed -n 's/^Version: *//p' rpm/melloc.spec)
echo "configure.ac $v_ac, debian/changelog $v_deb, rpm/melloc.spec $v_rpm"
[ -n "$v_ac" ] || fail "cannot read the version from AC_INIT in configure.ac"
[ "$v_deb" = "$v_ac" ] || fail "debian/changelog says $v_deb, configure.ac says $v_ac (dch -v $v_ac)"
[ "$v_rpm" = "$v_ac" ] || fail "rpm/melloc.spec says $v_rpm, configure.ac says $v_ac"

# A clean copy of the tree: tracked files plus untracked ones that git does not ignore,
# so that a local run sees new files too and no build output of the working tree.
work=$(mktemp -d "${TMPDIR:-/tmp}/melloc-packaging.XXXXXX")
installed=0
cleanup() {
  if [ "$installed" -eq 1 ]; then
    apt-get purge -y -qq melloc libmelloc-dev libmelloc-hardened0 libmelloc0 > /dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
copy_tree() {
  mkdir -p "$1"
  git ls-files -z --cached --others --exclude-standard |
    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf - | tar -C "$1" -xf -
}

# ---- 3. Debian packages ----
step "dpkg-buildpackage -us -uc -b (test suite: $([ "$deb_check" = 1 ] && echo "run, with $(python3 --version)" || echo skipped))"
copy_tree "$work/deb/melloc"
opts="parallel=$jobs"
[ "$deb_check" = 1 ] || opts="$opts nocheck"
(cd "$work/deb/melloc" && DEB_BUILD_OPTIONS="$opts" dpkg-buildpackage -us -uc -b) \
  > "$work/deb/build.log" 2>&1 || {
  tail -n 80 "$work/deb/build.log"
  fail "dpkg-buildpackage failed (full log above)"
}
grep -E '^dpkg-gensymbols|^dpkg-buildpackage: info: binary-only' "$work/deb/build.log" || true
if [ "$deb_check" = 1 ]; then
  grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR):' "$work/deb/build.log" | tr -s ' ' | tr '\n' ' '
  echo
  # python3 is installed, so the checks that count Python's allocations ran and passed.
  for t in "test_melloc_cmd.sh [0-9]* - python's allocations are counted" \
    "run_programs.sh [0-9]* - python \\(PYTHONMALLOC=malloc\\)" \
    "run_programs.sh [0-9]* - dlopen from python \\(ctypes\\)"; do
    grep -Eq "^PASS: tests/(tools|programs)/$t" "$work/deb/build.log" ||
      fail "the package build's make check did not pass: $t"
  done
  echo "the package build's make check ran the Python checks, with python3 present"
fi
changes=$(ls "$work"/deb/melloc_*.changes)
ls -l "$work"/deb/*.deb

step "lintian"
lintian --fail-on error,warning --suppress-tags initial-upload-closes-no-bugs \
  --display-info "$changes" || fail "lintian reported errors or warnings"
echo "lintian: no errors, no warnings"

# ---- 4. Install and use ----
step "install the .debs, link and run through pkg-config"
installed=1
apt-get install -y -qq --no-install-recommends "$work"/deb/libmelloc0_*.deb \
  "$work"/deb/libmelloc-hardened0_*.deb "$work"/deb/libmelloc-dev_*.deb "$work"/deb/melloc_*.deb > /dev/null
dpkg -L libmelloc0 libmelloc-hardened0 libmelloc-dev melloc |
  grep -E 'libmelloc|melloc(-hardened)?\.(h|pc|[137]\.gz)$|bin/melloc$'
libdir=$(pkg-config --variable=libdir melloc)
top_srcdir=$here sh tests/check_symbols.sh "$libdir/libmelloc.so.0" "$libdir/libmelloc-hardened.so.0" ||
  fail "the installed libraries export the wrong symbols"
AUTOPKGTEST_TMP="$work/link" && mkdir -p "$AUTOPKGTEST_TMP" && export AUTOPKGTEST_TMP
sh debian/tests/link || fail "debian/tests/link (the autopkgtest) failed"
sh debian/tests/command || fail "debian/tests/command (the autopkgtest) failed"
apt-get purge -y -qq melloc libmelloc-dev libmelloc-hardened0 libmelloc0 > /dev/null
installed=0
for p in libmelloc0 libmelloc-hardened0; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2> /dev/null || true)
  [ "$status" != "install ok installed" ] || fail "$p is still installed"
done
echo "removed melloc, libmelloc0, libmelloc-hardened0 and libmelloc-dev"

# ---- 5. RPMs from make dist, and the ABI check on the same build ----
step "make dist"
copy_tree "$work/src"
(
  cd "$work/src"
  ./autogen.sh > autogen.log 2>&1 || { cat autogen.log; exit 1; }
  ./configure -q
  make -s -j"$jobs"
  make -s dist
) > "$work/dist.log" 2>&1 || {
  tail -n 60 "$work/dist.log"
  fail "make dist failed"
}
tarball=$(ls "$work"/src/melloc-"$v_ac".tar.gz)
contents=$(tar -tzf "$tarball")
for f in rpm/melloc.spec debian/rules debian/libmelloc0.symbols debian/libmelloc-hardened0.symbols \
  abi/libmelloc.so.0.abi; do
  grep -qx "melloc-$v_ac/$f" <<< "$contents" || fail "$f is not in $tarball"
done
echo "$tarball: $(wc -l <<< "$contents") entries, with rpm/melloc.spec and debian/"

step "rpmbuild -ta --nodeps"
rpmopts=(--nodeps --define "_topdir $work/rpm")
[ "$run_check" = 1 ] || rpmopts+=(--nocheck)
rpmbuild -ta "${rpmopts[@]}" "$tarball" > "$work/rpm.log" 2>&1 || {
  tail -n 80 "$work/rpm.log"
  fail "rpmbuild failed"
}
find "$work/rpm/RPMS" -name '*.rpm' -printf '%f\n'
rpmfiles() {
  local f
  f=$(find "$work/rpm/RPMS" -name "$1-$v_ac-*.rpm" ! -name '*debug*' | head -n 1)
  [ -n "$f" ] || fail "no $1 package was built"
  rpm -qlp "$f"
}
expect() { # package, then extended regexps that its file list must match
  local pkg=$1 list re
  shift
  list=$(rpmfiles "$pkg")
  for re in "$@"; do
    grep -Eq "$re" <<< "$list" || fail "$pkg has no file matching $re; it has: $list"
  done
  echo "$pkg: $(wc -l <<< "$list") files, including $*"
}
expect melloc '/libmelloc\.so\.0$' '/libmelloc\.so\.0\.[0-9.]+$' '/COPYING$' '/bin/melloc$' \
  '/man1/melloc\.1' '/man7/melloc\.7' '/libmelloc-hardened\.so\.0$' '/libmelloc-hardened\.so\.0\.[0-9.]+$'
expect melloc-devel '/include/melloc\.h$' '/pkgconfig/melloc\.pc$' '/libmelloc\.so$' '/man3/melloc\.3' \
  '/pkgconfig/melloc-hardened\.pc$' '/libmelloc-hardened\.so$'
expect melloc-static '/libmelloc\.a$' '/libmelloc-hardened\.a$'
all=$(find "$work/rpm/RPMS" -name '*.rpm' ! -name '*debug*' -exec rpm -qlp {} +)
if grep -E '\.la$' <<< "$all"; then
  fail "an RPM ships a libtool archive"
fi
scripts=$(rpm -qp --scripts "$(find "$work/rpm/RPMS" -name "melloc-$v_ac-*.rpm" ! -name '*debug*')")
grep -q ldconfig <<< "$scripts" || fail "the melloc RPM has no ldconfig scriptlets"
echo "melloc: ldconfig scriptlets present"

step "make abi-check"
make -s -C "$work/src" abi-check || fail "make abi-check: the ABI changed (see above)"

step "all packaging checks passed"
