#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Thread scaling from run.py's results.

    python3 bench/run.py -w mixed,larson -t 1,2,4,8,16 -o DIR ...
    python3 bench/scaling.py DIR/summary.json [MORE/summary.json ...] -o DIR

For each workload run at several thread counts (variants named GROUP-tN whose
total work is fixed and split between the threads: mixed, larson, cache-*), the
throughput per thread, in millions of operations per second (-n over the median
wall time, divided by the threads), and the same relative to the allocator's
own 1-thread figure ("kept": 1.00 is perfect scaling).  Writes scaling.md (the
tables) and, where gnuplot is installed, scaling.png (per-thread throughput
against threads, one panel per workload).  Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

# Groups whose -n counts the operations the threads share (replacements).  The
# others (cache-*) are shown as wall times, their work being the writes.
OPS_GROUPS = ("mixed", "larson")


def load(paths):
    """{group: {threads: {allocator: (median wall, total ops)}}}, allocators in order."""
    groups, allocs = {}, []
    for path in paths:
        with open(path) as f:
            s = json.load(f)
        for a in s.get("allocators", []):
            if a not in allocs:
                allocs.append(a)
        for name, res in s["results"].items():
            m = re.fullmatch(r"(.+)-t(\d+)", name)
            if not m:
                continue
            cmd = s["workloads"][name]["command"]
            ops = float(cmd[cmd.index("-n") + 1]) if m.group(1) in OPS_GROUPS and "-n" in cmd else None
            for a, r in res.items():
                if r.get("ok") and r.get("wall_s"):
                    groups.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[a] = (r["wall_s"]["median"], ops)
    return groups, allocs


def table(group, rows, allocs):
    ts = sorted(rows)
    unit = ("per-thread throughput, M operations/s" if group in OPS_GROUPS else "wall time, s")
    out = ["### %s" % group, "",
           "%s (kept: the per-thread throughput kept from the allocator's own %d-thread figure)" % (
               unit[0].upper() + unit[1:], ts[0]), "",
           "| threads | " + " | ".join(allocs) + " |", "|---" * (len(allocs) + 1) + "|"]
    for t in ts:
        cells = []
        for a in allocs:
            if a not in rows[t]:
                cells.append("-")
                continue
            wall, ops = rows[t][a]
            per = ops / wall / t / 1e6 if ops else None
            one = rows[ts[0]].get(a)
            kept = (one[0] * ts[0] / (t * wall)) if one else None
            cells.append(("%.2f" % per if per is not None else "%.3f" % wall) +
                         (" (%.2f)" % kept if kept is not None and t > ts[0] else ""))
        out.append("| %d | %s |" % (t, " | ".join(cells)))
    top = max(ts)
    best = sorted((rows[top][a][0], a) for a in allocs if a in rows[top])
    if best:
        out += ["", "At %d threads, fastest first: %s" % (top, ", ".join(
            "%s %.3f s" % (a, w) for w, a in best))]
    return out + [""]


def chart(groups, allocs, outdir, title):
    if not shutil.which("gnuplot"):
        print("gnuplot not found: no chart", file=sys.stderr)
        return None
    names = [g for g in groups if g in OPS_GROUPS and len(groups[g]) > 1]
    if not names:
        return None
    dat = os.path.join(outdir, "scaling.dat")
    with open(dat, "w") as f:
        for g in names:
            f.write("# %s\n" % g)
            for t in sorted(groups[g]):
                vals = []
                for a in allocs:
                    v = groups[g][t].get(a)
                    vals.append("%.4f" % (v[1] / v[0] / t / 1e6) if v and v[1] else "NaN")
                f.write("%d %s\n" % (t, " ".join(vals)))
            f.write("\n\n")
    cols = (len(names) + 1) // 2 if len(names) > 2 else len(names)
    rows = (len(names) + cols - 1) // cols
    png = os.path.join(outdir, "scaling.png")
    gp = os.path.join(outdir, "scaling.gp")
    lines = ["set terminal pngcairo size %d,%d font ',10' noenhanced" % (520 * cols, 400 * rows),
             "set output '%s'" % png,
             "set multiplot layout %d,%d title '%s'" % (rows, cols, title.replace("'", "")),
             "set logscale x 2", "set xlabel 'threads'", "set ylabel 'M ops/s per thread'",
             "set key outside bottom center horizontal", "set grid", "set yrange [0:*]"]
    for i, g in enumerate(names):
        ts = sorted(groups[g])
        lines.append("set xrange [%g:%g]" % (ts[0] / 1.2, ts[-1] * 1.2))
        lines.append("set title '%s'" % g)
        plots = ["'%s' index %d using 1:%d with linespoints lw 2 title '%s'" % (dat, i, k + 2, a)
                 for k, a in enumerate(allocs)]
        lines.append("plot " + ", ".join(plots))
    lines.append("unset multiplot")
    with open(gp, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("gnuplot failed: " + r.stderr.strip(), file=sys.stderr)
        return None
    return png


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("summaries", nargs="+", help="run.py summary.json files")
    p.add_argument("-o", "--out", default=".", help="where scaling.md and scaling.png go")
    p.add_argument("--title", default="Per-thread throughput against threads (median wall time)")
    a = p.parse_args()
    groups, allocs = load(a.summaries)
    if not groups:
        sys.exit("scaling.py: no GROUP-tN variants in %s" % ", ".join(a.summaries))
    os.makedirs(a.out, exist_ok=True)
    lines = ["# Thread scaling", ""]
    for g in groups:
        lines += table(g, groups[g], allocs)
    text = "\n".join(lines)
    with open(os.path.join(a.out, "scaling.md"), "w") as f:
        f.write(text)
    print(text)
    png = chart(groups, allocs, a.out, a.title)
    if png:
        print("chart: " + png)


if __name__ == "__main__":
    main()
