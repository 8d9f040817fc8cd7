# SPDX-License-Identifier: MIT
"""Shared by run.py and icount.py: finding the allocators, building the
workload programs, and describing the machine.  Python 3 standard library only.

An allocator is a name and the path of a shared library to LD_PRELOAD (None for
glibc, which is the process's own malloc).  Every allocator is used with its
default settings: no tuning environment is set for any of them.
"""

import glob
import hashlib
import os
import platform
import shutil
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
SRC_DIR = os.path.join(BENCH_DIR, "src")
SCRIPTS_DIR = os.path.join(BENCH_DIR, "scripts")
DEFAULT_BIN_DIR = os.path.join(BENCH_DIR, "bin")
DEFAULT_MELLOC = os.path.normpath(os.path.join(BENCH_DIR, "..", ".libs", "libmelloc.so"))

PROGRAMS = ["runone", "fastpath", "mixed", "prodcons", "larson", "cache", "large", "bigbuf", "grow", "handoff",
            "frag", "idle", "bursts", "barnes", "xbatch", "gthread", "tstress", "bignum", "setfam", "pareto",
            "sh8", "replay"]
CFLAGS = ["-O2", "-g", "-pthread"]
LIBS = ["-lm"]  # barnes uses sqrt, pow, sin, cos

# name -> (soname looked up with ldconfig, Debian package)
SYSTEM_ALLOCATORS = {
    "jemalloc": ("libjemalloc.so.2", "libjemalloc2"),
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    "mimalloc": ("libmimalloc.so.2", "libmimalloc2.0"),
}
ALL_ALLOCATORS = ["melloc", "glibc", "jemalloc", "tcmalloc", "mimalloc"]
PACKAGES = ["libc6", "libjemalloc2", "libtcmalloc-minimal4", "libmimalloc2.0", "gcc", "valgrind"]


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def melloc_path(cli_value=None):
    """--melloc, else $MELLOC_LIB, else ../.libs/libmelloc.so relative to bench/."""
    return os.path.abspath(cli_value or os.environ.get("MELLOC_LIB") or DEFAULT_MELLOC)


def _ldconfig_lookup(soname):
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    if not out:
        try:
            out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
        except OSError:
            out = ""
    want64 = platform.machine() in ("x86_64", "aarch64")
    for line in out.splitlines():
        left, sep, path = line.strip().partition(" => ")
        if not sep or left.split()[0] != soname:
            continue
        if want64 and "64" not in left:  # skip the 32-bit multilib copy
            continue
        if os.path.exists(path):
            return path
    for pattern in ("/usr/lib/*/" + soname, "/usr/lib/" + soname, "/usr/local/lib/" + soname,
                    "/lib/*/" + soname):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def _apt_install(package):
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    note("installing %s with apt-get ..." % package)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", package]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    return subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode == 0


def exports_malloc(lib):
    """True unless nm can tell that the library does not define malloc and
    free: preloading such a library would silently measure glibc."""
    nm = shutil.which("nm")
    if not nm:
        return True
    r = subprocess.run([nm, "-D", "--defined-only", lib], capture_output=True, text=True)
    if r.returncode != 0:
        return True
    syms = {line.split()[-1].split("@")[0] for line in r.stdout.splitlines() if line.split()}
    return {"malloc", "free"} <= syms


def preload_works(lib):
    """ld.so only warns when a preload fails and then runs the program on
    glibc's malloc; catch that here rather than benchmark glibc twice."""
    if not exports_malloc(lib):
        note("%s does not define malloc and free" % lib)
        return False
    true = shutil.which("true") or "/bin/true"
    r = subprocess.run([true], env=dict(os.environ, LD_PRELOAD=lib), capture_output=True, text=True)
    return r.returncode == 0 and "cannot be preloaded" not in r.stderr and "ERROR" not in r.stderr


def find_allocators(names, melloc=None, install=True):
    """Return an ordered dict name -> library path (None = glibc).  Allocators
    that cannot be found are reported on stderr and left out."""
    found = {}
    for name in names:
        if name == "glibc":
            found[name] = None
        elif name == "melloc":
            path = melloc_path(melloc)
            if not os.path.exists(path):
                note("melloc: %s does not exist (build the library first, or pass --melloc PATH "
                     "or set MELLOC_LIB); skipping melloc" % path)
                continue
            if not preload_works(path):
                note("melloc: %s cannot be used through LD_PRELOAD; skipping melloc" % path)
                continue
            found[name] = path
        elif name in SYSTEM_ALLOCATORS:
            soname, package = SYSTEM_ALLOCATORS[name]
            path = _ldconfig_lookup(soname)
            if path is None and install and _apt_install(package):
                path = _ldconfig_lookup(soname)
            if path is None:
                note("%s: %s not found (apt-get install %s); skipping %s" % (name, soname, package, name))
                continue
            if not preload_works(path):
                note("%s: %s cannot be used through LD_PRELOAD; skipping %s" % (name, path, name))
                continue
            found[name] = path
        elif os.path.exists(name) and (name.endswith(".so") or ".so." in name):
            # Any other library given by path: named after its file.
            found[os.path.basename(name).split(".so")[0]] = os.path.abspath(name)
        else:
            note("unknown allocator %r (known: %s, or a path to a .so)" % (name, ", ".join(ALL_ALLOCATORS)))
    return found


def child_env(lib):
    """The environment of a benchmark run: ours, with LD_PRELOAD replaced."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    return env


def _compile(src, out, flags, libs):
    """cc src into out unless out is newer than src and the shared headers."""
    deps = [src, os.path.join(SRC_DIR, "common.h"), os.path.join(SRC_DIR, "alloctrace.h")]
    if os.path.exists(out) and os.path.getmtime(out) >= max(os.path.getmtime(d) for d in deps):
        return
    cmd = [os.environ.get("CC", "cc")] + CFLAGS + flags + ["-o", out, src] + libs
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        note(" ".join(cmd) + "\n" + r.stderr)
        sys.exit("bench: compiling %s failed" % src)


def build(bin_dir, programs=PROGRAMS):
    """Compile the workloads that are missing or older than their sources, and
    bin/alloctrace.so, the recorder of traces for bin/replay (bench/README.md).
    `make bench` builds them first with $(CC); this is for running run.py by hand."""
    os.makedirs(bin_dir, exist_ok=True)
    for prog in programs:
        _compile(os.path.join(SRC_DIR, prog + ".c"), os.path.join(bin_dir, prog), [], LIBS)
    _compile(os.path.join(SRC_DIR, "alloctrace.c"), os.path.join(bin_dir, "alloctrace.so"),
             ["-shared", "-fPIC"], ["-ldl"])


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _cmd(args):
    try:
        r = subprocess.run(args, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    except OSError:
        return None


def machine_info(allocators):
    cpu = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = {}
    for pkg in PACKAGES:
        v = _cmd(["dpkg-query", "-W", "-f=${Version}", pkg])
        if v is None:
            v = _cmd(["dpkg-query", "-W", "-f=${Version}", pkg + ":amd64"])
        versions[pkg] = v
    libs = {}
    for name, path in allocators.items():
        entry = {"path": path}
        if path:
            entry["realpath"] = os.path.realpath(path)
            with open(path, "rb") as f:
                entry["sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
        libs[name] = entry
    return {
        "cpu_model": cpu,
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "kernel": " ".join(platform.uname()[2:4]),
        "machine": platform.machine(),
        "libc": " ".join(platform.libc_ver()),
        "memory_kb": next((int(l.split()[1]) for l in (_read("/proc/meminfo") or "").splitlines()
                           if l.startswith("MemTotal:")), None),
        "thp": _read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "loadavg_at_start": _read("/proc/loadavg"),
        "packages": versions,
        "compiler": ((_cmd([os.environ.get("CC", "cc"), "--version"]) or "").splitlines() or [None])[0],
        "git_commit": _cmd(["git", "-C", BENCH_DIR, "rev-parse", "--short", "HEAD"]),
        "allocators": libs,
        "python": platform.python_version(),
    }
