# Target of bench/native_bench.py: THREADS threads, each DEPTH levels of Python calling C (the test
# extension's call()) calling Python, then blocked in C; prints "ready" once all are blocked.
import os
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import _nativeext  # noqa: E402

THREADS, DEPTH = int(sys.argv[2]), int(sys.argv[3])
started = []
lock = threading.Lock()


def level(n):
    if n == 0:
        with lock:
            started.append(1)
        _nativeext.block()
    else:
        _nativeext.call(level, n - 1)


for i in range(THREADS):
    t = threading.Thread(target=level, args=(DEPTH,), name="worker-%d" % i)
    t.daemon = True
    t.start()
while len(started) < THREADS:
    time.sleep(0.01)
time.sleep(0.2)  # into the blocking read
sys.stdout.write("ready\n")
sys.stdout.flush()
_nativeext.block()
