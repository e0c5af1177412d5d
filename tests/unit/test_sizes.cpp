// object_size (src/heap/sizes.cpp) over fake memory: objects of every kind __sizeof__ treats apart,
// laid out through the embedded layouts of 2.7 and 3.6-3.13. The type objects have the basicsize,
// itemsize and flags of the real ones, and the expected sizes are sys.getsizeof() of the same
// objects, in the same internal state, measured on pyenv builds of 2.7.18, 3.6.15, 3.7.16, 3.8.18,
// 3.9.18, 3.10.13, 3.11.7, 3.12.1 and 3.13.0 (with a 32-byte PyGC_Head on 2.7-3.7).
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "fake_python.hpp"
#include "heap/heap_types.hpp"

using namespace pyinspect;
using namespace pyinspect::test;

namespace {

// Py_TPFLAGS_* (Include/object.h).
constexpr uint64_t kFlagHeap = 1ull << 9;
constexpr uint64_t kFlagReady = 1ull << 12;  // PyType_Ready has run: every type in use
constexpr uint64_t kFlagGc = 1ull << 14;
constexpr uint64_t kFlagManagedDict = 1ull << 4;     // 3.11+
constexpr uint64_t kFlagManagedWeakref = 1ull << 3;  // 3.12+
constexpr uint64_t kFlagInlineValues = 1ull << 2;    // 3.13+

// Type object sizes that differ between versions (tp_basicsize / tp_itemsize of the real types).
struct Shapes {
  int major, minor;
  int64_t type, function, code, code_item, frame, gen, gen_item;
};
const Shapes kShapes[] = {
    {2, 7, 872, 88, 128, 0, 384, 48, 0},    {3, 6, 864, 112, 144, 0, 384, 64, 0},
    {3, 7, 864, 112, 144, 0, 368, 96, 0},   {3, 8, 880, 120, 176, 0, 368, 96, 0},
    {3, 9, 880, 120, 176, 0, 368, 96, 0},   {3, 10, 888, 128, 176, 0, 360, 88, 0},
    {3, 11, 904, 136, 184, 2, 120, 152, 8}, {3, 12, 920, 144, 192, 2, 120, 144, 8},
    {3, 13, 928, 144, 200, 2, 136, 144, 8},
};

// A fake interpreter of one version: the builtin type objects with their real shapes, the C types
// known by name (collections.deque, ...), and a HeapContext over it made on first use (after the
// builtins exist; heap classes may be added later).
struct Fake {
  Layout l;
  FakePython py;
  std::unique_ptr<HeapContext> ctx;
  RemoteAddr deque, odict, defdict, array;

  Fake(int major, int minor) : l(layout_for(major, minor)), py(l) {
    const Shapes* sh = nullptr;
    for (const auto& s : kShapes)
      if (s.major == major && s.minor == minor) sh = &s;
    REQUIRE(sh);
    auto& t = py.types;
    const bool py2 = (l.version.major == 2);
    shape(t.type, sh->type, 40, true);
    // type_is_gc, the only tp_is_gc there is: asked up to 3.10, ignored from 3.11.
    py.u64(py.at(t.type, F::tp_is_gc), 0x7f0000001000);
    t.object = builtin("object", 16, 0, false);
    t.none_type = builtin("NoneType", 16, 0, false);
    shape(t.long_, 24, 4, false);
    shape(t.bool_, py2 ? 24 : l.version.at_least(3, 12) ? 24 : 32, py2 ? 0 : 4, false);
    shape(t.float_, 24, 0, false);
    t.complex = builtin("complex", 32, 0, false);
    if (py2) {
      shape(t.int27, 24, 0, false);
      shape(t.str27, 37, 1, false);
      shape(t.unicode, 48, 0, false);
      t.instance27 = builtin("instance", 40, 0, true);
      t.class27 = builtin("classobj", 72, 0, true);
    } else {
      shape(t.unicode, l.version.at_least(3, 12) ? 64 : 80, 0, false);
      shape(t.bytes, 33, 1, false);
    }
    t.bytearray = builtin("bytearray", py2 ? 48 : 56, 0, false);
    t.tuple = builtin("tuple", 24, 8, true);
    t.list = builtin("list", 40, 0, true);
    shape(t.dict, py2 ? 248 : 48, 0, true);
    t.set = builtin("set", 200, 0, true);
    t.frozenset = builtin("frozenset", 200, 0, true);
    shape(t.code, sh->code, sh->code_item, false);
    t.frame = builtin("frame", sh->frame, 8, true);
    t.function = builtin("function", sh->function, 0, true);
    t.gen = builtin("generator", sh->gen, sh->gen_item, true);
    // C types found by name. 3.12+ makes deque and defaultdict heap types; here they stay static.
    deque = named("collections.deque", l.version.at_least(3, 11) ? 216 : 80, true, t.object);
    if (!py2) odict = named("collections.OrderedDict", 112, true, t.dict);
    defdict = named("collections.defaultdict", py2 ? 256 : 56, true, t.dict);
    array = named("array.array", py2 ? 56 : 64, false, t.object);
  }

  void shape(RemoteAddr type, int64_t basic, int64_t item, bool gc) {
    py.i64(py.at(type, F::tp_basicsize), basic);
    py.i64(py.at(type, F::tp_itemsize), item);
    uint64_t flags = *py.mem.read_as<uint64_t>(py.at(type, F::tp_flags));
    flags |= kFlagReady;
    py.u64(py.at(type, F::tp_flags), gc ? flags | kFlagGc : flags & ~kFlagGc);
  }
  RemoteAddr builtin(const std::string& name, int64_t basic, int64_t item, bool gc) {
    RemoteAddr t = py.type_object(name, 0);
    shape(t, basic, item, gc);
    return t;
  }
  RemoteAddr named(const std::string& name, int64_t basic, bool gc, RemoteAddr base) {
    RemoteAddr t = builtin(name, basic, 0, gc);
    py.ptr(py.at(t, F::tp_base), base);
    return t;
  }
  // A heap type (a class statement): a PyHeapTypeObject, its flags as given plus HEAPTYPE.
  RemoteAddr heap_type(const std::string& name, int64_t basic, int64_t item, uint64_t flags, RemoteAddr base,
                       RemoteAddr metatype = {}) {
    RemoteAddr tn = py.alloc(name.size() + 1);
    py.put_bytes(tn, name.data(), name.size());
    RemoteAddr t = py.object(metatype ? metatype : py.types.type, static_cast<size_t>(py.size(S::sz_PyHeapTypeObject)));
    py.ptr(py.at(t, F::tp_name), tn);
    py.i64(py.at(t, F::tp_basicsize), basic);
    py.i64(py.at(t, F::tp_itemsize), item);
    py.u64(py.at(t, F::tp_flags), flags | kFlagHeap | kFlagReady);
    py.ptr(py.at(t, F::tp_base), base);
    return t;
  }

  HeapContext& context() {
    if (!ctx) ctx = std::make_unique<HeapContext>(py.mem, l, py.types);
    return *ctx;
  }
  std::optional<uint64_t> size(RemoteAddr obj) {
    HeapContext& c = context();
    const TypeInfo* ti = c.type_of(obj);
    REQUIRE(ti);
    return object_size(c, obj, *ti).bytes;
  }

  RemoteAddr object(RemoteAddr type, int64_t n) { return py.object(type, static_cast<size_t>(n)); }
  // A tuple of `n` (null) items.
  RemoteAddr tuple(int64_t n) {
    RemoteAddr o = object(py.types.tuple, 24 + 8 * std::max<int64_t>(n, 1));
    py.i64(py.at(o, F::ob_size), n);
    return o;
  }
  // An int of `ndigits` 30-bit digits (the digits themselves do not count): ob_size up to 3.11,
  // lv_tag = ndigits << 3 | sign bits from 3.12 (1 = zero). 2.7: a long.
  RemoteAddr int_(int64_t ndigits, RemoteAddr type = {}) {
    RemoteAddr o = object(type ? type : py.types.long_, py.size(S::sz_PyLongObject) + 4 * ndigits);
    if (l.facts().long_size == Facts::LongSize::Tag)
      py.u64(py.at(o, F::long_tag), static_cast<uint64_t>(ndigits) << 3 | (ndigits == 0 ? 1 : 0));
    else
      py.i64(py.at(o, F::ob_size), ndigits);
    return o;
  }
  // 3.6+ keys object. Up to 3.10 `log2_size` gives dk_size; from 3.11 the log2 members and kind.
  RemoteAddr keys(int64_t refcnt, int log2_size, int log2_index_bytes, int kind, int64_t usable, int64_t nentries) {
    RemoteAddr k = py.alloc(static_cast<size_t>(py.size(S::sz_PyDictKeysObject)) + 64);
    py.i64(py.at(k, F::dk_refcnt), refcnt);
    if (l.facts().dict == Facts::Dict::Dict311) {
      py.u8(py.at(k, F::dk_log2_size), static_cast<uint8_t>(log2_size));
      py.u8(py.at(k, F::dk_log2_index_bytes), static_cast<uint8_t>(log2_index_bytes));
      py.u8(py.at(k, F::dk_kind), static_cast<uint8_t>(kind));
    } else {
      py.i64(py.at(k, F::dk_size), int64_t{1} << log2_size);
    }
    py.i64(py.at(k, F::dk_usable), usable);
    py.i64(py.at(k, F::dk_nentries), nentries);
    return k;
  }
  // 3.6+ dict (or dict subclass instance of `basic` bytes) over `keys`, split when `values` is set.
  RemoteAddr dict(RemoteAddr keys, int64_t used, RemoteAddr values = {}, RemoteAddr type = {}, int64_t basic = 48) {
    RemoteAddr o = object(type ? type : py.types.dict, basic);
    py.i64(py.at(o, F::dict_used), used);
    py.ptr(py.at(o, F::dict_keys), keys);
    py.ptr(py.at(o, F::dict_values), values);
    return o;
  }
  // 2.7 dict: the 8-entry table inside the object, or a separate table of mask + 1 entries.
  RemoteAddr dict27(int64_t mask, RemoteAddr type = {}, int64_t basic = 248) {
    RemoteAddr o = object(type ? type : py.types.dict, basic);
    py.i64(py.at(o, F::dict_mask), mask);
    RemoteAddr table = mask == 7 ? py.at(o, F::dict_smalltable) : py.alloc(static_cast<size_t>((mask + 1) * 24));
    py.ptr(py.at(o, F::dict_table), table);
    return o;
  }
  // A 3.11+ code object with the members frames are sized from.
  RemoteAddr code311(int32_t nlocalsplus, int32_t stacksize) {
    RemoteAddr co = object(py.types.code, py.size(S::sz_PyCodeObject));
    py.i32(py.at(co, F::co_nlocalsplus), nlocalsplus);
    py.i32(py.at(co, F::co_stacksize), stacksize);
    return co;
  }
};

struct Ver {
  int major, minor;
};
const Ver kAll[] = {{2, 7}, {3, 6}, {3, 7}, {3, 8}, {3, 9}, {3, 10}, {3, 11}, {3, 12}, {3, 13}};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The generic formula and the header

TEST_CASE("sizes: fixed-size objects and the GC header") {
  // float, complex, None, object(): no GC; a function: GC (header 32 on 2.7-3.7, 16 from 3.8).
  const uint64_t function[] = {120, 144, 144, 136, 136, 144, 152, 160, 160};
  for (size_t i = 0; i < std::size(kAll); ++i) {
    Fake f(kAll[i].major, kAll[i].minor);
    INFO("CPython ", f.l.version.short_str());
    auto& t = f.py.types;
    CHECK(f.size(f.object(t.float_, 24)) == 24u);
    CHECK(f.size(f.object(t.complex, 32)) == 32u);
    CHECK(f.size(f.object(t.none_type, 16)) == 16u);
    CHECK(f.size(f.object(t.object, 16)) == 16u);
    CHECK(f.size(f.object(t.function, 160)) == function[i]);
  }
}

TEST_CASE("sizes: tuples and bytes use the item size") {
  const uint64_t empty[] = {56, 56, 56, 40, 40, 40, 40, 40, 40};
  const uint64_t one[] = {64, 64, 64, 48, 48, 48, 48, 48, 48};
  for (size_t i = 0; i < std::size(kAll); ++i) {
    Fake f(kAll[i].major, kAll[i].minor);
    INFO("CPython ", f.l.version.short_str());
    CHECK(f.size(f.tuple(0)) == empty[i]);
    CHECK(f.size(f.tuple(1)) == one[i]);
    // b'' (2.7: the str '')
    CHECK(f.size(f.py.bytes({})) == ((f.l.version.major == 2) ? 37u : 33u));
  }
}

TEST_CASE("sizes: a __sizeof__ written in Python and unreadable objects give no size") {
  Fake f(3, 11);
  RemoteAddr lst = f.object(f.py.types.list, f.py.size(S::sz_PyListObject));
  TypeInfo ti = *f.context().type_of(lst);
  ti.python_sizeof = true;
  CHECK_FALSE(object_size(f.context(), lst, ti).bytes.has_value());
  // A list whose memory ends before `allocated`.
  RemoteAddr cut = f.object(f.py.types.list, f.py.off(F::list_allocated));
  CHECK_FALSE(f.size(cut).has_value());
  // A dict whose keys pointer is null, and one whose allocation count is absurd.
  RemoteAddr d = f.dict(RemoteAddr(), 0);
  CHECK_FALSE(f.size(d).has_value());
  RemoteAddr big = f.object(f.py.types.list, f.py.size(S::sz_PyListObject));
  f.py.i64(f.py.at(big, F::list_allocated), int64_t{1} << 60);
  CHECK_FALSE(f.size(big).has_value());
}

// ---------------------------------------------------------------------------------------------
// Numbers

TEST_CASE("sizes: int and bool") {
  // 0, 1, 2**30, 2**62 (0, 1, 2, 3 digits), True, False. 2.7 ints are PyInt: always 24.
  struct Row {
    uint64_t zero, one, two30, two62, t, f;
  };
  const Row rows[] = {{24, 24, 24, 24, 24, 24}, {24, 28, 32, 36, 28, 24}, {24, 28, 32, 36, 28, 24},
                      {24, 28, 32, 36, 28, 24}, {24, 28, 32, 36, 28, 24}, {24, 28, 32, 36, 28, 24},
                      {28, 28, 32, 36, 28, 28}, {28, 28, 32, 36, 28, 28}, {28, 28, 32, 36, 28, 28}};
  for (size_t i = 0; i < std::size(kAll); ++i) {
    Fake f(kAll[i].major, kAll[i].minor);
    INFO("CPython ", f.l.version.short_str());
    const Row& r = rows[i];
    if ((f.l.version.major == 2)) {
      RemoteAddr small = f.object(f.py.types.int27, 24);
      CHECK(f.size(small) == r.zero);
      CHECK(f.size(f.object(f.py.types.bool_, 24)) == r.t);
      continue;
    }
    CHECK(f.size(f.int_(0)) == r.zero);
    CHECK(f.size(f.int_(1)) == r.one);
    CHECK(f.size(f.int_(2)) == r.two30);
    CHECK(f.size(f.int_(3)) == r.two62);
    // bool counts as int: its own larger basicsize (32 up to 3.11) is not used.
    CHECK(f.size(f.int_(1, f.py.types.bool_)) == r.t);
    CHECK(f.size(f.int_(0, f.py.types.bool_)) == r.f);
  }
}

TEST_CASE("sizes: negative ints and 2.7 longs") {
  Fake f3(3, 8);
  RemoteAddr neg = f3.int_(2);
  f3.py.i64(f3.py.at(neg, F::ob_size), -2);  // -(2**30)
  CHECK(f3.size(neg) == 32u);
  Fake f12(3, 12);
  RemoteAddr neg12 = f12.int_(2);
  f12.py.u64(f12.py.at(neg12, F::long_tag), 2 << 3 | 2);
  CHECK(f12.size(neg12) == 32u);
  // 2.7 long_sizeof: 0L, 1L, 2**62L (3 digits).
  Fake f(2, 7);
  CHECK(f.size(f.int_(0)) == 24u);
  CHECK(f.size(f.int_(1)) == 28u);
  CHECK(f.size(f.int_(3)) == 36u);
}

TEST_CASE("sizes: int subclasses use int's basicsize and their own header") {
  // class IntSub(int): pass; IntSub(5). Basicsize 32 (24 from 3.12: managed dict), GC.
  struct Case {
    int major, minor;
    int64_t basic;
    uint64_t flags, expect;
  };
  const Case cases[] = {{3, 6, 32, kFlagGc, 60},
                        {3, 8, 32, kFlagGc, 44},
                        {3, 10, 32, kFlagGc, 44},
                        {3, 12, 24, kFlagGc | kFlagManagedDict, 60},
                        {3, 13, 24, kFlagGc | kFlagManagedDict, 60}};
  for (const Case& c : cases) {
    Fake f(c.major, c.minor);
    INFO("CPython ", f.l.version.short_str());
    RemoteAddr sub = f.heap_type("IntSub", c.basic, 4, c.flags, f.py.types.long_);
    CHECK(f.size(f.int_(1, sub)) == c.expect);
  }
}

// ---------------------------------------------------------------------------------------------
// Strings

TEST_CASE("sizes: compact str, 2.7 str and unicode") {
  // '', 'a', 'é', '€', '😀'
  const uint64_t expect[][5] = {{37, 38, 56, 56, 56}, {49, 50, 74, 76, 80}, {49, 50, 74, 76, 80},
                                {49, 50, 74, 76, 80}, {49, 50, 74, 76, 80}, {49, 50, 74, 76, 80},
                                {49, 50, 74, 76, 80}, {41, 42, 61, 60, 64}, {41, 42, 61, 60, 64}};
  for (size_t i = 0; i < std::size(kAll); ++i) {
    Fake f(kAll[i].major, kAll[i].minor);
    INFO("CPython ", f.l.version.short_str());
    CHECK(f.size(f.py.str("")) == expect[i][0]);
    CHECK(f.size(f.py.str("a")) == expect[i][1]);
    if ((f.l.version.major == 2)) {
      // unicode: sizeof(PyUnicodeObject) + (length + 1) * sizeof(Py_UNICODE), UCS4 build; u'é',
      // u'€' and u'😀' alike, then u'€€'.
      for (int64_t len : {1, 2}) {
        RemoteAddr u = f.object(f.py.types.unicode, f.py.size(S::sz_PyUnicodeObject));
        f.py.i64(f.py.at(u, F::uni27_length), len);
        CHECK(f.size(u) == (len == 1 ? expect[i][2] : 60u));
      }
      continue;
    }
    // 'é' is the cached Latin-1 singleton, whose UTF-8 copy the 3.12+ interpreter has made by
    // the time a program runs: 2 bytes and a NUL counted there.
    RemoteAddr e = f.py.unicode(U"\u00e9", 1);
    if (f.l.version.at_least(3, 12)) {
      f.py.ptr(f.py.at(e, F::uni_utf8), f.py.alloc(3));
      f.py.i64(f.py.at(e, F::uni_utf8_length), 2);
    }
    CHECK(f.size(e) == expect[i][2]);
    CHECK(f.size(f.py.unicode(U"\u20ac", 2)) == expect[i][3]);
    CHECK(f.size(f.py.unicode(U"\U0001F600", 4)) == expect[i][4]);
  }
}

TEST_CASE("sizes: str caches counted (utf8, wstr) and not-ready strings") {
  for (const Ver& v : {Ver{3, 8}, Ver{3, 11}, Ver{3, 12}}) {
    Fake f(v.major, v.minor);
    INFO("CPython ", f.l.version.short_str());
    // 'éxé' after PyUnicode_AsUTF8: compact latin-1 with a separate 5-byte UTF-8 copy.
    RemoteAddr s = f.py.unicode(U"\u00e9x\u00e9", 1);
    f.py.ptr(f.py.at(s, F::uni_utf8), f.py.alloc(6));
    f.py.i64(f.py.at(s, F::uni_utf8_length), 5);
    CHECK(f.size(s) == (v.minor >= 12 ? 66u : 82u));
    if (v.minor >= 12) continue;
    // 'abc' after PyUnicode_AsUnicode: its wchar_t copy counts (length + 1) * 4.
    RemoteAddr a = f.py.str("abc");
    f.py.ptr(f.py.at(a, F::uni_wstr), f.py.alloc(16));
    CHECK(f.size(a) == 68u);
    // '€b' likewise, the copy's length from wstr_length.
    RemoteAddr e = f.py.unicode(U"\u20acb", 2);
    f.py.ptr(f.py.at(e, F::uni_wstr), f.py.alloc(12));
    f.py.i64(f.py.at(e, F::uni_wstr_length), 2);
    CHECK(f.size(e) == 90u);
    // A kind-4 string's wstr is its data: not counted.
    RemoteAddr w = f.py.unicode(U"\U0001F600", 4);
    f.py.ptr(f.py.at(w, F::uni_wstr), w + f.py.size(S::sz_PyCompactUnicodeObject));
    CHECK(f.size(w) == 80u);
    // PyUnicode_FromUnicode(NULL, 5): legacy, not ready, no data, only wstr.
    RemoteAddr n = f.object(f.py.types.unicode, f.py.size(S::sz_PyUnicodeObject));
    f.py.i64(f.py.at(n, F::uni_length), 5);
    f.py.u32(f.py.at(n, F::uni_state), 0);
    f.py.ptr(f.py.at(n, F::uni_wstr), f.py.alloc(24));
    f.py.i64(f.py.at(n, F::uni_wstr_length), 5);
    CHECK(f.size(n) == 104u);
  }
}

TEST_CASE("sizes: str subclass instances are legacy strings") {
  // class StrSub(str): pass; StrSub('ab') (UTF-8 shares the data) and StrSub('€€') (no UTF-8).
  struct Case {
    int major, minor;
    int64_t basic;
    uint64_t flags, ab, euro;
  };
  const Case cases[] = {{3, 6, 96, kFlagGc, 115, 118},
                        {3, 8, 96, kFlagGc, 99, 102},
                        {3, 11, 88, kFlagGc | kFlagManagedDict, 115, 118},
                        {3, 12, 64, kFlagGc | kFlagManagedDict | kFlagManagedWeakref, 99, 102},
                        {3, 13, 64, kFlagGc | kFlagManagedDict | kFlagManagedWeakref, 99, 102}};
  for (const Case& c : cases) {
    Fake f(c.major, c.minor);
    INFO("CPython ", f.l.version.short_str());
    RemoteAddr sub = f.heap_type("StrSub", c.basic, 0, c.flags, f.py.types.unicode);
    auto legacy = [&](int64_t length, unsigned kind, bool ascii, bool utf8_is_data) {
      RemoteAddr o = f.object(sub, c.basic);
      f.py.i64(f.py.at(o, F::uni_length), length);
      f.py.u32(f.py.at(o, F::uni_state), f.py.unicode_state(kind, false, ascii));
      RemoteAddr data = f.py.alloc(static_cast<size_t>((length + 1) * kind));
      f.py.ptr(f.py.at(o, F::uni_data), data);
      if (utf8_is_data) {
        f.py.ptr(f.py.at(o, F::uni_utf8), data);
        f.py.i64(f.py.at(o, F::uni_utf8_length), length);
      }
      return o;
    };
    CHECK(f.size(legacy(2, 1, true, true)) == c.ab);
    CHECK(f.size(legacy(2, 2, false, false)) == c.euro);
  }
}

// ---------------------------------------------------------------------------------------------
// Containers

TEST_CASE("sizes: bytearray and list count their allocation") {
  struct Case {
    int major, minor;
    int64_t allocated;
    uint64_t list, empty_ba, abc_ba;
  };
  // [1,2,3] is over-allocated differently per version.
  const Case cases[] = {{2, 7, 3, 96, 48, 52},  {3, 6, 3, 96, 56, 60},  {3, 8, 3, 80, 56, 60},
                        {3, 9, 8, 120, 56, 60}, {3, 10, 4, 88, 56, 60}, {3, 13, 4, 88, 56, 60}};
  for (const Case& c : cases) {
    Fake f(c.major, c.minor);
    INFO("CPython ", f.l.version.short_str());
    RemoteAddr lst = f.object(f.py.types.list, f.py.size(S::sz_PyListObject));
    f.py.i64(f.py.at(lst, F::ob_size), 3);
    f.py.i64(f.py.at(lst, F::list_allocated), c.allocated);
    CHECK(f.size(lst) == c.list);
    RemoteAddr empty = f.object(f.py.types.list, f.py.size(S::sz_PyListObject));
    CHECK(f.size(empty) == c.list - 8 * static_cast<uint64_t>(c.allocated));
    RemoteAddr ba = f.object(f.py.types.bytearray, f.py.size(S::sz_PyByteArrayObject));
    CHECK(f.size(ba) == c.empty_ba);
    f.py.i64(f.py.at(ba, F::bytearray_alloc), 4);  // bytearray(b'abc')
    CHECK(f.size(ba) == c.abc_ba);
  }
  // 2.7 list(range(10)): allocated 17.
  Fake f(2, 7);
  RemoteAddr lst = f.object(f.py.types.list, f.py.size(S::sz_PyListObject));
  f.py.i64(f.py.at(lst, F::list_allocated), 17);
  CHECK(f.size(lst) == 208u);
}

TEST_CASE("sizes: 2.7 dicts") {
  Fake f(2, 7);
  CHECK(f.size(f.dict27(7)) == 280u);    // {}: the table inside the object
  CHECK(f.size(f.dict27(31)) == 1048u);  // 10 items: 32 entries of 24 bytes
  CHECK(f.size(f.dict27(7, f.defdict, 256)) == 288u);
}

TEST_CASE("sizes: 3.6 to 3.10 dicts, combined and split") {
  for (const Ver& v : {Ver{3, 6}, Ver{3, 7}, Ver{3, 8}, Ver{3, 9}, Ver{3, 10}}) {
    Fake f(v.major, v.minor);
    INFO("CPython ", f.l.version.short_str());
    const uint64_t gc = v.minor <= 7 ? 32 : 16;
    // {'a': 1}: 8 slots, keys of its own.
    CHECK(f.size(f.dict(f.keys(1, 3, 0, 0, 4, 1), 1)) == 216 + gc);
    // 300 items: 512 slots, 2-byte indices.
    CHECK(f.size(f.dict(f.keys(1, 9, 0, 0, 41, 300), 300)) == 9296 + gc);
    // An instance __dict__: split, the keys shared with the type (dk_refcnt 2) are not counted,
    // the values array of USABLE(8) = 5 slots is.
    RemoteAddr shared = f.keys(2, 3, 0, 0, 4, 1);
    CHECK(f.size(f.dict(shared, 1, f.py.alloc(40))) == 88 + gc);
    // Split keys no longer shared (the type dropped them): counted.
    CHECK(f.size(f.dict(f.keys(1, 3, 0, 0, 4, 1), 1, f.py.alloc(40))) == 256 + gc);
    if (v.minor >= 8) {
      // {} and a cleared dict: the static empty keys (dk_size 1) and empty values.
      CHECK(f.size(f.dict(f.keys(30, 0, 0, 0, 0, 0), 0, f.py.alloc(8))) == 64u);
    } else {
      CHECK(f.size(f.dict(f.keys(1, 3, 0, 0, 5, 0), 0)) == 248u);  // {}: a fresh 8-slot table
    }
  }
}

TEST_CASE("sizes: 3.11+ dicts of unicode, general and split keys") {
  for (const Ver& v : {Ver{3, 11}, Ver{3, 12}, Ver{3, 13}}) {
    Fake f(v.major, v.minor);
    INFO("CPython ", f.l.version.short_str());
    int64_t immortal = v.minor >= 12 ? 0xffffffff : 234;
    CHECK(f.size(f.dict(f.keys(immortal, 0, 0, 1, 0, 0), 0)) == 64u);   // {}
    CHECK(f.size(f.dict(f.keys(1, 3, 3, 1, 4, 1), 1)) == 184u);         // {'a': 1}
    CHECK(f.size(f.dict(f.keys(1, 3, 3, 0, 4, 1), 1)) == 224u);         // {1: 2}
    CHECK(f.size(f.dict(f.keys(1, 9, 10, 0, 41, 300), 300)) == 9304u);  // 300 int keys
    // c.__dict__ of `class C: pass` with c.a = 1: the shared keys (log2 size 6, 1 entry, 28
    // usable) make the values term (1 + 28) * 8; the keys themselves count in the class.
    RemoteAddr shared = f.keys(2, 6, 6, 2, 28, 1);
    CHECK(f.size(f.dict(shared, 1, f.py.alloc(64))) == 296u);
  }
}

TEST_CASE("sizes: OrderedDict and defaultdict") {
  struct Case {
    int major, minor;
    bool empty_keys;
    uint64_t empty, two;
  };
  // OrderedDict() and OrderedDict(a=1, b=2): 8 fast nodes and a node per item.
  const Case cases[] = {{3, 6, false, 312, 440},
                        {3, 8, false, 296, 424},
                        {3, 10, true, 128, 424},
                        {3, 11, true, 128, 376},
                        {3, 13, true, 128, 376}};
  for (const Case& c : cases) {
    Fake f(c.major, c.minor);
    INFO("CPython ", f.l.version.short_str());
    RemoteAddr k0 = c.empty_keys ? f.keys(c.minor >= 12 ? 0xffffffff : 85, 0, 0, 1, 0, 0) : f.keys(1, 3, 3, 1, 5, 0);
    RemoteAddr v0 = c.empty_keys && c.minor <= 10 ? f.py.alloc(8) : RemoteAddr();
    RemoteAddr empty = f.dict(k0, 0, v0, f.odict, 112);
    CHECK(f.size(empty) == c.empty);
    RemoteAddr two = f.dict(f.keys(1, 3, 3, 1, 3, 2), 2, {}, f.odict, 112);
    f.py.i64(f.py.at(two, F::odict_fast_nodes_size), 8);
    f.py.ptr(f.py.at(two, F::odict_first), f.py.alloc(32));
    CHECK(f.size(two) == c.two);
    // defaultdict(): the dict formula with its own basicsize.
    RemoteAddr dd = f.dict(f.keys(1, 3, 3, 1, 4, 1), 1, {}, f.defdict, 56);
    CHECK(f.size(dd) == (c.minor >= 11 ? 192u : c.minor >= 8 ? 240u : 256u));
  }
}

TEST_CASE("sizes: set and frozenset") {
  for (const Ver& v : kAll) {
    Fake f(v.major, v.minor);
    INFO("CPython ", f.l.version.short_str());
    const uint64_t gc = v.major == 2 || v.minor <= 7 ? 32 : 16;
    RemoteAddr small = f.object(f.py.types.set, f.py.size(S::sz_PySetObject));
    f.py.i64(f.py.at(small, F::set_mask), 7);
    f.py.ptr(f.py.at(small, F::set_table), f.py.at(small, F::set_smalltable));
    CHECK(f.size(small) == 200 + gc);
    RemoteAddr frozen = f.object(f.py.types.frozenset, f.py.size(S::sz_PySetObject));
    f.py.i64(f.py.at(frozen, F::set_mask), 7);
    f.py.ptr(f.py.at(frozen, F::set_table), f.py.at(frozen, F::set_smalltable));
    CHECK(f.size(frozen) == 200 + gc);
    RemoteAddr big = f.object(f.py.types.set, f.py.size(S::sz_PySetObject));  // set(range(10))
    f.py.i64(f.py.at(big, F::set_mask), 31);
    f.py.ptr(f.py.at(big, F::set_table), f.py.alloc(32 * 16));
    CHECK(f.size(big) == 712 + gc);
  }
}

TEST_CASE("sizes: deque counts its blocks") {
  // deque() and deque(range(100)).
  struct Case {
    int major, minor;
    int64_t left_empty, left_full;
    uint64_t empty, full;
  };
  const Case cases[] = {
      {2, 7, 31, 31, 624, 1648}, {3, 6, 32, 1, 640, 1168}, {3, 8, 32, 1, 624, 1152}, {3, 11, 32, 1, 760, 1288}};
  for (const Case& c : cases) {
    Fake f(c.major, c.minor);
    INFO("CPython ", f.l.version.short_str());
    int64_t basic = c.minor >= 11 ? 216 : 80;
    auto make = [&](int64_t left, int64_t len) {
      RemoteAddr d = f.object(f.deque, basic);
      if ((f.l.version.major == 2)) {
        // 2.7's _collections is an extension module: leftindex at 32, len at 48 (no DWARF).
        f.py.i64(d + 32, left);
        f.py.i64(d + 48, len);
      } else {
        f.py.i64(f.py.at(d, F::deque_leftindex), left);
        f.py.i64(f.py.at(d, F::ob_size), len);
      }
      return d;
    };
    CHECK(f.size(make(c.left_empty, 0)) == c.empty);
    CHECK(f.size(make(c.left_full, 100)) == c.full);
  }
}

TEST_CASE("sizes: array.array, static and heap type, and a subclass") {
  // array('i'), array('d', [1.0, 2.0, 3.0]) and `class A(array.array)`, A('h', [1, 2]).
  struct Case {
    int major, minor;
    bool heap;
    uint64_t empty, three, sub;
  };
  const Case cases[] = {{2, 7, false, 56, 80, 100}, {3, 8, false, 64, 88, 92}, {3, 10, true, 80, 104, 92}};
  for (const Case& c : cases) {
    Fake f(c.major, c.minor);
    INFO("CPython ", f.l.version.short_str());
    if (c.heap)  // 3.10+: a heap type with GC
      f.py.u64(f.py.at(f.array, F::tp_flags), kFlagHeap | kFlagGc | kFlagReady);
    RemoteAddr sub = f.heap_type("A", c.major == 2 ? 64 : 72, 0, kFlagGc, f.array);
    auto descr = [&](int32_t itemsize) {
      RemoteAddr d = f.py.alloc(32);
      f.py.i32(d + 4, itemsize);
      return d;
    };
    auto make = [&](RemoteAddr type, int64_t basic, int64_t allocated, int32_t itemsize) {
      RemoteAddr a = f.object(type, basic);
      f.py.i64(a + 32, allocated);  // arraymodule is an extension: no DWARF, fixed offsets
      f.py.ptr(a + 40, descr(itemsize));
      return a;
    };
    int64_t basic = c.major == 2 ? 56 : 64;
    CHECK(f.size(make(f.array, basic, 0, 4)) == c.empty);
    CHECK(f.size(make(f.array, basic, 3, 8)) == c.three);
    CHECK(f.size(make(sub, c.major == 2 ? 64 : 72, 2, 2)) == c.sub);
  }
}

// ---------------------------------------------------------------------------------------------
// Instances

TEST_CASE("sizes: instances with a dict, managed dicts and slots") {
  // C() of `class C: pass` and S() of `class S: __slots__ = ('a',)`.
  struct Case {
    int major, minor;
    int64_t c_basic;
    uint64_t c_flags, c, s;
  };
  const Case cases[] = {{2, 7, 32, kFlagGc, 64, 56},
                        {3, 6, 32, kFlagGc, 64, 56},
                        {3, 8, 32, kFlagGc, 48, 40},
                        {3, 10, 32, kFlagGc, 48, 40},
                        {3, 11, 24, kFlagGc | kFlagManagedDict, 56, 40},
                        {3, 12, 16, kFlagGc | kFlagManagedDict | kFlagManagedWeakref, 48, 40},
                        {3, 13, 16, kFlagGc | kFlagManagedDict | kFlagManagedWeakref | kFlagInlineValues, 48, 40}};
  for (const Case& c : cases) {
    Fake f(c.major, c.minor);
    INFO("CPython ", f.l.version.short_str());
    RemoteAddr cls = f.heap_type("C", c.c_basic, 0, c.c_flags, f.py.types.object);
    CHECK(f.size(f.object(cls, c.c_basic + 64)) == c.c);  // 3.13 inline values never count
    RemoteAddr slots = f.heap_type("S", 24, 0, kFlagGc, f.py.types.object);
    CHECK(f.size(f.object(slots, 24)) == c.s);
  }
  // __slots__ = ('a', '__weakref__'): an ordinary slot in 3.11; managed (pre-header) from 3.12.
  Fake f11(3, 11);
  RemoteAddr w11 = f11.heap_type("W", 32, 0, kFlagGc, f11.py.types.object);
  CHECK(f11.size(f11.object(w11, 32)) == 48u);
  Fake f12(3, 12);
  RemoteAddr w12 = f12.heap_type("W", 24, 0, kFlagGc | kFlagManagedWeakref, f12.py.types.object);
  CHECK(f12.size(f12.object(w12, 24)) == 56u);
  // 3.6 `__slots__ = ()`: no GC flag, no header.
  Fake f6(3, 6);
  RemoteAddr e6 = f6.heap_type("E", 16, 0, 0, f6.py.types.object);
  CHECK(f6.size(f6.object(e6, 16)) == 16u);
}

TEST_CASE("sizes: 2.7 classic instances and classes") {
  Fake f(2, 7);
  CHECK(f.size(f.object(f.py.types.instance27, 40)) == 72u);
  CHECK(f.size(f.object(f.py.types.class27, 72)) == 104u);
}

// ---------------------------------------------------------------------------------------------
// Type objects

TEST_CASE("sizes: static and heap type objects") {
  // `int`, and `class C: pass` after C().a = 1 (its shared keys cached in ht_cached_keys).
  const uint64_t static_type[] = {872, 400, 400, 416, 408, 408, 424, 432, 416};
  const uint64_t heap_type[] = {904, 1064, 1064, 1064, 1064, 1072, 1688, 1704, 1712};
  for (size_t i = 0; i < std::size(kAll); ++i) {
    Fake f(kAll[i].major, kAll[i].minor);
    INFO("CPython ", f.l.version.short_str());
    CHECK(f.size(f.py.types.long_) == static_type[i]);
    RemoteAddr cls = f.heap_type("C", 32, 0, kFlagGc, f.py.types.object);
    if (!(f.l.version.major == 2)) {
      RemoteAddr k = f.l.version.at_least(3, 11) ? f.keys(2, 6, 6, 2, 28, 1) : f.keys(2, 3, 0, 0, 4, 1);
      f.py.ptr(f.py.at(cls, F::ht_cached_keys), k);
    }
    CHECK(f.size(cls) == heap_type[i]);
  }
}

TEST_CASE("sizes: 2.7 types count their __slots__ members") {
  Fake f(2, 7);
  RemoteAddr t = f.heap_type("T", 32, 0, kFlagGc, f.py.types.object);
  f.py.i64(f.py.at(t, F::ob_size), 2);  // __slots__ = ('a', 'b')
  CHECK(f.size(t) == 984u);
}

TEST_CASE("sizes: classes of a metaclass") {
  // class M(type): pass; X = M('X', (object,), {}). A metaclass's larger basicsize never counts
  // in 3.x, and M inherits type_is_gc up to 3.10.
  struct Case {
    int major, minor;
    uint64_t x, m;
  };
  const Case cases[] = {{2, 7, 904, 872}, {3, 8, 1064, 1064}, {3, 10, 1072, 1072}, {3, 12, 1704, 936}};
  for (const Case& c : cases) {
    Fake f(c.major, c.minor);
    INFO("CPython ", f.l.version.short_str());
    auto& t = f.py.types;
    int64_t type_basic = *f.py.mem.read_as<int64_t>(f.py.at(t.type, F::tp_basicsize));
    RemoteAddr meta = f.heap_type("M", type_basic, 40, kFlagGc | (1ull << 31), t.type);
    f.py.u64(f.py.at(meta, F::tp_is_gc), 0x7f0000001000);
    RemoteAddr x = f.heap_type("X", 32, 0, kFlagGc, t.object, meta);
    if (!(f.l.version.major == 2)) {
      RemoteAddr k = f.l.version.at_least(3, 11) ? f.keys(2, 6, 6, 2, 28, 1) : f.keys(2, 3, 0, 0, 4, 1);
      f.py.ptr(f.py.at(x, F::ht_cached_keys), k);
      if (c.minor < 12) f.py.ptr(f.py.at(meta, F::ht_cached_keys), f.keys(2, 3, 0, 0, 4, 1));
    }
    CHECK(f.size(x) == c.x);
    // M itself: a heap type of `type`.
    CHECK(f.size(meta) == (c.major == 2 ? 904u : c.m));
  }
}

// ---------------------------------------------------------------------------------------------
// Code, frames, generators

TEST_CASE("sizes: code objects") {
  // def f(x, y): z = x + y; return z
  const uint64_t plain[] = {128, 144, 144, 176, 176, 176, 200, 208, 216};
  const int64_t units[] = {0, 0, 0, 0, 0, 0, 8, 8, 7};  // 3.11+: code units with inline caches
  for (size_t i = 0; i < std::size(kAll); ++i) {
    Fake f(kAll[i].major, kAll[i].minor);
    INFO("CPython ", f.l.version.short_str());
    RemoteAddr co = f.object(f.py.types.code, f.py.size(S::sz_PyCodeObject) + 16);
    f.py.i64(f.py.at(co, F::ob_size), units[i]);
    CHECK(f.size(co) == plain[i]);
  }
}

TEST_CASE("sizes: code objects with cell2arg, co_extra and opcache") {
  // def outer(x): return lambda: x  (x is a cell and an argument: co_cell2arg)
  for (const Ver& v : {Ver{3, 6}, Ver{3, 8}, Ver{3, 10}}) {
    Fake f(v.major, v.minor);
    INFO("CPython ", f.l.version.short_str());
    RemoteAddr co = f.object(f.py.types.code, f.py.size(S::sz_PyCodeObject));
    f.py.ptr(f.py.at(co, F::co_cellvars), f.tuple(1));
    f.py.ptr(f.py.at(co, F::co_cell2arg), f.py.alloc(8));
    CHECK(f.size(co) == (v.minor == 6 ? 152u : 184u));
  }
  // _PyCode_SetExtra with two registered users: ce_size 2.
  struct Extra {
    int major, minor;
    int64_t units;
    uint64_t expect;
  };
  for (const Extra& e : {Extra{3, 6, 0, 160}, Extra{3, 7, 0, 168}, Extra{3, 8, 0, 200}, Extra{3, 11, 3, 216}}) {
    Fake f(e.major, e.minor);
    INFO("CPython ", f.l.version.short_str());
    RemoteAddr co = f.object(f.py.types.code, f.py.size(S::sz_PyCodeObject) + 16);
    f.py.i64(f.py.at(co, F::ob_size), e.units);
    RemoteAddr extra = f.py.alloc(24);
    f.py.i64(extra, 2);
    f.py.ptr(f.py.at(co, F::co_extra), extra);
    CHECK(f.size(co) == e.expect);
  }
  // 3.8-3.10 after ~1000 calls: the opcache map (a byte per code unit) and its entries.
  struct Opcache {
    int major, minor;
    int64_t code_bytes;
    uint8_t entries;
    uint64_t expect;
  };
  for (const Opcache& o : {Opcache{3, 8, 52, 9, 490}, Opcache{3, 10, 24, 3, 284}}) {
    Fake f(o.major, o.minor);
    INFO("CPython ", f.l.version.short_str());
    RemoteAddr co = f.object(f.py.types.code, f.py.size(S::sz_PyCodeObject));
    f.py.ptr(f.py.at(co, F::co_code), f.py.bytes(std::vector<uint8_t>(static_cast<size_t>(o.code_bytes), 0)));
    f.py.ptr(f.py.at(co, F::co_opcache), f.py.alloc(8));
    f.py.u8(f.py.at(co, F::co_opcache_size), o.entries);
    CHECK(f.size(co) == o.expect);
  }
}

TEST_CASE("sizes: frames are sized from their code") {
  // Up to 3.10: a module frame (stacksize 14 or 16, no locals) and ff's frame (def ff(): return
  // sys._getframe(); stacksize 1 or 2). The frame's own ob_size is ignored.
  struct Old {
    int major, minor;
    int32_t module_stack, ff_stack;
    uint64_t module, ff;
  };
  const Old olds[] = {{2, 7, 14, 1, 520, 416},
                      {3, 6, 16, 1, 536, 416},
                      {3, 7, 14, 2, 504, 408},
                      {3, 8, 14, 2, 488, 392},
                      {3, 10, 14, 2, 480, 384}};
  for (const Old& o : olds) {
    Fake f(o.major, o.minor);
    INFO("CPython ", f.l.version.short_str());
    int64_t basic = *f.py.mem.read_as<int64_t>(f.py.at(f.py.types.frame, F::tp_basicsize));
    auto frame = [&](int32_t stacksize) {
      RemoteAddr co = f.object(f.py.types.code, f.py.size(S::sz_PyCodeObject));
      f.py.i32(f.py.at(co, F::co_stacksize), stacksize);
      f.py.ptr(f.py.at(co, F::co_cellvars), f.tuple(0));
      RemoteAddr fr = f.object(f.py.types.frame, basic + 8 * 40);
      f.py.ptr(f.py.at(fr, F::fo_code), co);
      f.py.i64(f.py.at(fr, F::ob_size), 40);  // a recycled frame's larger ob_size does not count
      return fr;
    };
    CHECK(f.size(frame(o.module_stack)) == o.module);
    CHECK(f.size(frame(o.ff_stack)) == o.ff);
  }
  // 3.11+: through f_frame to the interpreter frame's code; ff has no locals, stacksize 2.
  for (const Ver& v : {Ver{3, 11}, Ver{3, 12}, Ver{3, 13}}) {
    Fake f(v.major, v.minor);
    INFO("CPython ", f.l.version.short_str());
    int64_t basic = *f.py.mem.read_as<int64_t>(f.py.at(f.py.types.frame, F::tp_basicsize));
    RemoteAddr co = f.code311(0, 2);
    RemoteAddr fr = f.object(f.py.types.frame, basic + 16);
    RemoteAddr iframe = f.py.at(fr, F::fo_frame_data);  // the frame's own data (a returned frame)
    f.py.ptr(f.py.at(fr, F::fo_frame), iframe);
    f.py.ptr(iframe + f.py.off(F::if_code), co);
    CHECK(f.size(fr) == (v.minor == 13 ? 168u : 152u));
  }
}

TEST_CASE("sizes: generators") {
  // def g(a): b = a; yield b. Up to 3.10 a fixed size; from 3.11 the embedded frame's slots.
  const uint64_t expect[] = {80, 96, 128, 112, 112, 104, 192, 192, 192};
  for (size_t i = 0; i < std::size(kAll); ++i) {
    Fake f(kAll[i].major, kAll[i].minor);
    INFO("CPython ", f.l.version.short_str());
    int64_t basic = *f.py.mem.read_as<int64_t>(f.py.at(f.py.types.gen, F::tp_basicsize));
    RemoteAddr gen = f.object(f.py.types.gen, basic + 64);
    if (f.l.version.at_least(3, 11)) {
      RemoteAddr co = f.code311(2, f.l.version.at_least(3, 12) ? 2 : 1);
      if (f.l.has(F::gen_code))
        f.py.ptr(f.py.at(gen, F::gen_code), co);
      else
        f.py.ptr(f.py.at(gen, F::gen_iframe) + f.py.off(F::if_code), co);
    }
    CHECK(f.size(gen) == expect[i]);
  }
}

// ---------------------------------------------------------------------------------------------
// The header rules

TEST_CASE("sizes: static type objects have no GC header up to 3.10 and in 3.13, one in 3.11-3.12") {
  // `type` itself: sizeof(PyTypeObject) and the header by version.
  const uint64_t expect[] = {872, 400, 400, 416, 408, 408, 424, 432, 416};
  for (size_t i = 0; i < std::size(kAll); ++i) {
    Fake f(kAll[i].major, kAll[i].minor);
    INFO("CPython ", f.l.version.short_str());
    CHECK(f.size(f.py.types.type) == expect[i]);
  }
  // Without tp_is_gc (never the case for `type`), <=3.10 would count the header.
  Fake f(3, 8);
  f.py.u64(f.py.at(f.py.types.type, F::tp_is_gc), 0);
  CHECK(f.size(f.py.types.long_) == 432u);
}

TEST_CASE("sizes: a 24-byte PyGC_Head (3.6 and 3.7.0-3.7.3 as built upstream)") {
  Fake f(3, 7);
  f.context().set_gc_head_size(24);
  CHECK(f.size(f.tuple(0)) == 48u);
  CHECK(f.size(f.dict(f.keys(1, 3, 0, 0, 5, 0), 0)) == 240u);
}
