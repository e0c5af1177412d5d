# A heap that is mostly data buffers: 300 MiB of bytearrays and a 40 MiB bytes object (each in
# a mapping of its own, above any malloc mmap threshold), next to objects whose only reference is
# a big list (its item array, 4.3 million pointers, also a mapping of its own) and a dict. The
# target takes its own census (as census.py does) and reports it with what it built and its RSS.
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402
from _closure import closure, type_name  # noqa: E402


class Item(object):
    __slots__ = ("index",)

    def __init__(self, i):
        self.index = i


BUFFER = 50 << 20  # above glibc's largest dynamic mmap threshold (32 MiB)
buffers = [bytearray(b"\xa5") * BUFFER for _ in range(6)]
blob = b"\x5a" * (40 << 20)  # the object itself, header and all, in its own mapping
# Items held by nothing but the list: 100000 of them, each 43 times, so that the item array
# (4.3 million pointers, 34 MiB) is an mmapped chunk too. Objects found only through it show
# that it was copied, not taken for data.
items = [Item(i) for i in range(100000)] * 43
table = dict((i, float(i)) for i in range(50000))


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def census():
    seen = closure()
    by_type = {}
    total = 0
    for o in seen.values():
        k = type_name(type(o))
        s = sys.getsizeof(o)
        c = by_type.get(k)
        if c is None:
            by_type[k] = c = [0, 0]
        c[0] += 1
        c[1] += s
        total += s
    out = {"objects": len(seen), "size": total, "by_type": by_type}
    del seen
    return out


result = census()
gc.collect()
result.update({
    "buffer_bytes": sum(len(b) for b in buffers) + len(blob),
    "items": 100000, "item_kind": type_name(Item),
    "list_size": sys.getsizeof(items), "blob_size": sys.getsizeof(blob), "blob_kind": type_name(type(blob)),
    "rss": rss(),
})
_park.open_channel()
_park.register()
_park.park(extra={"census": result})
