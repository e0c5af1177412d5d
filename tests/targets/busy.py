# One thread spins in pure Python and so holds the GIL; the others wait in C calls.
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

started = threading.Lock()
started.acquire()


def spin():
    _park.register(); started.release()
    while True: pass


def idle():
    _park.register(); time.sleep(1000000)


spinner = threading.Thread(target=spin, name="spinner")
spinner.daemon = True
sleeper = threading.Thread(target=idle, name="idler")
sleeper.daemon = True
_park.open_channel()
_park.register()
spinner.start()
sleeper.start()
started.acquire()
_park.wait_registered(3)
_park.wait_stable([spinner.ident, sleeper.ident])
if hasattr(sys, "setcheckinterval") and sys.version_info[0] == 2:
    # 2.7 hands the GIL around every N bytecodes, leaving it briefly unheld: make N huge so the
    # spinner keeps it once the main thread parks (the main thread runs on until it blocks).
    sys.setcheckinterval(1 << 30)
_park.park(gil_holder=spinner.ident)
