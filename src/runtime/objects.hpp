#pragma once
// Reading CPython objects out of the target: type, str, int, dict items, instance attributes.
// Everything is validated as it is read; a value that does not check out is nullopt.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "abi/layout.hpp"
#include "base/remote.hpp"
#include "proc/memory.hpp"
#include "runtime/types.hpp"

namespace pyinspect {

// Bytes of one struct read in a single call, with bounds-checked field access.
class StructBytes {
 public:
  StructBytes() = default;
  explicit StructBytes(std::vector<uint8_t> bytes) : b_(std::move(bytes)) {}
  template <class T>
  std::optional<T> get(int64_t off) const {
    if (off < 0 || static_cast<uint64_t>(off) + sizeof(T) > b_.size()) return std::nullopt;
    T v;
    std::memcpy(&v, b_.data() + off, sizeof v);
    return v;
  }
  std::optional<RemoteAddr> ptr(int64_t off) const {
    auto v = get<uint64_t>(off);
    if (!v) return std::nullopt;
    return RemoteAddr(*v);
  }
  size_t size() const { return b_.size(); }
  const std::vector<uint8_t>& bytes() const { return b_; }

 private:
  std::vector<uint8_t> b_;
};

// Limits that keep every walk bounded, whatever the target's memory says.
struct ReadLimits {
  size_t max_string_chars = 1 << 16;
  size_t max_dict_entries = 1 << 22;
};

class ObjectReader {
 public:
  ObjectReader(const Memory& mem, const Layout& layout, const TypeAddrs& types, ReadLimits limits = {})
      : mem_(mem), l_(layout), t_(types), limits_(limits) {}

  const Memory& memory() const { return mem_; }
  const Layout& layout() const { return l_; }
  const TypeAddrs& types() const { return t_; }

  // Reads `size` bytes of a struct at `addr`.
  std::optional<StructBytes> read_struct(RemoteAddr addr, int64_t size) const;

  std::optional<RemoteAddr> type_of(RemoteAddr obj) const;
  bool has_type(RemoteAddr obj, RemoteAddr type) const;
  std::optional<uint64_t> type_flags(RemoteAddr type) const;
  // tp_name as C string (e.g. "collections.deque", "ObjectA").
  std::optional<std::string> type_name(RemoteAddr type) const;

  // A str (3.x unicode, 2.7 str or unicode) as UTF-8, at most `max_chars` characters; nullopt if
  // `obj` is not a string object.
  std::optional<std::string> read_str(RemoteAddr obj, size_t max_chars = 0) const;
  // Whether `obj` is a str equal to `text`: one read for the common case (a compact ASCII str,
  // or a 2.7 str), which is what dict keys and attribute names are.
  bool str_equals(RemoteAddr obj, std::string_view text) const;
  // An int (PyLong, 2.7 PyInt) that fits in 64 bits.
  std::optional<int64_t> read_int(RemoteAddr obj) const;

  // Calls `fn(key, value)` for each live item of a dict, in storage order, until it returns
  // false. False if `dict` could not be read as a dict.
  bool dict_items(RemoteAddr dict, const std::function<bool(RemoteAddr, RemoteAddr)>& fn) const;
  // dict[key] for a str key.
  std::optional<RemoteAddr> dict_get(RemoteAddr dict, std::string_view key) const;
  // Items of a split table: shared keys + a values array (3.11+ managed instance attributes).
  bool keys_values_items(RemoteAddr keys, RemoteAddr values,
                         const std::function<bool(RemoteAddr, RemoteAddr)>& fn) const;

  // The bytes of a bytes object (2.7: a str), at most `max`; nullopt if `obj` is none.
  std::optional<std::vector<uint8_t>> read_bytes_object(RemoteAddr obj, size_t max) const;

  // Where an instance keeps its attributes: a __dict__ object, or (3.11+) values indexed like
  // its class's shared keys, kept without a dict object. All null: no attributes stored.
  struct InstanceStorage {
    RemoteAddr dict;    // the __dict__ object
    RemoteAddr keys;    // with values: the class's shared keys (ht_cached_keys)
    RemoteAddr values;  // the PyDictValues (3.13+: inline after the object)
    bool inline_values = false;
  };
  // The storage of `obj`, an instance of `type` (flags, basicsize, itemsize, dictoffset as read
  // from the type object); nullopt if it could not be read.
  struct TypeShape {
    RemoteAddr addr;
    uint64_t flags = 0;
    int64_t basicsize = 0, itemsize = 0, dictoffset = 0;
  };
  std::optional<InstanceStorage> instance_storage(RemoteAddr obj, const TypeShape& type) const;
  std::optional<TypeShape> type_shape(RemoteAddr type) const;
  // An instance attribute stored in the instance's dict or values.
  std::optional<RemoteAddr> instance_attr(RemoteAddr obj, std::string_view name) const;
  // The instance's __dict__ object if one exists (none for values without a dict).
  std::optional<RemoteAddr> instance_dict(RemoteAddr obj) const;

 private:
  struct DictTable {
    RemoteAddr entries;
    uint64_t count = 0;
    int64_t entry_size = 0;
    int64_t key_off = 0, value_off = 0;
  };
  std::optional<DictTable> keys_table(RemoteAddr keys) const;
  std::optional<RemoteAddr> dict_pointer(RemoteAddr obj, const TypeShape& type) const;
  bool table_items(const DictTable& t, RemoteAddr values, const std::function<bool(RemoteAddr, RemoteAddr)>& fn) const;
  std::optional<std::string> read_unicode(RemoteAddr obj, size_t max_chars) const;

  const Memory& mem_;
  const Layout& l_;
  const TypeAddrs& t_;
  ReadLimits limits_;
};

// Py_TPFLAGS_* bits that every version gives the same meaning (object.h); those of some versions
// only are facts (abi/facts.hpp).
namespace tpflags {
inline constexpr uint64_t kReady = 1ull << 12;
inline constexpr uint64_t kHeapType = 1ull << 9;
inline constexpr uint64_t kHaveGc = 1ull << 14;
inline constexpr uint64_t kLongSubclass = 1ull << 24;
inline constexpr uint64_t kListSubclass = 1ull << 25;
inline constexpr uint64_t kTupleSubclass = 1ull << 26;
inline constexpr uint64_t kBytesSubclass = 1ull << 27;  // 2.7: str (bytes)
inline constexpr uint64_t kUnicodeSubclass = 1ull << 28;
inline constexpr uint64_t kDictSubclass = 1ull << 29;
inline constexpr uint64_t kBaseExcSubclass = 1ull << 30;
inline constexpr uint64_t kTypeSubclass = 1ull << 31;
inline constexpr uint64_t kIntSubclass27 = 1ull << 23;  // where Facts::int_type
}  // namespace tpflags

}  // namespace pyinspect
