#!/usr/bin/env python3
"""Bad input and failures: each gives one line on stderr and its documented exit code
(docs/exit-codes.md). run_errors.py --interpreters F --pyinspect P --case NAME [--list]"""
import argparse
import json
import os
import re
import shutil
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Held, Target, TestFailure, check, compare_stacks, run_pyinspect, wait_exited  # noqa: E402

CASES = {}


def case(fn):
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


def one_line_error(code, out, err, want_code, pattern):
    lines = [l for l in err.splitlines() if l.strip()]
    check(code == want_code, "exit %d, expected %d; stderr: %r" % (code, want_code, err))
    check(out == "", "stdout not empty: %r" % out[:200])
    check(len(lines) == 1, "expected one line on stderr, got %d: %r" % (len(lines), err))
    check(lines[0].startswith("pyinspect: "), "message does not start with 'pyinspect: ': %r" % lines[0])
    check(re.search(pattern, lines[0]) is not None, "message %r does not match %r" % (lines[0], pattern))


def unused_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 1, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    raise TestFailure("no unused pid")


@case
def bad_pid(ctx):
    for arg, pat in [("abc", "not a process ID"), ("0", "not a process ID"), ("-5", "not a process ID|unrecognised|option"),
                     ("12x", "not a process ID"), ("99999999999", "not a process ID")]:
        code, out, err = run_pyinspect(ctx.pyinspect, ["stack", "--", arg] if arg.startswith("-") else ["stack", arg],
                                       check_exit=False)
        one_line_error(code, out, err, 2, pat)


@case
def usage(ctx):
    for args, pat in [(["frobnicate"], "unknown command"), (["stack"], r"missing PID \(usage: pyinspect stack PID"),
                      (["abi"], "missing ACTION"), (["stack", "1", "--bogus"], "bogus"),
                      (["--color=sometimes", "stack", "1"], "auto, always or never"),
                      (["stack", "1", "--max-frames", "many"], "max-frames"),
                      (["stack", "1", "--max-frames", "0"], "--max-frames wants 1 or more"),
                      (["heap", "1", "--growth", "0"], "--growth wants a number of seconds more than 0"),
                      (["abi", "check", "/nonexistent/libpython9.9.so"], "cannot read /nonexistent/libpython9.9.so: No such file")]:
        code, out, err = run_pyinspect(ctx.pyinspect, args, check_exit=False)
        one_line_error(code, out, err, 2, pat)


@case
def negative_numbers(ctx):
    for args in (["heap", "1", "--top", "-1"], ["heap", "1", "--largest=-2"], ["stack", "1", "--max-frames", "-5"],
                 ["refs", "1", "--type", "X", "--max-depth", "-1"], ["heap", "1", "--growth", "-3"]):
        code, out, err = run_pyinspect(ctx.pyinspect, args, check_exit=False)
        one_line_error(code, out, err, 2, "wants a number of 0 or more|--growth wants")


@case
def refs_bad_input(ctx):
    """Conflicting options, unwritable outputs (refused before the target is touched), unknown
    types and addresses, on a real target."""
    import tempfile
    outdir = tempfile.mkdtemp(prefix="pyinspect-bad-")
    for interp in spread(ctx):
        with Target(interp, "threads.py") as t:
            pid = str(t.pid)
            cases = [
                (["refs", pid], 2, "exactly one of --type"),
                (["refs", pid, "--type", "Thread", "--address", "0x1000"], 2, "exactly one of --type"),
                (["refs", pid, "--type", "Thread", "--chain", "--cycles"], 2, "different questions"),
                (["refs", pid, "--type", "Thread", "--json", "--dot", "-"], 2, "both want standard output"),
                (["refs", pid, "--address", "banana"], 2, "not an address"),
                (["refs", pid, "--type", "Thread", "--too-many", "0"], 2, "at least 1"),
                (["refs", pid, "--type", "NoSuchClassAnywhere"], 11, "NoSuchClassAnywhere"),
                (["refs", pid, "--address", "0x10"], 11, "no live object at 0x10"),
                (["refs", pid, "--type", "Thread", "--dot", outdir], 9, "is a directory"),
                (["refs", pid, "--type", "Thread", "--svg", "/nonexistent-dir/g.svg"], 9, "cannot write /nonexistent-dir/g.svg"),
                (["refs", pid, "--type", "Thread", "--png", os.path.join(outdir, "no", "g.png")], 9, "cannot write"),
            ]
            for args, want, pat in cases:
                code, out, err = run_pyinspect(ctx.pyinspect, args, check_exit=False)
                one_line_error(code, out, err, want, pat)
                check(all(st not in "tT" for st in thread_states(t.pid).values()), "%s left the target stopped" % args)
            # Graphviz missing: a PATH without `dot`.
            p = subprocess.run([ctx.pyinspect, "refs", pid, "--type", "Thread", "--svg", os.path.join(outdir, "g.svg")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PATH=outdir))
            one_line_error(p.returncode, p.stdout.decode(), p.stderr.decode(), 9, "dot is not installed.*apt-get install graphviz")
            check(os.listdir(outdir) == [], "files left behind: %s" % os.listdir(outdir))
    shutil.rmtree(outdir, ignore_errors=True)


@case
def core_bad_input(ctx):
    """Core files: what is not one, one cut short, what a core cannot answer, dump's own bad
    input; each one line and its exit code, and dump leaves the target running."""
    import tempfile
    d = tempfile.mkdtemp(prefix="pyinspect-core-bad-")
    try:
        text = os.path.join(d, "notes.txt")
        with open(text, "w") as f:
            f.write("not a core\n")
        interp = spread(ctx)[0]
        with Target(interp, "threads.py") as t:
            pid = str(t.pid)
            core = os.path.join(d, "t.core")
            code, out, err = run_pyinspect(ctx.pyinspect, ["dump", pid, "-o", core], check_exit=False)
            check(code == 0 and out == "" and os.path.getsize(core) > 0, "dump: exit %d, %r" % (code, err))
            check(all(st not in "tT" for st in thread_states(t.pid).values()), "dump left the target stopped")
            with open(core, "rb") as f:
                head = f.read(200)
            cut = os.path.join(d, "cut.core")
            with open(cut, "wb") as f:
                f.write(head)
            cases = [
                (["stack", text], 2, "is not a process ID nor an ELF core file"),
                (["stack", "/bin/true"], 2, "is not a process ID nor an ELF core file"),
                (["stack", os.path.join(d, "missing.core")], 2, "no such file"),
                (["heap", cut], 8, "program header"),
                (["heap", core, "--growth", "1"], 2, "--growth watches a live process"),
                (["heap", "--diff", core], 2, "--diff wants two targets"),
                (["heap", core, pid], 2, "one too many"),
                (["heap", "--diff", core, core], 2, "with itself"),
                (["heap", "--diff", core, pid, "--retained"], 2, "--diff and --retained"),
                (["dump", pid], 2, "missing OUTPUT|output"),
                (["memory", cut], 8, "program header"),
                (["record", core, "-d", "1"], 2, "is a core file: this command reads a live process only"),
                (["top", core, "--once"], 2, "is a core file"),
                (["dump", core, "-o", os.path.join(d, "z.core")], 2, "is a core file"),
                (["dump", pid, "-o", os.path.join(d, "no", "x.core")], 9, "cannot write"),
                (["dump", str(unused_pid()), "-o", os.path.join(d, "y.core")], 3, "no process"),
            ]
            for args, want, pat in cases:
                code, out, err = run_pyinspect(ctx.pyinspect, args, check_exit=False)
                one_line_error(code, out, err, want, pat)
            check(all(st not in "tT" for st in thread_states(t.pid).values()), "the target was left stopped")
            check(sorted(os.listdir(d)) == ["cut.core", "notes.txt", "t.core"], "files left behind: %s" % os.listdir(d))
        # A core of a process that runs no Python: exit 5, as for its PID.
        sleeper = subprocess.Popen(["sleep", "600"])
        try:
            other = os.path.join(d, "sleep.core")
            run_pyinspect(ctx.pyinspect, ["dump", str(sleeper.pid), "-o", other])
            code, out, err = run_pyinspect(ctx.pyinspect, ["stack", other], check_exit=False)
            one_line_error(code, out, err, 5, "not a CPython process")
        finally:
            sleeper.kill()
            sleeper.wait()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def no_such_process(ctx):
    code, out, err = run_pyinspect(ctx.pyinspect, ["stack", str(unused_pid())], check_exit=False)
    one_line_error(code, out, err, 3, "no process with PID")


@case
def self(ctx):
    # pyinspect cannot know its own PID in advance; `pyinspect info $$` inside a shell that execs it.
    p = subprocess.run(["sh", "-c", 'exec "$0" stack $$', ctx.pyinspect], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    one_line_error(p.returncode, p.stdout.decode(), p.stderr.decode(), 2, "pyinspect itself")


@case
def zombie(ctx):
    # A child that has exited but was not reaped: waitid(WNOWAIT) returns once it is a zombie.
    p = subprocess.Popen(["sh", "-c", "exit 0"])
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    code, out, err = run_pyinspect(ctx.pyinspect, ["stack", str(p.pid)], check_exit=False)
    p.wait()
    one_line_error(code, out, err, 3, "zombie")


@case
def kernel_thread(ctx):
    code, out, err = run_pyinspect(ctx.pyinspect, ["stack", "2"], check_exit=False)  # kthreadd
    one_line_error(code, out, err, 5, "kernel thread")


@case
def not_python(ctx):
    p = subprocess.Popen(["sleep", "1000"])
    try:
        code, out, err = run_pyinspect(ctx.pyinspect, ["stack", str(p.pid)], check_exit=False)
        one_line_error(code, out, err, 5, r"\(sleep\) is not a CPython process")
    finally:
        p.kill()
        p.wait()


@case
def unsupported_version(ctx):
    for interp in spread(ctx):
        with Target(interp, "threads.py") as t:
            code, out, err = run_pyinspect(ctx.pyinspect, ["stack", str(t.pid), "--python", "3.5"], check_exit=False)
            one_line_error(code, out, err, 6, r"CPython 3\.5 is not supported")
    code, out, err = run_pyinspect(ctx.pyinspect, ["abi", "fixed", "--python", "3.5"], check_exit=False)
    one_line_error(code, out, err, 6, r"CPython 3\.5 is not supported \(pyinspect knows 2\.7 and 3\.6")


@case
def tasks_without_asyncio(ctx):
    """pyinspect tasks on a process that has not imported asyncio: no tasks, said so, exit 0; on
    2.7 (no asyncio at all): exit 6 in one line."""
    for interp in spread(ctx):
        with Target(interp, "threads.py") as t:
            code, out, err = run_pyinspect(ctx.pyinspect, ["tasks", str(t.pid)], check_exit=False)
            if interp["major"] == 2:
                one_line_error(code, out, err, 6, r"asyncio's C tasks are not known for CPython 2\.7")
            else:
                check(code == 0, "%s: exit %d: %s" % (interp["id"], code, err))
                check("(no pending asyncio tasks)" in out and "asyncio is not imported" in out,
                      "%s: %r" % (interp["id"], out))


def syscall_of(pid):
    """The fields of /proc/PID/syscall (number, then arguments in hex), [] if it cannot be read."""
    try:
        with open("/proc/%d/syscall" % pid) as f:
            return f.read().split()
    except (IOError, OSError):
        return []


def sleeping(pid):
    """True if the process is in clock_nanosleep or nanosleep (x86-64: 230, 35)."""
    fields = syscall_of(pid)
    return len(fields) > 1 and fields[0] in ("230", "35")


@case
def growth_target_exits(ctx):
    """heap --growth, the target exiting between the two censuses (made to happen there: pyinspect
    is seen sleeping in the interval): exit 7, one line that says so."""
    interp = spread(ctx)[0]
    p = exiting_target(interp)
    try:
        q = subprocess.Popen([ctx.pyinspect, "heap", str(p.pid), "--growth", "3", "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while not sleeping(q.pid):
            check(q.poll() is None, "pyinspect ended (exit %s) before the interval" % q.returncode)
            check(time.time() < deadline, "pyinspect never reached the interval between its censuses")
            select.select([], [], [], 0.001)
        exit_now(p)
        p.wait()
        out, err = q.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    one_line_error(q.returncode, out.decode(), err.decode(), 7, "process %d exited during --growth" % p.pid)


@case
def output_file_mode(ctx):
    """Files pyinspect writes get the mode a new file gets (0666 less the umask), as a shell
    redirection gives, though they are made under a temporary name first."""
    import tempfile
    interp = spread(ctx)[0]
    work = tempfile.mkdtemp(prefix="pyinspect-mode-")
    p = exiting_target(interp)
    try:
        for mask in (0o022, 0o077):
            listing = os.path.join(work, "objects-%o.txt" % mask)
            dot = os.path.join(work, "graph-%o.dot" % mask)
            for args in (["heap", str(p.pid), "--top", "1", "--no-progress", "--list-objects", listing],
                         ["refs", str(p.pid), "--type", "Thread", "--no-progress", "--dot", dot]):
                q = subprocess.Popen([ctx.pyinspect] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=lambda m=mask: os.umask(m))
                out, err = q.communicate(timeout=120)
                check(q.returncode == 0, "%s: exit %d: %s" % (args[0], q.returncode, err))
            for path in (listing, dot):
                mode = os.stat(path).st_mode & 0o777
                check(mode == 0o666 & ~mask, "%s under umask %03o has mode %03o, expected %03o" % (
                    os.path.basename(path), mask, mode, 0o666 & ~mask))
        check(sorted(os.listdir(work)) == sorted(["objects-22.txt", "graph-22.dot", "objects-77.txt", "graph-77.dot"]),
              "left in the directory: %s" % os.listdir(work))
    finally:
        exit_now(p)
        p.wait()
        shutil.rmtree(work, ignore_errors=True)


@case
def permission(ctx):
    """A user without rights over a root process is told what to do; its own process works."""
    if os.geteuid() != 0:
        raise TestFailure("needs root to start a target as another user")
    nobody = 65534
    for interp in spread(ctx):
        with Target(interp, "threads.py") as t:
            for cmd in ("stack", "heap"):
                code, out, err = run_pyinspect(ctx.pyinspect, [cmd, str(t.pid)], check_exit=False, user=nobody)
                one_line_error(code, out, err, 4, "permission denied.*CAP_SYS_PTRACE")
    # The same user against its own process: allowed (ptrace_scope permitting, as on this
    # machine). It needs an interpreter that user can run: one outside root's home.
    usable = [e for e in ctx.all if subprocess.run(
        ["setpriv", "--reuid=%d" % nobody, "--regid=%d" % nobody, "--clear-groups", e["path"], "-c", "pass"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, **(e.get("env") or {}))).returncode == 0]
    check(usable, "no interpreter on this machine can be run by uid %d" % nobody)
    with Target(usable[-1], "threads.py", user=nobody) as t:
        code, out, err = run_pyinspect(ctx.pyinspect, ["stack", str(t.pid), "--json"], check_exit=False, user=nobody)
        check(code == 0, "uid %d against its own process (%s): exit %d: %s" % (nobody, usable[-1]["id"], code, err))
        compare_stacks(t.report, json.loads(out))


EXITING_TARGET = ("import threading, time, os, sys\n"
                  "def f(n):\n    return f(n - 1) if n else time.sleep(1000)\n"
                  "for i in range(8):\n    t = threading.Thread(target=f, args=(50,)); t.daemon = True; t.start()\n"
                  "keep = [[i, str(i)] for i in range(20000)]\n"
                  "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
                  "sys.stdin.readline()\nos._exit(0)\n")


def exiting_target(interp):
    """A target with 8 threads 50 frames deep that exits (os._exit) when told on stdin."""
    p = subprocess.Popen([interp["path"], "-c", EXITING_TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=dict(os.environ, **(interp.get("env") or {})))
    check(p.stdout.readline() == b"ready\n", "target on %s did not start" % interp["id"])
    return p


def exit_now(p):
    p.stdin.write(b"exit\n")
    p.stdin.flush()


def exit_args(name, pid):
    return {"stack": ["stack", str(pid), "--json"],
            "heap": ["heap", str(pid), "--json", "--no-progress", "--top", "0", "--largest", "200"],
            "memory": ["memory", str(pid), "--json", "--no-progress"],
            "refs": ["refs", str(pid), "--type", "Thread", "--json", "--no-progress"]}[name]


def check_embedded(interp, doc, where):
    """On a -stripped twin, the layout must have come from pyinspect's embedded tables."""
    if interp.get("stripped_libpython"):
        source = doc["python"]["layout_source"]
        check("embedded" in source, "%s: a stripped libpython, yet the layout came from %r" % (where, source))


def check_answer(name, out, where, interp):
    """The answer of a run that completed: whole, and about the 9 threads of exiting_target()."""
    try:
        j = json.loads(out)
    except ValueError:
        raise TestFailure("%s: stdout is not one JSON document (%d bytes)" % (where, len(out)))
    check_embedded(interp, j, where)
    if name == "stack":
        deep = [th for th in j["threads"] if sum(1 for f in th["frames"] if f["name"] == "f") == 51]
        check(len(j["threads"]) == 9 and len(deep) == 8, "%s: %d threads, %d of them 51 frames of f" % (
            where, len(j["threads"]), len(deep)))
    elif name == "heap":
        check(j["total_objects"] > 20000, "%s: %d objects" % (where, j["total_objects"]))
    else:
        check(j["matched"] >= 8 and j["starts"] and j["nodes"], "%s: %d Thread objects matched, %d started from, "
              "%d nodes" % (where, j["matched"], len(j["starts"]), len(j["nodes"])))


def blocked_writing_stdout(pid):
    """True if pyinspect is blocked in write(1, ...) (its answer is bigger than the pipe)."""
    fields = syscall_of(pid)
    return len(fields) > 1 and fields[0] == "1" and int(fields[1], 16) == 1


@case
def target_exits(ctx):
    """A target that exits before, during and after pyinspect reads it, each made to happen at
    that point by a handshake, for stack, heap and refs: before it attaches (a zombie, then
    reaped): exit 3; killed while pyinspect holds it stopped (the hold shim, at its first
    PTRACE_DETACH): exit 7 with one line, within a second; after the read (pyinspect blocked
    writing its answer into a full pipe): exit 0 and the whole answer."""
    import fcntl
    F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
    ran = []
    for interp in spread(ctx):
        for name in ("stack", "heap", "memory", "refs"):
            where = "%s on %s" % (name, interp["id"])
            # Before: exited, not yet reaped (waitid WNOWAIT returns once it is a zombie).
            p = exiting_target(interp)
            exit_now(p)
            os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
            code, out, err = run_pyinspect(ctx.pyinspect, exit_args(name, p.pid), check_exit=False, timeout=30)
            one_line_error(code, out, err, 3, "zombie")
            # Before: reaped, so no such process.
            p.wait()
            code, out, err = run_pyinspect(ctx.pyinspect, exit_args(name, p.pid), check_exit=False, timeout=30)
            one_line_error(code, out, err, 3, "no process with PID %d" % p.pid)
            # During: killed while every thread is stopped, as pyinspect is about to release it.
            p = exiting_target(interp)
            try:
                with Held(ctx.shim, [ctx.pyinspect, "--color=never"] + exit_args(name, p.pid), at="detach") as h:
                    h.wait_held()
                    states = thread_states(p.pid)
                    check(len(states) == 9 and all(st == "t" for st in states.values()),
                          "%s: held, but the target's threads are %s" % (where, states))
                    p.kill()
                    killed = time.time()
                    wait_exited(p.pid)
                    h.release()
                    code, out, err = h.communicate(timeout=30)
                    took = time.time() - killed
            finally:
                p.kill()
                p.wait()
            one_line_error(code, out, err, 7, "process %d exited while" % p.pid)
            check(took < 1.0, "%s: pyinspect took %.2f s after the kill" % (where, took))
            during_ms = took * 1000
            if name == "memory":
                # (Its answer is smaller than any pipe: the after-the-read case is heap's.)
                ran.append("%s (%.0f ms)" % (where, during_ms))
                continue
            # After: pyinspect has read everything and is blocked writing its answer into a pipe
            # smaller than it; the target exits; the answer must still come whole, with exit 0.
            p = exiting_target(interp)
            r, w = os.pipe()
            try:
                fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
                q = subprocess.Popen([ctx.pyinspect] + exit_args(name, p.pid), stdout=w, stderr=subprocess.PIPE)
                os.close(w)
                deadline = time.time() + 60
                while not blocked_writing_stdout(q.pid):
                    check(q.poll() is None, "%s: pyinspect ended (exit %s) without filling a 4 KiB pipe: the answer "
                          "is too small for the test" % (where, q.returncode))
                    check(time.time() < deadline, "%s: pyinspect never wrote its answer" % where)
                    select.select([], [], [], 0.001)
                exit_now(p)
                p.wait()
                chunks = []
                while True:
                    c = os.read(r, 65536)
                    if not c:
                        break
                    chunks.append(c)
                err = q.stderr.read().decode("utf-8", "replace")
                q.wait()
            finally:
                os.close(r)
                if p.poll() is None:
                    p.kill()
                    p.wait()
            out = b"".join(chunks).decode("utf-8", "replace")
            check(q.returncode == 0 and err == "", "%s: target exited after the read: exit %d, stderr %r" % (
                where, q.returncode, err))
            check_answer(name, out, "%s, target exited after the read" % where, interp)
            ran.append("%s (%.0f ms)" % (where, during_ms))
    print("target exits before (3), while paused (7, ms from kill to exit), after the read (0): %s" % ", ".join(ran))


@case
def heap_too_large(ctx):
    """A copy larger than --max-copy is refused before the target is stopped."""
    with Target(ctx.interp, "census.py") as t:
        code, out, err = run_pyinspect(ctx.pyinspect, ["heap", str(t.pid), "--max-copy", "1"], check_exit=False)
        one_line_error(code, out, err, 10, "more than the limit of 1 MiB")
        check(all(s not in "tT" for s in thread_states(t.pid).values()), "the target is stopped")


def with_meminfo(cmd, available_mib, workdir):
    """cmd run in a private mount namespace whose /proc/meminfo is this machine's with
    MemAvailable replaced by `available_mib` (a file bind-mounted over it)."""
    with open("/proc/meminfo") as f:
        lines = f.read().splitlines()
    check(any(l.startswith("MemAvailable:") for l in lines), "no MemAvailable in /proc/meminfo")
    path = os.path.join(workdir, "meminfo")
    with open(path, "w") as f:
        for l in lines:
            f.write(("MemAvailable:   %8d kB" % (available_mib << 10)) if l.startswith("MemAvailable:") else l)
            f.write("\n")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /proc/meminfo && exec "$@"', path] + list(cmd)


@case
def heap_larger_than_memory(ctx):
    """Without --max-copy, a copy the machine cannot hold is refused before the target is stopped
    (pyinspect runs in a mount namespace whose /proc/meminfo says 8 MiB are available)."""
    import tempfile
    check(os.geteuid() == 0 and shutil.which("unshare"), "needs root and unshare(1) to make a mount namespace")
    workdir = tempfile.mkdtemp(prefix="pyinspect-meminfo-")
    try:
        # The namespace works: inside it, /proc/meminfo is the test's file.
        p = subprocess.run(with_meminfo(["cat", "/proc/meminfo"], 8, workdir), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        check(p.returncode == 0 and b"MemAvailable:       8192 kB" in p.stdout,
              "the bind-mounted /proc/meminfo is not seen: exit %d, %r" % (p.returncode, p.stderr))
        for interp in spread(ctx):
            with Target(interp, "census.py") as t:
                for cmd in (["heap", str(t.pid)], ["refs", str(t.pid), "--type", "Thread"]):
                    p = subprocess.run(with_meminfo([ctx.pyinspect] + cmd, 8, workdir), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
                    one_line_error(p.returncode, p.stdout.decode(), p.stderr.decode(), 10, r"only 8 MiB are available.*--max-copy")
                    check(all(st not in "tT" for st in thread_states(t.pid).values()), "the target is stopped")
                # --max-copy overrides the estimate.
                p = subprocess.run(with_meminfo([ctx.pyinspect, "heap", str(t.pid), "--max-copy", "100000", "--json"], 8,
                                                workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                check(p.returncode == 0, "--max-copy did not override: %s" % p.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def on_terminal(cmd, env):
    """Runs cmd with stdout and stderr on a pseudo-terminal; returns (exit code, bytes seen)."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(cmd[0], cmd, env)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.WEXITSTATUS(status), out


@case
def terminal_and_pipes(ctx):
    """Colour and progress only on a terminal; NO_COLOR and --color respected; a pipe gets plain
    text with no escape sequence and stderr stays empty."""
    esc = re.compile(rb"\x1b\[")
    with Target(ctx.interp, "threads.py") as t:
        for args in (["stack", str(t.pid)], ["heap", str(t.pid)], ["refs", str(t.pid), "--type", "Thread"]):
            base = dict(os.environ)
            base.pop("NO_COLOR", None)
            code, out = on_terminal([ctx.pyinspect] + args, base)
            check(code == 0 and esc.search(out), "%s on a terminal: exit %d, no colour: %r" % (args[0], code, out[:200]))
            if args[0] != "stack":
                check(b"pyinspect: copying the target's memory" in out, "%s on a terminal: no progress line" % args[0])
            code, out = on_terminal([ctx.pyinspect] + args, dict(base, NO_COLOR="1"))
            # NO_COLOR: no colour; the progress line (stderr) may still redraw itself.
            check(code == 0 and not re.search(rb"\x1b\[(1|3\d)m", out), "%s with NO_COLOR: %r" % (args[0], out[:200]))
            p = subprocess.run([ctx.pyinspect] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base)
            check(p.returncode == 0 and not esc.search(p.stdout) and p.stderr == b"",
                  "%s into a pipe: exit %d, stdout %r, stderr %r" % (args[0], p.returncode, p.stdout[:100], p.stderr[:200]))
            p = subprocess.run([ctx.pyinspect, "--color=always"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base)
            check(p.returncode == 0 and esc.search(p.stdout), "%s --color=always into a pipe: no colour" % args[0])


def spread(ctx):
    """One interpreter of each family the issue names, when present: the newest 2.7, the newest
    3.x up to 3.10, the newest 3.11 or later; each followed by its -stripped twin where it has one
    (the same interpreter with a libpython stripped of every symbol: pyinspect reads it with its
    embedded layout tables)."""
    picks = []
    for lo, hi in [((2, 0), (3, 0)), ((3, 0), (3, 11)), ((3, 11), (99, 0))]:
        fam = [e for e in ctx.all if lo <= tuple(int(x) for x in e["version"].split(".")[:2]) < hi
               and not e["id"].endswith("d-system")]
        if fam:
            picks.append(fam[-1])
            twin = ctx.stripped.get(fam[-1]["id"] + "-stripped")
            if twin:
                picks.append(twin)
    check(picks, "no interpreter")
    return picks


def ticking_target(interp, objects=0):
    """A target whose main thread prints a tick every 5 ms and whose other threads wait; with
    `objects`, it first builds that many small objects (a heap worth walking)."""
    script = ("import threading, time, sys\n"
              "keep = [[i, str(i)] for i in range(%d)]\n"
              "for i in range(4):\n    t = threading.Thread(target=time.sleep, args=(1000,)); t.daemon = True; t.start()\n"
              "n = 0\n"
              "while True:\n    n += 1; sys.stdout.write('tick %%d\\n' %% n); sys.stdout.flush(); time.sleep(0.005)\n") % objects
    p = subprocess.Popen([interp["path"], "-c", script], stdout=subprocess.PIPE,
                         env=dict(os.environ, **(interp.get("env") or {})))
    check(p.stdout.readline().startswith(b"tick"), "target did not start")
    return p


def thread_states(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                out[int(tid)] = f.read().rsplit(")", 1)[1].split()[0]
        except (IOError, OSError):
            pass
    return out


def ticks_continue(p, within=1.0):
    """True if the target prints new ticks within `within` seconds."""
    import select
    deadline = time.time() + within
    seen = 0
    while time.time() < deadline and seen < 3:
        r, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.time()))
        if r and p.stdout.readline().startswith(b"tick"):
            seen += 1
    return seen >= 3


def commands(pid, outdir):
    """The ways pyinspect pauses a target; refs also writes a file."""
    dot = os.path.join(outdir, "graph.dot")
    return [("stack", ["stack", str(pid)], None),
            ("stack --native", ["stack", str(pid), "--native"], None),
            ("heap", ["heap", str(pid)], None),
            ("memory", ["memory", str(pid)], None),
            ("refs", ["refs", str(pid), "--type", "Thread", "--dot", dot], dot)]


def leftovers(outdir):
    return sorted(os.listdir(outdir))


def killed_while_paused(ctx, sig):
    """pyinspect ended by `sig` while the target is stopped: every thread of the target runs on,
    and no file is left behind, whichever command and interpreter."""
    import tempfile
    ran = []
    for interp in spread(ctx):
        p = ticking_target(interp)
        outdir = tempfile.mkdtemp(prefix="pyinspect-kill-")
        try:
            for name, args, _ in commands(p.pid, outdir):
                where = "%s on %s, signal %d" % (name, interp["id"], sig)
                # Held at its first PTRACE_DETACH: every thread of the target is stopped.
                with Held(ctx.shim, [ctx.pyinspect] + args, at="detach") as h:
                    h.wait_held()
                    states = thread_states(p.pid)
                    check(states and all(st == "t" for st in states.values()),
                          "%s: held, but the target's threads are %s" % (where, states))
                    h.proc.send_signal(sig)
                    code, _, err = h.communicate(timeout=10)
                stopped = [tid for tid, st in thread_states(p.pid).items() if st in "tT"]
                check(not stopped, "%s: threads %s of the target are still stopped" % (where, stopped))
                check(ticks_continue(p), "%s: the target does not run on" % where)
                if sig != signal.SIGKILL:
                    check(code == 128 + sig, "%s: exit %d, expected %d" % (where, code, 128 + sig))
                    check(err.strip() == "pyinspect: interrupted", "%s: stderr: %r" % (where, err))
                else:
                    check(code == -signal.SIGKILL, "%s: exit %d, expected death by SIGKILL" % (where, code))
                check(leftovers(outdir) == [], "%s: files left behind: %s" % (where, leftovers(outdir)))
                ran.append("%s@%s" % (name, interp["id"]))
        finally:
            p.kill()
            p.wait()
            shutil.rmtree(outdir, ignore_errors=True)
    print("killed while paused by signal %d: %s" % (sig, ", ".join(ran)))


@case
def killed_while_paused_sigint(ctx):
    killed_while_paused(ctx, signal.SIGINT)


@case
def killed_while_paused_sigterm(ctx):
    killed_while_paused(ctx, signal.SIGTERM)


@case
def killed_while_paused_sighup(ctx):
    killed_while_paused(ctx, signal.SIGHUP)


@case
def killed_while_paused_sigquit(ctx):
    killed_while_paused(ctx, signal.SIGQUIT)


@case
def killed_while_paused_sigkill(ctx):
    killed_while_paused(ctx, signal.SIGKILL)


@case
def sigpipe(ctx):
    """A reader that goes away (`pyinspect ... | head -1`): pyinspect does not die of SIGPIPE
    half-way; the target runs on."""
    for interp in spread(ctx):
        p = ticking_target(interp)
        try:
            for args in (["stack", str(p.pid)], ["heap", str(p.pid), "--top", "0"],
                         ["refs", str(p.pid), "--type", "Thread", "--max-depth", "5"]):
                r, w = os.pipe()
                os.close(r)  # nobody will read
                q = subprocess.run([ctx.pyinspect] + args, stdout=w, stderr=subprocess.PIPE, timeout=60)
                os.close(w)
                where = "%s on %s" % (args[0], interp["id"])
                check(q.returncode in (0, 9), "%s: exit %d (%s)" % (where, q.returncode, q.stderr))
                check(q.returncode >= 0, "%s: killed by signal %d" % (where, -q.returncode))
                stopped = [tid for tid, st in thread_states(p.pid).items() if st in "tT"]
                check(not stopped, "%s: threads %s are still stopped" % (where, stopped))
                check(ticks_continue(p), "%s: the target does not run on" % where)
        finally:
            p.kill()
            p.wait()


def target_killed(ctx, name, objects, when):
    """The target is killed while pyinspect reads it, at a point the hold shim stops pyinspect at:
    "paused", its first read once every thread is stopped; "walking", the first liveness check of
    its walk of the copy, the target released. One line, exit code 7, within a second of the kill;
    no file left behind."""
    import tempfile
    for interp in spread(ctx):
        outdir = tempfile.mkdtemp(prefix="pyinspect-dies-")
        p = ticking_target(interp, objects)
        where = "%s on %s, target killed while %s" % (name, interp["id"], when)
        try:
            args = [a for n, a, _ in commands(p.pid, outdir) if n == name][0]
            cmd = [ctx.pyinspect, "--color=never"] + args + (["--no-progress"] if name != "stack" else [])
            with Held(ctx.shim, cmd, at="read" if when == "paused" else "recheck") as h:
                h.wait_held()
                states = thread_states(p.pid)
                if when == "paused":
                    check(states and all(st == "t" for st in states.values()),
                          "%s: held, but the target's threads are %s" % (where, states))
                else:
                    stopped = [tid for tid, st in states.items() if st in "tT"]
                    check(not stopped, "%s: walking, but threads %s of the target are stopped" % (where, stopped))
                p.kill()
                killed = time.time()
                if when == "paused":
                    wait_exited(p.pid)  # stopped by pyinspect, so not reapable until it lets go
                else:
                    p.wait()
                h.release()
                code, out, err = h.communicate(timeout=30)
                took = time.time() - killed
            one_line_error(code, out, err, 7, "exited while")
            check(took < 1.0, "%s: pyinspect took %.2f s after the kill" % (where, took))
            check(leftovers(outdir) == [], "%s: files left behind: %s" % (where, leftovers(outdir)))
            print("%s: exit 7 %.0f ms after the kill: %s" % (where, took * 1000, err.strip()))
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
            shutil.rmtree(outdir, ignore_errors=True)


@case
def target_killed_during_heap_copy(ctx):
    target_killed(ctx, "heap", 0, "paused")


@case
def target_killed_during_heap_walk(ctx):
    target_killed(ctx, "heap", 3000000, "walking")


@case
def target_killed_during_memory_walk(ctx):
    target_killed(ctx, "memory", 3000000, "walking")


@case
def target_killed_during_refs_walk(ctx):
    target_killed(ctx, "refs", 3000000, "walking")


@case
def target_killed_during_stack(ctx):
    target_killed(ctx, "stack", 0, "paused")


# ---- record and top (docs/profiling.md) --------------------------------------------------------

def parse_folded(path):
    """[(frames outermost first, count)] of a folded profile; every line must be `frames count`."""
    stacks = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^(\S.*) (\d+)\n$", line)
            check(m is not None, "%s:%d is not a folded line (frames, a space, a count): %r" % (
                os.path.basename(path), n, line[:200]))
            check(int(m.group(2)) > 0, "%s:%d has a count of 0" % (os.path.basename(path), n))
            stacks.append((m.group(1).split(";"), int(m.group(2))))
    return stacks


def record_summary(err):
    """The figures of record's summary line: samples, thread stacks, missed, failed."""
    m = re.search(r"^pyinspect: wrote [^\n]*: (\d+) samples in [\d.]+ s \([^)]*\), (\d+) thread stacks[^;\n]*; "
                  r"(\d+) missed, (\d+) failed", err, re.M)
    check(m is not None, "no summary line on stderr: %r" % err[-600:])
    return dict(zip(("samples", "stacks", "missed", "failed"), (int(g) for g in m.groups())))


def not_stopped(pid, where):
    stopped = [tid for tid, st in thread_states(pid).items() if st in "tT"]
    check(not stopped, "%s: threads %s of the target are stopped" % (where, stopped))


def read_line(stream, timeout, where):
    """One line from an unbuffered pipe (Popen(bufsize=0): nothing read ahead that a later
    communicate() would miss) within `timeout` seconds ('' at its end)."""
    r, _, _ = select.select([stream], [], [], timeout)
    check(r, "%s: nothing on the pipe within %d s" % (where, timeout))
    return stream.readline().decode("utf-8", "replace")


def wait_sampling(q, where, timeout=60):
    """Reads record's stderr up to its start line ("sampling process PID ..."); returns PID."""
    deadline = time.time() + timeout
    while True:
        line = read_line(q.stderr, max(0.0, deadline - time.time()), where)
        if not line:
            raise TestFailure("%s: pyinspect ended (exit %s) before it started sampling" % (where, q.wait()))
        m = re.match(r"pyinspect: sampling process (\d+) ", line)
        if m:
            return int(m.group(1))


@case
def record_bad_input(ctx):
    """record and top: bad options, conflicting ones, an output whose format cannot be told or
    that cannot be written, a program that does not exist: one line, exit 2 (9 for the output),
    the target untouched and nothing written."""
    import tempfile
    outdir = tempfile.mkdtemp(prefix="pyinspect-record-bad-")
    os.mkdir(os.path.join(outdir, "dir.svg"))
    out = os.path.join(outdir, "p.folded")
    try:
        with Target(ctx.interp, "threads.py") as t:
            pid = str(t.pid)
            cases = [
                (["record", pid, "-o", out, "--rate", "0"], 2, r"--rate wants"),
                (["record", pid, "-o", out, "--rate", "-1"], 2, r"--rate wants"),
                (["record", pid, "-o", out, "--rate", "abc"], 2, r"'abc'.*--rate"),
                (["record", pid, "-o", out, "-r", "100001"], 2, r"--rate wants"),
                (["top", pid, "--rate", "0"], 2, r"--rate wants"),
                (["record", pid, "-o", out, "-d", "-1"], 2, r"--duration wants"),
                (["record", pid, "-o", out, "--format", "unknown"], 2,
                 r"--format wants flamegraph, folded, speedscope or json, not 'unknown'"),
                (["record", pid, "-o", os.path.join(outdir, "x.foo")], 2,
                 r"cannot tell the format from the name '.*x\.foo'.*--format"),
                (["record", pid, "-o", out, "--blocking", "--nonblocking"], 2, r"--blocking and --nonblocking"),
                (["top", pid, "--once", "--blocking", "--nonblocking"], 2, r"--blocking and --nonblocking"),
                (["record", pid, "-o", out, "--native", "--nonblocking"], 2, r"--native .*leave out --nonblocking"),
                (["record", pid, "-o", out, "--native-all", "--nonblocking"], 2, r"--native .*leave out --nonblocking"),
                (["stack", pid, "--native", "--nonblocking"], 2, r"--native .*leave out --nonblocking"),
                (["record", pid, "-o", out, "--realtime=100"], 2, r"--realtime wants a priority from 1 to 99"),
                (["top", pid, "--once", "--realtime=-1"], 2, r"--realtime wants a number of 0 or more"),
                (["record", "-o", out], 2, r"give a PID or -- COMMAND"),
                (["record", pid, "-o", out, "--", ctx.interp["path"], "-c", "pass"], 2, r"not both"),
                (["record", "-o", out, "--", "/nonexistent/program"], 2, r"cannot run /nonexistent/program: No such file"),
                (["record", pid, "-o", "/nonexistent-dir/p.svg"], 9, r"cannot write /nonexistent-dir/p\.svg"),
                (["record", pid, "-o", os.path.join(outdir, "no", "p.folded")], 9, r"cannot write .*no/p\.folded"),
                (["record", pid, "-o", os.path.join(outdir, "dir.svg")], 9, r"is a directory"),
                (["record", "-o", os.path.join(outdir, "no", "p.folded"), "--", ctx.interp["path"], "-c", "pass"], 9,
                 r"cannot write"),
                (["top"], 2, r"missing PID"),
                (["top", pid, "--once", "--sort", "bogus"], 2,
                 r"--sort wants own, total, own-time or total-time, not 'bogus'"),
                (["top", pid, "--once", "--interval", "0"], 2, r"--interval wants"),
                (["top", pid, "--once", "--rows", "many"], 2, r"rows"),
            ]
            for args, want, pat in cases:
                code, o, err = run_pyinspect(ctx.pyinspect, args, check_exit=False, timeout=30)
                one_line_error(code, o, err, want, pat)
                not_stopped(t.pid, " ".join(args))
                check(sorted(os.listdir(outdir)) == ["dir.svg"], "%s: left in the directory: %s" % (
                    " ".join(args), sorted(os.listdir(outdir))))
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


@case
def record_not_python(ctx):
    """record and top on a process that runs no Python: exit 5, one line, no file."""
    import tempfile
    outdir = tempfile.mkdtemp(prefix="pyinspect-record-np-")
    p = subprocess.Popen(["sleep", "1000"])
    try:
        for args in (["record", str(p.pid), "-o", os.path.join(outdir, "p.svg")],
                     ["record", str(p.pid), "-o", "-"],
                     ["top", str(p.pid), "--once"], ["top", str(p.pid)]):
            code, out, err = run_pyinspect(ctx.pyinspect, args, check_exit=False, timeout=30)
            one_line_error(code, out, err, 5, r"\(sleep\) is not a CPython process")
            check(os.listdir(outdir) == [], "%s: left in the directory: %s" % (" ".join(args), os.listdir(outdir)))
        code, out, err = run_pyinspect(ctx.pyinspect, ["record", str(unused_pid()), "-o", os.path.join(outdir, "p.svg")],
                                       check_exit=False)
        one_line_error(code, out, err, 3, "no process with PID")
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(outdir, ignore_errors=True)


BUSY_TARGET = ("import sys, time\n"
               "def busy(seconds):\n"
               "    t = time.time()\n"
               "    while time.time() - t < seconds:\n"
               "        pass\n"
               "    return time.time() - t\n"
               "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
               "sys.stdin.readline()\n"
               "took = busy(1.0)\n"
               "sys.stdout.write('%f\\n' % took); sys.stdout.flush()\n")


@case
def record_target_exits(ctx):
    """`record PID` without -d while the target exits (after 1 s of work in busy(), which it
    measures): record ends by itself, exit 0, and writes a profile whose stacks parse and hold
    busy(). The target is not reaped until record has ended (a zombie has exited too); with and
    without --blocking."""
    import tempfile
    outdir = tempfile.mkdtemp(prefix="pyinspect-record-exit-")
    ran = []
    try:
        for interp in spread(ctx):
            for mode in ([], ["--blocking"]):
                where = "record %s on %s" % (" ".join(mode) or "(nonblocking)", interp["id"])
                path = os.path.join(outdir, "p.folded")
                p = subprocess.Popen([interp["path"], "-c", BUSY_TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0, env=dict(os.environ, **(interp.get("env") or {})))
                q = None
                try:
                    check(p.stdout.readline() == b"ready\n", "%s: the target did not start" % where)
                    q = subprocess.Popen([ctx.pyinspect, "record", str(p.pid), "-o", path] + mode,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
                    check(wait_sampling(q, where) == p.pid, "%s: sampling another process" % where)
                    p.stdin.write(b"go\n")
                    p.stdin.flush()
                    took = float(read_line(p.stdout, 60, where + ", the target's report"))
                    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)  # exited; left a zombie
                    exited = time.time()
                    try:
                        out, err = q.communicate(timeout=30)
                    except subprocess.TimeoutExpired:
                        raise TestFailure("%s: still sampling 30 s after the target exited" % where)
                    ended = time.time() - exited
                finally:
                    if q is not None and q.poll() is None:
                        q.kill()
                        q.wait()
                    p.kill()
                    p.wait()
                err = err.decode("utf-8", "replace")
                check(q.returncode == 0, "%s: exit %d: %s" % (where, q.returncode, err))
                check(out == b"", "%s: stdout not empty: %r" % (where, out[:200]))
                check(ended < 5, "%s: ended %.1f s after the target exited" % (where, ended))
                s = record_summary(err)
                stacks = parse_folded(path)
                total = sum(n for _, n in stacks)
                check(total == s["stacks"], "%s: the file holds %d samples, the summary says %d thread stacks" % (
                    where, total, s["stacks"]))
                in_busy = sum(n for frames, n in stacks if frames[-1].startswith("busy ("))
                # 100 Hz for the 1 s the target measured itself in busy(); a loaded machine misses some.
                expected = took * 100
                check(in_busy >= expected * 0.3 and in_busy <= expected * 1.1 + 2,
                      "%s: %d samples in busy(), which ran %.2f s at 100 Hz (%s)" % (where, in_busy, took, err.strip()))
                os.unlink(path)
                ran.append("%s: %d samples in busy(), ended %.0f ms after the target" % (where, in_busy, ended * 1000))
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    print("\n".join(ran))


@case
def record_command_exit_code(ctx):
    """record -- COMMAND passes the program's exit code through: 3 for sys.exit(3), 128 + N for
    a program killed by signal N (SIGKILL: 137, SIGTERM: 143), also when the program ends before
    it could be read as Python (a shell's `exit 4`: 4, no profile); the profile of a program that
    was sampled is written and parses."""
    import tempfile
    outdir = tempfile.mkdtemp(prefix="pyinspect-record-cmd-")
    path = os.path.join(outdir, "p.folded")
    py = ctx.interp["path"]
    env = dict(os.environ, **(ctx.interp.get("env") or {}))
    spin = "import time, sys\nwhile True:\n    time.sleep(0.001)\n"
    try:
        for how, want in (("exit 3", 3), ("SIGKILL", 128 + signal.SIGKILL), ("SIGTERM", 128 + signal.SIGTERM)):
            where = "record -- %s (%s)" % (os.path.basename(py), how)
            script = "import sys, time\ntime.sleep(0.3)\nsys.exit(3)\n" if how == "exit 3" else spin
            q = subprocess.Popen([ctx.pyinspect, "record", "-o", path, "--", py, "-c", script],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env)
            try:
                child = wait_sampling(q, where)  # the program's PID, once it is sampled
                if how != "exit 3":
                    time.sleep(0.3)
                    os.kill(child, getattr(signal, how))
                out, err = q.communicate(timeout=30)
            finally:
                if q.poll() is None:
                    q.kill()
                    q.wait()
            err = err.decode("utf-8", "replace")
            check(q.returncode == want, "%s: exit %d, expected %d; stderr %r" % (where, q.returncode, want, err))
            check(os.path.exists(path), "%s: no profile written (%s)" % (where, err.strip()))
            s = record_summary(err)
            check(s["samples"] > 0, "%s: no sample taken" % where)
            check(sum(n for _, n in parse_folded(path)) == s["stacks"], "%s: the file and the summary disagree" % where)
            os.unlink(path)
        # Never Python: the code still passes through, and no profile is written.
        code, out, err = run_pyinspect(ctx.pyinspect, ["record", "-o", path, "--", "sh", "-c", "exit 4"],
                                       check_exit=False, timeout=30)
        check(code == 4, "record -- sh -c 'exit 4': exit %d: %r" % (code, err))
        check(re.search(r"ended before it could be read as Python", err), "record -- sh: stderr %r" % err)
        check(os.listdir(outdir) == [], "record -- sh: left in the directory: %s" % os.listdir(outdir))
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


@case
def record_stop_signals(ctx):
    """SIGINT, SIGTERM and SIGHUP to `record PID` (no -d) a second into sampling: sampling stops,
    the profile is written (every thread of the target at every sample, with --idle), exit 0,
    and the target runs on."""
    import tempfile
    outdir = tempfile.mkdtemp(prefix="pyinspect-record-sig-")
    p = ticking_target(ctx.interp)
    try:
        threads = len(os.listdir("/proc/%d/task" % p.pid))
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            where = "record, signal %d" % sig
            path = os.path.join(outdir, "p.folded")
            q = subprocess.Popen([ctx.pyinspect, "record", str(p.pid), "--idle", "-o", path],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
            try:
                wait_sampling(q, where)
                time.sleep(1)
                q.send_signal(sig)
                out, err = q.communicate(timeout=10)
            finally:
                if q.poll() is None:
                    q.kill()
                    q.wait()
            err = err.decode("utf-8", "replace")
            check(q.returncode == 0, "%s: exit %d: %r" % (where, q.returncode, err))
            check("interrupted" not in err, "%s: %r" % (where, err))
            s = record_summary(err)
            stacks = parse_folded(path)
            total = sum(n for _, n in stacks)
            check(total == s["stacks"], "%s: %d samples in the file, %d in the summary" % (where, total, s["stacks"]))
            # At 100 Hz for the second between the start line and the signal.
            check(50 <= s["samples"] + s["missed"] <= 200, "%s: %d samples and %d missed in about 1 s" % (
                where, s["samples"], s["missed"]))
            check(s["samples"] * threads - s["failed"] * threads <= total <= s["samples"] * threads,
                  "%s: %d stacks for %d samples of %d threads (%d failed)" % (
                      where, total, s["samples"], threads, s["failed"]))
            not_stopped(p.pid, where)
            check(ticks_continue(p), "%s: the target does not run on" % where)
            os.unlink(path)
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(outdir, ignore_errors=True)


def record_while_paused(ctx, sigs):
    """`record --blocking` held by the shim at its first PTRACE_DETACH (every thread of the
    target stopped for the first sample) gets `sigs`. SIGQUIT, SIGKILL, or a second stop signal:
    pyinspect ends (128 + N, "interrupted"; killed), no file is written, and the target's threads
    run on. One SIGINT, SIGTERM or SIGHUP: pyinspect waits; once let go it finishes the sample,
    releases the target, writes the profile (that one sample: each of the target's threads) and
    exits 0."""
    import tempfile
    ran = []
    for interp in spread(ctx):
        p = ticking_target(interp)
        outdir = tempfile.mkdtemp(prefix="pyinspect-record-held-")
        path = os.path.join(outdir, "p.folded")
        where = "record --blocking on %s, signals %s" % (interp["id"], "+".join(str(int(s)) for s in sigs))
        try:
            threads = len(os.listdir("/proc/%d/task" % p.pid))
            cmd = [ctx.pyinspect, "record", str(p.pid), "--blocking", "--idle", "-q", "-o", path]
            with Held(ctx.shim, cmd, at="detach") as h:
                h.wait_held()
                states = thread_states(p.pid)
                check(states and all(st == "t" for st in states.values()),
                      "%s: held, but the target's threads are %s" % (where, states))
                for sig in sigs:
                    h.proc.send_signal(sig)
                    time.sleep(0.1)
                stops = sigs[0] in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) and len(sigs) == 1
                if stops:
                    # It must still be there, holding the target, until the sample is done.
                    time.sleep(0.2)
                    check(h.proc.poll() is None, "%s: pyinspect ended (exit %s) before finishing the sample" % (
                        where, h.proc.returncode))
                    h.release()
                code, out, err = h.communicate(timeout=10)
            not_stopped(p.pid, where)
            check(ticks_continue(p), "%s: the target does not run on" % where)
            if stops:
                check(code == 0, "%s: exit %d: %r" % (where, code, err))
                s = record_summary(err)
                check(s["samples"] == 1, "%s: %d samples, expected the one held" % (where, s["samples"]))
                stacks = parse_folded(path)
                total = sum(n for _, n in stacks)
                check(total == threads, "%s: %d stacks in the profile, the target has %d threads" % (
                    where, total, threads))
                check(os.listdir(outdir) == ["p.folded"], "%s: in the directory: %s" % (where, os.listdir(outdir)))
            else:
                sig = sigs[-1]
                if sig == signal.SIGKILL:
                    check(code == -signal.SIGKILL, "%s: exit %d, expected death by SIGKILL" % (where, code))
                else:
                    check(code == 128 + sig, "%s: exit %d, expected %d" % (where, code, 128 + sig))
                    check(err.strip() == "pyinspect: interrupted", "%s: stderr: %r" % (where, err))
                check(os.listdir(outdir) == [], "%s: files left behind: %s" % (where, os.listdir(outdir)))
            ran.append("%s: exit %d" % (interp["id"], code))
        finally:
            p.kill()
            p.wait()
            shutil.rmtree(outdir, ignore_errors=True)
    print("record --blocking held, signals %s: %s" % ("+".join(str(int(s)) for s in sigs), ", ".join(ran)))


@case
def record_killed_while_paused_sigquit(ctx):
    record_while_paused(ctx, [signal.SIGQUIT])


@case
def record_killed_while_paused_sigkill(ctx):
    record_while_paused(ctx, [signal.SIGKILL])


@case
def record_stopped_while_paused_sigint(ctx):
    record_while_paused(ctx, [signal.SIGINT])


@case
def record_stopped_while_paused_sigterm(ctx):
    record_while_paused(ctx, [signal.SIGTERM])


@case
def record_stopped_while_paused_sighup(ctx):
    record_while_paused(ctx, [signal.SIGHUP])


@case
def record_interrupted_twice_while_paused(ctx):
    record_while_paused(ctx, [signal.SIGINT, signal.SIGINT])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interpreters", required=True)
    ap.add_argument("--pyinspect")
    ap.add_argument("--shim", help="the hold shim, tests/shim/hold_pause.c built as a shared library")
    ap.add_argument("--case")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for name in sorted(CASES):
            print(name)
        return 0

    class Ctx(object):
        pass
    ctx = Ctx()
    ctx.pyinspect = os.path.abspath(args.pyinspect)
    ctx.shim = os.path.abspath(args.shim) if args.shim else None
    with open(args.interpreters) as f:
        everything = [e for e in json.load(f) if not e.get("probe_failed")]
    interps = [e for e in everything if not e.get("stripped_libpython")]
    ctx.stripped = dict((e["id"], e) for e in everything if e.get("stripped_libpython"))
    # The newest interpreter found (errors do not depend on the version).
    ctx.interp = interps[-1]
    ctx.all = interps
    try:
        CASES[args.case](ctx)
    except TestFailure as e:
        print("FAIL errors.%s (%s): %s" % (args.case, ctx.interp["id"], e))
        return 1
    print("ok errors.%s" % args.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
