# A heap as a real program leaves it: some thirty standard-library modules imported, four of
# CPython's own test modules run in-process (test_json, test_difflib, test_pprint,
# test_fractions), ctypes, decimal contexts, struct formats, deques of ints and floats that exist
# nowhere else. Then the classic in-process census, as guppy or objgraph would take it: every
# object gc.get_objects() returns and the closure over gc.get_referents(), typed by
# __module__.__qualname__ and sized by sys.getsizeof. Every object goes to a file, one line each
# ("id size type").
import gc
import os
import sys
import weakref

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402
from _closure import closure, type_name  # noqa: E402

PY2 = sys.version_info[0] == 2
MODULES = ["argparse", "array", "base64", "bisect", "collections", "copy", "csv", "ctypes", "datetime",
           "decimal", "difflib", "email.message", "fractions", "functools", "hashlib", "heapq", "io",
           "itertools", "json", "logging", "operator", "pickle", "pprint", "random", "re", "socket",
           "string", "struct", "textwrap", "threading", "unittest", "urllib", "weakref", "xml.etree.ElementTree",
           "zlib"]
if not PY2:
    MODULES += ["asyncio", "contextvars", "dataclasses", "enum", "pathlib", "statistics", "typing"]
imported = []
for name in MODULES:
    try:
        __import__(name)
        imported.append(name)
    except ImportError:
        pass


def iter_tests(suite):
    for t in suite:
        if hasattr(t, "__iter__"):
            for u in iter_tests(t):
                yield u
        else:
            yield t


def run_tests():
    import unittest
    try:
        from StringIO import StringIO  # 2.7: text in str; io.StringIO wants unicode
    except ImportError:
        from io import StringIO
    out = StringIO()
    loader = unittest.TestLoader()
    results = {}
    for name in ("test.test_json", "test.test_difflib", "test.test_pprint", "test.test_fractions"):
        __import__(name)
        # Their deepest recursion tests are left out: run below this script's own frames, they
        # can overflow the C stack of some versions (3.8).
        module = sys.modules[name]
        if name == "test.test_json" and PY2:
            import json.tests  # 2.7 keeps these tests in json.tests
            found = json.tests.test_suite()
        else:
            found = loader.loadTestsFromModule(module)
        suite = unittest.TestSuite(t for t in iter_tests(found) if "recursion" not in t.id())
        r = unittest.TextTestRunner(stream=out, verbosity=0).run(suite)
        results[name] = r.testsRun
    return results


tests_run = run_tests()

import collections  # noqa: E402
import ctypes  # noqa: E402
import decimal  # noqa: E402
import struct  # noqa: E402

# What an earlier version of pyinspect missed: a deque's items that nothing else holds (2.7), a
# thread's decimal context, ctypes types and function pointers, compiled struct formats.
deque_ints = collections.deque(range(10 ** 6, 10 ** 6 + 20000))
deque_floats = collections.deque(float(i) + 0.5 for i in range(5000))
decimal.getcontext().prec = 40
local_context = decimal.Context(prec=12)
formats = [struct.Struct(f) for f in ("i", "ii", "10s", "<hq", "i10si", "3x2i")]
memmove_like = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]


points = (Point * 4)()
try:
    import contextvars  # 3.7+
    request_id = contextvars.ContextVar("request_id")
    request_id.set("r-4242")
except ImportError:
    pass


def census(path):
    seen = closure()
    f = open(path, "w")
    dead = open(path + ".dead", "w")
    for i, o in seen.items():
        f.write("%x %d %s\n" % (i, sys.getsizeof(o), type_name(type(o))))
        # A weakref whose object is gone and that only this census still holds (2.7 keeps some
        # briefly) is freed with the census's lists: noted, so the harness knows.
        if type(o) is weakref.ref and o() is None and sys.getrefcount(o) <= 5:
            dead.write("%x\n" % i)
    dead.close()
    f.close()
    del seen, o


# The report goes first (its line is short enough for the pipe: the write returns), then the
# census; the listing's rename tells the harness the census is done, and the target then waits in
# a read that never returns, running no Python code while pyinspect takes its own census: both
# see the same heap.
_park.open_channel()
_park.register()
listing = os.path.join(os.path.dirname(os.environ["PYINSPECT_TEST_FIFO"]), "census.txt")
line = _park.report(sys._current_frames(), None, {"listing": listing, "imported": imported, "tests_run": tests_run})
os.write(_park._fd[0], line[:line.index(b"\n") + 1])
never_r, never_w = os.pipe()
census(listing + ".tmp")
os.rename(listing + ".tmp", listing)
os.read(never_r, 1)
