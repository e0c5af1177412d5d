# -*- coding: utf-8 -*-
# Known quantities of memory, and the target's own account of them, for `pyinspect memory`:
# a 300 MiB bytearray and an array.array (and a numpy array where numpy is installed): buffers
# objects own; ~1M small objects with every other one freed again: holes pymalloc keeps;
# 300 blocks of 100 KiB from malloc, touched and freed below one that stays: free memory glibc
# keeps inside its heap; 60 blocks of 100 KiB that stay allocated and no object points to;
# two threads. The target reports sys.getsizeof of what it built and of every object it can
# reach (gc), sys._debugmallocstats(), glibc's mallinfo2(), and /proc/self/smaps.
import array, ctypes, gc, os, re, sys, tempfile, threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402
from _closure import closure  # noqa: E402

MiB = 1 << 20
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

# Buffers objects own (touched, so that they are resident).
big = bytearray(b'\x01') * (300 * MiB)
arr = array.array('b', b'\x02') * (8 * MiB)
buffers = {"bytearray": big.__alloc__(), "array": arr.buffer_info()[1] * arr.itemsize}
try:
    import numpy
    nd = numpy.ones((10, 1000, 1000))  # 80 MB of float64, owned by the array
    buffers["ndarray"] = int(nd.nbytes)
    ndarray_sizeof = sys.getsizeof(nd)
except ImportError:
    nd = None
    ndarray_sizeof = None


class Small(object):
    __slots__ = ()


# pymalloc: 1M small objects, every other one freed: the holes stay in their pools.
smalls = [Small() for _ in range(1000000)]
del smalls[::2]

# Every object (taken before the malloc blocks below: its own memory, freed again, must not
# fill the holes they leave) the target can reach, as sys.getsizeof counts it.
seen = closure()
object_bytes = sum(sys.getsizeof(o) for o in seen.values())
object_count = len(seen)
del seen
gc.collect()

# glibc: 300 blocks of 100 KiB (below the mmap threshold: inside the heap), touched, then freed
# under one block that stays: the freed memory cannot go back to the top chunk.
BLOCK = 100 * 1024
freed = [libc.malloc(BLOCK) for _ in range(300)]
fence = libc.malloc(BLOCK)
# Allocated by C and kept (before the others are freed, so that they do not take their place),
# pointed to by no Python object: their addresses are kept as the digits of ints, not as pointers.
kept = [libc.malloc(BLOCK) for _ in range(60)]
for b in freed + kept + [fence]:
    ctypes.memset(b, 3, BLOCK)
for b in freed:
    libc.free(b)
unowned_expected = 61 * BLOCK  # with the fence


# Threads, each reporting the stack glibc gave it.
class Attr(ctypes.Structure):
    _fields_ = [("raw", ctypes.c_char * 64)]


def my_stack():
    attr = Attr()
    addr, size = ctypes.c_void_p(), ctypes.c_size_t()
    if libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), ctypes.byref(attr)) != 0:
        return None
    libc.pthread_attr_getstack(ctypes.byref(attr), ctypes.byref(addr), ctypes.byref(size))
    libc.pthread_attr_destroy(ctypes.byref(attr))
    return [addr.value, addr.value + size.value]


libc.pthread_self.restype = ctypes.c_ulong
stacks = []
ready = threading.Event()
stop = threading.Event()


def worker():
    stacks.append(my_stack())
    _park.register()
    ready.set()
    stop.wait()


threads = [threading.Thread(target=worker) for _ in range(2)]
for t in threads:
    ready.clear()
    t.start()
    ready.wait()



def debugmallocstats():
    """pymalloc's own figures (3.3+): bytes in available blocks, bytes in unused pools."""
    if not hasattr(sys, "_debugmallocstats"):
        return None
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode("utf-8", "replace")
    out = {}
    m = re.search(r"# bytes in available blocks\s*=\s*([\d,]+)", text)
    if m:
        out["available_blocks"] = int(m.group(1).replace(",", ""))
    # "53 unused pools * 16384 bytes = 868,352" (a line left out when no pool is unused)
    m = re.search(r"(\d+) unused pools \* (\d+) bytes\s*=\s*([\d,]+)", text)
    out["unused_pools"] = int(m.group(3).replace(",", "")) if m else 0
    m = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)
    if m:
        out["arenas"] = int(m.group(1).replace(",", ""))
    return out or None


def mallinfo2():
    if not hasattr(libc, "mallinfo2"):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc.mallinfo2.restype = MallInfo2
    m = libc.mallinfo2()
    return dict((n, getattr(m, n)) for n, _ in MallInfo2._fields_)


def smaps(thread_stacks):
    rss = files = stack = 0
    cur = None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = re.match(r"([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
            if head:
                cur = (int(head.group(1), 16), int(head.group(2), 16), head.group(3))
                continue
            if line.startswith("Rss:"):
                kb = int(line.split()[1]) * 1024
                rss += kb
                if cur[2].startswith("/"):
                    files += kb
                elif cur[2] == "[stack]" or any(s and s[0] < cur[1] and cur[0] < s[1] for s in thread_stacks):
                    stack += kb
    return {"rss": rss, "files": files, "stacks": stack}


extra = {
    "buffers": buffers,
    "ndarray_sizeof": ndarray_sizeof,
    "object_bytes": object_bytes,
    "object_count": object_count,
    "unowned_expected": unowned_expected,
    "freed_bytes": 300 * BLOCK,
    "stacks": stacks,
}
_park.open_channel()
_park.register()
# Last, so that they describe the memory as it is when parked.
extra["smaps"] = smaps(stacks)
extra["mallinfo2"] = mallinfo2()
extra["pymalloc"] = debugmallocstats()
_park.park(extra=extra)
