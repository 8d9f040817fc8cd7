#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Instructions per operation on the allocation fast path, counted by callgrind.

    python3 bench/icount.py                 # melloc, with its budgets
    python3 bench/icount.py --check         # exit 1 if a count exceeds bench/budget.txt
    python3 bench/icount.py --all           # also glibc, jemalloc, tcmalloc, mimalloc

Each operation is bin/fastpath run under `valgrind --tool=callgrind` at N and
at 2N iterations (N = --iters, default 1,000,000); (count(2N) - count(N)) / N
is the cost of one iteration with start-up, first-use slow paths and exit
cancelled out.  An iteration is the whole loop body as an ordinary -O2
program compiles it: the call through the PLT, the allocator's work, and the
loop's own few instructions.  Counts are exact and do not depend on the load
of the machine, so they make a budget that can fail a build, as tcmalloc's
CI does with its golden instruction counts.  Standard library only.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

DEFAULT_BUDGET = os.path.join(benchlib.BENCH_DIR, "budget.txt")

# name -> bin/fastpath arguments; the names are those of budget.txt.
OPS = [
    ("malloc64", ["-m", "malloc", "-s", "64"], "malloc(64) + free"),
    ("malloc16", ["-m", "malloc", "-s", "16"], "malloc(16) + free"),
    ("malloc256", ["-m", "malloc", "-s", "256"], "malloc(256) + free"),
    ("malloc1024", ["-m", "malloc", "-s", "1024"], "malloc(1024) + free"),
    ("malloc4096", ["-m", "malloc", "-s", "4096"], "malloc(4096) + free"),
    ("calloc64", ["-m", "calloc", "-s", "64"], "calloc(1, 64) + free"),
    ("realloc", ["-m", "realloc", "-s", "1024", "-g", "16"],
     "realloc growing by 16 bytes from 16 to 1024, then free (1 in 64 iterations)"),
]


def read_budget(path):
    budget = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2 or parts[0] not in dict((o[0], o) for o in OPS):
                sys.exit("%s:%d: expected '<operation> <max instructions>' with an operation from %s"
                         % (path, lineno, ", ".join(o[0] for o in OPS)))
            try:
                budget[parts[0]] = float(parts[1])
            except ValueError:
                sys.exit("%s:%d: %r is not a number" % (path, lineno, parts[1]))
    return budget


def collected(bin_dir, lib, args, iters):
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           os.path.join(bin_dir, "fastpath")] + args + ["-n", str(iters)]
    r = subprocess.run(cmd, env=benchlib.child_env(lib), capture_output=True, text=True)
    m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
    if r.returncode != 0 or not m:
        raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(cmd), r.returncode, r.stderr[-2000:]))
    return int(m.group(1))


def per_op(bin_dir, lib, args, iters):
    a = collected(bin_dir, lib, args, iters)
    b = collected(bin_dir, lib, args, 2 * iters)
    return (b - a) / float(iters)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--all", action="store_true", help="count all five allocators, not only melloc")
    p.add_argument("-a", "--allocators", default=None, help="comma list of allocators to count (default melloc)")
    p.add_argument("--check", action="store_true", help="fail (exit 1) when melloc exceeds a budget")
    p.add_argument("--budget", default=DEFAULT_BUDGET, help="budget file (default bench/budget.txt)")
    p.add_argument("--melloc", default=None,
                   help="path of libmelloc.so (default $MELLOC_LIB or ../.libs/libmelloc.so from bench/)")
    p.add_argument("--iters", type=int, default=1000000, help="N: runs at N and 2N iterations (default 1000000)")
    p.add_argument("--bin-dir", default=benchlib.DEFAULT_BIN_DIR, help="where bin/fastpath is (built if missing)")
    p.add_argument("-o", "--out", default=None, help="also write icount.json into this directory")
    p.add_argument("--no-install", action="store_true", help="do not apt-get install missing allocators")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="callgrind runs in parallel")
    args = p.parse_args(argv)

    if not shutil.which("valgrind"):
        sys.exit("icount: valgrind not found (apt-get install valgrind)")
    names = (benchlib.ALL_ALLOCATORS if args.all else
             [x.strip() for x in args.allocators.split(",")] if args.allocators else ["melloc"])
    if args.check and "melloc" not in names:
        names = ["melloc"] + names
    budget = read_budget(args.budget)
    allocs = benchlib.find_allocators(names, melloc=args.melloc, install=not args.no_install)
    if args.check and "melloc" not in allocs:
        sys.exit("bench-check: FAILED: no melloc library at %s to check against %s "
                 "(build it first, or pass --melloc / set MELLOC_LIB)" % (benchlib.melloc_path(args.melloc),
                                                                          args.budget))
    if not allocs:
        sys.exit("icount: no allocator to count")
    benchlib.build(args.bin_dir, ["fastpath"])

    counts = {a: {} for a in allocs}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futs = {ex.submit(per_op, args.bin_dir, lib, op_args, args.iters): (a, name)
                for a, lib in allocs.items() for name, op_args, _ in OPS}
        done = 0
        for fut in concurrent.futures.as_completed(futs):
            a, name = futs[fut]
            try:
                counts[a][name] = fut.result()
            except RuntimeError as e:
                print(str(e), file=sys.stderr)
                counts[a][name] = None
            done += 1
            if sys.stderr.isatty():
                sys.stderr.write("\r[%d/%d] callgrind %s %s   " % (done, len(futs), a, name))
                sys.stderr.flush()
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 60 + "\r")

    header = ["operation"] + list(allocs) + (["budget"] if "melloc" in allocs else [])
    rows = []
    for name, _, _ in OPS:
        r = [name] + ["%.1f" % counts[a][name] if counts[a][name] is not None else "FAIL" for a in allocs]
        if "melloc" in allocs:
            r.append("%g" % budget[name] if name in budget else "-")
        rows.append(r)
    widths = [max(len(str(x[i])) for x in [header] + rows) for i in range(len(header))]
    print("Instructions per operation (callgrind, (I(2N) - I(N)) / N, N = %d)" % args.iters)
    for r in [header, ["-" * w for w in widths]] + rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for name, _, about in OPS:
        if name == "realloc":
            print("realloc: " + about)

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "icount.json"), "w") as f:
            json.dump({"iters": args.iters, "allocators": allocs, "counts": counts, "budget": budget}, f, indent=1)
            f.write("\n")

    failed = [name for a in allocs for name in counts[a] if counts[a][name] is None]
    if args.check:
        over = [(n, counts["melloc"][n], budget[n]) for n, _, _ in OPS
                if n in budget and counts["melloc"][n] is not None and counts["melloc"][n] > budget[n]]
        for n, c, b in over:
            print("bench-check: %s costs %.1f instructions per operation, over its budget of %g (%s)"
                  % (n, c, b, args.budget), file=sys.stderr)
        if failed:
            print("bench-check: callgrind failed for: %s" % ", ".join(failed), file=sys.stderr)
        if over or failed:
            print("bench-check: FAILED", file=sys.stderr)
            return 1
        print("bench-check: all %d operations within budget" % len([n for n, _, _ in OPS if n in budget]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
