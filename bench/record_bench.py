#!/usr/bin/env python3
"""pyinspect record (the profiler): the cost to the target, the rate it keeps, and austin.

  bench/record_bench.py --pyinspect PATH [--python PATH ...] [--austin-python PATH ...]
                        [--runs 5] [--duration 2] [--rate-duration 10] [--no-austin] [--nice -10]

A default run takes about 6.5 minutes (2 CPUs). With --nice N (root) the targets and profilers run
in a session of their own at nice N: the kernel's autogroups share the CPUs between sessions
first, so without it a busy machine leaves the target about 0.6 of a CPU and the profiler then
competes with it for that.

Targets: bench/record_target.py (worker threads in a pure-Python loop of nested calls, counting
their iterations; or blocked on a lock; optionally each at the bottom of a recursion).

1. Overhead. A 4-thread CPU-bound target (and a 1-thread one) reports its throughput (iterations
   a second, all threads together) over windows of --duration seconds. Unprofiled windows
   alternate with profiled ones (U P1 U P2 ... U P1 U ...), --runs of each configuration; each
   profiled window is compared with the mean of the unprofiled windows just before and after it,
   and the drop is the median of those. Configurations: `pyinspect record` at 100 and 1000 Hz,
   nonblocking (the default) and --blocking. pyinspect's own CPU is reported from its summary
   line (us a sample) and from its rusage (% of one CPU over the recording).
2. Rate. Targets of 10 threads each 50 frames deep, running (the CPU loop) or idle (blocked),
   recorded at 1000 Hz for --rate-duration seconds (also with --realtime, as root): the rate achieved, instants missed, thread
   stacks an instant, stacks that failed, pyinspect's CPU an instant and a thread stack.
3. austin (1.0.1, Debian's package), on --austin-python (default: the newest pyenv 3.9; austin
   1.0.1 reads CPython 2.7-3.10 only): the overhead of (1) and the rate of (2), pyinspect and
   `austin -i US -p PID -o FILE` side by side on the same targets, alternating. austin samples
   every thread at each instant (its -s did not leave any out here), as pyinspect does with
   --idle; both are shown. austin's instants are the lines of its busiest thread, its sampling
   time their metric (the wall time of each sample, in us); its errors, the "Error rate" it
   prints at the end; its CPU, from its rusage.
Tables are printed in Markdown, for docs/performance.md.
"""
import argparse
import glob
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "record_target.py")
MARGIN = 0.3  # seconds a profiler runs past the end of a measured window


def pyenv_python(prefix):
    try:
        root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        root = ""
    root = root or os.path.expanduser("~/.pyenv")
    found = glob.glob(os.path.join(root, "versions", prefix + ".*", "bin", "python"))
    found.sort(key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("/versions/")[1].split("/")[0])])
    return found[-1] if found else None


def version_of(python):
    return subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                          stdout=subprocess.PIPE, text=True).stdout.strip()


TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy():
    """CPU seconds all CPUs have been busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICKS  # all but idle and iowait


def process_cpu(pid):
    """CPU seconds a process (all its threads) has used."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Target:
    def __init__(self, python, threads, depth=0, idle=False):
        args = [python, TARGET, str(threads), str(depth)] + (["--idle"] if idle else [])
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().split()
        if not line or line[0] != "ready":
            self.close()
            sys.exit("target did not start: %s" % " ".join(args))
        self.pid = self.p.pid
        self.threads = threads

    def measure(self, seconds):
        """The target's throughput over a window; also the CPUs it and the whole machine used meanwhile."""
        m0, t0, c0 = machine_busy(), process_cpu(self.pid), time.perf_counter()
        self.p.stdin.write("measure %s\n" % seconds)
        self.p.stdin.flush()
        words = self.p.stdout.readline().split()
        m1, t1, c1 = machine_busy(), process_cpu(self.pid), time.perf_counter()
        assert words and words[0] == "rate", words
        self.target_cpus = (t1 - t0) / (c1 - c0)
        self.machine_cpus = (m1 - m0) / (c1 - c0)
        return float(words[1])

    def close(self):
        self.p.kill()
        self.p.wait()


def cpu_of(usage):
    return usage.ru_utime + usage.ru_stime


SUMMARY = re.compile(r"wrote .*?: (\d+) samples in ([\d.]+) s \((\d+) Hz asked, ([\d.]+) achieved\), (\d+) thread stacks"
                     r"(?:, (\d+) idle left out)?; (\d+) missed, (\d+) failed.*?; pyinspect's CPU (\d+) us a sample"
                     r"(?:, target paused (\d+) us a sample)?")


class Pyinspect:
    """`pyinspect record PID -r HZ [flags]`, for a window of `seconds` (plus MARGIN)."""

    def __init__(self, binary, hz, flags=()):
        self.binary, self.hz, self.flags = binary, hz, list(flags)
        mode = "--blocking" if "--blocking" in self.flags else "nonblocking"
        extra = [f for f in self.flags if f != "--blocking"]
        self.name = "pyinspect %s%s" % (mode, "".join(" " + f for f in extra))

    def start(self, pid, seconds):
        self.out = tempfile.mktemp(prefix="record-bench-", suffix=".folded")
        cmd = [self.binary, "record", str(pid), "-r", str(self.hz), "-d", "%.2f" % (seconds + MARGIN), "-o", self.out,
               "-f", "folded"] + self.flags
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.err = []
        while True:  # sampling starts right after this line
            line = self.p.stderr.readline()
            if not line:
                self.p.wait()
                sys.exit("pyinspect failed: %s\n%s" % (" ".join(cmd), "".join(self.err)))
            self.err.append(line)
            if line.startswith("pyinspect: sampling"):
                return

    def stop(self):
        self.err += self.p.stderr.readlines()
        _, status, usage = os.wait4(self.p.pid, 0)
        wall = time.perf_counter() - self.t0
        if os.path.exists(self.out):
            os.unlink(self.out)
        text = "".join(self.err)
        m = SUMMARY.search(text)
        if status != 0 or not m:
            sys.exit("pyinspect record failed (status %d):\n%s" % (status, text))
        taken, dur, _, achieved, stacks, idle, missed, failed, cpu_us, paused = m.groups()
        taken, stacks, missed, failed = int(taken), int(stacks), int(missed), int(failed)
        return {
            "instants": taken, "duration": float(dur), "achieved": float(achieved), "stacks": stacks,
            "missed_pct": 100.0 * missed / max(1, taken + missed),
            "failed_pct": 100.0 * failed / max(1, stacks + int(idle or 0) + failed),
            "cpu_us": float(cpu_us), "cpu_pct": 100.0 * cpu_of(usage) / wall,
            "cpu_us_stack": float(cpu_us) * taken / max(1, stacks),
            "paused_us": float(paused) if paused else None,
        }


class Austin:
    """`austin -i US -p PID -o FILE`, stopped with SIGINT at the end of the window."""

    def __init__(self, hz):
        self.hz = hz
        self.name = "austin -i %d" % int(1e6 / hz)

    def start(self, pid, seconds):
        self.out = tempfile.mktemp(prefix="record-bench-austin-", suffix=".txt")
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen(["austin", "-i", str(int(1e6 / self.hz)), "-p", str(pid), "-o", self.out],
                                  stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        # It has started once its output has something (its stdio buffer, a few samples).
        deadline = time.perf_counter() + 3
        while time.perf_counter() < deadline and not (os.path.exists(self.out) and os.path.getsize(self.out) > 0):
            if self.p.poll() is not None:
                break
            time.sleep(0.005)
        self.seconds = seconds

    def stop(self, wait_s=MARGIN):
        time.sleep(wait_s)
        self.p.send_signal(signal.SIGINT)
        err = self.p.stderr.read()
        _, status, usage = os.wait4(self.p.pid, 0)
        wall = time.perf_counter() - self.t0
        per_thread, metric = {}, {}
        with open(self.out, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line.startswith("Thread "):
                    continue
                thread = line.split(";", 1)[0] if ";" in line else line.rsplit(" ", 1)[0]
                per_thread[thread] = per_thread.get(thread, 0) + 1
                try:
                    metric[thread] = metric.get(thread, 0) + int(line.rsplit(" ", 1)[1])
                except ValueError:
                    pass
        os.unlink(self.out)
        if not per_thread:
            return None  # austin could not read this CPython
        busiest = max(per_thread, key=per_thread.get)
        instants = per_thread[busiest]
        duration = metric.get(busiest, 0) / 1e6 or wall
        stacks = sum(per_thread.values())
        m = re.search(r"Error rate : (\d+)/(\d+)", err)
        errors = 100.0 * int(m.group(1)) / max(1, int(m.group(2))) if m else float("nan")
        achieved = instants / duration
        cpu = cpu_of(usage)
        return {
            "instants": instants, "duration": duration, "achieved": achieved, "stacks": stacks,
            "missed_pct": max(0.0, 100.0 * (1 - achieved / self.hz)), "failed_pct": errors,
            "cpu_us": cpu * 1e6 / instants, "cpu_pct": 100.0 * cpu / wall, "cpu_us_stack": cpu * 1e6 / stacks,
            "paused_us": None,
        }


def profiled_window(target, profiler, seconds):
    profiler.start(target.pid, seconds)
    try:
        rate = target.measure(seconds)
    finally:
        stats = profiler.stop()
    return rate, stats


def overhead(target, configs, runs, seconds):
    """Alternating windows; per configuration: unprofiled and profiled medians, paired drops."""
    target.measure(min(seconds, 1.0))  # warm up
    base = [target.measure(seconds)]
    base_cpu = [target.target_cpus]
    others = [target.machine_cpus - target.target_cpus]  # CPUs the rest of the machine used
    results = {i: [] for i in range(len(configs))}
    for _ in range(runs):
        for i, prof in enumerate(configs):
            rate, stats = profiled_window(target, prof, seconds)
            cpus = target.target_cpus
            if stats is not None:
                others.append(target.machine_cpus - cpus - stats["cpu_pct"] / 100)
            base.append(target.measure(seconds))
            base_cpu.append(target.target_cpus)
            others.append(target.machine_cpus - target.target_cpus)
            results[i].append((rate, (base[-2] + base[-1]) / 2, stats, cpus))
    noise = {
        "pct": statistics.median(abs(b - a) / ((a + b) / 2) * 100 for a, b in zip(base, base[1:])),
        "target_cpus": statistics.median(base_cpu), "others": statistics.median(others), "others_max": max(others),
    }
    return results, base, noise


def fmt_rate(r):
    return "%.2fM/s" % (r / 1e6)


def median_of(stats, key):
    vals = [s[key] for s in stats if s is not None and s.get(key) is not None]
    return statistics.median(vals) if vals else None


def goal_for(hz):
    return 1.0 if hz <= 100 else 5.0


def print_overhead_rows(version, threads, configs, results, noise):
    for i, prof in enumerate(configs):
        rows = results[i]
        if any(r[2] is None for r in rows):
            print("| %s | %d | %s | %d Hz | (no samples: this CPython is not supported) | | | | | | | | | |" % (
                version, threads, prof.name, prof.hz))
            continue
        drops = sorted((1 - rate / ref) * 100 for rate, ref, _, _ in rows)
        drop = statistics.median(drops)
        stats = [r[2] for r in rows]
        goal = goal_for(prof.hz)
        paused = median_of(stats, "paused_us")
        print("| %s | %d | %s | %d Hz | %s | %s | **%.1f%%** (%.1f / %.1f) | < %.0f%% | %s | %.0f Hz | %.0f us | %.1f%% | %s "
              "| %.2f / %.2f |" % (
                  version, threads, prof.name, prof.hz, fmt_rate(statistics.median(r[1] for r in rows)),
                  fmt_rate(statistics.median(r[0] for r in rows)), drop, drops[0], drops[-1], goal,
                  "yes" if drop < goal else "**no**", median_of(stats, "achieved"), median_of(stats, "cpu_us"),
                  median_of(stats, "cpu_pct"), "%.0f us" % paused if paused is not None else "-",
                  noise["target_cpus"], statistics.median(r[3] for r in rows)))
        sys.stdout.flush()


OVERHEAD_HEADER = ("| CPython | target threads | profiler | rate | throughput unprofiled | profiled | drop: median (min / max) "
                   "| goal | met | rate achieved | profiler's CPU a sample | profiler's CPU, % of one CPU | target paused a sample "
                   "| target's CPUs: unprofiled / profiled |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
RATE_HEADER = ("| CPython | target (10 threads x 50 frames) | profiler | rate achieved (1000 Hz asked) | instants missed "
               "| thread stacks an instant | stacks failed | CPU an instant | CPU a thread stack | CPU, % of one CPU "
               "| target paused an instant |\n|---|---|---|---|---|---|---|---|---|---|---|")


def print_rate_row(version, state, prof, s):
    if s is None:
        print("| %s | %s | %s | (no samples: this CPython is not supported) | | | | | | | |" % (version, state, prof.name))
        return
    print("| %s | %s | %s | %.0f Hz | %.1f%% | %.1f | %.2f%% | %.0f us | %.1f us | %.0f%% | %s |" % (
        version, state, prof.name, s["achieved"], s["missed_pct"], s["stacks"] / max(1, s["instants"]), s["failed_pct"],
        s["cpu_us"], s["cpu_us_stack"], s["cpu_pct"], "%.0f us" % s["paused_us"] if s["paused_us"] is not None else "-"))
    sys.stdout.flush()


RATE_OTHERS = []  # CPUs the rest of the machine used during each rate recording


def rate_runs(python, version, profilers, seconds):
    for state, idle in (("running", False), ("idle (blocked)", True)):
        target = Target(python, 10, 50, idle)
        try:
            for prof in profilers:
                if idle and isinstance(prof, Pyinspect) and "--idle" not in prof.flags:
                    continue  # every thread would be left out
                m0, c0, w0 = machine_busy(), process_cpu(target.pid), time.perf_counter()
                prof.start(target.pid, seconds)
                if isinstance(prof, Austin):
                    s = prof.stop(wait_s=seconds)
                else:
                    s = prof.stop()
                m1, c1, w1 = machine_busy(), process_cpu(target.pid), time.perf_counter()
                if s is not None:
                    RATE_OTHERS.append((m1 - m0 - (c1 - c0)) / (w1 - w0) - s["cpu_pct"] / 100)
                print_rate_row(version, state, prof, s)
        finally:
            target.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pyinspect", default=os.path.join(HERE, "..", "build", "pyinspect"))
    ap.add_argument("--python", action="append", help="CPython for pyinspect alone (default: pyenv's newest 3.11)")
    ap.add_argument("--austin-python", action="append", help="CPython for the comparison with austin "
                    "(default: pyenv's newest 3.9)")
    ap.add_argument("--runs", type=int, default=5, help="profiled windows of each configuration (default 5)")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds of each measured window (default 2)")
    ap.add_argument("--rate-duration", type=float, default=10.0, help="seconds of each rate recording (default 10)")
    ap.add_argument("--no-austin", action="store_true")
    ap.add_argument("--rate-only", action="store_true", help="only the rate section (2 and 3's rate), not the overhead")
    ap.add_argument("--nice", type=int, default=0, help="run the targets and the profilers at this nice value, in a session "
                    "(scheduling group) of their own at that nice value too (e.g. -10, as root: other work on the "
                    "machine then takes less from them)")
    args = ap.parse_args()
    if args.nice:
        if os.getsid(0) != os.getpid():
            # A session of its own: with the kernel's autogroups (sched_autogroup_enabled) the CPUs are
            # shared between sessions first, and nice only counts within one; the session's group gets it.
            os.execvp("setsid", ["setsid", "-w", sys.executable] + sys.argv)
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(args.nice))
        except OSError:
            pass
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every process started from here
    pyinspect = os.path.abspath(args.pyinspect)
    pythons = args.python or [p for p in [pyenv_python("3.11")] if p]
    austin_pythons = [] if args.no_austin else (args.austin_python or [p for p in [pyenv_python("3.9")] if p])
    if austin_pythons and subprocess.run(["sh", "-c", "command -v austin"], stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit("austin not found (Debian: apt-get install austin; or --no-austin)")
    if austin_pythons:
        av = subprocess.run(["austin", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    W, R = args.duration, args.runs

    noises = []
    if not args.rate_only:
        noises = run_overhead(args, pythons, austin_pythons, pyinspect)
    print()
    print("## Rate: 10 threads x 50 frames, 1000 Hz asked, %.0f s each" % args.rate_duration)
    print()
    print(RATE_HEADER)
    for python in pythons:
        rate_runs(python, version_of(python), [Pyinspect(pyinspect, 1000), Pyinspect(pyinspect, 1000, ("--idle",)),
                                               Pyinspect(pyinspect, 1000, ("--realtime",)),
                                               Pyinspect(pyinspect, 1000, ("--idle", "--realtime")),
                                               Pyinspect(pyinspect, 1000, ("--blocking", "--idle"))], args.rate_duration)
    for python in austin_pythons:
        rate_runs(python, version_of(python), [Pyinspect(pyinspect, 1000), Pyinspect(pyinspect, 1000, ("--idle",)),
                                               Pyinspect(pyinspect, 1000, ("--blocking", "--idle")), Austin(1000)],
                  args.rate_duration)
    if RATE_OTHERS:
        print()
        print("Load: CPUs used by the rest of the machine during the rate recordings, median (max): %.2f (%.2f)."
              % (statistics.median(RATE_OTHERS), max(RATE_OTHERS)))
    print()
    print("pyinspect: %s; %s; %d CPUs" % (
        subprocess.run([pyinspect, "--version"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0],
        av if austin_pythons else "austin not run", os.cpu_count()))


def run_overhead(args, pythons, austin_pythons, pyinspect):
    W, R = args.duration, args.runs
    print("## Overhead: target throughput, unprofiled and profiled windows of %.1f s alternating, %d profiled windows "
          "each; drop = median over the profiled windows of 1 - profiled / (mean of the unprofiled windows either side)%s"
          % (W, R, "; targets and profilers at nice %d" % args.nice if args.nice else ""))
    print()
    print(OVERHEAD_HEADER)
    noises = []
    for python in pythons:
        version = version_of(python)
        for threads, hzs in ((4, (100, 1000)), (1, (1000,))):
            configs = [Pyinspect(pyinspect, hz, flags) for hz in hzs for flags in ((), ("--blocking",))]
            target = Target(python, threads)
            try:
                results, base, noise = overhead(target, configs, R, W)
            finally:
                target.close()
            noises.append((version, "%d thread%s" % (threads, "s" if threads > 1 else ""), noise))
            print_overhead_rows(version, threads, configs, results, noise)
    austin_rows = []
    for python in austin_pythons:
        version = version_of(python)
        configs = [Pyinspect(pyinspect, 100), Austin(100), Pyinspect(pyinspect, 1000),
                   Pyinspect(pyinspect, 1000, ("--idle",)), Austin(1000)]
        target = Target(python, 4)
        try:
            results, base, noise = overhead(target, configs, R, W)
        finally:
            target.close()
        noises.append((version, "4 threads, with austin", noise))
        print_overhead_rows(version, 4, configs, results, noise)
    print()
    print("Noise and load: consecutive unprofiled windows differ by (median) " + "; ".join(
        "%s, %s: %.1f%%" % (v, t, n["pct"]) for v, t, n in noises) + ". CPUs used by the rest of the machine "
        "during the windows, median (max): " + "; ".join("%.2f (%.2f)" % (n["others"], n["others_max"])
                                                          for _, _, n in noises) + ".")
    return noises


if __name__ == "__main__":
    main()
