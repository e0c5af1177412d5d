# Deep recursion: the main thread parks 1500 calls deep; a worker waits 1200 calls deep.
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

sys.setrecursionlimit(10000)
threading.stack_size(64 << 20)
held = threading.Lock()
held.acquire()


def dive(n, at_bottom):
    if n == 0:
        return at_bottom()
    return dive(n - 1, at_bottom)


def worker():
    _park.register(); dive(1200, held.acquire)


t = _park.start_one(worker, "deep-worker")
dive(1500, _park.park)
