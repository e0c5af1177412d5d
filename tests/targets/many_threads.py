# Many threads at once, each a few frames deep, with distinct names.
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

COUNT = 60
held = threading.Lock()
held.acquire()


def level(n):
    if n == 0:
        _park.register(); held.acquire()
    else:
        level(n - 1)


threads = []
for i in range(COUNT):
    t = threading.Thread(target=level, args=(i % 7,), name="pool-%02d" % i)
    t.daemon = True
    t.start()
    threads.append(t)
_park.open_channel()
_park.register()
_park.wait_registered(COUNT + 1)
_park.wait_stable([t.ident for t in threads])
_park.park()
