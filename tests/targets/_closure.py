# The in-process census the targets take, as guppy or objgraph would: every object
# gc.get_objects() returns and everything reachable from them, typed by __module__.__qualname__.
import gc
import sys

PY2 = sys.version_info[0] == 2


def type_name(t):
    module = getattr(t, "__module__", None) or ("__builtin__" if PY2 else "builtins")
    name = getattr(t, "__qualname__", None) or t.__name__
    return name if module in ("builtins", "__builtin__") else "%s.%s" % (module, name)


def closure(referents=gc.get_referents, parents=None):
    """id -> object for every object reachable from gc.get_objects() through `referents`. The
    census's own containers and frames (this one and its caller's) are not part of the heap being
    measured. With `parents` (a dict), each object's id is mapped to the first object seen
    referring to it."""
    gc.collect()
    seen = {}
    roots = gc.get_objects()
    stack = list(roots)
    own = set([id(roots), id(stack), id(seen), id(sys._getframe()), id(sys._getframe(1))])
    if parents is not None:
        own.add(id(parents))
    own.add(id(own))
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen or i in own:
            continue
        seen[i] = o
        r = referents(o)
        if parents is not None:
            for x in r:
                parents.setdefault(id(x), o)
        stack.extend(r)
    del stack, roots, o
    return seen
