#!/usr/bin/env python3
"""pyinspect dump against gdb's gcore on the same 5-million-object target.

  bench/dump_bench.py [--python PATH ...] [--millions 5] [--runs 3] [--dir DIR]

For each CPython (default: the newest pyenv 3.11 and 2.7): a target builds about --millions
million objects (bench/heap_target.py) and waits; then, alternating, `pyinspect dump PID -o F`
and `gdb -nx -batch -p PID -ex "gcore F"`, each timed from outside (the whole command), with
dump's pause (from its own report) and gcore's (the target is stopped from gdb's attach to its
detach: the whole command, less gdb's start-up, which the benchmark times with `gdb -batch` on
no process and subtracts). Then the heap census of each core equals the live one's
(`pyinspect heap CORE --json`): the object count and bytes. Reported: medians, the file sizes
(apparent and allocated on disk), the speed ratio. And a floor no tool can beat: the time
this machine takes to write as many bytes as dump's core holds, from memory to a new file in
the same directory (64 MiB writes, no fsync, as neither tool syncs), and the ratio gcore would
have to that floor: the most any dump could gain on gcore here.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from pythons import default_pythons, start_heap_target  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))




def timed(cmd):
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return time.monotonic() - t0, r


def census(pyinspect, what):
    r = subprocess.run([pyinspect, "heap", what, "--json", "--no-progress"], stdout=subprocess.PIPE, text=True, check=True)
    j = json.loads(r.stdout)
    return j["total_objects"], j["total_size"]


def write_floor(d, nbytes, runs):
    """Median seconds to write `nbytes` from memory to a new file in `d`."""
    block = b"\x5a" * (64 << 20)
    path = os.path.join(d, "floor")
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        left = nbytes
        while left > 0:
            left -= os.write(fd, block[:min(left, len(block))])
        os.close(fd)
        times.append(time.monotonic() - t0)
        os.unlink(path)
    return statistics.median(times)


def mib(n):
    return "%.0f MiB" % (n / 1048576.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", action="append")
    ap.add_argument("--millions", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the cores are written (and removed)")
    ap.add_argument("--pyinspect", default=os.path.join(HERE, "..", "build", "pyinspect"))
    args = ap.parse_args()
    pyinspect = os.path.abspath(args.pyinspect)
    if not shutil.which("gdb"):
        sys.exit("gdb is needed (apt-get install gdb)")
    gdb_start = statistics.median(timed(["gdb", "-nx", "-batch", "-ex", "echo"])[0] for _ in range(3))
    print("Heap of about %.1f million objects; %d runs each, alternating; medians. gdb's own start-up: %.2f s." % (
        args.millions, args.runs, gdb_start))
    print()
    print("| CPython | target RSS | pyinspect dump | its pause | core: size / on disk | gdb gcore | its pause (about) | "
          "core: size / on disk | ratio | writing dump's bytes (floor) | gcore / floor | census of each core = live |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    d = tempfile.mkdtemp(prefix="pyinspect-dump-bench-", dir=args.dir)
    try:
        for python in args.python or default_pythons(("3.11", "2.7")):
            target, _ = start_heap_target(python, args.millions)
            try:
                pid = target.pid
                with open("/proc/%d/status" % pid) as f:
                    rss = [int(l.split()[1]) << 10 for l in f if l.startswith("VmRSS:")][0]
                mine, theirs, pauses = [], [], []
                sizes = {}
                for _ in range(args.runs):
                    for tool in ("dump", "gcore"):
                        path = os.path.join(d, tool + ".core")
                        if os.path.exists(path):
                            os.unlink(path)
                        if tool == "dump":
                            t, r = timed([pyinspect, "dump", str(pid), "-o", path])
                            assert r.returncode == 0, r.stderr
                            pauses.append(float(r.stderr.split("the target was paused ")[1].split(" ms")[0]))
                            mine.append(t)
                        else:
                            t, r = timed(["gdb", "-nx", "-batch", "-p", str(pid), "-ex", "gcore " + path])
                            assert os.path.exists(path), r.stderr
                            theirs.append(t)
                        st = os.stat(path)
                        sizes[tool] = (st.st_size, st.st_blocks * 512)
                live = census(pyinspect, str(pid))
                same = []
                for tool in ("dump", "gcore"):
                    got = census(pyinspect, os.path.join(d, tool + ".core"))
                    same.append("%s %s" % (tool, "yes" if got == live else "NO: %s vs %s" % (got, live)))
                v = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                                   stdout=subprocess.PIPE, text=True).stdout.strip()
                m, g = statistics.median(mine), statistics.median(theirs)
                floor = write_floor(d, sizes["dump"][1], args.runs)
                print("| %s | %s | %.2f s | %.0f ms | %s / %s | %.2f s | %.1f s | %s / %s | %.1fx | %.2f s | %.1fx | "
                      "%s (%d objects) |" % (
                          v, mib(rss), m, statistics.median(pauses), mib(sizes["dump"][0]), mib(sizes["dump"][1]), g,
                          max(0.0, g - gdb_start), mib(sizes["gcore"][0]), mib(sizes["gcore"][1]), g / m, floor,
                          g / floor, ", ".join(same), live[0]))
                sys.stdout.flush()
            finally:
                target.kill()
                target.wait()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
