# Benchmark target for `pyinspect record` (bench/record_bench.py). Runs on CPython 2.7 and 3.x.
#
#   record_target.py THREADS [DEPTH] [--idle]
#
# THREADS worker threads, each DEPTH Python frames deep (recursion; 0: no recursion), then either
# a CPU-bound pure-Python loop (a few nested calls per iteration) that counts its iterations in a
# per-thread counter, or, with --idle, blocked on a lock that is never released.
# Prints "ready PID" once every worker is at its depth, then answers on stdin:
#   measure SECONDS  ->  "rate R": iterations a second, all workers together, over a window of
#                        SECONDS measured here (the main thread sleeps meanwhile)
#   quit             ->  exits
import os
import sys
import threading
import time

THREADS = int(sys.argv[1])
DEPTH = int(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("-") else 0
IDLE = "--idle" in sys.argv

counts = [0] * THREADS
started = []
held = threading.Lock()
held.acquire()


def leaf(x):
    return (x * 3 + 1) & 0xFFFF


def mid(x):
    return leaf(x) + leaf(x + 1)


def top(x):
    return mid(x) ^ mid(x + 2)


def work(i):
    c = counts
    x = i
    started.append(i)
    while True:
        x = top(x)
        c[i] += 1


def block(i):
    started.append(i)
    held.acquire()


def dive(n, i):
    if n <= 1:
        (block if IDLE else work)(i)
    else:
        dive(n - 1, i)


if DEPTH > 900:
    sys.setrecursionlimit(DEPTH + 100)
for i in range(THREADS):
    t = threading.Thread(target=dive, args=(DEPTH, i), name="worker-%d" % i)
    t.daemon = True
    t.start()
while len(started) < THREADS:
    time.sleep(0.001)
sys.stdout.write("ready %d\n" % os.getpid())
sys.stdout.flush()

while True:
    line = sys.stdin.readline()
    if not line or line.startswith("quit"):
        os._exit(0)
    words = line.split()
    if words[0] == "measure":
        a, t0 = sum(counts), time.time()
        time.sleep(float(words[1]))
        b, t1 = sum(counts), time.time()
        sys.stdout.write("rate %.1f\n" % ((b - a) / (t1 - t0)))
        sys.stdout.flush()
