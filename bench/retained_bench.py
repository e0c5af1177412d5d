#!/usr/bin/env python3
"""pyinspect heap --retained against pyinspect heap on the same ~5 million object heap.

  bench/retained_bench.py [--python PATH ...] [--millions 5] [--runs 3]

For each CPython (default: the newest pyenv 2.7, 3.9, 3.11, 3.13), a target builds the heap of
bench/heap_target.py (Record objects with __slots__, Node objects with dicts, lists, strings,
numbers) and waits. Then, alternating, whole commands timed from the outside:
  - `pyinspect heap PID --json` (the census: the reference time);
  - `pyinspect heap PID --retained --json` (the goal: within 2x of it);
  - `pyinspect refs PID --address X --json` for the object --retained lists first (the retained
    size of one object: the same dominator tree).
Reported: medians, each one's ratio to the heap scan, the pause, peak memory (max RSS from wait4),
the size of the object graph, and where --retained spends its time (its -v log, last run).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from pythons import default_pythons  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))




def timed(cmd):
    """Runs cmd; returns (seconds, parsed JSON stdout, stderr)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("%s failed: exit %d: %s" % (" ".join(cmd), p.returncode, err.decode(errors="replace")))
    return dt, json.loads(out), err.decode(errors="replace")


def peak_rss(cmd):
    """Runs cmd again for its peak memory (max RSS from wait4's rusage)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit("%s failed: status %d" % (" ".join(cmd), status))
    return usage.ru_maxrss * 1024


def phases(log):
    """The -v log's milestones: the graph's building time, then ms since --retained's work began."""
    want = [("graph built", r"graph: \d+ objects, .* in ([\d.]+) ms"),
            ("objects sized", r"retained: objects sized in ([\d.]+) ms"),
            ("dominator tree (built meanwhile on a second thread)", r"retained: dominator tree of \d+ objects in ([\d.]+) ms"),
            ("sizes summed", r"retained: sizes summed in ([\d.]+) ms"),
            ("rows and chains", r"retained: .* leak suspects, in ([\d.]+) ms")]
    out = []
    for name, rx in want:
        m = re.search(rx, log)
        out.append("%s %s ms" % (name, m.group(1).split(".")[0] if m else "?"))
    return ", ".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", action="append")
    ap.add_argument("--millions", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pyinspect", default=os.path.join(HERE, "..", "build", "pyinspect"))
    args = ap.parse_args()
    pyinspect = os.path.abspath(args.pyinspect)
    print("Heap of about %.1f million objects; %d runs each, alternating; medians." % (args.millions, args.runs))
    print()
    print("| CPython | objects in the graph / references | heap | heap --retained | ratio | "
          "refs --address (retained size of one object) | ratio | pause (--retained) | peak memory: heap / --retained |")
    print("|---|---|---|---|---|---|---|---|---|")
    logs = []
    for python in args.python or default_pythons():
        target = subprocess.Popen([python, os.path.join(HERE, "heap_target.py"), str(args.millions)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            ready = target.stdout.readline().split()
            assert ready[0] == "ready", ready
            pid = str(target.pid)
            heap = [pyinspect, "heap", pid, "--json", "--top", "5", "--no-progress"]
            retained = [pyinspect, "-v", "heap", pid, "--retained", "--json", "--top", "10", "--no-progress"]
            times = {"heap": [], "retained": [], "refs": []}
            pauses, graph, log, first = [], None, "", None
            for _ in range(args.runs):
                dt, _, _ = timed(heap)
                times["heap"].append(dt)
                dt, j, log = timed(retained)
                times["retained"].append(dt)
                pauses.append(j["pause_us"] / 1e6)
                graph = (j["total_objects"], j["graph_references"])
                first = j["retained"][0]
                dt, r, _ = timed([pyinspect, "refs", pid, "--address", hex(first["address"]), "--max-depth", "0",
                                  "--json", "--no-progress"])
                start = [n for n in r["nodes"] if n["start"]][0]
                assert start["retained_size"] == first["retained_size"], (start, first)
                times["refs"].append(dt)
            peaks = (peak_rss(heap), peak_rss(retained))
            v = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                               stdout=subprocess.PIPE, text=True).stdout.strip()
            m = dict((q, statistics.median(times[q])) for q in times)
            h = m["heap"]
            print("| %s | %.2fM / %.2fM | %.2f s | %.2f s | %.2fx | %.2f s | %.2fx | %.0f ms | %.0f / %.0f MiB |" % (
                v, graph[0] / 1e6, graph[1] / 1e6, h, m["retained"], m["retained"] / h, m["refs"], m["refs"] / h,
                statistics.median(pauses) * 1e3, peaks[0] / 2**20, peaks[1] / 2**20))
            sys.stdout.flush()
            logs.append("%s: %s; the first row: %s, %s, retains %d bytes in %d objects" % (
                v, phases(log), first["chain"], first["kind"], first["retained_size"], first["retained_count"]))
        finally:
            target.kill()
            target.wait()
    print()
    for line in logs:
        print(line)


if __name__ == "__main__":
    main()
