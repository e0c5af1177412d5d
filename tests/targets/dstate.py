# A thread that sits in uninterruptible sleep (D) inside a C call (targets/_vfork_hold.c, built by
# the test and named in argv[1]): the pause cannot stop it, and must not wait for it.
import ctypes
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

lib = ctypes.CDLL(sys.argv[1])


def held():
    _park.register()
    lib.hold_in_vfork(600)


worker = threading.Thread(target=held, name="in-vfork")
worker.daemon = True
worker.start()
_park.register()
_park.wait_registered(2)
_park.wait_stable([worker.ident])
_park.park()
