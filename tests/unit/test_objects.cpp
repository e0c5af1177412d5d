// ObjectReader (src/runtime/objects.hpp) over fake memory: strings in every representation,
// ints in both long layouts (signed ob_size up to 3.11, lv_tag from 3.12) and 2.7's PyInt, and
// dicts of 2.7, 3.6-3.10 and 3.11+, combined and split. Objects are laid out through the embedded
// layouts' offsets; their contents follow CPython's documented representations.
#include <doctest/doctest.h>

#include <climits>
#include <string>
#include <utility>
#include <vector>

#include "fake_python.hpp"
#include "runtime/objects.hpp"

using namespace pyinspect;
using namespace pyinspect::test;

namespace {

struct Ver {
  int major, minor;
  bool at_least(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
  std::string str() const { return std::to_string(major) + "." + std::to_string(minor); }
};

// A Python 3 int (2.7: long) of sign `sign` and 30-bit digits, least significant first
// (Include/cpython/longintrepr.h). Up to 3.11 ob_size is the digit count times the sign;
// from 3.12 lv_tag = ndigits << 3 | sign bits (0 positive, 1 zero, 2 negative).
RemoteAddr make_long_digits(FakePython& py, const Ver& v, int sign, const std::vector<uint32_t>& digits,
                            RemoteAddr type = {}) {
  size_t n = digits.size();
  RemoteAddr o = py.object(type ? type : py.types.long_, static_cast<size_t>(py.size(S::sz_PyLongObject)) + 4 * n);
  if (v.at_least(3, 12)) {
    uint64_t sign_bits = n == 0 ? 1 : sign < 0 ? 2 : 0;
    py.u64(py.at(o, F::long_tag), (static_cast<uint64_t>(n) << 3) | sign_bits);
  } else {
    py.i64(py.at(o, F::ob_size), sign < 0 ? -static_cast<int64_t>(n) : static_cast<int64_t>(n));
  }
  for (size_t i = 0; i < n; ++i) py.u32(py.at(o, F::long_digit) + static_cast<int64_t>(4 * i), digits[i]);
  return o;
}
RemoteAddr make_long(FakePython& py, const Ver& v, int sign, uint64_t mag, RemoteAddr type = {}) {
  std::vector<uint32_t> digits;
  for (uint64_t m = mag; m; m >>= 30) digits.push_back(static_cast<uint32_t>(m & 0x3fffffff));
  return make_long_digits(py, v, sign, digits, type);
}

const Ver kAll[] = {{2, 7}, {3, 6}, {3, 7}, {3, 8}, {3, 9}, {3, 10}, {3, 11}, {3, 12}, {3, 13}};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Strings

TEST_CASE("objects: read_str of ASCII strings in every version") {
  for (const Ver& v : kAll) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    RemoteAddr s = py.str("hello_world");
    CHECK(r.read_str(s) == std::optional<std::string>("hello_world"));
    CHECK(r.read_str(s, 5) == std::optional<std::string>("hello"));
    CHECK(r.read_str(py.str("")) == std::optional<std::string>(""));
    // Not a string: an int, a null pointer, an address in no mapping, a misaligned pointer.
    CHECK_FALSE(r.read_str(make_long(py, v, 1, 5)).has_value());
    CHECK_FALSE(r.read_str(RemoteAddr()).has_value());
    CHECK_FALSE(r.read_str(RemoteAddr(0x7fff12340000)).has_value());
    CHECK_FALSE(r.read_str(s + 4).has_value());
  }
}

TEST_CASE("objects: read_str of compact non-ASCII strings (3.3+ kinds 1, 2, 4)") {
  for (const Ver& v : {Ver{3, 6}, Ver{3, 9}, Ver{3, 11}, Ver{3, 12}, Ver{3, 13}}) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    // "café": Latin-1, one byte a character, not ASCII.
    CHECK(r.read_str(py.unicode(U"caf\u00e9", 1)) == std::optional<std::string>("caf\xc3\xa9"));
    // "€ 20 ω": UCS-2.
    CHECK(r.read_str(py.unicode(U"\u20ac 20 \u03c9", 2)) == std::optional<std::string>("\xe2\x82\xac 20 \xcf\x89"));
    // "😀!": UCS-4.
    CHECK(r.read_str(py.unicode(U"\U0001F600!", 4)) == std::optional<std::string>("\xf0\x9f\x98\x80!"));
    // Bounded in characters, not bytes.
    CHECK(r.read_str(py.unicode(U"\u20ac\u20ac\u20ac", 2), 2) == std::optional<std::string>("\xe2\x82\xac\xe2\x82\xac"));
  }
}

TEST_CASE("objects: read_str of a non-compact string and of bad states") {
  for (const Ver& v : {Ver{3, 9}, Ver{3, 11}, Ver{3, 12}}) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    // A legacy (non-compact) string: PyUnicodeObject with its characters in a separate buffer.
    RemoteAddr o = py.object(py.types.unicode, static_cast<size_t>(py.size(S::sz_PyUnicodeObject)));
    RemoteAddr data = py.alloc(16);
    const uint16_t chars[] = {0x3a9, 'm', 'e', 'g', 'a'};  // "Ωmega"
    py.put_bytes(data, chars, sizeof chars);
    py.i64(py.at(o, F::uni_length), 5);
    py.u32(py.at(o, F::uni_state), py.unicode_state(2, false, false));
    py.ptr(py.at(o, F::uni_data), data);
    CHECK(r.read_str(o) == std::optional<std::string>("\xce\xa9mega"));
    // Kind 0 (a wchar_t string not made ready) and negative lengths are refused.
    RemoteAddr bad = py.str("abc");
    py.u32(py.at(bad, F::uni_state), py.unicode_state(0, true, true));
    CHECK_FALSE(r.read_str(bad).has_value());
    RemoteAddr neg = py.str("abc");
    py.i64(py.at(neg, F::uni_length), -3);
    CHECK_FALSE(r.read_str(neg).has_value());
    // A length beyond the mapped bytes.
    RemoteAddr big = py.str("abc");
    py.i64(py.at(big, F::uni_length), 1 << 20);
    CHECK_FALSE(r.read_str(big).has_value());
  }
}

TEST_CASE("objects: read_str of a str subclass") {
  for (const Ver& v : {Ver{2, 7}, Ver{3, 9}, Ver{3, 13}}) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    // A heap type whose flags say "str subclass" (2.7: the bytes-like str).
    RemoteAddr sub = py.type_object("MyStr", v.major == 2 ? kFlagBytesSubclass : kFlagUnicodeSubclass);
    CHECK(r.read_str(py.str("subclassed", sub)) == std::optional<std::string>("subclassed"));
    RemoteAddr plain = py.type_object("Plain", 0);
    CHECK_FALSE(r.read_str(py.str("not a str", plain)).has_value());
  }
}

TEST_CASE("objects: read_str of 2.7 unicode") {
  Layout l = layout_for(2, 7);
  FakePython py(l);
  ObjectReader r(py.mem, l, py.types);
  REQUIRE(l.size(S::sz_Py_UNICODE) == 4);  // the UCS-4 build pyabi was made from
  // PyUnicodeObject: length and a separate Py_UNICODE buffer.
  RemoteAddr o = py.object(py.types.unicode, static_cast<size_t>(py.size(S::sz_PyUnicodeObject)));
  RemoteAddr buf = py.alloc(32);
  const uint32_t chars[] = {'n', 0xe4, 'i', 0x1f600};  // "näi😀"
  py.put_bytes(buf, chars, sizeof chars);
  py.i64(py.at(o, F::uni27_length), 4);
  py.ptr(py.at(o, F::uni27_str), buf);
  CHECK(r.read_str(o) == std::optional<std::string>("n\xc3\xa4i\xf0\x9f\x98\x80"));
  CHECK(r.read_str(o, 2) == std::optional<std::string>("n\xc3\xa4"));
}

TEST_CASE("objects: str_equals") {
  for (const Ver& v : {Ver{2, 7}, Ver{3, 9}, Ver{3, 11}, Ver{3, 12}, Ver{3, 13}}) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    RemoteAddr s = py.str("__name__");
    CHECK(r.str_equals(s, "__name__"));
    CHECK_FALSE(r.str_equals(s, "__name_"));
    CHECK_FALSE(r.str_equals(s, "__name__x"));  // reads past the object: the str ends first
    CHECK_FALSE(r.str_equals(s, "__nAme__"));
    CHECK_FALSE(r.str_equals(s, ""));
    CHECK(r.str_equals(py.str(""), ""));
    CHECK_FALSE(r.str_equals(make_long(py, v, 1, 0x656d616e5f5f), "__name__"));
    CHECK_FALSE(r.str_equals(RemoteAddr(), "x"));
    CHECK_FALSE(r.str_equals(RemoteAddr(0x7fff12340000), "x"));
    // A str subclass compares by its characters too.
    RemoteAddr sub = py.type_object("MyStr", v.major == 2 ? kFlagBytesSubclass : kFlagUnicodeSubclass);
    CHECK(r.str_equals(py.str("attr", sub), "attr"));
    std::string long_text(5000, 'q');
    CHECK(r.str_equals(py.str(long_text), long_text));
    CHECK_FALSE(r.str_equals(py.str(long_text), long_text.substr(1)));
    if (v.major == 3) {
      // Non-ASCII keys, compared in UTF-8.
      CHECK(r.str_equals(py.unicode(U"caf\u00e9", 1), "caf\xc3\xa9"));
      CHECK_FALSE(r.str_equals(py.unicode(U"caf\u00e9", 1), "cafe"));
      CHECK(r.str_equals(py.unicode(U"\u20ac", 2), "\xe2\x82\xac"));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Ints

TEST_CASE("objects: read_int small, large and negative") {
  for (const Ver& v : kAll) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    CHECK(r.read_int(make_long(py, v, 1, 0)) == std::optional<int64_t>(0));
    CHECK(r.read_int(make_long(py, v, 1, 5)) == std::optional<int64_t>(5));
    CHECK(r.read_int(make_long(py, v, -1, 5)) == std::optional<int64_t>(-5));
    CHECK(r.read_int(make_long(py, v, 1, 1u << 30)) == std::optional<int64_t>(1 << 30));  // two digits
    CHECK(r.read_int(make_long(py, v, -1, 123456789012345678ull)) == std::optional<int64_t>(-123456789012345678ll));
    CHECK(r.read_int(make_long(py, v, 1, INT64_MAX)) == std::optional<int64_t>(INT64_MAX));
    CHECK(r.read_int(make_long(py, v, -1, INT64_MAX)) == std::optional<int64_t>(-INT64_MAX));
    // Too big for 64 bits: 2**63 (digits 0, 0, 8), 2**64 (0, 0, 16), -2**90 (four digits).
    CHECK_FALSE(r.read_int(make_long_digits(py, v, 1, {0, 0, 8})).has_value());
    CHECK_FALSE(r.read_int(make_long_digits(py, v, 1, {0, 0, 16})).has_value());
    CHECK_FALSE(r.read_int(make_long_digits(py, v, -1, {0, 0, 0, 1})).has_value());
    // Digits are 30 bits: 2**62 - 1 is (2**30 - 1, 2**30 - 1, 3).
    CHECK(r.read_int(make_long_digits(py, v, 1, {0x3fffffff, 0x3fffffff, 3})) == std::optional<int64_t>((1ll << 62) - 1));
    // bool is an int subclass with its own type object.
    CHECK(r.read_int(make_long(py, v, 1, 1, py.types.bool_)) == std::optional<int64_t>(1));
    // Not an int.
    CHECK_FALSE(r.read_int(py.str("5")).has_value());
  }
}

TEST_CASE("objects: read_int of the most negative 64-bit int") {
  // -2**63 fits in int64_t: read_int is documented to read an int "that fits in 64 bits".
  for (const Ver& v : {Ver{3, 11}, Ver{3, 12}}) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    CHECK(r.read_int(make_long_digits(py, v, -1, {0, 0, 8})) == std::optional<int64_t>(INT64_MIN));
  }
}

TEST_CASE("objects: read_int of 3.12+ lv_tag sign bits") {
  Layout l = layout_for(3, 12);
  FakePython py(l);
  ObjectReader r(py.mem, l, py.types);
  // The tag written by hand: 1 digit, sign bits 0/2; zero is 0 digits with sign bits 1.
  auto tagged = [&](uint64_t tag, uint32_t digit) {
    RemoteAddr o = py.object(py.types.long_, static_cast<size_t>(py.size(S::sz_PyLongObject)));
    py.u64(py.at(o, F::long_tag), tag);
    py.u32(py.at(o, F::long_digit), digit);
    return o;
  };
  CHECK(r.read_int(tagged((1 << 3) | 0, 42)) == std::optional<int64_t>(42));
  CHECK(r.read_int(tagged((1 << 3) | 2, 42)) == std::optional<int64_t>(-42));
  CHECK(r.read_int(tagged(1, 0)) == std::optional<int64_t>(0));
  CHECK_FALSE(r.read_int(tagged(5ull << 3, 1)).has_value());  // five digits: too big
}

TEST_CASE("objects: read_int of 2.7 int and long") {
  Layout l = layout_for(2, 7);
  FakePython py(l);
  ObjectReader r(py.mem, l, py.types);
  RemoteAddr i = py.object(py.types.int27, 24);
  py.i64(py.at(i, F::int_ival), -7);
  CHECK(r.read_int(i) == std::optional<int64_t>(-7));
  RemoteAddr big = py.object(py.types.int27, 24);
  py.i64(py.at(big, F::int_ival), INT64_MAX);
  CHECK(r.read_int(big) == std::optional<int64_t>(INT64_MAX));
  CHECK(r.read_int(make_long(py, {2, 7}, -1, 1ull << 40)) == std::optional<int64_t>(-(1ll << 40)));
}

// ---------------------------------------------------------------------------------------------
// Dicts

namespace {

using Items = std::vector<std::pair<std::string, int64_t>>;

Items items_of(const ObjectReader& r, RemoteAddr dict, bool* ok = nullptr) {
  Items out;
  bool res = r.dict_items(dict, [&](RemoteAddr k, RemoteAddr v) {
    out.emplace_back(r.read_str(k).value_or("?"), r.read_int(v).value_or(-999));
    return true;
  });
  if (ok) *ok = res;
  return out;
}

// 2.7: ma_mask and ma_table of PyDictEntry {me_hash, me_key, me_value}, 24 bytes each.
struct Dict27 {
  RemoteAddr dict, table;
};
Dict27 make_dict27(FakePython& py, const std::vector<std::pair<RemoteAddr, RemoteAddr>>& slots) {
  int64_t n = static_cast<int64_t>(slots.size());
  RemoteAddr d = py.object(py.types.dict, static_cast<size_t>(py.size(S::sz_PyDictObject)));
  RemoteAddr table = py.alloc(static_cast<size_t>(n) * 24);
  for (int64_t i = 0; i < n; ++i) {
    py.i64(table + i * 24, slots[static_cast<size_t>(i)].first ? 12345 + i : 0);
    py.ptr(table + i * 24 + 8, slots[static_cast<size_t>(i)].first);
    py.ptr(table + i * 24 + 16, slots[static_cast<size_t>(i)].second);
  }
  py.i64(py.at(d, F::dict_mask), n - 1);
  py.ptr(py.at(d, F::dict_table), table);
  return {d, table};
}

// 3.6-3.10: PyDictKeysObject {dk_refcnt, dk_size, dk_lookup, dk_usable, dk_nentries,
// dk_indices[dk_size * index width]} then the entries {me_hash, me_key, me_value}.
RemoteAddr make_keys36(FakePython& py, int64_t size, const std::vector<std::pair<RemoteAddr, RemoteAddr>>& entries) {
  int width = size <= 0xff ? 1 : size <= 0xffff ? 2 : 4;
  int64_t idx = py.off(F::dk_indices);
  RemoteAddr k = py.alloc(static_cast<size_t>(idx + size * width) + entries.size() * 24);
  py.i64(py.at(k, F::dk_refcnt), 1);
  py.i64(py.at(k, F::dk_size), size);
  py.i64(py.at(k, F::dk_nentries), static_cast<int64_t>(entries.size()));
  for (int64_t i = 0; i < size; ++i)  // every slot empty (-1), then the entries in the first slots
    py.put_bytes(k + idx + i * width, std::vector<uint8_t>(static_cast<size_t>(width), 0xff));
  for (size_t i = 0; i < entries.size(); ++i) {
    py.put_bytes(k + idx + static_cast<int64_t>(i) * width, &i, static_cast<size_t>(width));
    RemoteAddr e = k + idx + size * width + static_cast<int64_t>(i * 24);
    py.i64(e, 777 + static_cast<int64_t>(i));
    py.ptr(e + 8, entries[i].first);
    py.ptr(e + 16, entries[i].second);
  }
  return k;
}

// 3.11+: {dk_refcnt, dk_log2_size, dk_log2_index_bytes, dk_kind, dk_version, dk_usable,
// dk_nentries, dk_indices[1 << dk_log2_index_bytes]} then 24-byte {hash, key, value} entries
// (kind 0, general) or 16-byte {key, value} ones (kind 1 unicode, 2 split).
RemoteAddr make_keys311(FakePython& py, int log2_size, int kind,
                        const std::vector<std::pair<RemoteAddr, RemoteAddr>>& entries) {
  int log2_index_bytes = log2_size + (log2_size < 8 ? 0 : log2_size < 16 ? 1 : 2);
  int64_t idx = py.off(F::dk_indices);
  int64_t esize = kind == 0 ? 24 : 16;
  RemoteAddr k = py.alloc(static_cast<size_t>(idx + (1 << log2_index_bytes) + static_cast<int64_t>(entries.size()) * esize));
  py.i64(py.at(k, F::dk_refcnt), 1);
  py.u8(py.at(k, F::dk_log2_size), static_cast<uint8_t>(log2_size));
  py.u8(py.at(k, F::dk_log2_index_bytes), static_cast<uint8_t>(log2_index_bytes));
  py.u8(py.at(k, F::dk_kind), static_cast<uint8_t>(kind));
  py.i64(py.at(k, F::dk_nentries), static_cast<int64_t>(entries.size()));
  py.put_bytes(k + idx, std::vector<uint8_t>(static_cast<size_t>(1) << log2_index_bytes, 0xff));
  for (size_t i = 0; i < entries.size(); ++i) {
    RemoteAddr e = k + idx + (1 << log2_index_bytes) + static_cast<int64_t>(i) * esize;
    if (kind == 0) {
      py.i64(e, 555 + static_cast<int64_t>(i));
      e = e + 8;
    }
    py.ptr(e, entries[i].first);
    py.ptr(e + 8, entries[i].second);
  }
  return k;
}

RemoteAddr make_dict3(FakePython& py, RemoteAddr keys, RemoteAddr values = {}) {
  RemoteAddr d = py.object(py.types.dict, static_cast<size_t>(py.size(S::sz_PyDictObject)));
  py.ptr(py.at(d, F::dict_keys), keys);
  py.ptr(py.at(d, F::dict_values), values);
  return d;
}

}  // namespace

TEST_CASE("objects: 2.7 dict items and get") {
  Ver v{2, 7};
  Layout l = layout_for(2, 7);
  FakePython py(l);
  ObjectReader r(py.mem, l, py.types);
  RemoteAddr dummy = py.str("<dummy key>");
  auto d = make_dict27(py, {{{}, {}},
                            {py.str("a"), make_long(py, v, 1, 1)},
                            {{}, {}},
                            {dummy, {}},  // deleted: the dummy key, no value
                            {{}, {}},
                            {py.str("b"), make_long(py, v, 1, 2)},
                            {{}, {}},
                            {py.str("c"), make_long(py, v, -1, 3)}});
  CHECK(items_of(r, d.dict) == Items{{"a", 1}, {"b", 2}, {"c", -3}});
  auto b = r.dict_get(d.dict, "b");
  REQUIRE(b.has_value());
  CHECK(r.read_int(*b) == std::optional<int64_t>(2));
  CHECK_FALSE(r.dict_get(d.dict, "zz").has_value());
  CHECK_FALSE(r.dict_get(d.dict, "<dummy key>").has_value());
  // Stopping early.
  int calls = 0;
  CHECK(r.dict_items(d.dict, [&](RemoteAddr, RemoteAddr) { return ++calls < 2; }));
  CHECK(calls == 2);
  // Corrupt masks are refused without reading a table that size.
  py.i64(py.at(d.dict, F::dict_mask), -1);
  CHECK_FALSE(r.dict_items(d.dict, [](RemoteAddr, RemoteAddr) { return true; }));
  py.i64(py.at(d.dict, F::dict_mask), INT64_MAX);
  CHECK_FALSE(r.dict_items(d.dict, [](RemoteAddr, RemoteAddr) { return true; }));
  py.i64(py.at(d.dict, F::dict_mask), 15);  // beyond the table's memory
  CHECK_FALSE(r.dict_items(d.dict, [](RemoteAddr, RemoteAddr) { return true; }));
}

TEST_CASE("objects: 3.6 to 3.10 combined dicts") {
  for (const Ver& v : {Ver{3, 6}, Ver{3, 7}, Ver{3, 8}, Ver{3, 9}, Ver{3, 10}}) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    RemoteAddr keys = make_keys36(py, 8, {{py.str("x"), make_long(py, v, 1, 10)},
                                          {py.str("gone"), {}},  // deleted
                                          {py.str("y"), make_long(py, v, 1, 20)}});
    RemoteAddr d = make_dict3(py, keys);
    CHECK(items_of(r, d) == Items{{"x", 10}, {"y", 20}});
    auto y = r.dict_get(d, "y");
    REQUIRE(y.has_value());
    CHECK(r.read_int(*y) == std::optional<int64_t>(20));
    CHECK_FALSE(r.dict_get(d, "gone").has_value());

    // 256 slots: two-byte indices move the entries.
    std::vector<std::pair<RemoteAddr, RemoteAddr>> many;
    Items want;
    for (int i = 0; i < 100; ++i) {
      many.emplace_back(py.str("k" + std::to_string(i)), make_long(py, v, 1, static_cast<uint64_t>(i * i)));
      want.emplace_back("k" + std::to_string(i), i * i);
    }
    RemoteAddr big = make_dict3(py, make_keys36(py, 256, many));
    CHECK(items_of(r, big) == want);
  }
}

TEST_CASE("objects: 3.6 to 3.10 split dicts") {
  for (const Ver& v : {Ver{3, 6}, Ver{3, 9}, Ver{3, 10}}) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    // Shared keys without values; the instance's values in a plain PyObject* array.
    RemoteAddr keys = make_keys36(py, 8, {{py.str("p"), {}}, {py.str("q"), {}}, {py.str("r"), {}}});
    RemoteAddr values = py.alloc(8 * 5);
    py.ptr(values, make_long(py, v, 1, 1));
    py.ptr(values + 16, make_long(py, v, 1, 3));  // q not set
    CHECK(items_of(r, make_dict3(py, keys, values)) == Items{{"p", 1}, {"r", 3}});
  }
}

TEST_CASE("objects: 3.6 to 3.10 corrupt dict keys are refused") {
  Ver v{3, 9};
  Layout l = layout_for(3, 9);
  FakePython py(l);
  ObjectReader r(py.mem, l, py.types);
  RemoteAddr keys = make_keys36(py, 8, {{py.str("x"), make_long(py, v, 1, 10)}});
  RemoteAddr d = make_dict3(py, keys);
  bool ok = false;
  CHECK(items_of(r, d, &ok).size() == 1);
  CHECK(ok);
  for (int64_t size : {0ll, -8ll, 6ll, 1ll << 40}) {
    INFO("dk_size ", size);
    py.i64(py.at(keys, F::dk_size), size);
    CHECK(items_of(r, d, &ok).empty());
    CHECK_FALSE(ok);
  }
  py.i64(py.at(keys, F::dk_size), 8);
  py.i64(py.at(keys, F::dk_nentries), 9);  // more entries than slots
  CHECK(items_of(r, d, &ok).empty());
  CHECK_FALSE(ok);
  py.i64(py.at(keys, F::dk_nentries), -1);
  CHECK(items_of(r, d, &ok).empty());
  CHECK_FALSE(ok);
  // No keys at all.
  CHECK(items_of(r, make_dict3(py, RemoteAddr()), &ok).empty());
  CHECK_FALSE(ok);
}

TEST_CASE("objects: 3.11+ dicts of general and unicode keys") {
  for (const Ver& v : {Ver{3, 11}, Ver{3, 12}, Ver{3, 13}}) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    // Kind 0: any keys (here an int key among str ones; its name reads as "?").
    RemoteAddr general = make_dict3(py, make_keys311(py, 3, 0, {{py.str("a"), make_long(py, v, 1, 1)},
                                                                 {make_long(py, v, 1, 7), make_long(py, v, 1, 2)},
                                                                 {py.str("del"), {}},
                                                                 {py.str("c"), make_long(py, v, -1, 3)}}));
    CHECK(items_of(r, general) == Items{{"a", 1}, {"?", 2}, {"c", -3}});
    // Kind 1: str keys only, 16-byte entries.
    RemoteAddr uni = make_dict3(py, make_keys311(py, 3, 1, {{py.str("u"), make_long(py, v, 1, 11)},
                                                             {py.str("w"), make_long(py, v, 1, 12)}}));
    CHECK(items_of(r, uni) == Items{{"u", 11}, {"w", 12}});
    auto w = r.dict_get(uni, "w");
    REQUIRE(w.has_value());
    CHECK(r.read_int(*w) == std::optional<int64_t>(12));
    // 256 slots: two-byte indices (dk_log2_index_bytes 9).
    std::vector<std::pair<RemoteAddr, RemoteAddr>> many;
    Items want;
    for (int i = 0; i < 150; ++i) {
      many.emplace_back(py.str("n" + std::to_string(i)), make_long(py, v, 1, static_cast<uint64_t>(3 * i)));
      want.emplace_back("n" + std::to_string(i), 3 * i);
    }
    CHECK(items_of(r, make_dict3(py, make_keys311(py, 8, 1, many))) == want);
  }
}

TEST_CASE("objects: 3.11+ split dicts") {
  for (const Ver& v : {Ver{3, 11}, Ver{3, 12}, Ver{3, 13}}) {
    INFO("CPython ", v.str());
    Layout l = layout_for(v.major, v.minor);
    FakePython py(l);
    ObjectReader r(py.mem, l, py.types);
    RemoteAddr keys = make_keys311(py, 3, 2, {{py.str("p"), {}}, {py.str("q"), {}}, {py.str("r"), {}}});
    // PyDictValues: up to 3.12 just the array; 3.13 puts capacity, size, embedded and valid
    // bytes before it (the array at `values`). The header bytes are set, so reading them as a
    // pointer would be noticed.
    RemoteAddr values = py.alloc(64);
    int64_t arr = l.has(F::dv_values) ? py.off(F::dv_values) : 0;
    if (arr > 0) {
      py.u8(values, 8);      // capacity
      py.u8(values + 1, 3);  // size
      py.u8(values + 3, 1);  // valid
    }
    py.ptr(values + arr, make_long(py, v, 1, 100));
    py.ptr(values + arr + 8, make_long(py, v, 1, 200));
    // r not set
    CHECK(items_of(r, make_dict3(py, keys, values)) == Items{{"p", 100}, {"q", 200}});
    int got = 0;
    CHECK(r.keys_values_items(keys, values, [&](RemoteAddr, RemoteAddr val) {
      got += static_cast<int>(r.read_int(val).value_or(0));
      return true;
    }));
    CHECK(got == 300);
  }
}

TEST_CASE("objects: 3.13 split dict values start after the PyDictValues header") {
  Layout l = layout_for(3, 13);
  REQUIRE(l.off(F::dv_values) == 8);  // Include/internal/pycore_dict.h: 4 uint8_t, padded to 8
  FakePython py(l);
  ObjectReader r(py.mem, l, py.types);
  RemoteAddr keys = make_keys311(py, 3, 2, {{py.str("only"), {}}});
  RemoteAddr values = py.alloc(32);
  py.u64(values, 0x0000000001000108ull);  // capacity 8, size 1, embedded 0, valid 1
  py.ptr(values + 8, make_long(py, {3, 13}, 1, 5));
  CHECK(items_of(r, make_dict3(py, keys, values)) == Items{{"only", 5}});
}

TEST_CASE("objects: 3.11+ corrupt dict keys are refused") {
  Ver v{3, 12};
  Layout l = layout_for(3, 12);
  FakePython py(l);
  ObjectReader r(py.mem, l, py.types);
  RemoteAddr keys = make_keys311(py, 3, 1, {{py.str("x"), make_long(py, v, 1, 1)}});
  RemoteAddr d = make_dict3(py, keys);
  bool ok = false;
  CHECK(items_of(r, d, &ok).size() == 1);
  CHECK(ok);
  py.u8(py.at(keys, F::dk_log2_size), 60);
  CHECK(items_of(r, d, &ok).empty());
  CHECK_FALSE(ok);
  py.u8(py.at(keys, F::dk_log2_size), 3);
  py.u8(py.at(keys, F::dk_log2_index_bytes), 63);
  CHECK(items_of(r, d, &ok).empty());
  CHECK_FALSE(ok);
  py.u8(py.at(keys, F::dk_log2_index_bytes), 3);
  py.i64(py.at(keys, F::dk_nentries), 9);  // more than 1 << 3
  CHECK(items_of(r, d, &ok).empty());
  CHECK_FALSE(ok);
  py.i64(py.at(keys, F::dk_nentries), 8);  // plausible, but the entries are not there
  CHECK(items_of(r, d, &ok).empty());
  CHECK_FALSE(ok);
}
