#!/usr/bin/env python3
"""pyinspect refs against pyinspect heap on the same ~5 million object heap.

  bench/refs_bench.py [--python PATH ...] [--millions 5] [--runs 3]

For each CPython (default: the newest pyenv 2.7, 3.9, 3.11, 3.13), a target builds the heap of
bench/heap_target.py (Record objects with __slots__, Node objects with dicts, lists, strings,
numbers) and waits. Then, alternating, whole commands timed from the outside:
  - `pyinspect heap PID --json` (the census: the reference time);
  - `pyinspect refs PID --type Node --backrefs --json` (the question of the goal: within 2x);
  - `pyinspect refs PID --type Record --chain --json` and `... --type Node --cycles --json`.
Reported: medians, the ratio of each refs question to the heap scan, the pause, peak memory
(max RSS from wait4), and the size of the object graph.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from pythons import default_pythons  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))




def timed(cmd):
    """Runs cmd; returns (seconds, parsed JSON stdout, peak RSS bytes)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if status != 0:
        raise SystemExit("%s failed: status %d" % (" ".join(cmd), status))
    return dt, json.loads(out), usage.ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", action="append")
    ap.add_argument("--millions", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pyinspect", default=os.path.join(HERE, "..", "build", "pyinspect"))
    args = ap.parse_args()
    pyinspect = os.path.abspath(args.pyinspect)
    questions = [
        ("heap", ["heap", "--json", "--top", "5", "--no-progress"]),
        ("refs --backrefs", ["refs", "--type", "Node", "--backrefs", "--json", "--no-progress"]),
        ("refs --chain", ["refs", "--type", "Record", "--chain", "--json", "--no-progress"]),
        ("refs --cycles", ["refs", "--type", "Node", "--cycles", "--json", "--no-progress"]),
    ]
    print("Heap of about %.1f million objects; %d runs each, alternating; medians." % (args.millions, args.runs))
    print()
    print("| CPython | objects in the graph / references | heap | refs --type Node --backrefs | ratio | "
          "refs --chain | ratio | refs --cycles | ratio | pause (refs) | peak memory: heap / refs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for python in args.python or default_pythons():
        target = subprocess.Popen([python, os.path.join(HERE, "heap_target.py"), str(args.millions)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            ready = target.stdout.readline().split()
            assert ready[0] == "ready", ready
            times = dict((q, []) for q, _ in questions)
            peaks = dict((q, []) for q, _ in questions)
            pauses = []
            graph = None
            for _ in range(args.runs):
                for name, a in questions:
                    dt, j, peak = timed([pyinspect, a[0], str(target.pid)] + a[1:])
                    times[name].append(dt)
                    peaks[name].append(peak)
                    if name == "refs --backrefs":
                        pauses.append(j["pause_us"] / 1e6)
                        graph = (j["graph_objects"], j["graph_references"])
                        assert j["matched"] > 0, j["matched"]
            v = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                               stdout=subprocess.PIPE, text=True).stdout.strip()
            m = dict((q, statistics.median(times[q])) for q in times)
            pk = dict((q, statistics.median(peaks[q])) for q in peaks)
            h = m["heap"]
            print("| %s | %.2fM / %.2fM | %.2f s | %.2f s | %.2fx | %.2f s | %.2fx | %.2f s | %.2fx | %.0f ms | %.0f / %.0f MiB |" % (
                v, graph[0] / 1e6, graph[1] / 1e6, h, m["refs --backrefs"], m["refs --backrefs"] / h,
                m["refs --chain"], m["refs --chain"] / h, m["refs --cycles"], m["refs --cycles"] / h,
                statistics.median(pauses) * 1e3, pk["heap"] / 2**20,
                max(pk[q] for q in pk if q != "heap") / 2**20))
            sys.stdout.flush()
        finally:
            target.kill()
            target.wait()


if __name__ == "__main__":
    main()
