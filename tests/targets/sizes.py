# -*- coding: utf-8 -*-
# One object of every kind heap/sizes.cpp treats apart (strings with and without their caches,
# split and combined dicts, type objects, code with co_extra or an opcache, live frames,
# generators...), each reported with sys.getsizeof(): the sizes pyinspect must give them.
import array, collections, ctypes, gc, json, os, sys, time, weakref

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

V = sys.version_info[:2]
probes = []
def probe(label, obj):
    probes.append((label, obj))
    return obj

class C(object):
    pass
class K(object):
    def method(self):
        pass
class S(object):
    __slots__ = ('a',)
class W(object):
    __slots__ = ('a', '__weakref__')
class E(object):
    __slots__ = ()
class M(type):
    pass
class WithSizeof(list):
    def __sizeof__(self):
        return 1000
class ListSub(list):
    pass
class DictSub(dict):
    pass
class StrSub(type(u'')):
    pass
class IntSub(int):
    pass
class ArraySub(array.array):
    pass
class Exc(ValueError):
    pass

c = probe('instance with dict', C()); c.a = 1; c.b = 2
probe('instance __dict__', c.__dict__)
probe('instance (no attributes)', C())
probe('slots instance', S())
probe('slots+weakref instance', W())
probe('empty slots instance', E())
probe('class C', C)
probe('class S', S)
probe('metaclass instance', M('X', (object,), {}))
probe('metaclass', M)
probe('static type int', int)
probe('static type type', type)
probe('python __sizeof__ (unknown)', WithSizeof([1, 2]))
probe('list subclass', ListSub([1, 2, 3]))
probe('dict subclass', DictSub(a=1))
probe('int subclass', IntSub(5))
probe('str subclass', StrSub(u'ab'))
probe('str subclass non-ASCII', StrSub(u'\u20ac\u20ac'))

for n in (0, 1, 2 ** 30, 2 ** 62, -5, 10 ** 40):
    probe('int %r' % n, n)
probe('True', True)
probe('False', False)
probe('float', float('1.5'))
probe('complex', complex(1, 2))
probe('None', None)
probe('object()', object())

probe("str ''", u'')
probe("str 'a'", u'a')
probe('str ascii', u''.join(['abc', 'def']))
probe('str latin-1', u''.join([u'\xe9', u't\xe9']))
probe('str ucs2', u''.join([u'\u20ac', u'x']))
probe('str ucs4', u''.join([u'\U0001f600', u'x']))
if V[0] == 3:
    u8 = probe('str latin-1 with utf8', u''.join([u'\xe9', u'x']))
    ctypes.pythonapi.PyUnicode_AsUTF8.restype = ctypes.c_void_p
    ctypes.pythonapi.PyUnicode_AsUTF8.argtypes = [ctypes.py_object]
    ctypes.pythonapi.PyUnicode_AsUTF8(u8)
    if V <= (3, 11):
        w = probe('str ascii with wstr', u''.join(['w', 'str']))
        ctypes.pythonapi.PyUnicode_AsUnicode.restype = ctypes.c_void_p
        ctypes.pythonapi.PyUnicode_AsUnicode.argtypes = [ctypes.py_object]
        ctypes.pythonapi.PyUnicode_AsUnicode(w)
probe('bytes', b''.join([b'ab', b'c']))
probe('bytes empty', b'')
probe('bytearray', bytearray(b'abc'))
probe('bytearray empty', bytearray())
probe('tuple', (1, 2, c))
probe('list', [1, 2, 3])
probe('list grown', list(range(100)))
probe('dict empty', {})
probe('dict str keys', {'a': 1})
probe('dict int keys', {1: 2})
probe('dict large', dict((i, i) for i in range(300)))
probe('OrderedDict empty', collections.OrderedDict())
probe('OrderedDict', collections.OrderedDict(a=1, b=2))
probe('defaultdict', collections.defaultdict(list, a=[1]))
probe('Counter', collections.Counter('hello'))
probe('set empty', set())
probe('set', set(range(10)))
probe('frozenset', frozenset(range(3)))
probe('deque empty', collections.deque())
probe('deque', collections.deque(range(100)))
probe('array empty', array.array('i'))
probe('array', array.array('d', [1.0, 2.0, 3.0]))
probe('array subclass', ArraySub('h', [1, 2]))

def outer(x):
    def inner():
        return x
    return inner
probe('function', outer)
probe('closure', outer(1))
probe('cell', outer(1).__closure__[0])
probe('code with cell argument', outer.__code__)
probe('code', probe.__code__)
probe('bound method', K().method)
probe('method-wrapper', C().__repr__)
probe('builtin function', len)
probe('module', sys)
probe('frame', sys._getframe())
def gen():
    yield 1
probe('generator', gen())
if V >= (3, 5):
    ns = {}
    exec('async def co():\n    pass\n', ns)
    probe('coroutine', ns['co']())
if V >= (3, 6):
    ns = {}
    exec('async def ag():\n    yield 1\n', ns)
    probe('async generator', ns['ag']())
probe('weakref', weakref.ref(C))
probe('range', range(10))
probe('slice', slice(1, 2))
probe('property', property(lambda self: 1))
probe('staticmethod', staticmethod(len))
probe('memoryview', memoryview(b'abcd'))
probe('exception', ValueError('x'))
probe('exception subclass', Exc('y'))
try:
    1 / 0
except ZeroDivisionError:
    probe('traceback', sys.exc_info()[2])

if V >= (3, 6):
    try:
        req = ctypes.pythonapi._PyEval_RequestCodeExtraIndex
        req.restype = ctypes.c_ssize_t
        req.argtypes = [ctypes.c_void_p]
        setx = ctypes.pythonapi._PyCode_SetExtra
        setx.restype = ctypes.c_int
        setx.argtypes = [ctypes.py_object, ctypes.c_ssize_t, ctypes.c_void_p]
        def with_extra():
            pass
        setx(with_extra.__code__, req(None), 1234)
        probe('code with co_extra', with_extra.__code__)
    except AttributeError:
        pass
if (3, 8) <= V <= (3, 10):
    def hot():
        return abs(1) + abs(2) + len('x')
    for _ in range(2000):
        hot()
    probe('code with opcache', hot.__code__)

# A C type with a __sizeof__ of its own that pyinspect does not mirror: it must be listed by
# name, not silently sized as object.__sizeof__ would.
import io  # noqa: E402
unmirrored = io.BytesIO(b'x' * 1000)
unmirrored.write(b'y')

report = {}
for label, obj in probes:
    report['%x' % id(obj)] = [label, sys.getsizeof(obj), type(obj).__name__]
_park.open_channel()
_park.register()
_park.park(extra={"probes": report, "unmirrored": [type(unmirrored).__module__ + "." + type(unmirrored).__name__]})
