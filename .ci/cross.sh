#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Cross CI (issue 14), as root on Debian 12; .ci/run calls it, by hand: bash .ci/cross.sh
# Proves melloc on other architectures with Debian's cross compilers and qemu-user:
#   arm64 with 4, 16 and 64 KiB pages (qemu -p), ppc64el with 64 KiB pages, s390x (big
#   endian, 4 KiB), and i386 (32-bit), which runs natively on the amd64 kernel.
#   1. installs the cross compilers (apt-get) and unpacks, into a temporary directory of
#      its own, the static qemu-user (qemu-user-static, unpacked rather than installed,
#      which would register binfmt handlers; Debian's dynamic qemu aborts when a forked
#      child creates a thread) and each architecture's check and subunit (Debian's check
#      package ships static libraries only, so no multiarch installation is needed);
#   2. builds the tree for each architecture out of tree (configure --host, --enable-debug
#      --enable-werror) with its unit and integration test programs;
#   3. runs every program in the Makefile's UNIT_TESTS, INTEGRATION_TESTS,
#      HARDENED_TESTS (the hardened library's) and QEMU_TESTS (as nobody: the collector
#      glibc does not count; counted by check's summary or TAP) under
#      qemu-ARCH -p PAGESIZE, with CK_TIMEOUT_MULTIPLIER for the emulator's slowness
#      (the shell tests of make check are not run there: they start the host's (amd64)
#      programs, which cannot load the library of another architecture); i386 runs
#      natively, so it runs the whole of make check, as its package build would (the
#      checks that preload the i386 library into amd64 programs must say SKIP there);
#   4. prints a table, architecture x page size -> checks passed, failed, skipped, then
#      every skip with its reason and every failure with its message, and fails on any
#      failure (a failed build included).
# The reference run has no binfmt_misc: the tests themselves detect what qemu-user cannot
# do (re-execute /proc/self/exe, RLIMIT_AS) and report those checks as skipped, with the
# reason.  About 8 minutes on 2 cores (once the packages are downloaded) when every
# check passes; a failing check waits out its time limit (times CK_TIMEOUT_MULTIPLIER).
#
# Environment: SRC=DIR tests another source tree (a checkout of melloc; default: this
# one); CROSS_TARGETS="arm64:4096 ..." (ARCH:PAGESIZE; i386 runs natively, with the
# kernel's page size) a subset;
# CROSS_JOBS (2) test programs at once; CROSS_TIMEOUT_MULTIPLIER (10);
# CROSS_KEEP=DIR keeps the builds and logs there instead of a temporary directory.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "${SRC:-$here}" && pwd)
# shellcheck source=.ci/apt.sh
. "$here/.ci/apt.sh"
targets=${CROSS_TARGETS:-"arm64:4096 arm64:16384 arm64:65536 ppc64el:65536 s390x:4096 i386:4096"}
jobs=${CROSS_JOBS:-2}
scale=${CROSS_TIMEOUT_MULTIPLIER:-10}

step() { printf '\n==== cross: %s\n' "$*"; }
fail() {
  echo "cross: FAIL: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || fail "run as root (it installs packages)"

if [ -n "${CROSS_KEEP:-}" ]; then
  work=$CROSS_KEEP
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/melloc-cross.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
work=$(cd "$work" && pwd)
start=$(date +%s)

# triplet (compiler), multiarch directory, qemu name, for a Debian architecture.
arch_info() {
  case $1 in
    arm64) echo "aarch64-linux-gnu aarch64-linux-gnu aarch64" ;;
    ppc64el) echo "powerpc64le-linux-gnu powerpc64le-linux-gnu ppc64le" ;;
    s390x) echo "s390x-linux-gnu s390x-linux-gnu s390x" ;;
    i386) echo "i686-linux-gnu i386-linux-gnu -" ;;
    *) fail "unknown architecture $1" ;;
  esac
}
archs=$(for t in $targets; do echo "${t%%:*}"; done | sort -u)

# ---- 1. Tools, qemu, check for each architecture ----
step "packages: cross compilers, qemu-user-static (unpacked), check and subunit for:" $archs
need="autoconf automake libtool make pkg-config git dpkg-dev"
for a in $archs; do
  read -r triplet multi qemu <<< "$(arch_info "$a")"
  # The C library's headers and start files: only a Recommends of the compiler, which
  # --no-install-recommends leaves out.
  need="$need gcc-$triplet libc6-dev-$a-cross"
  [ "$a" != i386 ] || need="$need libc6-i386" # /lib/ld-linux.so.2, to run i386 programs
done
foreign=$(dpkg --print-foreign-architectures)
update=0
for a in $archs; do
  grep -qx "$a" <<< "$foreign" || {
    dpkg --add-architecture "$a"
    update=1
  }
  # The architecture's indexes: an apt-get update limited to the native architecture
  # (.ci/apt.sh, apt_native_only: .ci/run's quick start) drops them.
  apt-cache show "libsubunit0:$a" > /dev/null 2>&1 || update=1
done
missing=""
for p in $need; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2> /dev/null || true)" = "install ok installed" ] ||
    missing="$missing $p"
done
if [ "$update" = 1 ] || [ -n "$missing" ] || [ ! -d /var/lib/apt/lists ] ||
  ! apt-cache show qemu-user-static > /dev/null 2>&1; then
  apt_update
fi
if [ -n "$missing" ]; then
  echo "installing:$missing"
  # shellcheck disable=SC2086 # a list of package names
  apt-get install -y -qq --no-install-recommends $missing > /dev/null
fi
mkdir -p "$work/debs" "$work/qemu"
chown _apt "$work/debs" 2> /dev/null || true # apt-get download's sandbox user
(
  cd "$work/debs"
  pkgs=""
  for a in $archs; do pkgs="$pkgs check:$a libsubunit-dev:$a libsubunit0:$a"; done
  # shellcheck disable=SC2086
  apt-get download -qq qemu-user-static $pkgs > /dev/null
)
dpkg -x "$work"/debs/qemu-user-static_*.deb "$work/qemu"
for a in $archs; do
  for d in "$work"/debs/*_"$a".deb; do dpkg -x "$d" "$work/root-$a"; done
done
qemu_version=$("$work/qemu/usr/bin/qemu-aarch64-static" --version | head -n 1)
check_debs=("$work"/debs/check_*.deb)
echo "$qemu_version; check $(dpkg-deb -f "${check_debs[0]}" Version)"
binfmt=none
if [ -r /proc/sys/fs/binfmt_misc/status ]; then
  binfmt=""
  for h in /proc/sys/fs/binfmt_misc/qemu-*; do
    [ -e "$h" ] && binfmt="$binfmt ${h##*/}"
  done
  binfmt=${binfmt:-none}
fi
echo "binfmt_misc handlers for qemu: $binfmt (none is the reference: the tests detect it)"

# ---- 2. Build for each architecture ----
step "source: $src"
mkdir -p "$work/src"
(
  cd "$src"
  git ls-files -z --cached --others --exclude-standard |
    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf - | tar -C "$work/src" -xf -
)
(cd "$work/src" && ./autogen.sh > autogen.log 2>&1) || {
  cat "$work/src/autogen.log"
  fail "autogen.sh failed"
}
printf 'print-%%:\n\t@echo $($*)\n' > "$work/print.mk"

declare -A built
for a in $archs; do
  read -r triplet multi qemu <<< "$(arch_info "$a")"
  b=$work/build-$a
  root=$work/root-$a
  step "build $a ($triplet-gcc, --enable-debug --enable-werror)"
  mkdir -p "$b"
  t0=$(date +%s)
  build() { # configure options; the log in $b/build.log
    (
      cd "$b"
      PKG_CONFIG_LIBDIR=$root/usr/lib/$multi/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root \
        "$work/src/configure" -q --host="$triplet" "$@" &&
        make -s -j"$jobs" && make -s -j"$jobs" check TESTS=
    ) > "$b/build.log" 2>&1
  }
  if build --enable-debug --enable-werror; then
    built[$a]=1
    echo "built in $(($(date +%s) - t0)) s"
  else
    built[$a]=0
    grep -E 'error|Error' "$b/build.log" | head -n 20 || tail -n 20 "$b/build.log"
    cp "$b/build.log" "$work/build-$a.werror.log"
    # A failure all the same; built without -Werror, the tests can still say more.
    echo "the $a build failed with -Werror (log: $work/build-$a.werror.log); building it without -Werror to run its tests all the same"
    make -s -C "$b" distclean > /dev/null 2>&1 || true
    if build --enable-debug; then built[$a]=nowerror; else echo "the $a build failed without -Werror too"; fi
  fi
done

# ---- 3. Run the test programs ----
# run_one PROGRAM: runs one test program of the build in $XB under $XRUN, its output in
# $XOUT/NAME.log, its counts in $XOUT/NAME.res: "passed failed skipped status".
run_one() {
  local prog=$1 name bin log st conf c f e t0
  t0=$(date +%s)
  name=${prog##*/}
  bin=$XB/$prog
  [ -x "$XB/${prog%/*}/.libs/$name" ] && bin=$XB/${prog%/*}/.libs/$name # libtool's wrapper
  log=$XOUT/$name.log
  conf=${MELLOC_CONF-}
  for attempt in 1 2; do
    st=0
    # shellcheck disable=SC2086 # XRUN: the emulator and its options, or nothing
    env ${conf:+MELLOC_CONF=$conf} LD_LIBRARY_PATH="$XLD" CK_TIMEOUT_MULTIPLIER="$XSCALE" \
      MELLOC_LIB="$XB/.libs/libmelloc.so" timeout -k 10 1200 $XRUN "$bin" > "$log" 2>&1 || st=$?
    # A program whose main re-executes itself with settings of its own says, when it
    # cannot (no binfmt_misc), which settings would run it: start it with them.
    if [ "$attempt" != 1 ] || [ "$st" != 77 ]; then break; fi
    conf=$(sed -n 's/^SKIP: cannot re-execute .*; start it with MELLOC_CONF=\([^ ]*\)$/\1/p' "$log" | head -n 1)
    [ -n "$conf" ] || break
    cp "$log" "$log.first"
  done
  summarize "$name" "$st" "$conf"
  local counts
  read -r -a counts < "$XOUT/$name.res"
  printf '  %-28s %4s passed %3s failed %3s skipped (%s s, exit %s%s)\n' "$name" "${counts[@]:0:3}" \
    "$(($(date +%s) - t0))" "$st" "${conf:+, MELLOC_CONF=$conf}"
}

# summarize NAME STATUS [CONF]: counts the output in $XOUT/NAME.log, check's summary or
# TAP (ok, not ok, ok # SKIP reason: the program's skips become "SKIP: CHECK: REASON"
# lines there), into $XOUT/NAME.res: "passed failed skipped status conf".
summarize() {
  local name=$1 st=$2 conf=${3:-} log=$XOUT/$1.log c f e skipped passed failed
  if grep -Eq '^1\.\.[0-9]+' "$log"; then
    passed=$(grep -Ec '^ok ' "$log" || true)
    skipped=$(grep -Ec '^ok .* # SKIP' "$log" || true)
    failed=$(grep -Ec '^not ok ' "$log" || true)
    passed=$((passed - skipped))
    sed -n 's/^ok [0-9]* - \(.*\) # SKIP \(.*\)$/SKIP: \1: \2/p' "$log" >> "$log"
    sed -n 's/^1\.\.0 # SKIP \(.*\)$/SKIP: \1/p' "$log" >> "$log"
    [ "$(grep -Ec '^1\.\.0 # SKIP' "$log")" = 0 ] || skipped=$((skipped + 1))
    [ "$st" = 0 ] || [ "$st" = 77 ] || [ "$failed" -gt 0 ] || failed=1
    echo "$passed $failed $skipped $st ${conf:+MELLOC_CONF=$conf}" > "$XOUT/$name.res"
    return
  fi
  read -r c f e <<< "$(sed -n 's/^[0-9]*%: Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$log" | tail -n 1)"
  skipped=$(grep -c '^SKIP: ' "$log" || true)
  if [ -n "${c:-}" ]; then
    passed=$((c - f - e))
    failed=$((f + e))
    # Checks passed, the program did not (77: every check left out, with its reason).
    [ "$st" = 0 ] || [ "$st" = 77 ] || [ "$failed" -gt 0 ] || failed=1
  elif [ "$st" = 77 ]; then
    passed=0 failed=0
    [ "$skipped" -gt 0 ] || skipped=1
  else
    passed=0 failed=1
  fi
  echo "$passed $failed $skipped $st ${conf:+MELLOC_CONF=$conf}" > "$XOUT/$name.res"
}
export -f run_one summarize

# make_check: on an architecture this kernel runs natively (i386), the whole of make
# check, as a package build runs it; then each test's log counted as above (the shell
# tests' TAP: ok, not ok, ok # SKIP reason).
make_check() {
  local st=0 trs log name res p f k
  LD_LIBRARY_PATH=$XLD make -s -C "$XB" -j"$jobs" check > "$XOUT/make-check.out" 2>&1 || st=$?
  for trs in $(find "$XB/tests" -name '*.trs' | sort); do
    log=${trs%.trs}.log
    name=${log##*/}
    name=${name%.log}
    res=$(sed -n 's/^:test-result: //p' "$trs" | sort -u | tr '\n' ' ')
    if grep -Eq '^1\.\.[0-9]+' "$log"; then # TAP: a shell test
      # the driver's own "SKIP: ..." lines out (summarize adds one per skip)
      grep -v '^SKIP: ' "$log" > "$XOUT/$name.log" || true
      case $res in
        *ERROR* | *FAIL*) summarize "$name" 1 ;;
        *) summarize "$name" 0 ;;
      esac
    else
      cp "$log" "$XOUT/$name.log"
      case $res in
        "PASS ") summarize "$name" 0 ;;
        "SKIP ") summarize "$name" 77 ;;
        *) summarize "$name" 1 ;;
      esac
    fi
    read -r p f k _ < "$XOUT/$name.res"
    printf '  %-28s %4s passed %3s failed %3s skipped (%s)\n' "$name" "$p" "$f" "$k" "$res"
  done
  [ "$st" = 0 ] || echo "  make check: exit status $st (log: $XOUT/make-check.out)"
}

declare -A row_time
for t in $targets; do
  a=${t%%:*} ps=${t#*:}
  read -r triplet multi qemu <<< "$(arch_info "$a")"
  out=$work/results/$a-$ps
  mkdir -p "$out"
  [ "${built[$a]}" != 0 ] || continue
  b=$work/build-$a
  if [ "$qemu" = - ]; then
    step "$a: make check natively, -j$jobs"
    t0=$(date +%s)
    XB=$b XOUT=$out XLD="$b/.libs:$work/root-$a/usr/lib/$multi" make_check
    row_time[$t]=$(($(date +%s) - t0))
    continue
  else
    run="$work/qemu/usr/bin/qemu-$qemu-static -L /usr/$triplet"
    [ "$ps" = default ] || run="$run -p $ps"
    label="under qemu-$qemu -p $ps"
  fi
  progs=$(make -s -C "$b" -f Makefile -f "$work/print.mk" print-UNIT_TESTS print-INTEGRATION_TESTS print-HARDENED_TESTS print-QEMU_TESTS | tr ' ' '\n' | grep . || true)
  [ -n "$progs" ] || fail "$a: the Makefile lists no UNIT_TESTS or INTEGRATION_TESTS (no check?)"
  step "$a, page size $ps: $(wc -w <<< "$progs") test programs $label, $jobs at a time, CK_TIMEOUT_MULTIPLIER=$scale"
  t0=$(date +%s)
  XB=$b XOUT=$out XRUN=$run XSCALE=$scale \
    XLD="$b/.libs:$work/root-$a/usr/lib/$multi" \
    xargs -P "$jobs" -n 1 bash -c 'run_one "$1"' _ <<< "$progs" || true
  row_time[$t]=$(($(date +%s) - t0))
done

# ---- 4. The table ----
step "results ($(($(date +%s) - start)) s in all; $qemu_version; binfmt_misc: $binfmt)"
total_failed=0
printf '%-9s %-9s %-12s %7s %7s %8s %6s\n' arch pagesize how passed failed skipped time
for t in $targets; do
  a=${t%%:*} ps=${t#*:}
  read -r triplet multi qemu <<< "$(arch_info "$a")"
  how="qemu-user"
  [ "$qemu" != - ] || how=native
  note=""
  if [ "${built[$a]}" != 1 ]; then
    total_failed=$((total_failed + 1))
    note="  BUILD FAILED with -Werror"
    [ "${built[$a]}" = nowerror ] || {
      printf '%-9s %-9s %-12s %s\n' "$a" "$ps" "$how" "BUILD FAILED, also without -Werror"
      continue
    }
  fi
  p=0 f=0 s=0
  for r in "$work/results/$a-$ps"/*.res; do
    [ -e "$r" ] || continue
    read -r rp rf rs _ < "$r"
    p=$((p + rp)) f=$((f + rf)) s=$((s + rs))
  done
  total_failed=$((total_failed + f))
  printf '%-9s %-9s %-12s %7s %7s %8s %5ss%s\n' "$a" "$ps" "$how" "$p" "$f" "$s" "${row_time[$t]}" "$note"
done

echo
echo "skipped checks (program: check: reason [where, times when more than once]):"
for t in $targets; do
  for l in "$work/results/${t%%:*}-${t#*:}"/*.log; do
    [ -e "$l" ] || continue
    n=$(basename "$l" .log)
    sed -n "s|^SKIP: |$t\t$n: |p" "$l"
  done
done | awk -F '\t' '{ k = $2; if (!(k in n)) order[++m] = k; n[k]++; c[k, $1]++
                      if (c[k, $1] == 1) w[k] = w[k] " " $1 }
  END { for (i = 1; i <= m; i++) { k = order[i]; s = ""; split(substr(w[k], 2), ts, " ")
          for (j = 1; j in ts; j++) s = s " " ts[j] (c[k, ts[j]] > 1 ? "x" c[k, ts[j]] : "")
          printf "  %s [%s]\n", k, substr(s, 2) } }'
[ -z "$(ls "$work"/results/*/*.log.first 2> /dev/null)" ] || {
  echo "started with the MELLOC_CONF their main sets by re-executing itself, which it could not:"
  for r in "$work"/results/*/*.log.first; do
    d=${r%/*}
    n=$(basename "$r" .log.first)
    echo "$n: $(cut -d' ' -f5- "$d/$n.res") ${d##*/}"
  done | sort | awk '{ k = $1 " " $2; if (!(k in w)) order[++m] = k; w[k] = w[k] " " $3 }
    END { for (i = 1; i <= m; i++) printf "  %s [%s]\n", order[i], substr(w[order[i]], 2) }'
}

echo
echo "failed checks:"
for t in $targets; do
  a=${t%%:*} ps=${t#*:}
  [ "${built[$a]}" = 1 ] ||
    echo "  $t: the build with -Werror failed: $(grep -m 1 -E 'error' "$work/build-$a.werror.log" || true)"
  [ "${built[$a]}" != 0 ] || continue
  for r in "$work/results/$a-$ps"/*.res; do
    [ -e "$r" ] || continue
    read -r rp rf rs rst _ < "$r"
    [ "$rf" -gt 0 ] || continue
    n=$(basename "$r" .res)
    l=${r%.res}.log
    lines=$(grep -E '^[^ ]+:[0-9]+:[FE]:' "$l" | sed "s|^.*/tests/|tests/|" || true)
    if [ -n "$lines" ]; then
      sed "s|^|  $t $n: |" <<< "$lines"
    else
      echo "  $t $n: exit status $rst, no check summary; the end of its output:"
      tail -n 5 "$l" | sed 's/^/      /'
    fi
  done
done
echo
echo "cross step: $(($(date +%s) - start)) s"
[ "$total_failed" -eq 0 ] || fail "$total_failed checks or builds failed on other architectures (logs: $work/results${CROSS_KEEP:+, kept})"
echo "cross: all architectures passed"
