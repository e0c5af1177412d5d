#!/usr/bin/env python3
"""pyinspect stack --native against gdb's `thread apply all bt`, and the pause it imposes.

  bench/native_bench.py [--python PATH ...] [--runs N] [--threads 10] [--depth 6]
                        [--pyinspect build/pyinspect]

The target (bench/native_target.py) runs THREADS threads, each DEPTH levels of Python calling C
calling Python (the C extension of the tests, tests/targets/_nativeext.c, built here against the
interpreter's headers), then blocked in C: about 50 frames per thread once merged. Each run of
`gdb -nx -batch -p PID -ex 'thread apply all bt'` alternates with one of
`pyinspect stack --native --no-cache --json PID` (a first run: the layout and the frames' names
read from the binaries and their DWARF) and one of `pyinspect stack --native --json PID` (later
runs: both from pyinspect's cache, by build-id); the medians of their wall times and the ratios
are printed, with pyinspect's pause (pause_us: from its first PTRACE_SEIZE to its last detach)
and the frames each side printed per thread.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from stack_bench import timed  # noqa: E402  (the same timing as the stack benchmark)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from native_tests import build_extension  # noqa: E402  (the tests' extension, built as they build it)


def bench(python, args):
    d = tempfile.mkdtemp(prefix="pyinspect-bench-")
    try:
        build_extension({"path": python}, d)
        p = subprocess.Popen([python, os.path.join(HERE, "native_target.py"), d, str(args.threads), str(args.depth)],
                             stdout=subprocess.PIPE)
        line = p.stdout.readline().decode()
        assert line.startswith("ready"), line
        try:
            gdb_t, cold_t, mine_t, pauses, gdb_frames, mine_frames = [], [], [], [], 0, 0
            for _ in range(args.runs):
                dt, out = timed(["gdb", "-nx", "-batch", "-p", str(p.pid), "-ex", "thread apply all bt"])
                gdb_t.append(dt)
                gdb_frames = sum(1 for l in out.splitlines() if l.startswith("#"))
                dt, out = timed([args.pyinspect, "stack", "--native", "--no-cache", "--json", str(p.pid)])
                cold_t.append(dt)
                pauses.append(json.loads(out)["pause_us"])
                dt, out = timed([args.pyinspect, "stack", "--native", "--json", str(p.pid)])
                mine_t.append(dt)
                j = json.loads(out)
                pauses.append(j["pause_us"])
                workers = [t for t in j["threads"] if t["name"].startswith("worker-")]
                mine_frames = sum(len(t["frames"]) for t in workers) / max(1, len(workers))
        finally:
            p.kill()
            p.wait()
        g, c, m = statistics.median(gdb_t), statistics.median(cold_t), statistics.median(mine_t)
        print("%-44s gdb bt %7.1f ms (%d frames) | pyinspect --native: first run %6.1f ms (%4.1fx), "
              "cached %5.1f ms (%5.1fx), %.0f merged frames/worker | pause median %.0f us, max %.0f us" % (
                  python, g * 1000, gdb_frames, c * 1000, g / c, m * 1000, g / m, mine_frames,
                  statistics.median(pauses), max(pauses)))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", action="append")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--pyinspect", default=os.path.join(ROOT, "build", "pyinspect"))
    args = ap.parse_args()
    pythons = args.python
    if not pythons:
        root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, text=True).stdout.strip()
        pythons = [os.path.join(root, "versions", v, "bin", "python" + v.rsplit(".", 1)[0])
                   for v in ("2.7.18", "3.9.18", "3.11.7", "3.13.0")]
        pythons = [p for p in pythons if os.path.exists(p)] + (["/usr/bin/python3.11"] if os.path.exists("/usr/bin/python3.11") else [])
    print("%d threads x %d levels of Python -> C -> Python; %d runs each, alternating" % (
        args.threads, args.depth, args.runs))
    for py in pythons:
        bench(py, args)


if __name__ == "__main__":
    main()
