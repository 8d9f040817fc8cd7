#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The machine's own ceiling for per-thread scaling.

    python3 bench/ceiling.py -w mixed-t1,larson-t1 -c 16 -r 3 --scale 4

A workload's N-thread run shares the allocator between its threads; N copies of
its 1-thread run, started together as N processes, share nothing of it, only the
machine: the cores' clock under load, caches, memory bandwidth, the hypervisor.
For each allocator and each variant this runs the 1-thread variant alone ("solo")
and then -c copies of it at once ("copies"), interleaved over -r rounds, each
process under bin/runone (wall and CPU time from wait4).  solo / copies (the
median solo wall over the median of the copies' mean walls) is the per-process
throughput the machine keeps with -c busy cores: the most any allocator's
-c-thread run can keep of its 1-thread figure.  An allocator whose threaded run
keeps less than that loses the difference in itself (locks, shared cache lines,
remote frees).

Writes ceiling.txt (the table) and ceiling.json (every run) to --out.
Standard library only.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import run as runpy_  # noqa: E402  (bench/run.py: its variants and its runone report)


def spawn(bin_dir, v, lib, timeout):
    """Start one process under runone; returns (pid, report file)."""
    argv = runpy_.runone_argv(bin_dir, v, lib, timeout)
    rep = tempfile.TemporaryFile()
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_DUP2, rep.fileno(), 3)]
    return os.posix_spawn(argv[0], argv, benchlib.child_env(None), file_actions=actions), rep


def report(rep):
    rep.seek(0)
    res = runpy_.parse_report(rep.read().decode(errors="replace"), {})
    rep.close()
    return res


def batch(bin_dir, v, lib, copies, timeout):
    """copies processes at once; returns their reports."""
    procs = [spawn(bin_dir, v, lib, timeout) for _ in range(copies)]
    out = []
    for pid, rep in procs:
        os.waitpid(pid, 0)
        out.append(report(rep))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--workloads", default="mixed-t1,larson-t1", help="comma list of run.py variants")
    p.add_argument("-a", "--allocators", default=",".join(benchlib.ALL_ALLOCATORS))
    p.add_argument("-c", "--copies", type=int, default=os.cpu_count() or 1, help="processes at once (default: cores)")
    p.add_argument("-r", "--runs", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--melloc", default=None)
    p.add_argument("--bin-dir", default=benchlib.DEFAULT_BIN_DIR)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--no-install", action="store_true")
    p.add_argument("-o", "--out", default=os.path.join(benchlib.BENCH_DIR, "results", "ceiling"))
    a = p.parse_args()
    if a.copies < 1 or a.runs < 1:
        p.error("--copies and --runs must be positive")

    allocs = benchlib.find_allocators([x for x in a.allocators.split(",") if x], a.melloc, not a.no_install)
    table = {v.name: v for v in runpy_.variants(a.scale, [1, 2, 4, 8], 64, 1)}
    vs = []
    for name in [x for x in a.workloads.split(",") if x]:
        if name not in table:
            p.error("no variant %r (see run.py --list)" % name)
        vs.append(table[name])
    benchlib.build(a.bin_dir, sorted({"runone"} | {v.prog for v in vs}))
    os.makedirs(a.out, exist_ok=True)

    runs = []
    t0 = time.monotonic()
    for rnd in range(a.runs):
        for v in vs:
            for name, lib in allocs.items():
                solo = batch(a.bin_dir, v, lib, 1, a.timeout)
                many = batch(a.bin_dir, v, lib, a.copies, a.timeout)
                bad = [r for r in solo + many if r.get("status") != "ok"]
                if bad:
                    benchlib.note("%s under %s: %s" % (v.name, name, bad[0].get("status", "no report")))
                    continue
                runs.append({"round": rnd + 1, "workload": v.name, "allocator": name,
                             "solo": solo[0], "copies": many})
                print("round %d  %-12s %-9s solo %.3fs  %d copies mean %.3fs  (%.0fs)" % (
                    rnd + 1, v.name, name, solo[0]["wall_s"], a.copies,
                    statistics.mean(r["wall_s"] for r in many), time.monotonic() - t0), flush=True)

    lines = ["Per-process throughput kept with %d copies at once (the machine's ceiling for %d threads)" % (
        a.copies, a.copies),
        "machine: %d CPUs; %d rounds, scale %g" % (os.cpu_count() or 0, a.runs, a.scale), "",
        "%-12s %-9s %9s %11s %8s %10s" % ("workload", "allocator", "solo s", "copies s", "kept", "CPU kept")]
    summary = {}
    for v in vs:
        for name in allocs:
            rs = [r for r in runs if r["workload"] == v.name and r["allocator"] == name]
            if not rs:
                continue
            solo = statistics.median(r["solo"]["wall_s"] for r in rs)
            many = statistics.median(statistics.mean(c["wall_s"] for c in r["copies"]) for r in rs)
            solo_cpu = statistics.median(r["solo"]["user_s"] + r["solo"]["sys_s"] for r in rs)
            many_cpu = statistics.median(statistics.mean(c["user_s"] + c["sys_s"] for c in r["copies"]) for r in rs)
            summary.setdefault(v.name, {})[name] = {"solo_s": solo, "copies_s": many, "kept": solo / many,
                                                    "cpu_kept": solo_cpu / many_cpu}
            lines.append("%-12s %-9s %9.3f %11.3f %8.2f %10.2f" % (v.name, name, solo, many, solo / many,
                                                                  solo_cpu / many_cpu))
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(a.out, "ceiling.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, "ceiling.json"), "w") as f:
        json.dump({"copies": a.copies, "runs": a.runs, "scale": a.scale, "allocators": allocs,
                   "summary": summary, "runs_detail": runs}, f, indent=1)


if __name__ == "__main__":
    main()
