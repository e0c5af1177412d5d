# Objects with known reference graphs, for `pyinspect refs` (Python 2.7 and 3.x alike).
#
# - The seed's leak: ObjectA <-> ObjectB, both with __del__. On 2.7, gc.collect() cannot free the
#   cycle and keeps it in gc.garbage forever; on 3.4+ (PEP 442) it would be freed, so there the
#   collector is disabled first and the cycle stays in memory, unreachable and uncollected.
# - A chain from a module global: REGISTRY (a Registry) -> its items list -> the Leaf at [3].
# - A closure (make_counter's inner function and its cell), a bound method (BOUND), and a list of
#   1000 Item objects (BIG), whose referents must collapse.
#
# The target answers for itself before parking: for each object of interest, its id, type,
# gc.get_referents and gc.get_referrers (ids), and the shortest backward chain to a module found
# by a breadth-first walk over gc.get_referrers (what objgraph.find_backref_chain does).
import gc
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402


class ObjectA(object):
    def __init__(self):
        self.b = None

    def __del__(self):
        pass


class ObjectB(object):
    def __init__(self, a):
        self.a = a

    def __del__(self):
        pass


def leak():
    a = ObjectA()
    b = ObjectB(a)
    a.b = b


if sys.version_info[0] >= 3:
    gc.disable()
leak()
if sys.version_info[0] == 2:
    gc.collect()


class Leaf(object):
    def __init__(self, n):
        self.n = n


class Registry(object):
    def __init__(self):
        self.items = []


REGISTRY = Registry()
REGISTRY.items.extend(Leaf(i) for i in range(5))


def make_counter():
    total = [0]

    def counter():
        total[0] += 1
        return total[0]
    return counter


class Service(object):
    def handle(self):
        return self


class Item(object):
    pass


COUNTER = make_counter()
SERVICE = Service()
BOUND = SERVICE.handle
BIG = [Item() for _ in range(1000)]


def backref_chain(obj, ignore):
    """The shortest chain from a module to obj, module first (breadth first over referrers)."""
    parent = {id(obj): None}
    queue = [obj]
    keep = []
    while queue:
        nxt = []
        for o in queue:
            if isinstance(o, types.ModuleType):
                chain = []
                while o is not None:
                    chain.append(o)
                    o = parent[id(o)]
                return chain
            for r in gc.get_referrers(o):
                if id(r) in parent or id(r) in ignore or isinstance(r, types.FrameType):
                    continue
                parent[id(r)] = o
                keep.append(r)
                nxt.append(r)
        ignore.add(id(nxt))
        queue = nxt
    return None


def describe(obj, ignore):
    referents = gc.get_referents(obj)
    str_keys = []
    if type(obj) is dict:
        str_keys = [id(k) for k in obj if isinstance(k, str)]
    return {
        "id": id(obj),
        "type": type(obj).__name__,
        "referents": [id(r) for r in referents],
        "referent_types": [type(r).__name__ for r in referents],
        "str_keys": str_keys,
        "referrers": [id(r) for r in gc.get_referrers(obj)
                      if id(r) not in ignore and not isinstance(r, types.FrameType)],
    }


def main():
    found = [o for o in gc.get_objects() if isinstance(o, (ObjectA, ObjectB))]
    in_garbage = [id(o) for o in gc.garbage if isinstance(o, (ObjectA, ObjectB))]
    leaf = REGISTRY.items[3]
    objs = {
        "a": [o for o in found if isinstance(o, ObjectA)][0],
        "b": [o for o in found if isinstance(o, ObjectB)][0],
        "leaf": leaf,
        "registry": REGISTRY,
        "items": REGISTRY.items,
        "counter": COUNTER,
        "bound": BOUND,
        "service": SERVICE,
        "big": BIG,
        "cell": COUNTER.__closure__[0],
    }
    del found
    for name in ("a", "b", "registry", "service"):
        if sys.version_info[:2] < (3, 11):  # 3.11+: reading __dict__ would make the dict
            objs[name + ".__dict__"] = objs[name].__dict__
    values = list(objs.values())
    ignore = set([id(objs), id(values), id(sys._getframe())])
    chain_ignore = set(ignore)
    chain = backref_chain(leaf, chain_ignore)
    described = {}
    ignore |= chain_ignore
    for k in sorted(objs):  # (iterating items() would make referrers: the (key, value) tuples)
        described[k] = describe(objs[k], ignore)
    extra = {
        "objects": described,
        "ignore": sorted(ignore),
        "chain": [{"id": id(o), "type": type(o).__name__} for o in chain],
        "garbage": in_garbage,
        "big_ids": [id(o) for o in BIG],
    }
    # From here on only gc.garbage (2.7) holds the cycle: it is unreachable garbage.
    for k in ("a", "b", "a.__dict__", "b.__dict__"):
        objs.pop(k, None)
    del values[:]
    _park.open_channel()
    _park.park(extra=extra)


main()
