#!/usr/bin/env python3
"""pyinspect tasks against the target's own in-process answer, and the pause it imposes.

  bench/tasks_bench.py [--python PATH ...] [--tasks 1000,10000] [--runs N] [--pyinspect build/pyinspect]

For each interpreter (default: every pyenv CPython 3.7+) and each number of tasks, the target
(bench/tasks_target.py) starts that many pending tasks and measures, on its loop's thread, what
the same answer costs in-process: asyncio.all_tasks() and, per task, its coroutines through
cr_await, its name and _fut_waiter. `pyinspect tasks --json PID` is then run RUNS times, timed
from the outside (process start to exit); the medians of its wall time and of its pause
(pause_us: from the first PTRACE_SEIZE to the last detach) are printed beside the in-process
figure (which runs inside the target, holding its GIL, for its whole length).
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack_bench import timed  # noqa: E402


def pythons():
    root = os.path.expanduser("~/.pyenv")
    out = []
    for p in sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3.*"))):
        if p[-1].isdigit() and "-" not in os.path.basename(p):
            v = tuple(int(x) for x in os.path.basename(p)[6:].split("."))
            if v >= (3, 7):
                out.append(p)
    return sorted(out, key=lambda p: tuple(int(x) for x in os.path.basename(p)[6:].split(".")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", action="append")
    ap.add_argument("--tasks", default="1000,10000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pyinspect", default=os.path.join(HERE, "..", "build", "pyinspect"))
    args = ap.parse_args()
    print("| CPython | tasks | in-process (the target's own walk) | pyinspect tasks: wall | pause: median / max |")
    print("|---|---|---|---|---|")
    for py in args.python or pythons():
        version = subprocess.run([py, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                                 stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
        for n in [int(x) for x in args.tasks.split(",")]:
            p = subprocess.Popen([py, os.path.join(HERE, "tasks_target.py"), str(n)], stdout=subprocess.PIPE)
            try:
                line = p.stdout.readline().decode().split()
                assert line and line[0] == "ready", line
                inproc = float(line[2])
                walls, pauses = [], []
                for _ in range(args.runs):
                    dt, out = timed([args.pyinspect, "tasks", "--json", str(p.pid)])
                    j = json.loads(out)
                    assert len(j["tasks"]) == n, (len(j["tasks"]), n)
                    walls.append(dt * 1000)
                    pauses.append(j["pause_us"])
            finally:
                p.kill()
                p.wait()
            print("| %s | %d | %.1f ms | %.1f ms | %.2f / %.2f ms |" % (
                version, n, inproc / 1000, statistics.median(walls), statistics.median(pauses) / 1000,
                max(pauses) / 1000))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
