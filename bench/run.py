#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""melloc benchmark driver: runs the workloads in bench/src under each allocator
(through LD_PRELOAD) and compares them.

    python3 bench/run.py                       # everything, 5 runs, all allocators
    python3 bench/run.py --quick               # 1 run at a tenth of the scale
    python3 bench/run.py -w fastpath,mixed -a glibc,jemalloc -r 3
    python3 bench/run.py --list                # the workload variants

Runs are interleaved (A B C D E, A B C D E, ...) so that a change in the
machine's state during the suite hits every allocator alike.  Each run is one
process, started by bin/runone: wall time, CPU time and peak RSS from wait4().
Results go to --out (default bench/results/latest/): results.txt (the tables
printed at the end), runs.csv (every run), summary.json (medians, spreads,
ratios and the machine description) and ratio_time.png / ratio_memory.png.
Standard library only.
"""

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

DEFAULT_OUT = os.path.join(benchlib.BENCH_DIR, "results", "latest")
EXTRA_KEYS = ["live_peak_bytes", "rss_peak_kb", "rss_freed_kb", "rss_after_kb"]


class Variant:
    """One workload at one setting: a program and its arguments.
    kind: "time"  the time is the result (peak RSS is reported too)
          "frag"  peak RSS against the live bytes the program reports (frag, replay-*)
          "idle"  RSS left after the program has freed everything and waited
    system: prog is a program of the system (looked up in PATH), not one of
    bench/src; a variant whose program is not installed is not run, and the
    results say so.  "{bin}" in args is the --bin-dir."""

    def __init__(self, name, group, prog, args, kind="time", about="", system=False, env=None):
        self.name, self.group, self.prog, self.args = name, group, prog, args
        self.kind, self.about, self.system, self.env = kind, about, system, env or {}

    def argv(self, bin_dir):
        prog = shutil.which(self.prog) if self.system else os.path.join(bin_dir, self.prog)
        pre = [shutil.which("env") or "/usr/bin/env"] + ["%s=%s" % kv for kv in sorted(self.env.items())] \
            if self.env else []
        return pre + [prog] + [a.replace("{bin}", bin_dir) for a in self.args]


# The n-queens problem for z3, as linear integer arithmetic: queen i in column q_i,
# the columns distinct, no two on a diagonal.  Its search is the same under every
# allocator (z3 -st: 1566 conflicts at n = 28), so what differs is the allocator.
QUEENS_N = 28


def write_queens(path, n=QUEENS_N):
    lines = ["(set-logic QF_LIA)"]
    lines += ["(declare-const q%d Int)" % i for i in range(n)]
    lines += ["(assert (and (>= q%d 0) (< q%d %d)))" % (i, i, n) for i in range(n)]
    lines.append("(assert (distinct %s))" % " ".join("q%d" % i for i in range(n)))
    for i in range(n):
        for j in range(i + 1, n):
            lines.append("(assert (not (= (- q%d q%d) %d)))" % (i, j, j - i))
            lines.append("(assert (not (= (- q%d q%d) %d)))" % (j, i, j - i))
    lines.append("(check-sat)")
    text = "\n".join(lines) + "\n"
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(path, "w") as f:
        f.write(text)


def program_version(prog):
    """The first line of `prog --version`, or "?"."""
    try:
        r = subprocess.run([prog, "--version"], capture_output=True, text=True, timeout=30)
        return (r.stdout.strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.SubprocessError):
        return "?"


def variants(scale, threads, idle_mib, idle_sleep):
    def n(x):
        return str(max(1, int(round(x * scale))))

    v = []
    for size in (16, 64, 256, 1024, 4096):
        v.append(Variant("fastpath-malloc%d" % size, "fastpath", "fastpath",
                         ["-m", "malloc", "-s", str(size), "-n", n(20e6)],
                         about="malloc(%d)/free pairs, one thread" % size))
    v.append(Variant("fastpath-calloc64", "fastpath", "fastpath", ["-m", "calloc", "-s", "64", "-n", n(20e6)],
                     about="calloc(1, 64)/free pairs"))
    v.append(Variant("fastpath-realloc", "fastpath", "fastpath",
                     ["-m", "realloc", "-s", "65536", "-g", "16", "-n", n(20e6)],
                     about="grow a buffer 16 bytes per realloc up to 64 KiB, free, repeat"))
    for t in threads:
        v.append(Variant("mixed-t%d" % t, "mixed", "mixed", ["-t", str(t), "-n", n(8e6), "-w", "2000"],
                         about="live window of 2000 blocks per thread, long-tailed size mix"))
    for p in (1, 2):
        v.append(Variant("prodcons-%dpair" % p, "prodcons", "prodcons", ["-p", str(p), "-n", n(2e6)],
                         about="malloc on one thread, free on another, through an SPSC ring"))
    multi = [t for t in threads if t > 1]
    for t in threads:
        v.append(Variant("larson-t%d" % t, "larson", "larson", ["-t", str(t), "-n", n(15e6), "-w", "1000", "-r", "1000"],
                         about="server simulation: threads swap bags of blocks, 8..1000 bytes"))
    v.append(Variant("larson-churn-t2", "larson", "larson",
                     ["-t", "2", "-n", n(15e6), "-w", "1000", "-r", "1000", "-g", "500"],
                     about="larson with thread churn: each thread hands its bag to a successor and exits, "
                           "500 threads per chain"))
    for t in multi:
        v.append(Variant("cache-thrash-t%d" % t, "cache-thrash", "cache",
                         ["-m", "thrash", "-t", str(t), "-n", n(2000), "-r", "100000", "-s", "8"],
                         about="active false sharing: per-thread 8-byte blocks written hard"))
    for t in multi:
        v.append(Variant("cache-scratch-t%d" % t, "cache-scratch", "cache",
                         ["-m", "scratch", "-t", str(t), "-n", n(2000), "-r", "100000", "-s", "8"],
                         about="passive false sharing: blocks from main, freed by the workers"))
    v.append(Variant("large", "large", "large", ["-n", n(20000), "-w", "40"],
                     about="40 live blocks of 32 KiB..4 MiB, one write per page"))
    v.append(Variant("bigbuf", "bigbuf", "bigbuf", ["-n", n(2000), "-w", "20"],
                     about="20 buffers of 5..25 MiB, one replaced at random, each zeroed by the program"))
    v.append(Variant("handoff-t2", "handoff", "handoff", ["-t", "2", "-n", n(20000), "-w", "1000", "-x", "4"],
                     about="rptest's shape: 1000 blocks of 8..16000 bytes (linear falloff) per thread, half "
                           "replaced each round, 1 in 4 freed by the next thread"))
    v.append(Variant("grow-t4", "grow", "grow", ["-t", "4", "-m", "16", "-r", n(100)],
                     about="4 threads grow a buffer by realloc, 1/64 at a time, to 16 MiB; free; repeat"))
    v.append(Variant("grow-turns-t4", "grow", "grow", ["-t", "4", "-b", "4", "-m", "4", "-r", n(10)],
                     about="4 threads each grow 4 buffers by turns, 1/64 at a time, to 4 MiB; free; repeat"))
    v.append(Variant("grow-many-t1", "grow", "grow", ["-t", "1", "-b", "50", "-k", "600", "-r", n(20)],
                     about="one thread grows 50 buffers by turns, 1/64 at a time, to 600 KiB; free; repeat"))
    v.append(Variant("grow-lots-t1", "grow", "grow", ["-t", "1", "-b", "1000", "-k", "256", "-r", n(3)],
                     about="one thread grows 1000 buffers by turns, 1/64 at a time, to 256 KiB; free; repeat"))
    v.append(Variant("barnes", "barnes", "barnes", ["-n", "20000", "-s", n(2)],
                     about="Barnes-Hut n-body, 20000 bodies: an octree of 112-byte cells rebuilt by malloc "
                           "every step; mostly compute, so the nodes' placement is what differs"))
    for w, sz in ((2, 64), (2, 0)):
        v.append(Variant("xbatch-%sw%d" % ("" if sz else "mixed-", w), "xbatch", "xbatch",
                         ["-w", str(w), "-n", n(4000), "-s", str(sz)],
                         about="xmalloc-test's shape: %d producers malloc batches of 4096 %s blocks, "
                               "%d consumers free them; up to 100 batches queued"
                               % (w, "%d-byte" % sz if sz else "8..2048-byte", w)))
    for t in (2, 4):
        v.append(Variant("sh8-t%d" % t, "sh8", "sh8", ["-t", str(t), "-r", n(10000 // t), "-n", "2000"],
                         about="sh8bench's shape: each thread allocates and frees 2000 blocks of 1-1000 bytes "
                               "a round and every other round hands them all to the next thread, which frees them"))
    v.append(Variant("gthread-t2", "gthread", "gthread", ["-t", "2", "-n", n(20e6)],
                     about="glibc's bench-malloc-thread shape: 1024 slots per thread, a random one replaced "
                           "by a block of 4..32768 bytes (inverse square), every byte written"))
    v.append(Variant("tstress-t2", "tstress", "tstress", ["-t", "2", "-n", n(10), "-r", "10"],
                     about="mimalloc's stress test's shape: short-lived and retained blocks of 8 B..1 MiB, "
                           "a quarter swapped through 1000 shared slots; threads recreated 10 times"))
    v.append(Variant("bignum", "bignum", "bignum", ["-n", n(2e6)],
                     about="cfrac's shape: a bignum library that mallocs every result and frees its "
                           "operands, 10..24-byte blocks, last in first out, one thread"))
    v.append(Variant("setfam", "setfam", "setfam", ["-n", n(300000)],
                     about="espresso's shape: families of 2-8-word cubes grown by realloc, "
                           "a temporary set malloc'd and freed per cube operation, one thread"))
    v.append(Variant("pareto-t1", "pareto", "pareto", ["-t", "1", "-n", n(10e6)],
                     about="alloc-test's shape: 2^18 slots, hot ones picked far more often (80/20 six "
                           "times over), 5 B..1 KiB blocks, every byte written and read back"))
    v.append(Variant("pareto-t2", "pareto", "pareto", ["-t", "2", "-n", n(10e6)],
                     about="the same in 2 threads, 2^17 slots each, nothing shared"))
    v.append(Variant("ruby-stress", "ruby", "ruby",
                     [os.path.join(benchlib.SCRIPTS_DIR, "stress.rb"), n(100000)], system=True,
                     about="Ruby: a table of arrays of strings rebuilt at random (bench/scripts/stress.rb)"))
    v.append(Variant("z3-queens", "z3", "z3", ["{bin}/queens-%d.smt2" % QUEENS_N], system=True,
                     about="z3 solving %d-queens as linear integer arithmetic" % QUEENS_N))
    # Programs of the system with their usual allocation patterns, fed data made up here
    # (no input files): each is run only where it is installed.
    rows = n(300000)
    v.append(Variant("sqlite-index", "sqlite", "sqlite3", [
        ":memory:", "create table t(a integer primary key, b text, c real);",
        "with recursive s(i) as (select 1 union all select i + 1 from s where i < %s) "
        "insert into t select i, printf('%%020x', (i * 2654435761) %% 1000000007), "
        "(i * 7919) %% 10007 - 5000 from s;" % rows,
        "create index tb on t(b);",
        "select count(*), sum(length(b)) from t where c > 0;"], system=True,
        about="SQLite in memory: %s rows inserted, indexed and scanned (its page cache: "
              "4 KiB pages plus a header)" % rows))
    v.append(Variant("jq-objects", "jq", "jq", [
        "-n", "[range(%s) | {id: ., name: \"n\\(.)\", tags: [., .+1, .+2, .+3, .+4]}] "
        "| tojson | fromjson | length" % n(100000)], system=True,
        about="jq: an array of objects built, printed as JSON and parsed back"))
    v.append(Variant("python-dict", "python", "python3", [
        "-c", "d = {str(i): [i] * 3 for i in range(%s)}; "
        "s = sorted(d.items(), key=lambda kv: kv[1][0] %% 977); print(len(s))" % n(300000)],
        system=True, env={"PYTHONMALLOC": "malloc"},
        about="Python with its object allocator off (PYTHONMALLOC=malloc): a dict of lists, sorted"))
    v.append(Variant("perl-hash", "perl", "perl", [
        "-e", "my %%h; for my $i (1..%s) { $h{\"k$i\"} = [$i, \"v\" x ($i %% 50)] } "
        "my $n = 0; for (sort keys %%h) { $n++ } print \"$n\\n\";" % n(300000)], system=True,
        about="Perl: a hash of arrays of strings, its keys sorted"))
    v.append(Variant("frag", "frag", "frag", ["-r", "6", "-n", n(400000)], kind="frag",
                     about="phases with a changing size mix; peak RSS / peak live bytes"))
    for mode in ("main", "thread"):
        v.append(Variant("idle-%s" % mode, "idle", "idle",
                         ["-m", mode, "-b", str(idle_mib), "-s", str(idle_sleep)], kind="idle",
                         about="%d MiB of small blocks freed, then %gs without allocator calls%s"
                               % (idle_mib, idle_sleep, " (worker thread parked)" if mode == "thread" else "")))
    return v


def replay_variants(spec):
    """The traces given with --replay, as workloads of kind "frag": what a replay measures
    is the peak RSS against the bytes it holds (its wall time is mostly the handoffs
    between its threads, not the allocator)."""
    v = []
    for path in [x.strip() for x in spec.split(",") if x.strip()]:
        if not os.path.isfile(path):
            sys.exit("run.py: no trace %s" % path)
        name = "replay-" + os.path.basename(path).replace(".", "-")
        v.append(Variant(name, "replay", "replay", [os.path.abspath(path)], kind="frag",
                         about="the allocator calls of a recorded program, replayed (bench/src/replay.c)"))
    return v


def select(all_variants, spec):
    if not spec or spec == "all":
        return all_variants
    out = []
    for tok in spec.split(","):
        tok = tok.strip()
        hits = [v for v in all_variants if v.name == tok or v.group == tok or v.name.startswith(tok + "-")]
        if not hits:
            sys.exit("run.py: no workload matches %r (see --list)" % tok)
        out += [v for v in hits if v not in out]
    return [v for v in all_variants if v in out]


# ---------------------------------------------------------------- running

def busy_seconds():
    """CPU seconds the whole machine has spent not idle (steal included),
    from /proc/stat; None where that file is not available."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / float(os.sysconf("SC_CLK_TCK"))


def runone_argv(bin_dir, variant, lib, timeout):
    """The command that runs variant under lib (None: glibc) through bin/runone."""
    return [os.path.join(bin_dir, "runone"), "%g" % timeout, lib or "-"] + variant.argv(bin_dir)


def parse_report(report, res):
    """runone's report (status, times, ru_maxrss as key=value on its fd 3) into res."""
    for tok in report.split():
        k, _, val = tok.partition("=")
        if k == "status":
            res["status"] = val.replace(":", " ")
        elif k in ("wall_s", "user_s", "sys_s"):
            res[k] = float(val)
        elif k == "maxrss_kb":
            res[k] = int(val)
    return res


def run_one(bin_dir, variant, lib, timeout):
    """Run one process under bin/runone, which forks it, waits for it with
    wait4() and reports wall time, CPU time and ru_maxrss (see runone.c for why
    Python cannot measure the peak RSS itself).  Returns a dict with those,
    the key=value numbers the workload printed, and a status."""
    argv = runone_argv(bin_dir, variant, lib, timeout)
    env = benchlib.child_env(None)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as rep:
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                   (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
                   (os.POSIX_SPAWN_DUP2, rep.fileno(), 3)]
        busy0 = busy_seconds()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        busy1 = busy_seconds()
        for f in (out, err, rep):
            f.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        report = rep.read().decode(errors="replace")

    res = parse_report(report, {"status": "runone failed (%s)" % stderr.strip()[-200:], "wall_s": 0.0})
    for tok in stdout.split():
        k, sep, val = tok.partition("=")
        if sep and k in EXTRA_KEYS:
            try:
                res[k] = int(val)
            except ValueError:
                pass
    if busy0 is not None and busy1 is not None and "user_s" in res:
        # CPU time that other processes took while this one ran: a measure of
        # how much the timing was disturbed (10 ms resolution).
        res["foreign_cpu_s"] = max(0.0, busy1 - busy0 - res["user_s"] - res["sys_s"])
    if res["status"] != "ok":
        res["stderr"] = stderr.strip()[-500:]
    return res


class Progress:
    def __init__(self, total):
        self.total, self.done, self.t0 = total, 0, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.width = 0

    def show(self, text):
        self.done += 1
        elapsed = time.monotonic() - self.t0
        left = elapsed / self.done * (self.total - self.done)
        line = "[%*d/%d] %s  elapsed %s  left ~%s" % (len(str(self.total)), self.done, self.total, text,
                                                      fmt_dur(elapsed), fmt_dur(left))
        if self.tty:
            sys.stderr.write("\r" + line.ljust(self.width))
            self.width = len(line)
            sys.stderr.flush()
        elif self.done % 25 == 0 or self.done == self.total:
            print(line, file=sys.stderr, flush=True)

    def message(self, text):
        if self.tty and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            self.width = 0
        print(text, file=sys.stderr, flush=True)

    def finish(self):
        if self.tty and self.width:
            sys.stderr.write("\n")


def fmt_dur(s):
    s = int(s)
    return "%dm%02ds" % (s // 60, s % 60) if s >= 60 else "%ds" % s


# ---------------------------------------------------------------- summary

def quartiles(xs):
    xs = sorted(xs)
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def summarize(rows, vs, allocs, baseline, stat="median"):
    summary = {}
    for v in vs:
        per = {}
        for a in allocs:
            runs = [r for r in rows if r["workload"] == v.name and r["allocator"] == a]
            ok = [r for r in runs if r["status"] == "ok"]
            s = {"runs": len(runs), "ok": len(ok), "failures": sorted({r["status"] for r in runs} - {"ok"})}
            if ok:
                for key in ["wall_s", "user_s", "sys_s", "maxrss_kb"] + EXTRA_KEYS:
                    xs = [r[key] for r in ok if r.get(key) not in (None, "")]
                    if not xs:
                        continue
                    q1, q3 = quartiles(xs)
                    s[key] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "q1": q1, "q3": q3}
                if v.kind == "frag" and "live_peak_bytes" in s:
                    s["rss_per_live"] = s["maxrss_kb"]["median"] * 1024.0 / s["live_peak_bytes"]["median"]
            per[a] = s
        for a, s in per.items():
            b = per.get(baseline)
            if not b or "wall_s" not in s or "wall_s" not in b:
                continue
            if v.kind != "idle":
                s["time_ratio"] = s["wall_s"][stat] / b["wall_s"][stat]
            mem = "rss_after_kb" if v.kind == "idle" else "maxrss_kb"
            if mem in s and mem in b and b[mem]["median"] > 0:
                s["memory_ratio"] = s[mem]["median"] / b[mem]["median"]
        summary[v.name] = per
    return summary


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def report(summary, vs, allocs, baseline, machine, args, rows):
    out = []
    out.append("melloc benchmarks: %s, %s CPUs, kernel %s, %s" % (
        machine["cpu_model"], machine["cpus_usable"], machine["kernel"], machine["libc"]))
    pkg = {"glibc": "libc6", "jemalloc": "libjemalloc2", "tcmalloc": "libtcmalloc-minimal4",
           "mimalloc": "libmimalloc2.0"}
    labels = []
    for a in allocs:
        if a in pkg:
            labels.append("%s %s" % (a, machine["packages"].get(pkg[a]) or "?"))
        elif a == "melloc":
            labels.append("melloc (git %s)" % (machine.get("git_commit") or "?"))
        else:
            labels.append(a)
    out.append("runs per workload: %d (idle: %d), scale %g; allocators: %s" % (
        args.runs, args.idle_runs, args.scale, ", ".join(labels)))
    if machine.get("programs"):
        out.append("system programs: %s" % ", ".join(
            "%s (%s)" % (p, ver) for p, ver in sorted(machine["programs"].items())))
    timed_rows = [r for r in rows if "foreign_cpu_s" in r and r["wall_s"] > 0]
    if timed_rows:
        capacity = sum(r["wall_s"] for r in timed_rows) * (machine["cpus_usable"] or 1)
        foreign = sum(r["foreign_cpu_s"] for r in timed_rows)
        share = foreign / capacity * 100 if capacity else 0
        out.append("other processes used %.1f%% of the CPU time available during the runs%s" % (
            share, ": WARNING, the machine was busy and the times are noisy" if share > 5 else ""))
    out.append("")

    def cell(s, key, scale=1.0, prec=3):
        if key not in s:
            return "FAIL" if s.get("failures") else "-"
        m = s[key]
        spread = (m["max"] - m["min"]) / 2 / m["median"] * 100 if m["median"] else 0
        txt = "%.*f" % (prec, m[args.stat if key == "wall_s" else "median"] * scale)
        if s["ok"] > 1:
            txt += " ±%.0f%%" % spread
        if s.get("failures"):
            txt += " (%d fail)" % (s["runs"] - s["ok"])
        return txt

    timed = [v for v in vs if v.kind != "idle"]
    if timed:
        out.append("Wall time, seconds: %s ±half the min-max range, as %% of the median" % args.stat)
        out.append(table(["workload"] + allocs, [[v.name] + [cell(summary[v.name][a], "wall_s") for a in allocs]
                                                  for v in timed]))
        out.append("")
        out.append("Peak RSS, MiB (ru_maxrss): median")
        out.append(table(["workload"] + allocs,
                         [[v.name] + [cell(summary[v.name][a], "maxrss_kb", 1 / 1024.0, 1).split(" ")[0]
                                      for a in allocs] for v in timed]))
        out.append("")
    others = [a for a in allocs if a != baseline]
    if baseline in allocs and others:
        out.append("Ratios to %s (other / %s: above 1 means %s is faster or smaller)" % (baseline, baseline, baseline))
        hdr = ["workload"] + ["%s time" % a for a in others] + ["%s mem" % a for a in others]
        rows = []
        for v in vs:
            r = [v.name]
            for key in ("time_ratio", "memory_ratio"):
                for a in others:
                    x = summary[v.name][a].get(key)
                    r.append("%.2f" % x if x is not None else "-")
            rows.append(r)
        gm = ["geomean"]
        for key in ("time_ratio", "memory_ratio"):
            for a in others:
                g = geomean([summary[v.name][a].get(key) for v in vs])
                gm.append("%.2f" % g if g else "-")
        rows.append(gm)
        out.append(table(hdr, rows))
        out.append("(memory: peak RSS; for idle-*, the RSS left after the wait)")
        out.append("")
    frag = [v for v in vs if v.kind == "frag"]
    if frag:
        out.append("Fragmentation: peak RSS / peak live bytes (1.00 = no overhead)")
        out.append(table(["workload"] + allocs,
                         [[v.name] + ["%.2f" % summary[v.name][a]["rss_per_live"]
                                      if "rss_per_live" in summary[v.name][a] else "-" for a in allocs]
                          for v in frag]))
        out.append("")
    idle = [v for v in vs if v.kind == "idle"]
    if idle:
        out.append("Idle: RSS in MiB at peak / right after freeing everything / after the wait")
        rows = []
        for v in idle:
            r = [v.name]
            for a in allocs:
                s = summary[v.name][a]
                if all(k in s for k in ("rss_peak_kb", "rss_freed_kb", "rss_after_kb")):
                    r.append("%.0f / %.0f / %.0f" % tuple(s[k]["median"] / 1024.0
                                                          for k in ("rss_peak_kb", "rss_freed_kb", "rss_after_kb")))
                else:
                    r.append("FAIL" if s.get("failures") else "-")
            rows.append(r)
        out.append(table(["workload"] + allocs, rows))
        out.append("")
    failed = [(v.name, a, s["failures"]) for v in vs for a, s in summary[v.name].items() if s["failures"]]
    if failed:
        out.append("Failures:")
        for name, a, f in failed:
            out.append("  %s under %s: %s" % (name, a, ", ".join(f)))
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- chart

def chart(summary, vs, allocs, baseline, outdir, key, fname, title):
    others = [a for a in allocs if a != baseline]
    names = [v.name for v in vs if any(summary[v.name][a].get(key) for a in others)]
    if not others or not names or not shutil.which("gnuplot"):
        return None
    dat = os.path.join(outdir, fname.replace(".png", ".dat"))
    with open(dat, "w") as f:
        f.write("workload " + " ".join(others) + "\n")
        for n in names:
            f.write(n + " " + " ".join("%.4f" % summary[n][a][key] if summary[n][a].get(key) else "NaN"
                                       for a in others) + "\n")
    vals = [summary[n][a][key] for n in names for a in others if summary[n][a].get(key)]
    lo = min(min(vals), 1.0) / 1.3
    hi = max(max(vals), 1.0) * 1.3
    png = os.path.join(outdir, fname)
    gp = os.path.join(outdir, fname.replace(".png", ".gp"))
    with open(gp, "w") as f:
        f.write("""set terminal pngcairo size 1500,720 font ",11" noenhanced
set output '%(png)s'
set title "%(title)s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set yrange [%(lo)g:%(hi)g]
set ytics (0.125, 0.25, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 4, 8, 16, 32, 64)
set grid ytics
set xtics rotate by 45 right nomirror
set key top left horizontal
set ylabel "ratio to %(base)s (log scale; >1: %(base)s is better)"
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black"
plot for [i=2:%(ncol)d] '%(dat)s' using i:xtic(1) title columnheader(i)
""" % {"png": png, "title": title, "lo": lo, "hi": hi, "base": baseline, "ncol": len(others) + 1, "dat": dat})
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("gnuplot failed: " + r.stderr.strip(), file=sys.stderr)
        return None
    return png


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--workloads", default="all",
                   help="comma list of variants or groups (fastpath, mixed, prodcons, larson, cache-thrash, "
                        "cache-scratch, large, bigbuf, handoff, grow, barnes, xbatch, gthread, tstress, "
                        "bignum, setfam, pareto, sh8, ruby, z3, sqlite, jq, python, perl, frag, idle) or name prefixes; "
                        "default all")
    p.add_argument("-a", "--allocators", default=",".join(benchlib.ALL_ALLOCATORS),
                   help="comma list from melloc,glibc,jemalloc,tcmalloc,mimalloc or paths to a .so "
                        "(default: all five)")
    p.add_argument("-r", "--runs", type=int, default=None, help="runs per workload and allocator (default 5)")
    p.add_argument("-t", "--threads", default="1,2,4,8",
                   help="thread counts for mixed and larson; cache-* use those above 1 (default 1,2,4,8)")
    p.add_argument("--scale", type=float, default=None, help="multiply every iteration count (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 run, scale 0.1, idle 64 MiB and 1 s (under a minute)")
    p.add_argument("--idle-sleep", type=float, default=None, help="seconds the idle workloads wait (default 10)")
    p.add_argument("--idle-mib", type=int, default=None, help="MiB the idle workloads allocate (default 256)")
    p.add_argument("--idle-runs", type=int, default=None,
                   help="runs of the idle workloads, which mostly sleep (default 1)")
    p.add_argument("--melloc", default=None,
                   help="path of libmelloc.so (default $MELLOC_LIB or ../.libs/libmelloc.so from bench/)")
    p.add_argument("--baseline", default=None, help="allocator the ratios are taken against (default melloc, "
                                                      "or glibc when melloc is not there)")
    p.add_argument("-o", "--out", default=DEFAULT_OUT, help="output directory (default bench/results/latest)")
    p.add_argument("--bin-dir", default=benchlib.DEFAULT_BIN_DIR,
                   help="where the workload programs are (built there if missing or stale)")
    p.add_argument("--stat", choices=["median", "min"], default="median",
                   help="statistic of the wall times in the table, ratios and chart (default median; "
                        "min is the better estimate on a machine shared with other work)")
    p.add_argument("--timeout", type=float, default=300, help="seconds before a run is killed (default 300)")
    p.add_argument("--no-install", action="store_true", help="do not apt-get install missing allocators")
    p.add_argument("--no-chart", action="store_true", help="skip the gnuplot charts")
    p.add_argument("--list", action="store_true", help="list the workload variants and exit")
    p.add_argument("--replay", default="",
                   help="comma list of traces recorded with bin/alloctrace.so (bench/README.md, \"Replaying a "
                        "program\"): each is run as the workload replay-NAME, and only those unless -w is given")
    a = p.parse_args(argv)
    if a.quick:
        defaults = {"runs": 1, "scale": 0.1, "idle_sleep": 1.0, "idle_mib": 64, "idle_runs": 1}
    else:
        defaults = {"runs": 5, "scale": 1.0, "idle_sleep": 10.0, "idle_mib": 256, "idle_runs": 1}
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.idle_runs = min(a.idle_runs, a.runs)
    try:
        a.thread_list = sorted({int(x) for x in a.threads.split(",") if x.strip()})
    except ValueError:
        p.error("--threads takes a comma list of numbers")
    if a.runs < 1 or not a.thread_list or min(a.thread_list) < 1:
        p.error("--runs and --threads must be positive")
    return a


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    all_vs = variants(args.scale, args.thread_list, args.idle_mib, args.idle_sleep)
    replays = replay_variants(args.replay)
    if replays and args.workloads == "all":
        vs = replays
    else:
        vs = select(all_vs + replays, args.workloads)
    if args.list:
        for v in vs:
            print("%-20s %-45s %s" % (v.name, v.prog + " " + " ".join(v.args), v.about))
        return 0
    missing = [v for v in vs if v.system and not shutil.which(v.prog)]
    for v in missing:
        benchlib.note("%s not run: %s is not installed" % (v.name, v.prog))
    vs = [v for v in vs if v not in missing]

    allocs = benchlib.find_allocators([x.strip() for x in args.allocators.split(",") if x.strip()],
                                      melloc=args.melloc, install=not args.no_install)
    if not allocs:
        sys.exit("run.py: no allocator to run")
    names = list(allocs)
    baseline = args.baseline or ("melloc" if "melloc" in allocs else "glibc" if "glibc" in allocs else names[0])
    if baseline not in allocs:
        sys.exit("run.py: baseline %s is not among the allocators run" % baseline)
    if baseline != "melloc" and args.baseline is None:
        benchlib.note("melloc is not being run: ratios are against %s" % baseline)

    benchlib.build(args.bin_dir)
    if any(v.prog == "z3" for v in vs):
        write_queens(os.path.join(args.bin_dir, "queens-%d.smt2" % QUEENS_N))
    os.makedirs(args.out, exist_ok=True)
    machine = benchlib.machine_info(allocs)
    machine["programs"] = {v.prog: program_version(v.prog) for v in vs if v.system}

    jobs = []
    for rnd in range(args.runs):
        for v in vs:
            if v.kind == "idle" and rnd >= args.idle_runs:
                continue
            for a in names:
                jobs.append((rnd, v, a))
    prog = Progress(len(jobs))
    rows = []
    interrupted = False
    csv_path = os.path.join(args.out, "runs.csv")
    fields = ["round", "workload", "allocator", "status", "wall_s", "user_s", "sys_s", "maxrss_kb",
              "foreign_cpu_s"] + EXTRA_KEYS
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        try:
            for rnd, v, a in jobs:
                res = run_one(args.bin_dir, v, allocs[a], args.timeout)
                res.update({"round": rnd + 1, "workload": v.name, "allocator": a})
                rows.append(res)
                w.writerow({k: ("%.4f" % x if isinstance(x, float) else x) for k, x in res.items()})
                f.flush()
                if res["status"] != "ok":
                    prog.message("%s under %s: %s %s" % (v.name, a, res["status"], res.get("stderr", "")))
                prog.show("round %d/%d  %-18s %-9s %6.2fs" % (rnd + 1, args.runs, v.name, a, res["wall_s"]))
        except KeyboardInterrupt:
            interrupted = True
            prog.message("interrupted: summarizing the %d runs done" % len(rows))
    prog.finish()

    done = [v for v in vs if any(r["workload"] == v.name for r in rows)]
    summary = summarize(rows, done, names, baseline, args.stat)
    text = report(summary, done, names, baseline, machine, args, rows)
    if missing:
        text += "\nNot run (program not installed): %s\n" % ", ".join(
            "%s (%s)" % (v.name, v.prog) for v in missing)
    print(text)
    with open(os.path.join(args.out, "results.txt"), "w") as f:
        f.write(text + "\n")
    charts = []
    if not args.no_chart:
        if not shutil.which("gnuplot"):
            benchlib.note("gnuplot not found (apt-get install gnuplot-nox): no charts")
        for key, fname, title in (
                ("time_ratio", "ratio_time.png", "Wall time relative to %s (%s of %d run%s)" % (baseline, args.stat, args.runs, "s" if args.runs > 1 else "")),
                ("memory_ratio", "ratio_memory.png", "Memory relative to %s (peak RSS; idle-*: RSS after the wait)"
                 % baseline)):
            png = chart(summary, done, names, baseline, args.out, key, fname, title)
            if png:
                charts.append(png)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"machine": machine, "baseline": baseline, "allocators": allocs,
                   "options": {"stat": args.stat, "runs": args.runs, "idle_runs": args.idle_runs, "scale": args.scale,
                               "threads": args.thread_list, "idle_sleep": args.idle_sleep,
                               "idle_mib": args.idle_mib, "interrupted": interrupted},
                   "foreign_cpu_s": sum(r.get("foreign_cpu_s", 0.0) for r in rows),
                   "wall_s_total": sum(r.get("wall_s", 0.0) for r in rows),
                   "workloads": {v.name: {"command": [v.prog] + v.args, "kind": v.kind, "about": v.about}
                                 for v in done},
                   "results": summary}, f, indent=1, sort_keys=False)
        f.write("\n")
    benchlib.note("results in %s: results.txt runs.csv summary.json %s" % (
        args.out, " ".join(os.path.basename(c) for c in charts)))
    if interrupted:
        return 130
    return 1 if any(r["status"] != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
