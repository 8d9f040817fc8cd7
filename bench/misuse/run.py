#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs every heap-misuse case of misuse.c under each allocator and classifies it.

Each case is one process, with the allocator in LD_PRELOAD (none for glibc) and
every allocator's tuning variables removed from the environment, so each one runs
with its default settings.  The outcome comes from the exit status and from what
the program wrote on stdout (see misuse.c):

  CAUGHT  killed by SIGABRT (or a trap: SIGILL, SIGTRAP), or exited nonzero with a
          message on stderr, before any damage was observed
  CRASH   killed by SIGSEGV or SIGBUS (a guard page, or the allocator tripping on
          the bad pointer itself): stops the program, but by luck, not by a check
  DAMAGE  ran on and observed a block handed out twice, an overlap with a live
          block, a wild pointer, or a live block whose contents changed
  SILENT  ran to the end, nothing observed
  WARNED  like SILENT, but the allocator printed something on stderr
  HANG    still running at the timeout
  OK / WRONG           the "correct answer" cases (NULL + errno, EINVAL)
  STALE / CLEARED, OLD / CLEAN   the report-only cases (data left after free / in a new block)

Standard library only; python3 bench/misuse/run.py -h for the options.
"""

import argparse
import concurrent.futures
import datetime
import glob
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# Variables that tune an allocator: none may leak into a run.
TUNING = re.compile(r"^(MALLOC_|MELLOC_|SCUDO_|MIMALLOC_|JE_MALLOC|TCMALLOC_|GLIBC_TUNABLES|LD_PRELOAD$)")

DETECT_CLASSES = ("CAUGHT", "CRASH", "DAMAGE", "SILENT", "WARNED", "HANG", "ERROR")


def ldconfig_lib(name):
    """The path ldconfig knows for a soname, or None."""
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        return None
    for line in out.splitlines():
        if line.strip().startswith(name + " ") and "=>" in line:
            return line.rsplit("=>", 1)[1].strip()
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    return None


def scudo_lib():
    arch = platform.machine()
    pats = [f"/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-{arch}.so",
            f"/usr/lib/llvm-*/lib/clang/*/lib/*/libclang_rt.scudo_standalone.so"]
    for pat in pats:
        found = sorted(glob.glob(pat))
        if found:
            return found[-1]
    return None


def allocators(args):
    """[(name, path or None for glibc)] of the allocators to run; prints what is skipped."""
    build = os.path.abspath(args.build)
    want = {
        "glibc": "",
        "melloc": args.melloc or os.path.join(build, ".libs", "libmelloc.so.0"),
        "melloc-hardened": args.hardened or os.path.join(build, ".libs", "libmelloc-hardened.so.0"),
        "scudo": scudo_lib(),
        "jemalloc": ldconfig_lib("libjemalloc.so.2"),
        "tcmalloc": ldconfig_lib("libtcmalloc_minimal.so.4"),
        "mimalloc": ldconfig_lib("libmimalloc.so.2"),
    }
    names = args.allocators.split(",") if args.allocators else list(want)
    out = []
    for n in names:
        if n not in want:
            if os.path.exists(n):
                out.append((os.path.basename(n), os.path.abspath(n)))
            else:
                print(f"run.py: unknown allocator {n}, skipped", file=sys.stderr)
            continue
        path = want[n]
        if path == "":
            out.append((n, None))
        elif path and os.path.exists(path):
            out.append((n, os.path.abspath(path)))
        else:
            print(f"run.py: {n} not found ({path or 'not installed'}), skipped", file=sys.stderr)
    return out


def build(args):
    out_dir = os.path.join(os.path.abspath(args.build), "bench", "bin")
    os.makedirs(out_dir, exist_ok=True)
    exe = os.path.join(out_dir, "misuse")
    src = os.path.join(HERE, "misuse.c")
    if not os.path.exists(exe) or os.path.getmtime(src) > os.path.getmtime(exe):
        cmd = [args.cc, "-O0", "-g", "-fno-builtin", "-pthread", "-Wall", "-Wextra", "-o", exe, src]
        print("  " + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    return exe


def list_cases(exe):
    out = subprocess.run([exe, "--list"], capture_output=True, text=True, check=True).stdout
    cases = []
    for line in out.splitlines():
        name, kind, timeout = line.split()
        cases.append({"case": name, "kind": kind, "timeout": int(timeout)})
    return cases


def clean_env():
    return {k: v for k, v in os.environ.items() if not TUNING.match(k)}


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_one(exe, case, alloc, env, scale):
    name, path = alloc
    e = dict(env)
    if path:
        e["LD_PRELOAD"] = path
    t0 = time.monotonic()
    p = subprocess.Popen([exe, case["case"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                         start_new_session=True, preexec_fn=no_core)
    hung = False
    try:
        so, se = p.communicate(timeout=case["timeout"] * scale)
    except subprocess.TimeoutExpired:
        hung = True
        os.killpg(p.pid, signal.SIGKILL)
        so, se = p.communicate()
    secs = time.monotonic() - t0
    so = so.decode(errors="replace")
    se = se.decode(errors="replace")
    r = {"case": case["case"], "kind": case["kind"], "allocator": name, "rc": p.returncode,
         "seconds": round(secs, 3), "stdout": so.splitlines(), "stderr_first": first_line(se)}
    r["class"], r["detail"] = classify(case["kind"], p.returncode, hung, so, se)
    return r


def first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def signame(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def classify(kind, rc, hung, so, se):
    lines = so.splitlines()
    tagged = lambda tag: [l[len(tag) + 1:] for l in lines if l.startswith(tag + " ")]
    dmg, res, rep = tagged("DAMAGE"), tagged("RESULT"), tagged("REPORT")
    ended = "END" in lines
    if hung:
        return "HANG", "still running at the timeout"
    if dmg:
        return "DAMAGE", dmg[0]
    died = None
    if rc is not None and rc < 0:
        sig = -rc
        died = signame(sig)
        if sig in (signal.SIGABRT, signal.SIGILL, signal.SIGTRAP):
            cls = "CAUGHT"
        else:
            cls = "CRASH"
    elif rc != 0 and not ended:
        cls = "CAUGHT" if se.strip() else "ERROR"
        died = f"exit {rc}"
    if kind == "answer":
        if res:
            word, _, what = res[0].partition(" ")
            return word, what
        return "WRONG", f"no answer: {died or 'exit ' + str(rc)}"
    if died:
        return cls, died + (": " + first_line(se) if se.strip() else "")
    if kind == "report":
        if rep:
            word, _, what = rep[0].partition(" ")
            return word, what
        return "ERROR", "no report"
    if rc == 0 and ended:
        if se.strip():
            return "WARNED", first_line(se)
        return "SILENT", "; ".join(tagged("INFO"))
    return "ERROR", f"exit {rc}"


def family(case_name):
    return case_name.split(":")[0]


def markdown(cases, allocs, results):
    by = {(r["case"], r["allocator"]): r for r in results}
    names = [a for a, _ in allocs]
    out = []
    out.append("| case | kind | " + " | ".join(names) + " |")
    out.append("| --- | --- |" + " --- |" * len(names))
    for c in cases:
        cells = []
        for a in names:
            r = by.get((c["case"], a))
            cells.append(r["class"] if r else "")
        out.append(f"| {c['case']} | {c['kind']} | " + " | ".join(cells) + " |")
    out.append("")
    out.append(summary(cases, allocs, results))
    return "\n".join(out)


def summary(cases, allocs, results):
    out = ["| allocator | caught | crash | damage | silent+warned | hang/error | correct answers | stale after free | old data in new block |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for a, _ in allocs:
        rs = [r for r in results if r["allocator"] == a]
        det = [r for r in rs if r["kind"] == "detect"]
        n = len(det)
        cnt = lambda *cls: sum(1 for r in det if r["class"] in cls)
        pct = lambda k: f"{k}/{n} ({100.0 * k / n:.0f}%)" if n else "0/0"
        ans = [r for r in rs if r["kind"] == "answer"]
        ok = sum(1 for r in ans if r["class"] == "OK")
        raf = [r for r in rs if family(r["case"]) == "read-after-free"]
        uni = [r for r in rs if family(r["case"]) == "uninit"]
        stale = sum(1 for r in raf if r["class"] == "STALE")
        old = sum(1 for r in uni if r["class"] == "OLD")
        out.append(f"| {a} | {pct(cnt('CAUGHT'))} | {cnt('CRASH')} | {cnt('DAMAGE')} | "
                   f"{cnt('SILENT', 'WARNED')} | {cnt('HANG', 'ERROR')} | {ok}/{len(ans)} | "
                   f"{stale}/{len(raf)} | {old}/{len(uni)} |")
    return "\n".join(out)


def family_table(cases, allocs, results):
    """Per family of cases: caught/total, and the damage and crash counts when nonzero."""
    names = [a for a, _ in allocs]
    fams = []
    for c in cases:
        if c["kind"] == "detect" and family(c["case"]) not in fams:
            fams.append(family(c["case"]))
    out = ["| family (caught/cases, D = damage, X = crash) | " + " | ".join(names) + " |",
           "| --- |" + " --- |" * len(names)]
    for f in fams:
        cells = []
        for a in names:
            rs = [r for r in results if r["allocator"] == a and family(r["case"]) == f]
            k = sum(1 for r in rs if r["class"] == "CAUGHT")
            d = sum(1 for r in rs if r["class"] == "DAMAGE")
            x = sum(1 for r in rs if r["class"] == "CRASH")
            cell = f"{k}/{len(rs)}"
            if d:
                cell += f" D{d}"
            if x:
                cell += f" X{x}"
            cells.append(cell)
        out.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=TOP, help="build directory holding .libs/ (default: the source tree)")
    ap.add_argument("--melloc", help="melloc library (default: BUILD/.libs/libmelloc.so.0)")
    ap.add_argument("--hardened", help="hardened melloc (default: BUILD/.libs/libmelloc-hardened.so.0; skipped if absent)")
    ap.add_argument("--allocators", "-a", help="comma-separated list (glibc,melloc,melloc-hardened,scudo,jemalloc,tcmalloc,mimalloc) or paths")
    ap.add_argument("--only", help="run only the cases whose name matches this regular expression (re.search)")
    ap.add_argument("--json", help="write every result (with the first stderr line) to this file")
    ap.add_argument("--markdown", help="also write the tables to this file")
    ap.add_argument("--jobs", "-j", type=int, default=max(2, 2 * (os.cpu_count() or 1)),
                    help="cases run at once (default: twice the CPUs; the idle cases mostly sleep)")
    ap.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every case's timeout")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args()

    exe = build(args)
    cases = list_cases(exe)
    if args.only:
        rx = re.compile(args.only)
        cases = [c for c in cases if rx.search(c["case"])]
    if args.list:
        for c in cases:
            print(c["case"], c["kind"], c["timeout"])
        return 0
    allocs = allocators(args)
    if not allocs or not cases:
        print("run.py: nothing to run", file=sys.stderr)
        return 1
    for a, p in allocs:
        print(f"  {a}: {p or '(system malloc, no preload)'}", file=sys.stderr)

    env = clean_env()
    jobs = [(c, a) for c in cases for a in allocs]
    jobs.sort(key=lambda j: -j[0]["timeout"])  # the slow ones first, so they overlap the rest
    results = []
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        futs = [ex.submit(run_one, exe, c, a, env, args.timeout_scale) for c, a in jobs]
        for i, f in enumerate(concurrent.futures.as_completed(futs), 1):
            results.append(f.result())
            if sys.stderr.isatty():
                print(f"\r  {i}/{len(jobs)}", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    elapsed = time.monotonic() - t0

    text = markdown(cases, allocs, results) + "\n\n" + family_table(cases, allocs, results) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        order = {c["case"]: i for i, c in enumerate(cases)}
        anames = [a for a, _ in allocs]
        results.sort(key=lambda r: (order[r["case"]], anames.index(r["allocator"])))
        meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
                "kernel": platform.release(), "cpus": os.cpu_count(), "seconds": round(elapsed, 1),
                "allocators": {a: p for a, p in allocs}}
        # One result a line: small, and a diff of two runs shows the cases that changed.
        with open(args.json, "w") as f:
            f.write('{"meta": ' + json.dumps(meta) + ',\n "results": [\n')
            f.write(",\n".join(json.dumps(r) for r in results))
            f.write("\n]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
