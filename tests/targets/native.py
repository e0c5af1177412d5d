# Threads blocked in C for the native-frame tests (and one thread of C alone, without Python): in the test's own C extension (argv[1] is the
# directory it was built into), reached through Python -> C -> Python -> C, and recursing through
# it; in sleep, a lock, select and a socket read; and two busy in C (zlib, hashlib), whose
# stacks move. Then the main thread parks (see _park.py).
import hashlib
import os
import select
import socket
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, sys.argv[1])
import _nativeext  # noqa: E402
import _park  # noqa: E402

DEPTH = int(os.environ.get("PYINSPECT_NATIVE_DEPTH", "12"))
held = threading.Lock()
held.acquire()
pipe_r, pipe_w = os.pipe()
sock_a, sock_b = socket.socketpair()
data = os.urandom(1 << 16) * 16  # hashed without the GIL
chunk = os.urandom(1 << 16)  # compressed with the GIL held (2.7): short calls, so the others get it


def in_c():
    _park.register()
    _nativeext.block()


def through_c():
    _nativeext.call(in_c)


def deep(n):
    if n == 0:
        _park.register()
        _nativeext.block()
    else:
        _nativeext.call(deep, n - 1)


def in_cpp():
    _park.register()
    _nativeext.block_cpp()


def sleeper():
    _park.register(); time.sleep(1000000)


def locker():
    _park.register(); held.acquire()


def selecter():
    _park.register(); select.select([pipe_r], [], [], 1000000)


def reader():
    _park.register(); sock_a.recv(16)


def zipper():
    _park.register()
    while True:
        zlib.compress(chunk, 1)


def hasher():
    _park.register()
    while True:
        hashlib.sha256(data).digest()


blocked = [("c-call", through_c), ("c-deep", lambda: deep(DEPTH)), ("cpp", in_cpp), ("sleeper", sleeper),
           ("locker", locker), ("selecter", selecter), ("reader", reader)]
busy = [("zlib", zipper), ("hashlib", hasher)]
if os.environ.get("PYINSPECT_NATIVE_BUSY", "1") == "0":
    busy = []
threads = []


def start(workers):
    for name, fn in workers:
        t = threading.Thread(target=fn, name=name)
        t.daemon = True
        t.start()
        threads.append((name, t))


_park.open_channel()
_park.register()
c_only = _nativeext.start_c_thread()
start(blocked)
_park.wait_registered(len(blocked) + 1)
_park.wait_stable([t.ident for name, t in threads])
# The busy ones last: on 2.7 a thread that keeps the GIL slows everything else down.
start(busy)
_park.wait_registered(len(blocked) + len(busy) + 1)
_park.park(extra={"busy": [t.ident for name, t in threads if name in dict(busy)], "depth": DEPTH, "c_only": c_only})
