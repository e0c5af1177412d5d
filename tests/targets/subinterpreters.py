# A second interpreter, running code that blocks one thread. The code inside reports its own
# frames (as its interpreter sees them) to a file before blocking on the same line.
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

report_path = os.path.join(tempfile.mkdtemp(prefix="pyinspect-sub-"), "sub.json")
SUB_CODE = """
import json, sys, time
def frames(f):
    out = []
    while f is not None:
        co = f.f_code
        out.append({"function": getattr(co, "co_qualname", co.co_name), "name": co.co_name,
                    "file": co.co_filename, "line": f.f_lineno})
        f = f.f_back
    return out
def park():
    out = open(%r + ".tmp", "w"); out.write(json.dumps(frames(sys._getframe()))); out.close(); __import__("os").rename(%r + ".tmp", %r); time.sleep(1000000)
park()
""" % (report_path, report_path, report_path)


def run_sub():
    _park.register()
    try:
        import _interpreters as api  # 3.13
    except ImportError:
        try:
            import _xxsubinterpreters as api  # 3.8-3.12
        except ImportError:
            api = None
    if api is not None:
        api.run_string(api.create(), SUB_CODE)
    else:
        import _testcapi  # 3.6-3.7
        _testcapi.run_in_subinterp(SUB_CODE)


t = threading.Thread(target=run_sub, name="sub-runner")
t.daemon = True
t.start()
_park.open_channel()
_park.register()
_park.wait_registered(2)
deadline = time.time() + 60
while not os.path.exists(report_path):
    if time.time() > deadline:
        raise RuntimeError("subinterpreter did not report")
    time.sleep(0.005)
with open(report_path) as f:
    sub_frames = json.load(f)
_park.wait_stable([t.ident])
_park.park(extra={"subinterpreter_frames": sub_frames, "runner": t.ident})
