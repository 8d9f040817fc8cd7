# SPDX-License-Identifier: MIT
# shellcheck shell=sh
# TAP output for the shell tests, sourced by them (POSIX sh).  automake's tap-driver.sh
# reads it, so that make check's summary counts every check, and every check that could
# not run (a missing python3, groff, sqlite3, git, ...) as a SKIP:
#   ok 3 - name                  passed
#   not ok 4 - name              failed (diagnostics follow as "# ..." lines)
#   ok 5 - name # SKIP reason    could not run, and says why
# The plan ("1..N") comes last, from tap_done: a script that stops before it is an error.
# Names must not contain '#', which starts a TAP directive.

tap_n=0
tap_failed=0
tap_skipped=0

tap_ok() {
  tap_n=$((tap_n + 1))
  echo "ok $tap_n - $*"
}

tap_not_ok() {
  tap_n=$((tap_n + 1))
  tap_failed=$((tap_failed + 1))
  echo "not ok $tap_n - $*"
}

# tap_skip NAME REASON
tap_skip() {
  tap_n=$((tap_n + 1))
  tap_skipped=$((tap_skipped + 1))
  echo "ok $tap_n - $1 # SKIP $2"
}

# tap_diag TEXT...: lines of explanation, in the log only.
tap_diag() {
  printf '%s\n' "$*" | sed 's/^/# /'
}

# tap_bail REASON: the script cannot go on (something it needs was not built).
tap_bail() {
  echo "Bail out! $*"
  exit 99
}

# tap_have PROGRAM: the program is on PATH.
tap_have() {
  command -v "$1" > /dev/null 2>&1
}

# tap_preload_mismatch LIB: when the dynamic linker will not preload LIB into this
# machine's programs (a library built for another ELF class or machine: an i386 build
# on an amd64 host), prints ld.so's reason and succeeds; prints nothing and fails when
# LIB loads.  The checks that run host programs on LIB are then a SKIP, not a FAIL.
tap_preload_mismatch() {
  tap_out=$(LD_PRELOAD=$1 /bin/true 2>&1)
  case $tap_out in
    *"cannot be preloaded"*)
      printf '%s\n' "$tap_out" | sed -n 's/.*cannot be preloaded (\(.*\)): ignored.*/\1/p' | head -n 1
      return 0 ;;
  esac
  return 1
}

# The plan, a summary line, and the status: 0 when no check failed.
tap_done() {
  echo "1..$tap_n"
  echo "# $((tap_n - tap_failed - tap_skipped)) passed, $tap_skipped skipped, $tap_failed failed"
  [ "$tap_failed" -eq 0 ]
  exit $?
}
