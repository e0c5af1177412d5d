# A process that crashes inside a C call, for core-file tests (Python 2.7 and 3.x alike).
#   crash.py abort: the main thread calls os.abort() (SIGABRT, raised by C code);
#   crash.py segv:  a thread named "crasher" copies from address 0 with ctypes.memmove, a C
#                   function called directly (SIGSEGV).
# Before it crashes it sends its own view of the crashing thread's frames (and of a bystander
# thread's, asleep) through the FIFO, then waits for the harness to create "go" next to the FIFO;
# the frame that crashes is on the line of that report, so the report names the crashing line.
import ctypes
import json
import os
import resource
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

fifo = os.environ["PYINSPECT_TEST_FIFO"]
go = os.path.join(os.path.dirname(fifo), "go")
soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def send_report():
    frames = sys._current_frames()
    others = []
    reg = _park.registered()
    names = dict((t.ident, t.name) for t in threading.enumerate())
    for i, f in frames.items():
        if i == bystander_ident[0]:  # settled; the main thread of segv may still be on its way to join()
            others.append({"ident": i, "native_id": reg.get(i), "name": names.get(i), "frames": _park.frames_of(f)})
    data = {"pid": os.getpid(), "version": "%d.%d.%d" % sys.version_info[:3], "mode": sys.argv[1],
            "crash_native_id": _park.native_id(), "crash_name": threading.current_thread().name,
            "crash_frames": _park.frames_of(sys._getframe(1)), "threads": others, "gil_holder": None,
            "core_limit": resource.getrlimit(resource.RLIMIT_CORE)[0], "extra": {}}
    fd = os.open(fifo, os.O_WRONLY)
    os.write(fd, (json.dumps(data) + "\n").encode("utf-8"))
    os.close(fd)


def wait_go():
    while not os.path.exists(go):
        time.sleep(0.01)


def abort_in_c():
    send_report(); wait_go(); os.abort()


buf = ctypes.create_string_buffer(1)


def segfault_in_c():
    _park.register(); send_report(); wait_go(); ctypes.memmove(buf, 0, 1)


def bystander():
    _park.register(); time.sleep(1000000)


b = threading.Thread(target=bystander, name="bystander")
b.daemon = True
b.start()
bystander_ident = [b.ident]
_park.register()
_park.wait_registered(2)
_park.wait_stable([b.ident])
if sys.argv[1] == "abort":
    abort_in_c()
else:
    t = threading.Thread(target=segfault_in_c, name="crasher")
    t.start()
    t.join()
