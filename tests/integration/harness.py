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


class Held(object):
    """pyinspect run with the test-only preload library tests/shim/hold_pause.c, which holds it at
    one point (`at`: "detach", its first PTRACE_DETACH, every thread of the target still stopped;
    "read", its first read of the target once it has stopped it; "recheck", a heap or refs walk's
    first liveness check after the target is released) until release(). wait_held() returns when
    pyinspect is there: a handshake, so what the test does next happens at that point, whatever
    the machine's speed."""

    def __init__(self, shim, cmd, at="detach", env=None, stdout=subprocess.PIPE):
        check(shim and os.path.exists(shim), "the hold shim (tests/shim) was not given or not built: %r" % shim)
        env = dict(os.environ if env is None else env)
        held_r, held_w = os.pipe()
        release_r, self._release_w = os.pipe()
        env["LD_PRELOAD"] = shim
        env["PYINSPECT_SHIM_HOLD_FDS"] = "%d,%d" % (held_w, release_r)
        env["PYINSPECT_SHIM_HOLD_AT"] = at
        # AddressSanitizer wants its runtime first in the list of libraries; the shim only passes
        # calls on, so let it come before.
        env["ASAN_OPTIONS"] = ":".join(o for o in (env.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
        self.at = at
        self.proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env,
                                     pass_fds=(held_w, release_r))
        os.close(held_w)
        os.close(release_r)
        self._held_r = held_r

    def wait_held(self, timeout=180):
        """Blocks until pyinspect is held; fails if it ends (or is still not there) first."""
        buf = b""
        deadline = time.time() + timeout
        while not buf.endswith(b"\n"):
            left = deadline - time.time()
            r, _, _ = select.select([self._held_r], [], [], max(0.0, left))
            if not r:
                self.proc.kill()
                raise TestFailure("pyinspect was not held at %s within %ds" % (self.at, timeout))
            chunk = os.read(self._held_r, 256)
            if not chunk:  # the write end closed: pyinspect ended without getting there
                out, err = self.proc.communicate()
                raise TestFailure("pyinspect ended (exit %s) before the hold at %s: %s" % (
                    self.proc.returncode, self.at, (err or b"").decode("utf-8", "replace").strip()))
            buf += chunk
        words = buf.decode().split()
        check(len(words) == 3 and words[0] == "held" and words[1] == self.at, "the shim said %r" % buf)
        return int(words[2])

    def release(self):
        with contextlib.suppress(OSError):
            os.write(self._release_w, b"go")
        self.close_fds()

    def close_fds(self):
        for fd in ("_held_r", "_release_w"):
            with contextlib.suppress(OSError, AttributeError):
                os.close(getattr(self, fd))
            setattr(self, fd, -1)

    def communicate(self, timeout=60):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise TestFailure("pyinspect did not end within %ds after the hold" % timeout)
        finally:
            self.close_fds()
        return self.proc.returncode, (out or b"").decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        self.close_fds()


def wait_exited(pid, timeout=20):
    """Waits until `pid` (killed, and still stopped by a tracer, so not yet reapable) is a zombie:
    from then on its memory is gone."""
    deadline = time.time() + timeout
    while True:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    return
        except (IOError, OSError):
            return
        if time.time() > deadline:
            raise TestFailure("process %d did not die within %ds of SIGKILL" % (pid, timeout))
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
