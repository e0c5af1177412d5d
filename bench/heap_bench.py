#!/usr/bin/env python3
"""pyinspect heap against the target's own in-process census of the same heap.

  bench/heap_bench.py [--python PATH ...] [--millions 5] [--runs 3]

For each CPython (default: the newest pyenv 2.7, 3.x of each frame model: 2.7, 3.9, 3.11, 3.13):
a target builds about --millions million objects (bench/heap_target.py), then, alternating,
  - the target takes its own census (gc.get_objects + closure over gc.get_referents +
    sys.getsizeof), timed inside the target;
  - `pyinspect heap PID --json` runs, timed from outside (whole command), with its pause
    (pause_us: first PTRACE_INTERRUPT to last detach) and its peak memory (max RSS, from
    wait4's rusage).
Reported: medians, the speed ratio, the pause, pyinspect's peak memory relative to the bytes
the target's objects take (its census total) and to its RSS.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from pythons import default_pythons, start_heap_target  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))




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
    print("| CPython | objects (target / pyinspect) | in-process census | pyinspect heap | ratio | pause | "
          "pyinspect peak memory | target: object bytes / RSS | peak / object bytes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for python in args.python or default_pythons():
        target, ready = start_heap_target(python, args.millions)
        try:
            inproc, mine, pauses, peaks = [], [], [], []
            counts = None
            for _ in range(args.runs):
                # pyinspect first: the in-process census allocates (and frees, but the process
                # keeps) a lot of memory, which pyinspect would then copy as well.
                t0 = time.perf_counter()
                p = subprocess.Popen([pyinspect, "heap", str(target.pid), "--json", "--top", "5", "--no-progress"],
                                     stdout=subprocess.PIPE)
                out = p.stdout.read()
                _, status, usage = os.wait4(p.pid, 0)
                mine.append(time.perf_counter() - t0)
                assert status == 0, status
                j = json.loads(out)
                pauses.append(j["pause_us"] / 1e6)
                peaks.append(usage.ru_maxrss * 1024)
                rss = j["memory"]["rss_bytes"]
                target.stdin.write("census\n")
                target.stdin.flush()
                _, dt, n, size = target.stdout.readline().split()
                inproc.append(float(dt))
                counts = (int(n), j["total_objects"], int(size), rss)
            a, b = statistics.median(inproc), statistics.median(mine)
            v = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                               stdout=subprocess.PIPE, text=True).stdout.strip()
            peak = statistics.median(peaks)
            print("| %s | %.2fM / %.2fM | %.2f s | %.2f s | %.1fx | %.0f ms | %.0f MiB | %.0f MiB / %.0f MiB | %.2f |" % (
                v, counts[0] / 1e6, counts[1] / 1e6, a, b, a / b, statistics.median(pauses) * 1e3, peak / 2**20,
                counts[2] / 2**20, counts[3] / 2**20, peak / counts[2]))
            sys.stdout.flush()
        finally:
            target.kill()
            target.wait()


if __name__ == "__main__":
    main()
