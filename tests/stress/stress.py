#!/usr/bin/env python3
"""Repetition and racing, with fixed budgets (the issue's numbers by default).

  stress.py --interpreters F --pyinspect P --python ID --mode repeat [--stacks 1000] [--heaps 50]
  stress.py --interpreters F --pyinspect P --python ID --mode racing [--runs 500]
  stress.py --interpreters F --pyinspect P --python ID --mode sampling [--seconds 5]
  stress.py --interpreters F --list      # "mode id" pairs: one 2.7, one <=3.10, one >=3.11,
                                         # and the -stripped twin of each (embedded tables)

On a -stripped twin (the same interpreter with a libpython stripped of every symbol, so pyinspect
reads it with its embedded layout tables) the default budgets are a fifth: 200 dumps, 10 scans,
100 racing runs; the printed line gives the counts run. On a build with the sanitizers
(--sanitized), which runs each command 10-20 times slower, repeat runs a fifth of its budgets too
(a fifth of a fifth on a twin); racing keeps its own, as reading memory that changes underneath is
what the sanitizers are there to watch.

repeat: back-to-back `stack --json` dumps, then `heap --json` scans, of a busy multi-threaded
target (busy_target.py). Every run must succeed and show every worker in its `chain` frames;
the target's progress must advance throughout; no signal may reach it; and the digests its
workers computed must equal the ones this script computes for the same number of steps.

sampling: `record` at 1000 Hz, nonblocking and --blocking, against the churning target (see
sampling() below).

racing: `--nonblocking` stack, heap and refs runs against a target that rebuilds its objects
and threads as fast as it can (churn_target.py). No run may crash, hang (30 s) or fail with an
undocumented code; every answer must say it was not paused; the target must stay healthy.
"""
import argparse
import hashlib
import json
import os
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from harness import TestFailure, check  # noqa: E402


TWIN_SHARE = 5  # a stripped twin runs 1/TWIN_SHARE of the default budgets
SANITIZED_SHARE = 5  # and repeat on a sanitizer build 1/SANITIZED_SHARE of those


def spread(interps):
    """One 2.7, the newest <=3.10 and the newest >=3.11, each followed by its -stripped twin."""
    twins = dict((e["id"], e) for e in interps if e.get("stripped_libpython"))
    picks = []
    for lo, hi in [((2, 0), (3, 0)), ((3, 0), (3, 11)), ((3, 11), (99, 0))]:
        fam = [e for e in interps if not e.get("probe_failed")
               and lo <= tuple(int(x) for x in e["version"].split(".")[:2]) < hi
               and not e.get("stripped_libpython") and not e["id"].endswith("d-system")]
        if fam:
            picks.append(fam[-1])
            if fam[-1]["id"] + "-stripped" in twins:
                picks.append(twins[fam[-1]["id"] + "-stripped"])
    return picks


class Target(object):
    def __init__(self, interp, script, args=()):
        env = dict(os.environ, **(interp.get("env") or {}))
        self.p = subprocess.Popen([interp["path"], os.path.join(HERE, script)] + list(args), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=env)
        self.pid = self.p.pid
        self.buf = b""
        check(self.line(60) == "ready", "target did not start")

    def line(self, timeout):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise TestFailure("the target said nothing for %ds" % timeout)
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise TestFailure("the target exited (%s)" % self.p.poll())
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def latest(self, prefix, timeout=5):
        """The newest line starting with prefix, waiting for a fresh one."""
        self.buf = b""
        while True:
            l = self.line(timeout)
            if l.startswith(prefix) and b"\n" not in self.buf:
                return l

    def state(self):
        with open("/proc/%d/status" % self.pid) as f:
            fields = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        return fields["State"].strip(), int(fields["SigPnd"], 16), int(fields["ShdPnd"], 16)

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def run(pyinspect, args, timeout=30):
    t0 = time.time()
    try:
        p = subprocess.run([pyinspect] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure("pyinspect %s did not end within %ds" % (" ".join(args), timeout))
    check(p.returncode >= 0, "pyinspect %s died of signal %d" % (" ".join(args), -p.returncode))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"), time.time() - t0


def expected_digest(n):
    h = b""
    for i in range(n):
        h = hashlib.sha256(h + str(i).encode("ascii")).digest()
    return hashlib.sha256(h).hexdigest()


def repeat(ctx, args):
    workers = 4
    t = Target(ctx.interp, "busy_target.py", [str(workers)])
    times = {"stack": [], "heap": []}
    try:
        def progress():
            return int(t.latest("progress").split()[1])
        last = progress()
        plan = [("stack", i) for i in range(args.stacks)] + [("heap", i) for i in range(args.heaps)]
        for what, i in plan:
            cmd = [what, str(t.pid), "--json"] + (["--no-progress"] if what == "heap" else [])
            code, out, err, dt = run(ctx.pyinspect, cmd)
            check(code == 0, "%s run %d: exit %d: %s" % (what, i + 1, code, err.strip()))
            times[what].append(dt)
            j = json.loads(out)
            if i == 0 and ctx.interp.get("stripped_libpython"):
                check("embedded" in j["python"]["layout_source"], "a stripped libpython, yet the layout came from %r"
                      % j["python"]["layout_source"])
            if what == "stack":
                names = dict((th["name"], th) for th in j["threads"])
                for w in range(workers):
                    th = names.get("worker-%d" % w)
                    check(th is not None, "stack run %d: worker-%d missing: %s" % (i + 1, w, sorted(names)))
                    depth = sum(1 for f in th["frames"] if f["name"] == "chain")
                    check(depth == 6 + w, "stack run %d: worker-%d has %d chain frames, expected %d"
                          % (i + 1, w, depth, 6 + w))
            else:
                check(j["total_objects"] > 1000, "heap run %d: %d objects" % (i + 1, j["total_objects"]))
            if (i + 1) % (100 if what == "stack" else 10) == 0:
                now = progress()
                check(now > last, "the target's progress stopped at %d after %s run %d" % (now, what, i + 1))
                last = now
                st, pnd, shd = t.state()
                check(st[0] in "RS", "target state %s after %s run %d" % (st, what, i + 1))
                check(pnd == 0 and shd == 0, "signals pending in the target: %x %x" % (pnd, shd))
        t.p.stdin.write(b"stop\n")
        t.p.stdin.flush()
        while True:
            l = t.line(60)
            if l.startswith("result "):
                break
        result = json.loads(l[len("result "):])
        check(result["signals"] == {}, "signals reached the target: %s" % result["signals"])
        for w, (n, digest) in enumerate(result["workers"]):
            check(n > 0, "worker-%d made no progress" % w)
            check(digest == expected_digest(n), "worker-%d: digest after %d steps differs from the expected one" % (w, n))
        steps = sum(n for n, _ in result["workers"])
    finally:
        t.close()
    print("repeat on %s%s: %d stack dumps (median %.1f ms, max %.1f ms), %d heap scans (median %.0f ms, max %.0f ms); "
          "all succeeded; the target's %d steps all correct, no signal reached it" % (
              ctx.interp["id"], ctx.budget_note, len(times["stack"]), 1000 * sorted(times["stack"])[len(times["stack"]) // 2],
              1000 * max(times["stack"]), len(times["heap"]), 1000 * sorted(times["heap"])[len(times["heap"]) // 2],
              1000 * max(times["heap"]), steps))


# The stacks churn_target.py's threads can have: the main thread's, down to <module>; the
# others', down to threading's bootstrap frames, and a recursing thread's all deep() above run().
BOOTSTRAP = (["_bootstrap_inner", "_bootstrap"], ["__bootstrap_inner", "__bootstrap"])


def well_formed(frames):
    names = [f["function"].split(".")[-1] for f in frames]  # 3.11+ qualified names: Thread.run
    if not names:
        return True  # a thread starting or ending
    if "???" in names:
        return False
    if names[-1] == "<module>":
        return "deep" not in names
    if names[-1] not in ("_bootstrap", "__bootstrap"):  # threading's outermost frame
        return False
    if "deep" in names:
        body = names[:-3]
        return names[-2:] in BOOTSTRAP and names[-3] == "run" and bool(body) and all(n == "deep" for n in body)
    return True


def racing(ctx, args):
    t = Target(ctx.interp, "churn_target.py")
    outcomes = {}
    torn_threads = [0]
    slowest = (0, "")
    try:
        for i in range(args.runs):
            kind = ("heap", "refs")[(i // 10) % 2] if i % 10 == 0 else "stack"
            cmd = {"stack": ["stack", str(t.pid), "--nonblocking", "--json"],
                   "heap": ["heap", str(t.pid), "--nonblocking", "--json", "--no-progress"],
                   "refs": ["refs", str(t.pid), "--nonblocking", "--json", "--no-progress", "--type", "Churn",
                            "--backrefs"]}[kind]
            code, out, err, dt = run(ctx.pyinspect, cmd)
            if dt > slowest[0]:
                slowest = (dt, kind)
            # 0: an answer; 8: memory the target freed meanwhile; 11: no Churn object at that instant.
            check(code in (0, 8, 11), "%s run %d: exit %d: %s" % (kind, i + 1, code, err.strip()))
            if code == 0:
                j = json.loads(out)
                check(j["paused"] is False, "%s run %d: the answer does not say it was not paused" % (kind, i + 1))
                if kind == "stack":
                    for th in j["threads"]:
                        # A stack read while it changed must say so; one that does not is whole.
                        if th["torn"]:
                            torn_threads[0] += 1
                        else:
                            check(well_formed(th["frames"]), "stack run %d: thread %s not marked torn, yet its frames "
                                  "are not a stack the target can have: %s" % (
                                      i + 1, th["native_id"], [f["function"] for f in th["frames"]]))
                    check(j["torn"] == any(th["torn"] for th in j["threads"]) or j["warnings"],
                          "stack run %d: torn %s but threads %s" % (i + 1, j["torn"], [th["torn"] for th in j["threads"]]))
                if kind == "stack" and j["torn"]:  # an inconsistency was detected and said
                    outcomes["stack:torn"] = outcomes.get("stack:torn", 0) + 1
            else:
                lines = [l for l in err.splitlines() if l.strip()]
                check(len(lines) == 1 and lines[0].startswith("pyinspect: "), "%s run %d: %r" % (kind, i + 1, err))
            outcomes["%s:%d" % (kind, code)] = outcomes.get("%s:%d" % (kind, code), 0) + 1
            if (i + 1) % 50 == 0:
                t.latest("alive")
                st, _, _ = t.state()
                check(st[0] in "RS", "target state %s after run %d" % (st, i + 1))
    finally:
        t.close()
    # Threads start, recurse and end all the time: over a full budget some reads must see a stack
    # change under them, or the detection does not work.
    if args.runs >= 300:
        check(torn_threads[0] > 0, "%d stack reads of a churning target and none saw a stack change" % args.runs)
    print("racing on %s%s: %d --nonblocking runs, outcomes (command:exit code) %s; %d thread stacks marked torn, "
          "every other one whole; slowest %.2f s (%s)" % (
              ctx.interp["id"], ctx.budget_note, args.runs, dict(sorted(outcomes.items())), torn_threads[0], slowest[0],
              slowest[1]))


def sampling(ctx, args):
    """record at 1000 Hz against the churning target, nonblocking (the default) and --blocking: it
    must end well, keep the target healthy and never stopped, and record stacks the target can
    have: every one with --blocking; nonblocking, all but the few read while they changed that the
    re-read did not catch (their share is printed and must stay under 1%)."""
    import re
    import tempfile
    t = Target(ctx.interp, "churn_target.py")
    d = tempfile.mkdtemp(prefix="pyinspect-stress-")
    results = []
    try:
        for mode in ([], ["--blocking"]):
            out = os.path.join(d, "p.folded")
            code, _, err, dt = run(ctx.pyinspect, ["record", str(t.pid), "-d", str(args.seconds), "-r", "1000",
                                                    "--idle", "-o", out] + mode, timeout=args.seconds + 60)
            what = "record %s" % (" ".join(mode) or "(nonblocking)")
            check(code == 0, "%s: exit %d: %s" % (what, code, err.strip()))
            m = re.search(r": (\d+) samples in .*?(\d+) thread stacks.*?(\d+) missed, (\d+) failed", err)
            check(m is not None, "%s: no summary: %r" % (what, err))
            taken, stacks, missed, failed = (int(x) for x in m.groups())
            check(taken > 0 and stacks > 0, "%s: %s" % (what, m.group(0)))
            bad = total = 0
            example = None
            with open(out) as f:
                for line in f:
                    frames, count = line.rstrip("\n").rsplit(" ", 1)
                    # folded is outermost first, well_formed wants innermost first
                    names = [fr.split(" (")[0] for fr in frames.split(";")][::-1]
                    total += int(count)
                    if not well_formed([{"function": n} for n in names]):
                        bad += int(count)
                        example = example or names
            if mode:
                check(bad == 0, "%s: %d of %d stacks are not stacks the target can have, e.g. %s" % (
                    what, bad, total, example))
            else:
                check(bad <= 0.01 * total, "%s: %d of %d stacks malformed (over 1%%), e.g. %s" % (
                    what, bad, total, example))
            t.latest("alive")
            st, pending, shared = t.state()
            check(st[0] in "RS", "%s: target state %s" % (what, st))
            check(pending == 0 and shared == 0, "%s: a signal reached the target" % what)
            results.append("%s: %d samples, %d missed, %d failed, %d stacks, %d malformed" % (
                what, taken, missed, failed, total, bad))
    finally:
        t.close()
    print("sampling on %s: %s" % (ctx.interp["id"], "; ".join(results)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interpreters", required=True)
    ap.add_argument("--pyinspect")
    ap.add_argument("--python")
    ap.add_argument("--mode", choices=["repeat", "racing", "sampling"])
    ap.add_argument("--seconds", type=float, default=5, help="sampling: seconds of each record run")
    ap.add_argument("--stacks", type=int, help="stack dumps (default 1000; on a stripped twin 200)")
    ap.add_argument("--heaps", type=int, help="heap scans (default 50; on a stripped twin 10)")
    ap.add_argument("--runs", type=int, help="racing runs (default 500; on a stripped twin 100)")
    ap.add_argument("--sanitized", action="store_true", help="pyinspect is built with the sanitizers")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    with open(args.interpreters) as f:
        interps = json.load(f)
    if args.list:
        for e in spread(interps):
            for mode in ("repeat", "racing", "sampling"):
                print("%s %s" % (mode, e["id"]))
        return 0

    class Ctx(object):
        pass
    ctx = Ctx()
    ctx.pyinspect = os.path.abspath(args.pyinspect)
    ctx.interp = [e for e in interps if e["id"] == args.python][0]
    twin = bool(ctx.interp.get("stripped_libpython"))
    share = TWIN_SHARE if twin else 1
    repeat_share = share * (SANITIZED_SHARE if args.sanitized else 1)
    defaults = {"stacks": 1000 // repeat_share, "heaps": 50 // repeat_share, "runs": 500 // share}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    notes = []
    if twin:
        notes.append("stripped twin, embedded tables")
    if args.sanitized and args.mode == "repeat":
        notes.append("sanitizers")
    used = repeat_share if args.mode == "repeat" else share
    ctx.budget_note = (" (%s: 1/%d of the budget)" % (", ".join(notes), used)) if used > 1 else ""
    try:
        {"repeat": repeat, "racing": racing, "sampling": sampling}[args.mode](ctx, args)
    except TestFailure as e:
        print("FAIL stress.%s@%s: %s" % (args.mode, args.python, e))
        return 1
    print("ok stress.%s@%s" % (args.mode, args.python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
