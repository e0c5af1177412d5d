"""Launching test targets on a given interpreter and running pyinspect against them."""
import contextlib
import json
import os
import select
import signal
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = os.path.join(os.path.dirname(HERE), "targets")


class TestFailure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def load_interpreter(interpreters_json, ident):
    with open(interpreters_json) as f:
        for e in json.load(f):
            if e["id"] == ident:
                return e
    raise TestFailure("interpreter %s not in %s" % (ident, interpreters_json))


class Target(object):
    """A target script running on an interpreter, parked and reported (see targets/_park.py)."""

    def __init__(self, interp, script, timeout=120, args=(), user=None):
        self.interp = interp
        self.dir = tempfile.mkdtemp(prefix="pyinspect-test-")
        self.fifo = os.path.join(self.dir, "report")
        os.mkfifo(self.fifo)
        if user is not None:  # run the target as another user (uid = gid = user)
            os.chmod(self.dir, 0o777)
            os.chmod(self.fifo, 0o666)
        env = dict(os.environ)
        env.update(interp.get("env") or {})
        env["PYINSPECT_TEST_FIFO"] = self.fifo
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        path = script if os.path.isabs(script) else os.path.join(TARGETS, script)
        cmd = [interp["path"], path] + list(args)
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
            env["HOME"] = self.dir
        self.proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self.report = self._read_report(timeout)

    def _read_report(self, timeout):
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        self._fd = fd
        buf = b""
        deadline = time.time() + timeout
        while b"\n" not in buf:
            left = deadline - time.time()
            if left <= 0:
                self.close()
                raise TestFailure("target %s did not report within %ds" % (self.interp["id"], timeout))
            r, _, _ = select.select([fd], [], [], min(left, 1.0))
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                raise TestFailure("target exited with %s before reporting:\n%s" % (self.proc.returncode, err))
            if r:
                chunk = os.read(fd, 65536)
                buf += chunk
        line = buf.split(b"\n", 1)[0]
        # The report travels in one bytes object the target made after measuring itself:
        # the line, its newline and the padding of _park.report().
        self.payload_len = len(line) + 1 + (256 << 10)
        return json.loads(line.decode("utf-8"))

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        with contextlib.suppress(OSError, AttributeError):
            os.close(self._fd)
        with contextlib.suppress(OSError):
            os.unlink(self.fifo)
            os.rmdir(self.dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def cpu_ns(pid, tid):
    with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
        return int(f.read().split()[0])


def wait_running(pid, tid, ns=2000000, timeout=60):
    """Waits until thread `tid` has spent `ns` more on a CPU: a thread running Python code holds
    the GIL, so afterwards it is the holder."""
    start = cpu_ns(pid, tid)
    deadline = time.time() + timeout
    while cpu_ns(pid, tid) - start < ns:
        if time.time() > deadline:
            raise TestFailure("thread %d did not run" % tid)
        select.select([], [], [], 0.001)


def run_pyinspect(pyinspect, args, check_exit=True, timeout=60, user=None):
    cmd = [pyinspect] + list(args)
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    if check_exit and p.returncode != 0:
        raise TestFailure("pyinspect %s exited %d:\n%s%s" % (" ".join(args), p.returncode, out, err))
    return p.returncode, out, err


def stack_json(pyinspect, pid, extra=()):
    _, out, _ = run_pyinspect(pyinspect, ["stack", str(pid), "--json"] + list(extra))
    return json.loads(out)


def frame_key(f):
    return (f["function"], f["file"], f["line"])


def compare_thread(expected, got, where):
    exp = [frame_key(f) for f in expected["frames"]]
    act = [frame_key(f) for f in got["frames"]]
    if exp != act:
        lines = ["%s: frames differ (expected %d, got %d)" % (where, len(exp), len(act))]
        for i in range(max(len(exp), len(act))):
            e = exp[i] if i < len(exp) else None
            a = act[i] if i < len(act) else None
            if e != a:
                lines.append("  #%d expected %s\n      got      %s" % (i, e, a))
                if len(lines) > 12:
                    break
        raise TestFailure("\n".join(lines))
    # co_name is reported as well as the qualified name.
    for e, a in zip(expected["frames"], got["frames"]):
        check(e["name"] == a["name"], "%s: co_name %r != %r" % (where, e["name"], a["name"]))


def compare_stacks(report, got, check_gil=True):
    """pyinspect's JSON against the target's own report, thread by thread."""
    check(got["pid"] == report["pid"], "pid %s != %s" % (got["pid"], report["pid"]))
    check(got["python"]["version"] == report["version"],
          "version %s != %s" % (got["python"]["version"], report["version"]))
    by_ident = dict((t["thread_id"], t) for t in got["threads"])
    check(len(got["threads"]) == len(report["threads"]),
          "thread count: expected %d, got %d" % (len(report["threads"]), len(got["threads"])))
    for exp in report["threads"]:
        where = "thread %s (%s)" % (exp["name"], exp["ident"])
        check(exp["ident"] in by_ident, "%s missing from pyinspect's threads" % where)
        act = by_ident[exp["ident"]]
        check(act["name"] == exp["name"], "%s: name %r" % (where, act["name"]))
        if exp["native_id"] is not None:
            check(act["native_id"] == exp["native_id"],
                  "%s: native id %s != %s" % (where, act["native_id"], exp["native_id"]))
        if check_gil:
            want = exp["ident"] == report["gil_holder"]
            check(act["holds_gil"] == want, "%s: holds_gil %s, expected %s" % (where, act["holds_gil"], want))
        compare_thread(exp, act, where)
