"""The profiler's integration tests (pyinspect record, pyinspect top), registered into run_test.py.

Ground truth comes from the targets: targets/profiled.py measures, with each thread's own CPU
clock, how long its threads spend in each function, names its hot lines and its threads' native
ids; the programs started with `record --` print their exit code and workers' pids themselves."""
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from harness import TARGETS, TestFailure, check, run_pyinspect

HERE = os.path.dirname(os.path.abspath(__file__))
FUNCTIONS = ("alpha", "beta", "gamma")


def parse_folded(path):
    """[(frames outermost first, count)] from a folded file; every line must parse."""
    stacks = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = re.match(r"^(.+) (\d+)$", line)
            check(m is not None, "%s:%d: not a folded line: %r" % (path, n, line[:200]))
            stacks.append((m.group(1).split(";"), int(m.group(2))))
    return stacks


FRAME = re.compile(r"^(.*) \((.*?)(?::(\d+))?\)$")


def frame_parts(label):
    """'function (file:line)' -> (function, file, line or None); roots -> (label, None, None)."""
    m = FRAME.match(label)
    if not m or label.startswith("Thread ") or label.startswith("Process "):
        return label, None, None
    return m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None


def summary_of(err):
    """The figures of record's summary line on stderr."""
    m = re.search(r"wrote .*?: (\d+) samples in ([\d.]+) s \(([\d.]+) Hz asked, ([\d.]+) achieved\), (\d+) thread stacks"
                  r"(?:, (\d+) idle left out)?; (\d+) missed, (\d+) failed", err)
    check(m is not None, "no summary line on stderr: %r" % err[-500:])
    keys = ("taken", "duration", "rate", "achieved", "stacks", "idle", "missed", "failed")
    return dict((k, float(v) if v is not None else 0) for k, v in zip(keys, m.groups()))


class Profiled(object):
    """targets/profiled.py running on an interpreter; its report once stopped."""

    def __init__(self, interp, seconds=60, workers=3):
        self.dir = tempfile.mkdtemp(prefix="pyinspect-profile-")
        self.report_path = os.path.join(self.dir, "report.json")
        env = dict(os.environ)
        env.update(interp.get("env") or {})
        self.proc = subprocess.Popen([interp["path"], os.path.join(TARGETS, "profiled.py"), self.report_path,
                                      str(seconds), str(workers)], env=env)
        self.pid = self.proc.pid
        self.workers = workers
        # Its threads start at once; wait until each has been scheduled (its stat file exists)
        # and a little more, so that every sample sees them working.
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if len(os.listdir("/proc/%d/task" % self.pid)) >= workers + 3:
                    break
            except OSError:
                raise TestFailure("the target exited at start (exit %s)" % self.proc.poll())
            time.sleep(0.01)
        time.sleep(0.3)

    def path(self, name):
        return os.path.join(self.dir, name)

    def stop(self):
        """Ends the target and returns its report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        check(code == 0, "the target exited %d" % code)
        with open(self.report_path) as f:
            return json.load(f)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def program(name, text):
    """A throwaway program for `record -- CMD`: (its directory, its path)."""
    d = tempfile.mkdtemp(prefix="pyinspect-program-")
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return d, path


def function_shares(stacks, names):
    """Share of samples (in %) whose stack holds each function, among stacks holding any."""
    counts = dict((n, 0) for n in names)
    total = 0
    for frames, count in stacks:
        here = set(frame_parts(f)[0] for f in frames)
        hit = [n for n in names if n in here]
        if not hit:
            continue
        total += count
        for n in hit:
            counts[n] += count
    check(total > 0, "no sample holds any of %s" % (names,))
    return dict((n, 100.0 * c / total) for n, c in counts.items()), total


def register(test):
    @test("record-accuracy")
    def record_accuracy(ctx):
        """Each function's share of the profile within three standard deviations (at least 3
        points) of the target's own figure (its threads' CPU clocks); the line attributed is the
        hot line; idle threads absent without --idle, present with it (each thread once per
        sample); --gil shows only GIL holders."""
        with Profiled(ctx.interp) as t:
            plain = t.path("plain.folded")
            _, _, err = run_pyinspect(ctx.pyinspect, ["record", str(t.pid), "-d", "3", "-r", "200", "-o", plain])
            s_plain = summary_of(err)
            idle = t.path("idle.folded")
            _, _, err = run_pyinspect(ctx.pyinspect, ["record", str(t.pid), "-d", "1.5", "--idle", "--threads",
                                                      "-o", idle])
            s_idle = summary_of(err)
            gil = t.path("gil.folded")
            _, _, err = run_pyinspect(ctx.pyinspect, ["record", str(t.pid), "-d", "1.5", "--gil", "--idle", "-o", gil])
            s_gil = summary_of(err)
            report = t.stop()

        spent = report["spent"]
        whole = sum(spent[f] for f in FUNCTIONS)
        want = dict((f, 100.0 * spent[f] / whole) for f in FUNCTIONS)
        stacks = parse_folded(plain)
        got, n = function_shares(stacks, FUNCTIONS)
        print("shares (target / profile, %d samples): %s" % (n, ", ".join(
            "%s %.1f/%.1f" % (f, want[f], got[f]) for f in FUNCTIONS)))
        for f in FUNCTIONS:
            # Three standard deviations of a share estimated from n samples, at least 3 points: a
            # loaded machine deschedules the target, and a wall-clock sample then differs from the
            # CPU clocks the target measures by chance, not by bias.
            q = want[f] / 100.0
            tol = max(3.0, 300.0 * math.sqrt(q * (1 - q) / n))
            check(abs(got[f] - want[f]) <= tol, "%s: %.1f%% of the profile, the target measured %.1f%% "
                  "(%d samples, tolerance %.1f points)" % (f, got[f], want[f], n, tol))
        check(s_plain["failed"] <= 0.01 * s_plain["taken"], "failed samples: %s" % s_plain)
        # On a steady clock every instant is either taken or counted missed; a loaded machine may
        # miss some, not all.
        due = s_plain["duration"] * 200
        check(abs(s_plain["taken"] + s_plain["missed"] - due) <= 0.02 * due + 2,
              "taken %d + missed %d instants in %.2f s at 200 Hz" % (s_plain["taken"], s_plain["missed"],
                                                                       s_plain["duration"]))
        check(s_plain["achieved"] >= 150, "rate achieved %.1f Hz, asked 200" % s_plain["achieved"])

        # Lines: the frame of each function sits on its hot line in most samples (the others are
        # its first and last lines, a slice's set-up and accounting).
        for fn in FUNCTIONS:
            at = {}
            for frames, count in stacks:
                for label in frames:
                    name, file, line = frame_parts(label)
                    if name == fn:
                        check(file == report["file"], "%s in file %r, not %r" % (fn, file, report["file"]))
                        at[line] = at.get(line, 0) + count
            total = sum(at.values())
            hot = at.get(report["hot_lines"][fn], 0)
            check(total and hot >= 0.8 * total, "%s: %d of %d samples on its hot line %d: %s" % (
                fn, hot, total, report["hot_lines"][fn], at))
        # Without --idle: no idle thread; the sleeper and the waiter never run Python code.
        for frames, _ in stacks:
            names = set(frame_parts(f)[0] for f in frames)
            check("sleeper" not in names and "waiter" not in names, "an idle thread without --idle: %s" % frames)

        # --idle --threads: every thread at every sample, under its own root with its name and TID.
        istacks = parse_folded(idle)
        per_root = {}
        for frames, count in istacks:
            check(frames[0].startswith("Thread "), "no thread root: %s" % frames[:2])
            per_root[frames[0]] = per_root.get(frames[0], 0) + count
        for name, tid in report["threads"].items():
            label = 'Thread %d "%s"' % (tid, name)
            check(label in per_root, "%s missing from the roots %s" % (label, sorted(per_root)))
            check(per_root[label] >= 0.97 * s_idle["taken"], "%s in %d of %d samples" % (
                label, per_root[label], s_idle["taken"]))
        idle_names = set(frame_parts(f)[0] for frames, _ in istacks for f in frames)
        check("sleeper" in idle_names and "waiter" in idle_names, "--idle: no sleeper or waiter in %s" % idle_names)
        main_root = [r for r in per_root if r.startswith("Thread %d " % report["pid"])]
        check(main_root, "no root for the main thread %d" % report["pid"])

        # --gil --idle: one stack per sample at most, and never a thread that waits without it.
        gstacks = parse_folded(gil)
        total = sum(c for _, c in gstacks)
        check(total <= s_gil["taken"], "--gil: %d stacks in %d samples" % (total, s_gil["taken"]))
        check(total >= 0.1 * s_gil["taken"], "--gil: only %d stacks in %d samples" % (total, s_gil["taken"]))
        for frames, _ in gstacks:
            names = set(frame_parts(f)[0] for f in frames)
            check("sleeper" not in names and "waiter" not in names, "--gil: a thread without the GIL: %s" % frames)
        print("--idle: %d threads in %d samples; --gil: %d stacks in %d samples" % (
            len(per_root), s_idle["taken"], total, s_gil["taken"]))

    @test("record-formats")
    def record_formats(ctx):
        """folded parsed back sums to every thread at every sample; speedscope's JSON against its
        schema, with the same sum; pyinspect's JSON likewise; --function merges lines."""
        with Profiled(ctx.interp) as t:
            outs = {}
            for fmt, name, extra in (("folded", "p.folded", []), ("speedscope", "p.json", []),
                                     ("json", "own.json", ["--format", "json"]),
                                     ("folded", "fn.txt", ["--function"])):
                path = t.path(name)
                _, _, err = run_pyinspect(ctx.pyinspect, ["record", str(t.pid), "-d", "1", "--idle", "-o", path] + extra)
                outs[name] = (path, summary_of(err))
            report = t.stop()
        threads = len(report["threads"]) + 1  # and the main thread

        def expect_sum(what, got, s):
            # Every thread has a Python stack at every instant; a failed read drops one stack.
            want = threads * s["taken"]
            check(want - s["failed"] <= got <= want, "%s: %d stacks, expected %d threads x %d samples" % (
                what, got, threads, s["taken"]))

        path, s = outs["p.folded"]
        expect_sum("folded", sum(c for _, c in parse_folded(path)), s)

        path, s = outs["p.json"]
        with open(path) as f:
            doc = json.load(f)
        schema_check(doc)
        weights = sum(sum(p["weights"]) for p in doc["profiles"])
        expect_sum("speedscope", weights, s)
        frames = doc["shared"]["frames"]
        names = set(frames[i]["name"] for p in doc["profiles"] for sample in p["samples"] for i in sample)
        check(set(FUNCTIONS) <= names, "speedscope: functions %s not all in %s" % (FUNCTIONS, sorted(names)[:20]))

        path, s = outs["own.json"]
        with open(path) as f:
            own = json.load(f)
        expect_sum("json", sum(st["count"] for st in own["stacks"]), s)
        check(own["pid"] == report["pid"], "json: pid %s" % own["pid"])
        fnames = set(own["frames"][i]["function"] for st in own["stacks"] for i in st["frames"])
        check(set(FUNCTIONS) <= fnames, "json: functions %s not all in %s" % (FUNCTIONS, sorted(fnames)[:20]))

        path, s = outs["fn.txt"]
        stacks = parse_folded(path)
        expect_sum("--function", sum(c for _, c in stacks), s)
        # By function, one frame per function, named by its first line (def line + 0).
        with open(report["file"]) as f:
            defs = dict((m.group(1), n) for n, line in enumerate(f, 1) for m in [re.match(r"def (\w+)\(", line)] if m)
        for frames, _ in stacks:
            for label in frames:
                name, file, line = frame_parts(label)
                if file == report["file"] and name != "<module>":  # a module's code starts at line 1
                    check(line == defs.get(name), "--function: %s at line %s, its def is at %s" % (
                        label, line, defs.get(name)))

    @test("record-flamegraph")
    def record_flamegraph(ctx):
        """The SVG opened in a real browser (headless Chromium): it loads, a frame of alpha exists,
        clicking it zooms, search highlights and says the share that matched."""
        with Profiled(ctx.interp) as t:
            path = t.path("p.svg")
            run_pyinspect(ctx.pyinspect, ["record", str(t.pid), "-d", "1", "-o", path])
            t.stop()
        p = subprocess.run([sys.executable, os.path.join(HERE, "svg_check.py"), path, "--function", "alpha"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
        out = p.stdout.decode("utf-8", "replace")
        print(out.strip())
        check(p.returncode == 0, "the flame graph in Chromium: %s" % out.strip()[-1000:])

    @test("record-command")
    def record_command(ctx):
        """record -- CMD: the program's exit code passed through, and profiled to its end: its one
        second of work in short_work fills the profile."""
        d, script = program("short.py", "import sys, time\n"
                                "def short_work():\n"
                                "    end = time.time() + 1.0\n"
                                "    while time.time() < end: pass\n"
                                "short_work()\n"
                                "sys.stdout.write('done\\n')\n"
                                "sys.exit(7)\n")
        out_path = os.path.join(d, "p.folded")
        code, out, err = run_pyinspect(ctx.pyinspect, ["record", "-o", out_path, "--", ctx.interp["path"], script],
                                       check_exit=False)
        check(code == 7, "exit %d, the program's was 7: %s" % (code, err))
        check(out == "done\n", "the program's output: %r" % out)
        stacks = parse_folded(out_path)
        work = sum(c for frames, c in stacks if any(frame_parts(f)[0] == "short_work" for f in frames))
        s = summary_of(err)
        print("short_work in %d samples of %d (%.2f s)" % (work, s["taken"], s["duration"]))
        check(work >= 80, "short_work in %d samples: 1 s at 100 Hz should give about 100" % work)

    @test("record-realtime", (3, 3))
    def record_realtime(ctx):
        """--realtime=3: pyinspect samples under SCHED_FIFO at priority 3 (its policy and priority as
        the kernel shows them in /proc/PID/stat while it runs), and the program it starts does not
        inherit it (the program reports its own policy, os.sched_getscheduler)."""
        d, script = program("rt.py", "import os, sys, time\n"
                                "def rt_work():\n"
                                "    end = time.time() + 1.5\n"
                                "    while time.time() < end: pass\n"
                                "rt_work()\n"
                                "sys.stdout.write('%d\\n' % os.sched_getscheduler(0))\n")
        out_path = os.path.join(d, "p.folded")
        env = dict(os.environ)
        env.update(ctx.interp.get("env") or {})
        p = subprocess.Popen([ctx.pyinspect, "record", "--realtime=3", "-q", "-o", out_path, "--", ctx.interp["path"],
                              script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        seen = None
        deadline = time.time() + 20
        while time.time() < deadline and p.poll() is None:
            try:
                with open("/proc/%d/stat" % p.pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (IOError, OSError):
                break
            # After the command name: field 3 first; rt_priority is field 40, policy field 41.
            if int(fields[38]) != 0:
                seen = (int(fields[38]), int(fields[37]))
                break
            time.sleep(0.02)
        out, err = p.communicate(timeout=60)
        out, err = out.decode(), err.decode()
        check(p.returncode == 0, "record --realtime exited %d: %s" % (p.returncode, err))
        check(seen == (1, 3), "pyinspect's scheduling policy and priority while sampling: %s, expected SCHED_FIFO "
              "(1) at 3" % (seen,))
        check(out.strip() == "0", "the program's own policy: %r, expected SCHED_OTHER (0)" % out)
        work = sum(c for frames, c in parse_folded(out_path) if any(frame_parts(f)[0] == "rt_work" for f in frames))
        check(work >= 100, "rt_work in %d samples: 1.5 s at 100 Hz should give about 150" % work)

    @test("record-subprocesses", (3, 4))
    def record_subprocesses(ctx):
        """--subprocesses: a multiprocessing pool's workers appear, each under its own process root."""
        d, script = program("pool.py", "import multiprocessing, os, sys, time\n"
                                "def pool_work(n):\n"
                                "    end = time.time() + 0.1\n"
                                "    while time.time() < end: pass\n"
                                "    return os.getpid()\n"
                                "if __name__ == '__main__':\n"
                                "    p = multiprocessing.Pool(2)\n"
                                "    pids = sorted(set(p.map(pool_work, range(30), 1)))\n"
                                "    p.close(); p.join()\n"
                                "    sys.stdout.write(' '.join(map(str, pids)) + '\\n')\n")
        out_path = os.path.join(d, "p.folded")
        _, out, err = run_pyinspect(ctx.pyinspect, ["record", "--subprocesses", "-o", out_path, "--",
                                                    ctx.interp["path"], script], timeout=120)
        pids = [int(x) for x in out.split()]
        check(len(pids) == 2, "the pool's workers: %r" % out)
        work = {}
        for frames, count in parse_folded(out_path):
            m = re.match(r"Process (\d+): ", frames[0])
            check(m is not None, "no process root: %s" % frames[:1])
            if any(frame_parts(f)[0] == "pool_work" for f in frames):
                work[int(m.group(1))] = work.get(int(m.group(1)), 0) + count
        print("pool_work samples by worker: %s (workers %s)" % (work, pids))
        for pid in pids:
            check(work.get(pid, 0) >= 20, "worker %d: %d samples in pool_work" % (pid, work.get(pid, 0)))

    @test("top-once")
    def top_once(ctx):
        """top --once: a plain table of one interval, the functions' %Total near the target's shares."""
        with Profiled(ctx.interp) as t:
            _, out, _ = run_pyinspect(ctx.pyinspect, ["top", str(t.pid), "--once", "-i", "3", "-r", "200"])
            report = t.stop()
        spent = report["spent"]
        whole = sum(spent[f] for f in FUNCTIONS)
        rows = {}
        for line in out.splitlines():
            m = re.match(r"^\s*([\d.]+)%\s+([\d.]+)%\s+\S+\s+\S+\s+(\S+) \((.*):(\d+)\)$", line)
            if m:
                rows[m.group(3)] = (float(m.group(1)), float(m.group(2)))
        check(set(FUNCTIONS) <= set(rows), "top: rows %s" % sorted(rows))
        # %Total counts every running stack (the workers' loops, the main thread's wake-ups too):
        # each function's share of the three's, against the target's, within 6 points (accuracy
        # is judged by record-accuracy; this checks top's columns).
        three = sum(rows[f][1] for f in FUNCTIONS)
        for f in FUNCTIONS:
            want = 100.0 * spent[f] / whole
            got = 100.0 * rows[f][1] / three
            check(abs(got - want) <= 6, "top: %s %.1f%% of the three's %%Total, the target measured %.1f" % (f, got, want))
        check(re.search(r"^Samples \d+", out, re.M), "top: no header: %r" % out[:300])

    @test("top-live")
    def top_live(ctx):
        """top on a terminal: redrawn each interval, keys 2 and 3 change the sort column, q quits
        with exit 0 and the terminal's cursor shown again."""
        import pty
        import select as sel
        with Profiled(ctx.interp) as t:
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(ctx.pyinspect, [ctx.pyinspect, "top", str(t.pid), "-i", "0.3"])
            import fcntl
            import struct
            import termios
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
            screen = [b""]

            def read_for(seconds):
                end = time.time() + seconds
                while time.time() < end:
                    r, _, _ = sel.select([fd], [], [], max(0.0, end - time.time()))
                    if r:
                        try:
                            chunk = os.read(fd, 65536)
                        except OSError:
                            return
                        if not chunk:
                            return
                        screen[0] += chunk

            def last_frame():
                return screen[0].rsplit(b"\x1b[H\x1b[2J", 1)[-1].decode("utf-8", "replace")

            try:
                read_for(1.5)
                first = last_frame()
                check(re.search(r"\*%Own", first) and "alpha" in first, "top's first screens: %r" % first[:800])
                redraws = screen[0].count(b"\x1b[H\x1b[2J")
                check(redraws >= 3, "top redrew %d times in 1.5 s at -i 0.3" % redraws)
                os.write(fd, b"2")
                read_for(0.5)
                check(re.search(r"\*%Total", last_frame()), "key 2: %r" % last_frame()[:600])
                os.write(fd, b"3")
                read_for(0.5)
                check(re.search(r"\*OwnTime", last_frame()), "key 3: %r" % last_frame()[:600])
                os.write(fd, b"q")
                read_for(2)
                # The terminal closes as it exits; a sanitizer build takes a while more to end.
                done, status = 0, 0
                deadline = time.time() + 20
                while done != pid and time.time() < deadline:
                    done, status = os.waitpid(pid, os.WNOHANG)
                    time.sleep(0.05)
                check(done == pid, "top did not quit on q")
                check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "top exited with status %d" % status)
                check(screen[0].endswith(b"\x1b[?25h\n") or b"\x1b[?25h" in screen[0][-20:],
                      "the cursor was not shown again: %r" % screen[0][-40:])
            finally:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:
                    pass
                os.close(fd)
            t.stop()


def schema_check(doc):
    """speedscope's file format, against the schema in speedscope_schema.json (python3-jsonschema)."""
    import jsonschema
    with open(os.path.join(HERE, "speedscope_schema.json")) as f:
        schema = json.load(f)
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as e:
        raise TestFailure("speedscope JSON does not follow its schema: %s" % e.message)
