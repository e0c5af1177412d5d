# Benchmark target: THREADS threads (the main one included), each DEPTH Python frames deep,
# blocked in C calls. With --spin, one more thread spins and records how long it was kept from
# running (it writes the largest stalls to the file named by --stalls when told to, via SIGUSR1).
import os
import signal
import sys
import threading
import time

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
DEPTH = int(sys.argv[2]) if len(sys.argv) > 2 else 10
SPIN = "--spin" in sys.argv
held = threading.Lock()
held.acquire()
started = []


def dive(n):
    if n <= 1:
        started.append(1)
        held.acquire()
    else:
        dive(n - 1)


stalls = []


def monotonic_clock():
    # CLOCK_MONOTONIC, as time.perf_counter is on Linux (2.7 has neither: ask libc).
    if hasattr(time, "perf_counter"):
        return time.perf_counter
    import ctypes

    class timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]
    libc = ctypes.CDLL(None)
    ts = timespec()

    def clock():
        libc.clock_gettime(1, ctypes.byref(ts))
        return ts.tv_sec + ts.tv_nsec * 1e-9
    return clock


def spin():
    # Records every gap of more than 50 us between two looks at the clock.
    clock = monotonic_clock()
    last = clock()
    while True:
        now = clock()
        if now - last > 50e-6:
            stalls.append((now, now - last))
            del stalls[:-100000]
        last = now


def dump_stalls(signum, frame):
    with open(os.environ["STALLS_FILE"], "w") as f:
        for t, gap in list(stalls):
            f.write("%.9f %.9f\n" % (t, gap))


for i in range(THREADS - 1):
    t = threading.Thread(target=dive, args=(DEPTH,), name="worker-%d" % i)
    t.daemon = True
    t.start()
if SPIN:
    signal.signal(signal.SIGUSR1, dump_stalls)
    s = threading.Thread(target=spin, name="spinner")
    s.daemon = True
    s.start()
while len(started) < THREADS - 1:
    time.sleep(0.001)
sys.stdout.write("ready %d\n" % os.getpid())
sys.stdout.flush()
dive(DEPTH) if not SPIN else time.sleep(10 ** 6)
