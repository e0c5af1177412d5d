# Structures whose retained sizes are known by construction, for `pyinspect heap --retained` and
# the retained size `refs --address` prints (Python 2.7 and 3.x alike):
#
# - CACHE, a module global: a dict of 20000 fresh str keys, each to a list of a fresh 240-character
#   str and a fresh float. Nothing else refers to any of them, so CACHE retains exactly itself and
#   them, and (about two thirds of the heap) is a leak suspect.
# - PAIR, a module global: a list of two Holder objects (__slots__, so no dict on any version), each
#   with a list of its own 50 strings, and both holding the one SHARED string (400 kB), which no
#   global names. Neither holder retains SHARED; PAIR, their nearest common dominator, does.
#
# The target checks the construction itself: every object of those structures is referred to only
# from inside them, once (SHARED: twice), by sys.getrefcount against a control object held the same
# way. It reports the sys.getsizeof sums and counts, and the ids, then parks.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

ENTRIES = 20000


class Holder(object):
    __slots__ = ("shared", "own")

    def __init__(self, shared, own):
        self.shared = shared
        self.own = own


def build_cache():
    cache = {}
    for i in range(ENTRIES):
        cache["k%07d" % i] = [("p%07d" % i) * 30, float(i) + 0.5]
    return cache


def build_pair():
    shared = "shared-%d" % os.getpid() * 40000
    return [Holder(shared, ["h%d-%04d" % (k, i) * 20 for i in range(50)]) for k in (1, 2)]


CACHE = build_cache()
PAIR = build_pair()


def refcounts(objs):
    return [sys.getrefcount(o) for o in objs]


def check_held_once(members, problems, what):
    """Every object of `members` (a list that holds each once) is referred to once from its
    structure: its refcount is that of a control object held once the same way."""
    box = [object()]
    control = refcounts(list(box))[0]
    for o, n in zip(members, refcounts(members)):
        if n != control:
            problems.append("%s: a %s has %d references, a control object held once %d" % (
                what, type(o).__name__, n, control))
            return


def total(objs):
    return {"size": sum(sys.getsizeof(o) for o in objs), "count": len(objs)}


def cache_members():
    members = [CACHE]
    for k in CACHE:
        members.append(k)
        members.append(CACHE[k])
        members.extend(CACHE[k])
    return members


def holder_members(h):
    return [h, h.own] + h.own


def pair_members():
    """PAIR and what it holds, but SHARED (held twice)."""
    members = [PAIR]
    for h in PAIR:
        members.extend(holder_members(h))
    return members


def measure():
    problems = []
    members = cache_members()
    check_held_once(members, problems, "CACHE")
    cache = total(members)
    members = pair_members()
    check_held_once(members, problems, "PAIR")
    members.append(PAIR[0].shared)
    pair = total(members)
    del members
    # SHARED: held by both holders, as a control object held twice is.
    box = [object()]
    box.append(box[0])
    if PAIR[1].shared is not PAIR[0].shared:
        problems.append("the holders do not share one object")
    if sys.getrefcount(PAIR[0].shared) != sys.getrefcount(box[0]):
        problems.append("SHARED has %d references, a control object held twice %d" % (
            sys.getrefcount(PAIR[0].shared), sys.getrefcount(box[0])))
    return {
        "cache": dict(cache, id=id(CACHE), own=sys.getsizeof(CACHE), items=len(CACHE)),
        "pair": dict(pair, id=id(PAIR)),
        "h1": dict(total(holder_members(PAIR[0])), id=id(PAIR[0])),
        "h2": dict(total(holder_members(PAIR[1])), id=id(PAIR[1])),
        "shared": dict(total([PAIR[0].shared]), id=id(PAIR[0].shared)),
        "problems": problems,
    }


extra = measure()
_park.open_channel()
_park.park(extra=extra)
