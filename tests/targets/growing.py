# The seed's second leak: a string that grows without end (here by 100 KiB every 20 ms).
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

log = [""]


def grow():
    while True:
        log[0] += "x" * (100 << 10)
        time.sleep(0.02)


t = threading.Thread(target=grow, name="grower")
t.daemon = True
t.start()
_park.open_channel()
_park.park()
