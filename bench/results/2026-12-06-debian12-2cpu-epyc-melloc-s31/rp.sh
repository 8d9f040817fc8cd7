#!/bin/bash
# rp.sh name=lib[@MELLOC_CONF] ... : peak RSS (MiB, median of 3) of each trace in $TRACES
# (default /tmp/trn) replayed by $REPLAY (default bench/bin/replay) under each library
# ("g=" for glibc).  Session 31: tcache-arenas.txt.
TRACES=${TRACES:-/tmp/trn}; REPLAY=${REPLAY:-bench/bin/replay}
printf "%-16s" trace; for l in "$@"; do printf "%10s" "${l%%=*}"; done; echo
for t in "$TRACES"/*; do
  printf "%-16s" $(basename $t)
  for l in "$@"; do
    lib=${l#*=}; conf=; if [[ $lib == *@* ]]; then conf=${lib#*@}; lib=${lib%@*}; fi
    v=$(for i in 1 2 3; do MELLOC_CONF=$conf LD_PRELOAD=$lib /usr/bin/time -f %M "$REPLAY" $t 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 2p)
    printf "%10.1f" $(echo "$v/1024" | bc -l)
  done; echo
done
