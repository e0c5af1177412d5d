# Benchmark target for bench/bigbuf_bench.py: GIB gibibytes of data buffers (bytearrays of
# 64 MiB, or numpy arrays of 400 MB, np.ones((50, 1000, 1000))) next to about MILLIONS million
# small objects of the usual kinds, then its own census of the objects:
#   bigbuf_target.py GIB MILLIONS bytearray|numpy
#   -> "ready <pid> <rss> <buffer bytes> <objects> <getsizeof total>"
# The census is the in-process one (gc.get_objects(), closure over gc.get_referents(),
# sys.getsizeof), taken once the heap is built; then the target waits on stdin.
import gc
import os
import sys

GIB, MILLIONS, KIND = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]


class Record(object):
    __slots__ = ("key", "value", "tags")

    def __init__(self, key, value, tags):
        self.key, self.value, self.tags = key, value, tags


class Node(object):
    def __init__(self, name, payload):
        self.name = name
        self.payload = payload


total = int(GIB * (1 << 30))
buffers = []
if KIND == "numpy":
    import numpy
    size = 50 * 1000 * 1000 * 8
    for _ in range(max(1, total // size)):
        buffers.append(numpy.ones((50, 1000, 1000)))
    data = sum(b.nbytes for b in buffers)
else:
    size = 64 << 20
    for _ in range(max(1, total // size)):
        buffers.append(bytearray(b"\xa5") * size)
    data = sum(len(b) for b in buffers)

n = int(MILLIONS * 1000000 / 10)  # about 10 objects a unit, as bench/heap_target.py
records = [Record("key-%d" % i, 10 ** 6 + i, (i, "t")) for i in range(n)]
nodes = [Node("node-%d" % i, [float(i), float(-i)]) for i in range(n)]
gc.collect()

roots = gc.get_objects()
seen = {}
stack = list(roots)
skip = set([id(roots), id(stack), id(seen), id(sys._getframe())])
while stack:
    o = stack.pop()
    i = id(o)
    if i in seen or i in skip:
        continue
    seen[i] = o
    stack.extend(gc.get_referents(o))
objects = len(seen)
size_total = sum(sys.getsizeof(o) for o in seen.values())
del roots, seen, stack, skip, o
gc.collect()

rss = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
sys.stdout.write("ready %d %d %d %d %d\n" % (os.getpid(), rss, data, objects, size_total))
sys.stdout.flush()
sys.stdin.readline()
