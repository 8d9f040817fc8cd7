# SPDX-License-Identifier: MIT
# Sourced by .ci/run, .ci/packaging.sh and .ci/cross.sh.
#
# apt_update: apt-get update, tried up to 5 times 60 s apart.  A Debian mirror in the
# middle of a sync serves an index whose size does not match its Release file, and
# apt-get update exits 100 ("File has unexpected size ... Mirror sync in progress?");
# that says nothing about melloc, and it passes a few minutes later.
apt_update() {
  local i
  for i in 1 2 3 4 5; do
    apt-get update -qq && return 0
    [ "$i" -lt 5 ] || break
    echo "ci: apt-get update failed (try $i of 5), again in 60 s" >&2
    sleep 60
  done
  echo "ci: FAIL: apt-get update failed 5 times" >&2
  return 1
}
