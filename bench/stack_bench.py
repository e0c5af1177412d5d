#!/usr/bin/env python3
"""pyinspect stack against gdb's py-bt, and the pause pyinspect imposes on the target.

  bench/stack_bench.py [--python PATH ...] [--runs N] [--pyinspect build/pyinspect]

Without --python: every pyenv CPython that has CPython's python-gdb.py next to it.

1. Speed: the same 5-thread target (10 frames per thread) is dumped RUNS times by
   `gdb -batch -p PID -ex 'thread apply all py-bt'` (with CPython's python-gdb.py) and by
   `pyinspect stack PID`, alternating; medians and their ratio are printed, and the median of as
   many `pyinspect stack --no-cache PID` runs in between (the layout read from DWARF every time,
   as on the first run against a build, instead of from the layout cache).
2. Pause: a target with 10 threads of 50 frames is dumped RUNS*10 times; pyinspect reports the
   time from its first PTRACE_SEIZE to its last detach (pause_us in --json). The target also
   measures it from the inside: a spinning thread records every gap of more than 50 us in its
   own progress; the gaps that overlap a dump are the stalls the target saw.
"""
import argparse
import glob
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def find_pythons():
    try:
        root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        root = ""
    root = root or os.path.expanduser("~/.pyenv")
    found = []
    for path in glob.glob(os.path.join(root, "versions", "*", "bin", "python[23].*")):
        if path[-1].isdigit() and os.path.exists(path + "-gdb.py"):
            found.append(path)
    if not found:
        sys.exit("no CPython with python-gdb.py found; give --python")
    return sorted(found, key=lambda p: [int(x) for x in p.rsplit("python", 1)[1].split(".")])


def start(python, *args, env=None):
    p = subprocess.Popen([python, os.path.join(HERE, "stack_target.py")] + [str(a) for a in args],
                         stdout=subprocess.PIPE, env=env)
    line = p.stdout.readline().decode()
    assert line.startswith("ready"), line
    return p


def timed(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit("%s failed: %s" % (cmd[0], r.stderr.decode()[-500:]))
    return dt, r.stdout.decode()


def bench_one(python, runs, pyinspect):
    gdb_script = python + "-gdb.py"
    version = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             stdout=subprocess.PIPE, text=True).stdout.strip()
    p = start(python, 5, 10)
    try:
        gdb_times, pi_times, nocache_times = [], [], []
        for _ in range(runs):
            dt, out = timed(["gdb", "-nx", "-batch", "-p", str(p.pid), "-ex", "source " + gdb_script,
                             "-ex", "thread apply all py-bt"])
            assert out.count("Traceback (most recent call first)") == 5, out[-2000:]
            gdb_times.append(dt)
            dt, out = timed([pyinspect, "stack", str(p.pid)])
            assert out.count("Thread ") == 5, out
            pi_times.append(dt)
            dt, out = timed([pyinspect, "stack", "--no-cache", str(p.pid)])
            assert out.count("Thread ") == 5, out
            nocache_times.append(dt)
    finally:
        p.kill()
        p.wait()
    g, pi, nc = statistics.median(gdb_times), statistics.median(pi_times), statistics.median(nocache_times)

    # The target of the goal: 10 threads of 50 frames, all blocked.
    p = start(python, 10, 50)
    idle_pauses = []
    try:
        for _ in range(runs * 10):
            _, out = timed([pyinspect, "stack", str(p.pid), "--json"])
            j = json.loads(out)
            assert len(j["threads"]) == 10 and all(len(t["frames"]) >= 50 for t in j["threads"]), "incomplete dump"
            idle_pauses.append(j["pause_us"])
            time.sleep(0.01)
    finally:
        p.kill()
        p.wait()
    idle_pauses.sort()

    # The same with one more thread spinning in Python (holding the GIL), which also measures,
    # from inside the target, how long it is kept from running during each dump.
    stalls_file = tempfile.mktemp(prefix="pyinspect-stalls-")
    env = dict(os.environ, STALLS_FILE=stalls_file)
    p = start(python, 10, 50, "--spin", env=env)
    try:
        # Alternating dumps that pause the target and --nonblocking ones that do not: the stalls
        # of the latter are what running pyinspect next to the target costs it anyway.
        pauses, windows, nb_windows = [], [], []
        for i in range(runs * 20):
            nonblocking = i % 2 == 1
            t0 = time.perf_counter()
            _, out = timed([pyinspect, "stack", str(p.pid), "--json"] + (["--nonblocking"] if nonblocking else []))
            t1 = time.perf_counter()
            j = json.loads(out)
            assert len(j["threads"]) == 11 and all(len(t["frames"]) >= 50 for t in j["threads"] if
                                                   t["name"].startswith("worker")), "incomplete dump"
            if nonblocking:
                nb_windows.append((t0, t1))
            else:
                pauses.append(j["pause_us"])
                windows.append((t0, t1))
            time.sleep(0.02)
        p.send_signal(signal.SIGUSR1)
        deadline = time.time() + 10
        while not os.path.exists(stalls_file) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        with open(stalls_file) as f:
            stalls = [tuple(map(float, line.split())) for line in f]
    finally:
        p.kill()
        p.wait()
        if os.path.exists(stalls_file):
            os.unlink(stalls_file)
    pauses.sort()
    # perf_counter is CLOCK_MONOTONIC in both processes, so the times compare directly.
    def longest(wins):
        out = []
        for t0, t1 in wins:
            gaps = [gap for (end, gap) in stalls if t0 <= end <= t1 + 0.005]
            out.append(max(gaps) * 1e6 if gaps else 0.0)
        return sorted(out)
    seen, nb_seen = longest(windows), longest(nb_windows)
    return {
        "version": version, "gdb_ms": g * 1e3, "pyinspect_ms": pi * 1e3, "ratio": g / pi, "nocache_ms": nc * 1e3,
        "nocache_ratio": g / nc,
        "idle_median_us": statistics.median(idle_pauses), "idle_p90_us": idle_pauses[int(len(idle_pauses) * 0.9)],
        "idle_max_us": idle_pauses[-1],
        "pause_median_us": statistics.median(pauses), "pause_p90_us": pauses[int(len(pauses) * 0.9)],
        "pause_max_us": pauses[-1], "nb_median_us": statistics.median(nb_seen),
        "nb_p90_us": nb_seen[int(len(nb_seen) * 0.9)], "stall_median_us": statistics.median(seen),
        "stall_p90_us": seen[int(len(seen) * 0.9)], "stall_max_us": seen[-1], "dumps": len(pauses),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", action="append")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--pyinspect", default=os.path.join(HERE, "..", "build", "pyinspect"))
    args = ap.parse_args()
    pythons = args.python or find_pythons()
    pyinspect = os.path.abspath(args.pyinspect)
    print("Speed: 5 threads x 10 frames, median of %d runs each, gdb py-bt and pyinspect alternating." % args.runs)
    print("Pause: %d dumps of a target with 10 threads x 50 frames, all blocked ('idle'), then %d of the same "
          "plus a thread spinning in Python ('busy'). Pause = first PTRACE_INTERRUPT to last detach, as "
          "pyinspect measures it (pause_us); stall = the spinning thread's longest gap in its own progress "
          "during each dump, which also counts the CPU that pyinspect itself takes from the target: the last "
          "column, the same stall during --nonblocking dumps (no pause at all), shows that part." %
          (args.runs * 10, args.runs * 10))
    print()
    print("| CPython | gdb py-bt | pyinspect stack | ratio | --no-cache (DWARF read) | ratio | pause, idle: median / p90 / max "
          "| pause, busy: median / p90 / max | stall seen by the target: median / p90 / max "
          "| stall with --nonblocking: median / p90 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for python in pythons:
        r = bench_one(python, args.runs, pyinspect)
        print("| %s | %.0f ms | %.1f ms | %.0fx | %.1f ms | %.0fx | %.0f / %.0f / %.0f us | %.0f / %.0f / %.0f us "
              "| %.0f / %.0f / %.0f us | %.0f / %.0f us |" % (
                  r["version"], r["gdb_ms"], r["pyinspect_ms"], r["ratio"], r["nocache_ms"], r["nocache_ratio"],
                  r["idle_median_us"], r["idle_p90_us"],
                  r["idle_max_us"], r["pause_median_us"], r["pause_p90_us"], r["pause_max_us"],
                  r["stall_median_us"], r["stall_p90_us"], r["stall_max_us"], r["nb_median_us"], r["nb_p90_us"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
