# Benchmark target: about N million live objects of the usual kinds, then, on request, the
# target's own census of them (the in-process way: gc.get_objects(), closure over
# gc.get_referents(), sys.getsizeof), timed. Protocol on stdin/stdout:
#   -> "ready <pid> <objects made>"      after building the heap
#   <- "census\n"                          -> "census <seconds> <objects> <bytes>"
import gc
import sys
import time

MILLIONS = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0


class Record(object):
    __slots__ = ("key", "value", "tags")

    def __init__(self, key, value, tags):
        self.key, self.value, self.tags = key, value, tags


class Node(object):
    def __init__(self, name, payload):
        self.name = name
        self.payload = payload


n = int(MILLIONS * 1000000 / 10)
# Per unit: a Record (1), its str key (1), its int value (1), its tags tuple (1), a Node (1),
# its name str (1), its payload list (1), two floats in the list (2), and the Node's dict where
# the version has one (1) -- about 10 objects.
records = [Record("key-%d" % i, 10 ** 6 + i, (i, "t")) for i in range(n)]
nodes = [Node("node-%d" % i, [float(i), float(-i)]) for i in range(n)]
gc.collect()
sys.stdout.write("ready %d %d\n" % (__import__("os").getpid(), n * 10))
sys.stdout.flush()

while True:
    line = sys.stdin.readline()  # not `for line in sys.stdin`: 2.7 reads ahead and would wait
    if not line:
        break
    if line.strip() != "census":
        continue
    t0 = time.time()
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
    total = 0
    by_type = {}
    for o in seen.values():
        s = sys.getsizeof(o)
        total += s
        k = type(o)
        by_type[k] = by_type.get(k, 0) + 1
    dt = time.time() - t0
    count = len(seen)
    del roots, seen, stack, skip, o, by_type
    gc.collect()
    sys.stdout.write("census %f %d %d\n" % (dt, count, total))
    sys.stdout.flush()
