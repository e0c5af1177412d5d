# A target for the profiler's tests (Python 2.7 and 3.x alike): threads that spend known shares of
# their CPU time in known functions, measured by the target itself with each thread's CPU clock.
#
#   profiled.py REPORT SECONDS [WORKERS]
#
# WORKERS threads ("worker-N") each repeat a round of slices of CPU work: five in alpha, three in
# beta, two in gamma (called through outer). Each slice burns ~1 ms of the thread's own CPU time
# on one line (marked HOT-<function>) and adds what it burned to that function's account. A
# thread "sleeper" sleeps in sleeper() (never waking) and a thread "waiter" waits on an Event in waiter(): idle
# threads. After SECONDS (or on SIGTERM) it writes REPORT as JSON: per function the CPU seconds
# spent, the hot lines, the threads' names and native ids, and exits.
import ctypes
import json
import os
import signal
import sys
import threading
import time

CLOCK_THREAD_CPUTIME_ID = 3


class timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = ctypes.CDLL(None)
_clock_gettime = _libc.clock_gettime
_clock_gettime.argtypes = [ctypes.c_int, ctypes.POINTER(timespec)]
_ts = threading.local()


def thread_cpu():
    # time.thread_time() is 3.7+; ctypes works on every version (one timespec per thread).
    t = getattr(_ts, "t", None)
    if t is None:
        t = _ts.t = timespec()
    _clock_gettime(CLOCK_THREAD_CPUTIME_ID, ctypes.byref(t))
    return t.tv_sec + t.tv_nsec * 1e-9


SLICE = 0.001
spent = {}
spent_lock = threading.Lock()
stop = threading.Event()
names = {}


def account(name, seconds):
    with spent_lock:
        spent[name] = spent.get(name, 0.0) + seconds


def native_id():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    return _libc.syscall(186)  # SYS_gettid on x86-64


def alpha():
    t0 = thread_cpu(); end = t0 + SLICE
    while thread_cpu() < end: pass  # HOT-alpha
    account("alpha", thread_cpu() - t0)


def beta():
    t0 = thread_cpu(); end = t0 + SLICE
    while thread_cpu() < end: pass  # HOT-beta
    account("beta", thread_cpu() - t0)


def gamma():
    t0 = thread_cpu(); end = t0 + SLICE
    while thread_cpu() < end: pass  # HOT-gamma
    account("gamma", thread_cpu() - t0)


def outer():
    gamma()


def worker():
    names[threading.current_thread().name] = native_id()
    while not stop.is_set():
        for _ in range(5):
            alpha()
        for _ in range(3):
            beta()
        for _ in range(2):
            outer()


def sleeper():
    names["sleeper"] = native_id()
    time.sleep(3600)  # HOT-sleeper (a daemon thread: it ends with the process)


def waiter():
    names["waiter"] = native_id()
    stop.wait()  # HOT-waiter


def hot_lines():
    out = {}
    marker = "# " + "HOT-"  # not itself a marked line
    with open(os.path.abspath(__file__)) as f:
        for n, text in enumerate(f, 1):
            if marker in text:
                out[text.split(marker)[1].split()[0]] = n
    return out


def main():
    report, seconds = sys.argv[1], float(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    threads = [threading.Thread(target=worker, name="worker-%d" % i) for i in range(workers)]
    threads.append(threading.Thread(target=sleeper, name="sleeper"))
    threads.append(threading.Thread(target=waiter, name="waiter"))
    for t in threads:
        t.daemon = True
        t.start()
    deadline = time.time() + seconds
    while not stop.is_set() and time.time() < deadline:
        time.sleep(0.02)
    stop.set()
    for t in threads[:workers]:
        t.join(5)
    with spent_lock:
        result = {"spent": dict(spent), "hot_lines": hot_lines(), "threads": names,
                  "file": os.path.abspath(__file__), "pid": os.getpid()}
    tmp = report + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.rename(tmp, report)


if __name__ == "__main__":
    main()
