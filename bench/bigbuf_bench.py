#!/usr/bin/env python3
"""pyinspect heap on a target whose memory is mostly data buffers.

  bench/bigbuf_bench.py [--python PATH ...] [--gib 1] [--headline ID] [--headline-gib 8]
                        [--numpy PATH] [--numpy-gib 8] [--millions 1] [--runs 3] [--compare OLD]

Each CPython (default: every interpreter tests/integration/discover.py finds, without the
-stripped twins unless --stripped) runs bench/bigbuf_target.py: --gib GiB of bytearrays (64 MiB
each; --headline-gib on the interpreter whose id contains --headline) next to about --millions
million small objects, and takes its own census of them. With --numpy (default: Debian's
/usr/bin/python3.11 when it has numpy) one more target holds --numpy-gib GiB of numpy arrays of
400 MB each (np.ones((50, 1000, 1000))). One target at a time; each is killed before the next.

`pyinspect heap PID --json` runs --runs times on each (medians): its pause (pause_us), its peak
memory (max RSS, from wait4's rusage), the bytes it copied and left out. The object bytes are
the target's own sum of sys.getsizeof over its census, less the buffers' data (bytearrays and
arrays count their buffers in their size): the memory that holds objects and their pointer
arrays. The goals: pause < 150 ms; pyinspect's peak memory < 2x the object bytes + 100 MB.
--compare OLD also runs another pyinspect binary once on each target, for a before/after.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1 << 20


def discovered(stripped):
    out = os.path.join(tempfile.mkdtemp(prefix="bigbuf-bench-"), "interpreters.json")
    cmd = [sys.executable, os.path.join(HERE, "..", "tests", "integration", "discover.py"), "--output", out,
           "--stripped-dir", os.path.join(os.path.dirname(out), "stripped")]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    found = []
    for i in json.load(open(out)):
        if i.get("probe_failed") or (i.get("stripped_libpython") and not stripped):
            continue
        env = dict(os.environ)
        env.update(i.get("env") or {})
        found.append((i["id"], i["path"], env))
    return found


def has_numpy(python):
    return os.path.exists(python) and subprocess.run([python, "-c", "import numpy"], stderr=subprocess.DEVNULL).returncode == 0


def run_heap(pyinspect, pid):
    t0 = time.perf_counter()
    p = subprocess.Popen([pyinspect, "heap", str(pid), "--json", "--top", "5", "--no-progress"], stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError("pyinspect heap %d: status %d" % (pid, status))
    j = json.loads(out)
    return {"wall": wall, "pause": j["pause_us"] / 1e6, "peak": usage.ru_maxrss * 1024,
            "copied": j["memory"]["copied_bytes"], "left_out": j["memory"].get("left_out_bytes", 0),
            "ranges": j["memory"].get("left_out_ranges", 0), "live": j["memory"].get("live_read_bytes", 0),
            "objects": j["total_objects"], "warnings": j["warnings"]}


def bench(label, python, env, gib, kind, args):
    target = subprocess.Popen([python, os.path.join(HERE, "bigbuf_target.py"), str(gib), str(args.millions), kind],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready = target.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError("%s: the target did not start: %r" % (label, ready))
        pid, rss, data, objects, getsizeof = [int(x) for x in ready[1:]]
        runs = [run_heap(args.pyinspect, pid) for _ in range(args.runs)]
        old = run_heap(args.compare, pid) if args.compare else None
    finally:
        target.kill()
        target.wait()
    med = lambda k: statistics.median(r[k] for r in runs)
    object_bytes = getsizeof - data
    pause, peak = med("pause"), med("peak")
    limit = 2 * object_bytes + 100 * 1000 * 1000
    row = "| %s | %.0f GiB of %s | %.0f MiB | %.2fM / %.2fM | %.0f MiB | %.0f MiB | %.0f MiB (%d) | %.0f ms | %.0f MiB | %.0f MiB | %s | %s | %.1f s |" % (
        label, data / float(1 << 30), "numpy arrays" if kind == "numpy" else "bytearrays", rss / MiB,
        objects / 1e6, runs[0]["objects"] / 1e6, object_bytes / MiB, med("copied") / MiB, med("left_out") / MiB,
        runs[0]["ranges"], pause * 1e3, peak / MiB, limit / MiB, "yes" if pause < 0.150 else "NO",
        "yes" if peak < limit else "NO", med("wall"))
    if old:
        row += " %.0f MiB, %.0f ms, %.0f MiB |" % (old["copied"] / MiB, old["pause"] * 1e3, old["peak"] / MiB)
    print(row)
    for r in runs:
        for w in r["warnings"]:
            print("    warning: %s" % w)
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", action="append", help="interpreters to run (default: those discover.py finds)")
    ap.add_argument("--stripped", action="store_true", help="also the -stripped twins discover.py makes")
    ap.add_argument("--gib", type=float, default=1.0, help="GiB of bytearrays on each interpreter")
    ap.add_argument("--headline", default="3.11.7-pyenv", help="the interpreter (id or path part) for the big run")
    ap.add_argument("--headline-gib", type=float, default=8.0)
    ap.add_argument("--numpy", default="/usr/bin/python3.11", help="a CPython with numpy ('' for none)")
    ap.add_argument("--numpy-gib", type=float, default=8.0)
    ap.add_argument("--millions", type=float, default=1.0, help="small objects, in millions")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pyinspect", default=os.path.join(HERE, "..", "build", "pyinspect"))
    ap.add_argument("--compare", help="another pyinspect binary, run once on each target")
    args = ap.parse_args()
    args.pyinspect = os.path.abspath(args.pyinspect)
    if args.compare:
        args.compare = os.path.abspath(args.compare)
    pythons = [(p, p, dict(os.environ)) for p in args.python] if args.python else discovered(args.stripped)
    print("Data buffers next to about %.1f million objects; %d runs each, medians." % (args.millions, args.runs))
    print()
    head = ("| CPython | buffers | target RSS | objects (target / pyinspect) | object bytes | copied | left out (ranges) "
            "| pause | pyinspect peak memory | limit: 2x objects + 100 MB | pause < 150 ms | peak < limit | pyinspect heap |")
    sep = "|---" * 13 + "|"
    if args.compare:
        head += " before: copied, pause, peak |"
        sep += "---|"
    print(head)
    print(sep)
    for ident, path, env in pythons:
        gib = args.headline_gib if args.headline and args.headline in ident else args.gib
        bench(ident, path, env, gib, "bytearray", args)
    if args.numpy and has_numpy(args.numpy):
        bench(args.numpy + " + numpy", args.numpy, dict(os.environ), args.numpy_gib, "numpy", args)
    elif args.numpy:
        print("(no numpy run: %s has no numpy)" % args.numpy)


if __name__ == "__main__":
    main()
