#!/usr/bin/env python3
"""pyinspect stack against gdb's py-bt, and the pause pyinspect imposes on the target.

  bench/stack_bench.py [--python PATH] [--runs N] [--pyinspect build/pyinspect]

1. Speed: the same 5-thread target (10 frames per thread) is dumped RUNS times by
   `gdb -batch -p PID -ex 'thread apply all py-bt'` (with CPython's python-gdb.py) and by
   `pyinspect stack PID`, alternating; medians and their ratio are printed.
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


def find_python():
    root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, text=True).stdout.strip() or \
        os.path.expanduser("~/.pyenv")
    for path in sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3.*")), reverse=True):
        if path[-1].isdigit() and os.path.exists(path + "-gdb.py"):
            return path
    sys.exit("no CPython with python-gdb.py found; give --python")


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--pyinspect", default=os.path.join(HERE, "..", "build", "pyinspect"))
    args = ap.parse_args()
    python = args.python or find_python()
    gdb_script = python + "-gdb.py"
    version = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             stdout=subprocess.PIPE, text=True).stdout.strip()
    print("CPython %s (%s), %d runs each" % (version, python, args.runs))

    p = start(python, 5, 10)
    try:
        gdb_times, pi_times = [], []
        for _ in range(args.runs):
            dt, out = timed(["gdb", "-nx", "-batch", "-p", str(p.pid), "-ex", "source " + gdb_script,
                             "-ex", "thread apply all py-bt"])
            assert out.count("Traceback (most recent call first)") == 5, out[-2000:]
            gdb_times.append(dt)
            dt, out = timed([args.pyinspect, "stack", str(p.pid)])
            assert out.count("Thread ") == 5, out
            pi_times.append(dt)
    finally:
        p.kill()
        p.wait()
    g, pi = statistics.median(gdb_times), statistics.median(pi_times)
    print("stack, 5 threads x 10 frames: gdb py-bt median %.1f ms, pyinspect stack median %.2f ms: %.0fx faster"
          % (g * 1e3, pi * 1e3, g / pi))

    stalls_file = tempfile.mktemp(prefix="pyinspect-stalls-")
    env = dict(os.environ, STALLS_FILE=stalls_file)
    p = start(python, 10, 50, "--spin", env=env)
    try:
        pauses, windows = [], []
        for _ in range(args.runs * 10):
            t0 = time.perf_counter()
            _, out = timed([args.pyinspect, "stack", str(p.pid), "--json"])
            t1 = time.perf_counter()
            j = json.loads(out)
            assert len(j["threads"]) == 11 and all(len(t["frames"]) >= 50 for t in j["threads"] if
                                                   t["name"].startswith("worker")), "incomplete dump"
            pauses.append(j["pause_us"])
            windows.append((t0, t1))
            time.sleep(0.02)
        p.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        with open(stalls_file) as f:
            stalls = [tuple(map(float, line.split())) for line in f]
    finally:
        p.kill()
        p.wait()
        if os.path.exists(stalls_file):
            os.unlink(stalls_file)
    pauses.sort()
    print("pause, 10 threads x 50 frames (+1 spinning), %d dumps: pyinspect's measure median %.0f us, "
          "p90 %.0f us, max %.0f us" % (len(pauses), statistics.median(pauses), pauses[int(len(pauses) * 0.9)],
                                        pauses[-1]))
    # perf_counter is CLOCK_MONOTONIC in both processes, so the times compare directly.
    seen = []
    for t0, t1 in windows:
        gaps = [gap for (end, gap) in stalls if t0 <= end <= t1 + 0.005]
        seen.append(max(gaps) * 1e6 if gaps else 0.0)
    seen.sort()
    outside = [gap * 1e6 for (end, gap) in stalls if not any(t0 <= end <= t1 + 0.005 for t0, t1 in windows)]
    print("  the target's own view: longest stall of its spinning thread per dump: median %.0f us, p90 %.0f us, "
          "max %.0f us (stalls outside dumps: %d, longest %.0f us)" %
          (statistics.median(seen), seen[int(len(seen) * 0.9)], seen[-1], len(outside), max(outside or [0])))


if __name__ == "__main__":
    main()
