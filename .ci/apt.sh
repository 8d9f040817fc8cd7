# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Sourced by .ci/run, .ci/packaging.sh and .ci/cross.sh.
#
# A Debian mirror can serve an index whose size does not match its Release file (apt-get
# update: "File has unexpected size ... Mirror sync in progress?", exit 100), for
# minutes or, as on 2026-12-05 for bookworm-security's i386 and ppc64el indexes, for
# hours.  apt-get keeps the indexes it had and fetches the rest; what a step needs is
# still there unless it needs that index, and then its install or download fails with
# the package's name.
#
# apt_update: apt-get update, tried 3 times 30 s apart; then a warning, and on.
apt_update() {
  local i
  for i in 1 2 3; do
    apt-get update -qq && return 0
    [ "$i" -lt 3 ] || break
    echo "ci: apt-get update failed (try $i of 3), again in 30 s" >&2
    sleep 30
  done
  echo "ci: WARNING: apt-get update failed 3 times; going on with the indexes apt has" >&2
}

# apt_native_only: from here on (APT_CONFIG) apt-get sees only the machine's own
# architecture.  A build machine's foreign architectures (.ci/cross.sh adds four) are
# no part of the README's quick start, which runs apt-get update with &&: an index of
# theirs that a mirror breaks would fail it.  apt_all_archs undoes it; an apt-get update
# meanwhile drops the foreign architectures' indexes, which .ci/cross.sh then fetches
# again.
apt_native_only() {
  [ -n "$(dpkg --print-foreign-architectures)" ] || return 0
  local conf
  conf=$(mktemp "${TMPDIR:-/tmp}/melloc-ci-apt.XXXXXX")
  printf 'APT::Architectures { "%s"; };\n' "$(dpkg --print-architecture)" > "$conf"
  export APT_CONFIG=$conf
  echo "ci: apt-get limited to $(dpkg --print-architecture) (foreign: $(dpkg --print-foreign-architectures | tr '\n' ' '))"
}
apt_all_archs() {
  [ -n "${APT_CONFIG:-}" ] || return 0
  rm -f "$APT_CONFIG"
  unset APT_CONFIG
}
