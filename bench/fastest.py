#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""melloc against the best of the others, per workload, from a run's summary.json.

    python3 bench/fastest.py bench/results/latest/summary.json

For each timed workload: melloc's median wall time, the fastest other allocator
and melloc / that allocator; melloc's median peak RSS, the smallest of jemalloc,
tcmalloc and mimalloc, and melloc / that.  Then the geometric means of both
ratios (issue 4's targets: at most 1.0 for time, 1.1 per workload for memory).
Standard library only.
"""

import json
import math
import sys


def median(v):
    return v["median"] if isinstance(v, dict) else v


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        s = json.load(f)
    results = s["results"]
    time_ratios, mem_ratios = [], []
    print("%-20s %7s %9s %6s   %7s %12s %6s" % ("workload", "melloc", "fastest", "ratio",
                                                "RSS MiB", "smallest j/t/m", "ratio"))
    for name, meta in s["workloads"].items():
        if meta["kind"] not in ("time", "frag"):
            continue
        res = results[name]
        if "melloc" not in res:
            sys.exit("no melloc results in %s" % argv[1])
        t = {a: median(r["wall_s"]) for a, r in res.items()}
        m = {a: median(r["maxrss_kb"]) for a, r in res.items()}
        others = [a for a in t if a != "melloc"]
        fastest = min(others, key=lambda a: t[a])
        small = [a for a in others if a in ("jemalloc", "tcmalloc", "mimalloc")]
        smallest = min(small, key=lambda a: m[a])
        tr, mr = t["melloc"] / t[fastest], m["melloc"] / m[smallest]
        time_ratios.append(tr)
        mem_ratios.append(mr)
        print("%-20s %7.3f %9s %6.2f   %7.1f %12s %6.2f" % (name, t["melloc"], fastest, tr,
                                                            m["melloc"] / 1024.0, smallest, mr))

    def geomean(v):
        return math.exp(sum(map(math.log, v)) / len(v))

    print("geomean melloc/fastest-other time %.3f; melloc/smallest(jemalloc,tcmalloc,mimalloc) "
          "peak RSS %.3f" % (geomean(time_ratios), geomean(mem_ratios)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
