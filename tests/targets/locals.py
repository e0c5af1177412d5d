# -*- coding: utf-8 -*-
# A thread blocked in a function whose arguments and locals the target chose; the report says,
# for each, its type (module.qualname for classes defined here), Python's own repr, its first
# items for containers and its address (id), as the target sees them (f_locals). Then the main
# thread parks (see _park.py).
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

PY2 = sys.version_info[0] == 2
held = threading.Lock()
held.acquire()


class Worker(object):
    def __init__(self):
        self.name = "w1"
        self.count = 3


def hold(a, b=2.5, *args, **kw):
    text = "hello 'quoted'"
    long_text = "x" * 500
    number = 42
    negative = -7
    ratio = 0.1
    whole = 3.0
    flag = True
    nothing = None
    items = list(range(10))
    pair = (1, "two")
    single = (5,)
    table = {"k": 1, "j": 2}
    worker = Worker()
    data = b"ab\x00" if not PY2 else "ab"
    accent = u"caf\u00e9"
    raw = b"caf\xc3\xa9\xff"  # 2.7: a str of bytes past ASCII
    huge = 1e16
    hundred_k = 100000.0
    tiny = 0.0001
    tinier = 1e-05
    long_float = 1.2345678901234568e+17
    minus = -2.5

    def inner():
        return a
    _park.register()
    held.acquire()


t = _park.start_one(hold, "holder", args=(1, 2.5, 3), kwargs={"z": 1})


def describe(v):
    cls = type(v)
    name = cls.__name__ if cls.__module__ in ("builtins", "__builtin__") else cls.__module__ + "." + getattr(
        cls, "__qualname__", cls.__name__)
    d = {"type": name, "repr": repr(v), "id": id(v)}
    if isinstance(v, (list, tuple)):
        d["items"] = [repr(x) for x in v]
    if isinstance(v, dict):
        d["items"] = ["%r: %r" % kv for kv in v.items()]
    if isinstance(v, Worker):
        d["attrs"] = ["%s=%r" % kv for kv in sorted(v.__dict__.items())]
    return d


frame = sys._current_frames()[t.ident]
while frame.f_code.co_name != "hold":
    frame = frame.f_back
values = dict((k, describe(v)) for k, v in frame.f_locals.items())
_park.park(extra={"locals": values, "ident": t.ident})
