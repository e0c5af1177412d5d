# Three threads that only run Python code (no call that blocks): while one holds the GIL, any of
# the others the kernel has asleep can only be waiting for the GIL. The main thread parks (see
# _park.py) without the GIL.
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402


def spin():
    _park.register()
    n = 0
    while True:
        n = (n * 31 + 7) % 1000003


threads = [threading.Thread(target=spin, name="spin-%d" % i) for i in range(3)]
_park.open_channel()
for t in threads:
    t.daemon = True
    t.start()
_park.register()
_park.wait_registered(len(threads) + 1)
_park.park(extra={"spinners": ["spin-%d" % i for i in range(3)]})
