# Shared by the integration test targets (Python 2.7 and 3.x alike).
#
# A target starts its threads, waits until each is blocked where the test wants it, and then
# "parks" its main thread with park(): on one source line it takes its own view of every
# thread (sys._current_frames(), the interpreter's in-process answer), sends it to the test
# harness through a FIFO, and blocks forever inside that same os.write() call (the harness reads
# the report line and nothing more, so the rest of the write never completes). From then on no
# Python stack in the process changes, and the main thread never needs the GIL again.
import collections
import itertools
import json
import os
import sys
import threading
import time

_registry = {}  # ident -> native thread id
_registry_lock = threading.Lock()


def native_id():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    try:
        import ctypes
        return ctypes.CDLL(None).syscall(186)  # SYS_gettid on x86-64
    except Exception:
        return None


def ident():
    return threading.current_thread().ident if not hasattr(threading, "get_ident") else threading.get_ident()


def register():
    """Called by each thread of interest once it runs: records its native id."""
    with _registry_lock:
        _registry[ident()] = native_id()


def registered():
    with _registry_lock:
        return dict(_registry)


def frames_of(frame):
    out = []
    while frame is not None:
        co = frame.f_code
        out.append({
            "function": getattr(co, "co_qualname", co.co_name),
            "name": co.co_name,
            "file": co.co_filename,
            "line": frame.f_lineno,
        })
        frame = frame.f_back
    return out


def snapshot(idents):
    frames = sys._current_frames()
    return dict((i, frames_of(frames[i])) for i in idents if i in frames)


def wait_stable(idents, samples=3, interval=0.01, timeout=60.0):
    """Waits until the stacks of `idents` stop changing (they are blocked in C calls)."""
    deadline = time.time() + timeout
    last, same = None, 0
    while time.time() < deadline:
        snap = snapshot(idents)
        if snap == last and len(snap) == len(idents):
            same += 1
            if same >= samples:
                return
        else:
            same = 0
        last = snap
        time.sleep(interval)
    raise RuntimeError("threads did not settle")


def start_one(target, name, args=(), kwargs=None):
    """Starts one daemon thread running `target` (which calls register() once where the test
    wants it), opens the channel, and waits until that thread is registered and its stack stays
    the same; returns the thread."""
    t = threading.Thread(target=target, name=name, args=args, kwargs=kwargs or {})
    t.daemon = True
    t.start()
    open_channel()
    register()
    wait_registered(2)
    wait_stable([t.ident])
    return t


def wait_registered(n, timeout=60.0):
    deadline = time.time() + timeout
    while len(registered()) < n:
        if time.time() > deadline:
            raise RuntimeError("threads did not start")
        time.sleep(0.001)


def report(frames, gil_holder=None, extra=None):
    """The payload park() sends: every thread's frames as this process sees them."""
    names = dict((t.ident, t.name) for t in threading.enumerate())
    reg = registered()
    threads = []
    for i, f in frames.items():
        threads.append({
            "ident": i,
            "native_id": reg.get(i),
            "name": names.get(i),
            "frames": frames_of(f),
        })
    data = {
        "pid": os.getpid(),
        "version": "%d.%d.%d" % sys.version_info[:3],
        "sys_version": sys.version,
        "executable": sys.executable,
        "gil_holder": gil_holder,
        "threads": threads,
        "extra": extra or {},
    }
    # Far more than a pipe holds: the write blocks for good once the harness has its line.
    return (json.dumps(data) + "\n").encode("utf-8") + b" " * (256 << 10)


_fd = [None]


def open_channel():
    path = os.environ["PYINSPECT_TEST_FIFO"]
    _fd[0] = os.open(path, os.O_WRONLY)
    return _fd[0]


def park(gil_holder=None, extra=None):
    fd = _fd[0] if _fd[0] is not None else open_channel()
    # A ptrace stop (gdb, or pyinspect pausing) makes a blocked pipe write return short; the
    # write is then repeated, forever, by C code (starmap consumed by a zero-length deque), so
    # no Python frame is ever pushed again and this frame stays on this line.
    collections.deque(itertools.starmap(os.write, itertools.repeat((fd, report(sys._current_frames(), gil_holder, extra)))), 0)
