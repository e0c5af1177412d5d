#pragma once
// Hand-built CPython objects in a FakeMemory, for the decoders' unit tests. Every member is placed
// through a Layout's offsets and sizes (never a version check here); the values written follow
// CPython's documented representations (Include/cpython/unicodeobject.h, longintrepr.h, ...).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "abi/layout.hpp"
#include "proc/memory.hpp"
#include "runtime/types.hpp"

namespace pyinspect::test {

// The embedded table of a minor version, with the version's facts and the fixed layouts of its
// extension modules, as a target without DWARF is read; fails the test if absent.
inline Layout layout_for(int major, int minor, int micro = 0) {
  PyVersion v{major, minor, micro, ""};
  auto l = embedded_layout(v);
  REQUIRE_MESSAGE(l.has_value(), "no embedded layout for ", major, ".", minor);
  l->fill_from(fixed_layout(v));
  return *l;
}

// Py_TPFLAGS_* (Include/object.h), written into the fake type objects.
inline constexpr uint64_t kFlagLongSubclass = 1ull << 24;
inline constexpr uint64_t kFlagBytesSubclass = 1ull << 27;  // 2.7: str
inline constexpr uint64_t kFlagUnicodeSubclass = 1ull << 28;
inline constexpr uint64_t kFlagDictSubclass = 1ull << 29;
inline constexpr uint64_t kFlagIntSubclass27 = 1ull << 23;

class FakePython {
 public:
  explicit FakePython(const Layout& layout) : l(layout) {
    types.type = type_object("type", 1ull << 31);
    types.code = type_object("code", 0);
    types.unicode = type_object(py2() ? "unicode" : "str", kFlagUnicodeSubclass);
    if (py2())
      types.str27 = type_object("str", kFlagBytesSubclass);
    else
      types.bytes = type_object("bytes", kFlagBytesSubclass);
    types.long_ = type_object(py2() ? "long" : "int", kFlagLongSubclass);
    types.bool_ = type_object("bool", kFlagLongSubclass);
    if (py2()) types.int27 = type_object("int", kFlagIntSubclass27);
    types.dict = type_object("dict", kFlagDictSubclass);
    types.float_ = type_object("float", 0);
  }

  const Layout& l;
  FakeMemory mem;
  TypeAddrs types;

  bool py2() const { return (l.version.major == 2); }

  // A zero-filled range of `n` bytes, 16-aligned, with an unmapped gap after it, so that a read
  // past the end of an object fails.
  RemoteAddr alloc(size_t n) {
    RemoteAddr a(next_);
    mem.add(a, std::vector<uint8_t>(n, 0));
    next_ += (n + 15) / 16 * 16 + 64;
    return a;
  }

  void put_bytes(RemoteAddr a, const void* p, size_t n) {
    if (n == 0) return;
    std::vector<uint8_t> b(n);
    std::memcpy(b.data(), p, n);
    mem.write(a, b);
  }
  void put_bytes(RemoteAddr a, const std::vector<uint8_t>& b) { mem.write(a, b); }
  void u64(RemoteAddr a, uint64_t v) { put_bytes(a, &v, 8); }
  void i64(RemoteAddr a, int64_t v) { put_bytes(a, &v, 8); }
  void i32(RemoteAddr a, int32_t v) { put_bytes(a, &v, 4); }
  void u32(RemoteAddr a, uint32_t v) { put_bytes(a, &v, 4); }
  void u8(RemoteAddr a, uint8_t v) { put_bytes(a, &v, 1); }
  void ptr(RemoteAddr a, RemoteAddr v) { u64(a, v.value()); }

  int64_t off(F f) const { return l.require(f); }
  int64_t size(S s) const { return l.require(s); }
  RemoteAddr at(RemoteAddr obj, F f) const { return obj + off(f); }

  // An object header (refcount 1, `type`) on `n` zeroed bytes.
  RemoteAddr object(RemoteAddr type, size_t n) {
    RemoteAddr o = alloc(n);
    i64(at(o, F::ob_refcnt), 1);
    ptr(at(o, F::ob_type), type);
    return o;
  }

  RemoteAddr type_object(const std::string& name, uint64_t flags) {
    RemoteAddr tn = alloc(name.size() + 1);
    put_bytes(tn, name.data(), name.size());
    // The type of a type: `type` itself once it exists (the first one made points nowhere yet).
    RemoteAddr t = object(types.type, static_cast<size_t>(size(S::sz_PyTypeObject)));
    ptr(at(t, F::tp_name), tn);
    u64(at(t, F::tp_flags), flags);
    if (types.type.null()) ptr(at(t, F::ob_type), t);
    return t;
  }

  // PyASCIIObject.state (3.3+): interned:2, kind:3, compact:1, ascii:1, then `ready` up to 3.11.
  uint32_t unicode_state(unsigned kind, bool compact, bool ascii) const {
    uint32_t s = (kind << 2) | (compact ? 1u << 5 : 0) | (ascii ? 1u << 6 : 0);
    if (l.facts().unicode_state.ready_bit >= 0) s |= 1u << 7;
    return s;
  }

  // A str of ASCII characters: 2.7 PyStringObject (bytes in ob_sval), 3.x compact ASCII
  // PyASCIIObject with the characters right after the struct.
  RemoteAddr str(std::string_view s, RemoteAddr type = {}) {
    if (py2()) {
      RemoteAddr o = object(type ? type : types.str27, static_cast<size_t>(size(S::sz_PyStringObject)) + s.size());
      i64(at(o, F::ob_size), static_cast<int64_t>(s.size()));
      i64(at(o, F::str_shash), -1);
      put_bytes(at(o, F::str_sval), s.data(), s.size());
      u8(at(o, F::str_sval) + static_cast<int64_t>(s.size()), 0);
      return o;
    }
    int64_t hdr = size(S::sz_PyASCIIObject);
    RemoteAddr o = object(type ? type : types.unicode, static_cast<size_t>(hdr) + s.size() + 1);
    i64(at(o, F::uni_length), static_cast<int64_t>(s.size()));
    i64(at(o, F::uni_hash), -1);
    u32(at(o, F::uni_state), unicode_state(1, true, true));
    put_bytes(o + hdr, s.data(), s.size());
    return o;
  }

  // A compact non-ASCII str (3.3+): PyCompactUnicodeObject, then the code points in `kind`
  // bytes each (1: Latin-1, 2: UCS-2, 4: UCS-4) and a terminating zero unit.
  RemoteAddr unicode(const std::u32string& cps, unsigned kind) {
    int64_t hdr = size(S::sz_PyCompactUnicodeObject);
    RemoteAddr o = object(types.unicode, static_cast<size_t>(hdr) + (cps.size() + 1) * kind);
    i64(at(o, F::uni_length), static_cast<int64_t>(cps.size()));
    i64(at(o, F::uni_hash), -1);
    u32(at(o, F::uni_state), unicode_state(kind, true, false));
    for (size_t i = 0; i < cps.size(); ++i) {
      uint32_t cp = cps[i];
      put_bytes(o + hdr + static_cast<int64_t>(i * kind), &cp, kind);  // little-endian
    }
    return o;
  }

  // A bytes object (3.x) or a str (2.7) holding `b`: the form of co_lnotab / co_linetable.
  RemoteAddr bytes(const std::vector<uint8_t>& b) {
    F sval = py2() ? F::str_sval : F::bytes_sval;
    RemoteAddr o = object(py2() ? types.str27 : types.bytes, static_cast<size_t>(off(sval)) + b.size() + 1);
    i64(at(o, F::ob_size), static_cast<int64_t>(b.size()));
    if (py2()) i64(at(o, F::str_shash), -1);
    if (!b.empty()) put_bytes(at(o, sval), b);
    return o;
  }

 private:
  uint64_t next_ = 0x100000;
};

// Varints of the 3.11+ location table (Objects/locations.md): 6 bits a byte, low bits first,
// 0x40 = more follows; signed ones zigzag with the sign in bit 0.
inline void put_varint(std::vector<uint8_t>& out, uint32_t v) {
  while (v >= 64) {
    out.push_back(static_cast<uint8_t>(0x40 | (v & 63)));
    v >>= 6;
  }
  out.push_back(static_cast<uint8_t>(v));
}
inline void put_svarint(std::vector<uint8_t>& out, int32_t v) {
  put_varint(out, v < 0 ? (static_cast<uint32_t>(-v) << 1) | 1 : static_cast<uint32_t>(v) << 1);
}
// First byte of a location entry: bit 7 set, bits 3-6 the code, bits 0-2 code units - 1.
inline uint8_t loc_head(int code, int units) {
  return static_cast<uint8_t>(0x80 | (code << 3) | (units - 1));
}

}  // namespace pyinspect::test
