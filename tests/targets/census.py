# A heap with known contents. The target takes its own census (every object gc.get_objects()
# returns, and everything reachable from them through gc.get_referents(), counted by exact type
# with sys.getsizeof), drops everything the census allocated, and parks with the result.
import collections
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402
from _closure import closure, type_name  # noqa: E402

PY2 = sys.version_info[0] == 2


class ObjectA(object):
    def __init__(self, i):
        self.index = i
        self.label = "object-%d" % i


class Slotted(object):
    __slots__ = ("left", "right")

    def __init__(self, i):
        self.left = i * 1000003  # ints outside the small-int cache
        self.right = None


class WithDel(object):
    def __del__(self):
        pass


objects = [ObjectA(i) for i in range(2000)]
slotted = [Slotted(i) for i in range(1500)]
atomic_dicts = [{"a": i, "b": float(i)} for i in range(700)]          # untracked: atomics only
big_ints = [10 ** 40 + i for i in range(300)]
texts = [u"\u00e9t\u00e9 %d \u20ac \U0001f600" % i for i in range(400)]  # non-ASCII, three kinds
blobs = [b"\x00\x01" * (i + 1) for i in range(250)]
sets = [set(range(i % 20)) for i in range(200)]
deques = [collections.deque(range(i % 150)) for i in range(100)]
huge = "x" * (64 << 20)  # 64 MiB
if PY2:
    # The seed's leak: a cycle of objects with __del__ cannot be collected on 2.7 and ends up in
    # gc.garbage, forever.
    for i in range(50):
        a, b = WithDel(), WithDel()
        a.other, b.other = b, a
    del a, b
    gc.collect()


# Code objects are not GC containers: gc.get_referents(code) is empty, yet a code object keeps its
# constants, names and tables alive. Follow the attributes that are stored in the code object
# (not those computed on access, which would create objects as the census runs).
CODE_TYPE = type(type_name.__code__)
CODE_ATTRS = ["co_consts", "co_names", "co_filename", "co_name"]
if sys.version_info < (3, 11):
    CODE_ATTRS += ["co_varnames", "co_freevars", "co_cellvars", "co_code"]
if sys.version_info < (3, 10):
    CODE_ATTRS += ["co_lnotab"]
if sys.version_info >= (3, 10):
    CODE_ATTRS += ["co_linetable"]
if sys.version_info >= (3, 11):
    CODE_ATTRS += ["co_qualname", "co_exceptiontable"]


HEAPTYPE = 1 << 9


def referents(o):
    r = gc.get_referents(o)
    if type(o) is CODE_TYPE:
        r.extend(getattr(o, a) for a in CODE_ATTRS)
    elif isinstance(o, type):
        # Static types are not GC objects (nothing reports what they hold), and no type's
        # traverse reports its name: take what the attributes return without creating anything.
        if not gc.is_tracked(o):
            r.extend([o.__mro__, o.__bases__])
        if o.__flags__ & HEAPTYPE:
            r.extend([o.__name__, getattr(o, "__qualname__", o.__name__)])
    return r


def census():
    parent = {} if os.environ.get("PYINSPECT_CENSUS_IDS") else None
    seen = closure(referents, parent)
    by_type = {}
    total = 0
    for i, o in seen.items():
        k = type_name(type(o))
        s = sys.getsizeof(o)
        c = by_type.get(k)
        if c is None:
            by_type[k] = c = [0, 0]
        c[0] += 1
        c[1] += s
        total += s
    if os.environ.get("PYINSPECT_CENSUS_IDS"):  # diagnosis: every object's address and type
        with open(os.environ["PYINSPECT_CENSUS_IDS"], "w") as f:
            for i, o in seen.items():
                p = parent.get(i)
                f.write("%d %s <- %s %s\n" % (i, type_name(type(o)), type_name(type(p)) if p is not None else "root",
                                                  repr(p)[:80].replace("\n", " ") if p is not None else ""))
    out = {"objects": len(seen), "size": total, "by_type": by_type, "garbage": len(gc.garbage),
           "made": {"__main__.ObjectA": 2000, "__main__.Slotted": 1500}}
    del seen, o
    return out


def malloc_stats():
    """pymalloc's own account (sys._debugmallocstats writes it to fd 2), 3.3+."""
    if not hasattr(sys, "_debugmallocstats"):
        return None
    path = "/tmp/pyinspect-mallocstats-%d" % os.getpid()  # no tempfile: importing it adds objects
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    os.lseek(fd, 0, 0)
    text = os.read(fd, 1 << 20).decode("ascii", "replace")
    os.close(fd)
    os.unlink(path)
    out = {}
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, value = line.rsplit("=", 1)
        key = key.strip("# ").strip()
        if key in ("arenas allocated current", "bytes in allocated blocks", "bytes in available blocks"):
            out[key] = int(value.strip().replace(",", ""))
    return out


result = census()
gc.collect()
result["pymalloc"] = malloc_stats()
_park.open_channel()
_park.register()
_park.park(extra={"census": result})
