#include "runtime/objects.hpp"

#include <algorithm>

namespace pyinspect {

namespace {
void append_utf8(std::string& out, uint32_t cp) {
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;  // lone surrogate: not representable in UTF-8
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x110000) {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out += "\xef\xbf\xbd";
  }
}

std::string decode_units(const std::vector<uint8_t>& raw, int unit) {
  std::string out;
  out.reserve(raw.size());
  size_t n = raw.size() / static_cast<size_t>(unit);
  for (size_t i = 0; i < n; ++i) {
    uint32_t cp = 0;
    if (unit == 1) {
      cp = raw[i];
    } else if (unit == 2) {
      uint16_t u;
      std::memcpy(&u, raw.data() + 2 * i, 2);
      cp = u;
      // UCS-2 builds of 2.7 store astral characters as surrogate pairs.
      if (u >= 0xd800 && u < 0xdc00 && i + 1 < n) {
        uint16_t lo;
        std::memcpy(&lo, raw.data() + 2 * (i + 1), 2);
        if (lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((static_cast<uint32_t>(u) - 0xd800) << 10) + (lo - 0xdc00);
          ++i;
        }
      }
    } else {
      std::memcpy(&cp, raw.data() + 4 * i, 4);
    }
    append_utf8(out, cp);
  }
  return out;
}
}  // namespace

std::optional<StructBytes> ObjectReader::read_struct(RemoteAddr addr, int64_t size) const {
  if (size <= 0 || size > (1 << 20) || addr.null()) return std::nullopt;
  std::vector<uint8_t> buf(static_cast<size_t>(size));
  if (!mem_.read(addr, buf.data(), buf.size())) return std::nullopt;
  return StructBytes(std::move(buf));
}

std::optional<RemoteAddr> ObjectReader::type_of(RemoteAddr obj) const {
  if (obj.null() || (obj.value() & 7)) return std::nullopt;
  auto t = mem_.read_ptr(obj + l_.off(F::ob_type));
  if (!t || t->null() || (t->value() & 7)) return std::nullopt;
  return t;
}

bool ObjectReader::has_type(RemoteAddr obj, RemoteAddr type) const {
  if (type.null()) return false;
  auto t = type_of(obj);
  return t && *t == type;
}

std::optional<uint64_t> ObjectReader::type_flags(RemoteAddr type) const {
  auto v = mem_.read_as<uint64_t>(type + l_.off(F::tp_flags));
  // tp_flags is `unsigned long` (8 bytes) on LP64 in every version.
  return v;
}

std::optional<std::string> ObjectReader::type_name(RemoteAddr type) const {
  auto p = mem_.read_ptr(type + l_.off(F::tp_name));
  if (!p || p->null()) return std::nullopt;
  return mem_.read_cstring(*p, 256);
}

std::optional<std::string> ObjectReader::read_unicode(RemoteAddr obj, size_t max_chars) const {
  const Facts& facts = l_.facts();
  if (facts.strings == Facts::Strings::Bytes27) {
    // 2.7 unicode: length + a separate Py_UNICODE buffer.
    auto s = read_struct(obj, l_.require(S::sz_PyUnicodeObject));
    if (!s) return std::nullopt;
    auto len = s->get<int64_t>(l_.off(F::uni27_length));
    auto data = s->ptr(l_.off(F::uni27_str));
    int unit = static_cast<int>(l_.has(S::sz_Py_UNICODE) ? l_.size(S::sz_Py_UNICODE) : 4);
    if (!len || !data || *len < 0 || (unit != 2 && unit != 4)) return std::nullopt;
    size_t n = std::min<size_t>(static_cast<size_t>(*len), max_chars);
    auto raw = mem_.read_bytes(*data, n * static_cast<size_t>(unit));
    if (!raw) return std::nullopt;
    return decode_units(*raw, unit);
  }
  int64_t ascii_size = l_.require(S::sz_PyASCIIObject);
  auto s = read_struct(obj, ascii_size);
  if (!s) return std::nullopt;
  auto len = s->get<int64_t>(l_.off(F::uni_length));
  auto state = s->get<uint32_t>(l_.off(F::uni_state));
  if (!len || !state || *len < 0) return std::nullopt;
  const auto& bits = facts.unicode_state;
  unsigned kind = (*state >> bits.kind_shift) & 7;
  bool compact = (*state >> bits.compact_bit) & 1, ascii = (*state >> bits.ascii_bit) & 1;
  if (kind != 1 && kind != 2 && kind != 4) return std::nullopt;  // 0: legacy wchar_t string, not ready
  RemoteAddr data;
  if (compact && ascii)
    data = obj + ascii_size;
  else if (compact)
    // Without the size (a 3.14+ target known only by its _Py_DebugOffsets): the compact header
    // adds utf8_length and utf8 to the ASCII one.
    data = obj + (l_.has(S::sz_PyCompactUnicodeObject) ? l_.size(S::sz_PyCompactUnicodeObject) : ascii_size + 16);
  else {
    auto p = mem_.read_ptr(obj + l_.require(F::uni_data));
    if (!p) return std::nullopt;
    data = *p;
  }
  size_t n = std::min<size_t>(static_cast<size_t>(*len), max_chars);
  auto raw = mem_.read_bytes(data, n * kind);
  if (!raw) return std::nullopt;
  if (ascii) return std::string(raw->begin(), raw->end());
  return decode_units(*raw, static_cast<int>(kind));
}

std::optional<std::string> ObjectReader::read_str(RemoteAddr obj, size_t max_chars) const {
  if (max_chars == 0) max_chars = limits_.max_string_chars;
  auto type = type_of(obj);
  if (!type) return std::nullopt;
  const bool bytes_are_text = l_.facts().strings == Facts::Strings::Bytes27;  // 2.7's str
  bool is_unicode = *type == t_.unicode;
  bool is_str27 = bytes_are_text && *type == t_.str27;
  if (!is_unicode && !is_str27) {
    // A subclass of str: check the flags.
    auto flags = type_flags(*type);
    if (!flags) return std::nullopt;
    is_unicode = (*flags & tpflags::kUnicodeSubclass) != 0;
    is_str27 = bytes_are_text && (*flags & tpflags::kBytesSubclass) != 0;
    if (!is_unicode && !is_str27) return std::nullopt;
  }
  if (is_unicode) return read_unicode(obj, max_chars);
  auto size = mem_.read_as<int64_t>(obj + l_.off(F::ob_size));
  if (!size || *size < 0) return std::nullopt;
  size_t n = std::min<size_t>(static_cast<size_t>(*size), max_chars);
  auto raw = mem_.read_bytes(obj + l_.require(F::str_sval), n);
  if (!raw) return std::nullopt;
  return std::string(raw->begin(), raw->end());
}

bool ObjectReader::str_equals(RemoteAddr obj, std::string_view text) const {
  // Names (dict keys, attribute names) are 2.7 str objects, or compact ASCII str from 3.3.
  bool py2 = l_.facts().strings == Facts::Strings::Bytes27;
  int64_t data_off = py2 ? l_.require(F::str_sval) : l_.require(S::sz_PyASCIIObject);
  if (text.size() > 4096) return read_str(obj, text.size() + 1) == std::optional<std::string>(std::string(text));
  std::vector<uint8_t> buf(static_cast<size_t>(data_off) + text.size());
  if (obj.null() || (obj.value() & 7) || !mem_.read(obj, buf.data(), buf.size())) {
    // Shorter than we asked for (a str at the very end of a mapping): take the slow path.
    auto s = read_str(obj, text.size() + 1);
    return s && *s == text;
  }
  StructBytes b(std::move(buf));
  auto type = b.ptr(l_.off(F::ob_type));
  if (py2) {
    if (!type || *type != t_.str27)
      return read_str(obj, text.size() + 1) == std::optional<std::string>(std::string(text));
    auto size = b.get<int64_t>(l_.off(F::ob_size));
    return size && static_cast<uint64_t>(*size) == text.size() &&
           std::memcmp(b.bytes().data() + data_off, text.data(), text.size()) == 0;
  }
  auto len = b.get<int64_t>(l_.off(F::uni_length));
  auto state = b.get<uint32_t>(l_.off(F::uni_state));
  if (!type || !len || !state) return false;
  const auto& bits = l_.facts().unicode_state;
  bool compact_ascii = ((*state >> bits.compact_bit) & 1) && ((*state >> bits.ascii_bit) & 1);
  if (*type != t_.unicode || !compact_ascii) {
    auto s = read_str(obj, text.size() + 1);
    return s && *s == text;
  }
  return static_cast<uint64_t>(*len) == text.size() &&
         std::memcmp(b.bytes().data() + data_off, text.data(), text.size()) == 0;
}

std::optional<int64_t> ObjectReader::read_int(RemoteAddr obj) const {
  auto type = type_of(obj);
  if (!type) return std::nullopt;
  // 2.7: int is a C long (PyIntObject), and bool is an int subclass with the same layout.
  if (l_.facts().int_type && (*type == t_.int27 || *type == t_.bool_))
    return mem_.read_as<int64_t>(obj + l_.require(F::int_ival));
  if (*type != t_.long_ && *type != t_.bool_) {
    auto flags = type_flags(*type);
    if (!flags || !(*flags & tpflags::kLongSubclass)) return std::nullopt;
  }
  int64_t ndigits = 0;
  int sign = 1;
  const Facts& facts = l_.facts();
  if (facts.long_size == Facts::LongSize::Tag) {
    auto tag = mem_.read_as<uint64_t>(obj + l_.require(F::long_tag));
    if (!tag) return std::nullopt;
    ndigits = static_cast<int64_t>(*tag >> facts.long_tag_shift);
    sign = 1 - static_cast<int>(*tag & facts.long_sign_mask);
  } else {
    auto size = mem_.read_as<int64_t>(obj + l_.off(F::ob_size));
    // Beyond 3 digits it does not fit (below); checked before negating, which INT64_MIN cannot be.
    if (!size || *size < -3 || *size > 3) return std::nullopt;
    ndigits = *size < 0 ? -*size : *size;
    sign = *size < 0 ? -1 : 1;
  }
  const int bits = facts.long_digit_bits;
  if (ndigits > 3 || bits != 30) return std::nullopt;  // more than 64 bits of 30-bit digits
  uint32_t digits[3] = {};
  if (ndigits && !mem_.read(obj + l_.require(F::long_digit), digits, static_cast<size_t>(ndigits) * 4))
    return std::nullopt;
  uint64_t v = 0;
  for (int64_t i = ndigits - 1; i >= 0; --i) {
    if (v >> (64 - bits)) return std::nullopt;  // would not fit in 64 bits
    v = (v << bits) | (digits[i] & ((1u << bits) - 1));
  }
  if (sign < 0) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1) return std::nullopt;
    return static_cast<int64_t>(0 - v);  // two's complement: -2^63 fits
  }
  if (v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(v);
}

std::optional<ObjectReader::DictTable> ObjectReader::keys_table(RemoteAddr keys) const {
  const Facts& facts = l_.facts();
  auto hdr = read_struct(keys, l_.require(F::dk_indices));
  if (!hdr) return std::nullopt;
  DictTable t;
  auto nentries = hdr->get<int64_t>(l_.require(F::dk_nentries));
  if (!nentries || *nentries < 0) return std::nullopt;
  uint64_t index_bytes = 0;
  if (facts.dict == Facts::Dict::Dict311) {
    auto log2_size = hdr->get<uint8_t>(l_.require(F::dk_log2_size));
    auto log2_index = hdr->get<uint8_t>(l_.require(F::dk_log2_index_bytes));
    auto kind = hdr->get<uint8_t>(l_.require(F::dk_kind));
    if (!log2_size || !log2_index || !kind || *log2_index > 40 || *log2_size > 40) return std::nullopt;
    index_bytes = 1ull << *log2_index;
    if (*kind == 0) {  // DICT_KEYS_GENERAL: hash, key, value
      t.entry_size = l_.require(S::sz_PyDictKeyEntry);
      t.key_off = l_.require(F::dke_key);
      t.value_off = l_.require(F::dke_value);
    } else {  // DICT_KEYS_UNICODE / SPLIT: key, value
      t.entry_size = l_.require(S::sz_PyDictUnicodeEntry);
      t.key_off = l_.require(F::due_key);
      t.value_off = l_.require(F::due_value);
    }
    if (static_cast<uint64_t>(*nentries) > (1ull << *log2_size)) return std::nullopt;
  } else {
    auto size = hdr->get<int64_t>(l_.require(F::dk_size));
    if (!size || *size <= 0 || (*size & (*size - 1))) return std::nullopt;
    uint64_t s = static_cast<uint64_t>(*size);
    int width = s <= 0xff ? 1 : s <= 0xffff ? 2 : s <= 0xffffffffull ? 4 : 8;
    index_bytes = s * static_cast<uint64_t>(width);
    t.entry_size = l_.require(S::sz_PyDictKeyEntry);
    t.key_off = l_.require(F::dke_key);
    t.value_off = l_.require(F::dke_value);
    if (static_cast<uint64_t>(*nentries) > s) return std::nullopt;
  }
  t.entries = keys + l_.off(F::dk_indices) + static_cast<int64_t>(index_bytes);
  t.count = std::min<uint64_t>(static_cast<uint64_t>(*nentries), limits_.max_dict_entries);
  return t;
}

bool ObjectReader::table_items(const DictTable& t, RemoteAddr values,
                               const std::function<bool(RemoteAddr, RemoteAddr)>& fn) const {
  constexpr uint64_t kBatch = 1024;
  std::vector<uint8_t> buf;
  std::vector<uint64_t> vals;
  for (uint64_t first = 0; first < t.count; first += kBatch) {
    uint64_t n = std::min(kBatch, t.count - first);
    buf.resize(n * static_cast<uint64_t>(t.entry_size));
    if (!mem_.read(t.entries + static_cast<int64_t>(first * static_cast<uint64_t>(t.entry_size)), buf.data(),
                   buf.size()))
      return false;
    if (values) {
      vals.resize(n);
      if (!mem_.read(values + static_cast<int64_t>(first * 8), vals.data(), n * 8)) return false;
    }
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t key, value;
      std::memcpy(&key, buf.data() + i * static_cast<uint64_t>(t.entry_size) + static_cast<uint64_t>(t.key_off), 8);
      if (values)
        value = vals[i];
      else
        std::memcpy(&value, buf.data() + i * static_cast<uint64_t>(t.entry_size) + static_cast<uint64_t>(t.value_off),
                    8);
      if (!key || !value) continue;  // deleted entry, or a split value not set
      if (!fn(RemoteAddr(key), RemoteAddr(value))) return true;
    }
  }
  return true;
}

bool ObjectReader::dict_items(RemoteAddr dict, const std::function<bool(RemoteAddr, RemoteAddr)>& fn) const {
  auto d = read_struct(dict, l_.require(S::sz_PyDictObject));
  if (!d) return false;
  if (l_.facts().dict == Facts::Dict::Dict27) {
    auto mask = d->get<int64_t>(l_.require(F::dict_mask));
    auto table = d->ptr(l_.require(F::dict_table));
    if (!mask || !table || *mask < 0 || static_cast<uint64_t>(*mask) >= limits_.max_dict_entries * 2) return false;
    DictTable t{*table, static_cast<uint64_t>(*mask) + 1, l_.require(S::sz_PyDictEntry), l_.require(F::de27_key),
                l_.require(F::de27_value)};
    return table_items(t, RemoteAddr(), fn);
  }
  auto keys = d->ptr(l_.require(F::dict_keys));
  auto values = d->ptr(l_.require(F::dict_values));
  if (!keys || !values || keys->null()) return false;
  auto t = keys_table(*keys);
  if (!t) return false;
  RemoteAddr vals = *values;
  if (vals && l_.has(F::dv_values)) vals = vals + l_.off(F::dv_values);  // 3.13: header before the array
  return table_items(*t, vals, fn);
}

bool ObjectReader::keys_values_items(RemoteAddr keys, RemoteAddr values,
                                     const std::function<bool(RemoteAddr, RemoteAddr)>& fn) const {
  auto t = keys_table(keys);
  if (!t) return false;
  if (values && l_.has(F::dv_values)) values = values + l_.off(F::dv_values);
  return table_items(*t, values, fn);
}

std::optional<RemoteAddr> ObjectReader::dict_get(RemoteAddr dict, std::string_view key) const {
  std::optional<RemoteAddr> found;
  dict_items(dict, [&](RemoteAddr k, RemoteAddr v) {
    if (str_equals(k, key)) {
      found = v;
      return false;
    }
    return true;
  });
  return found;
}

std::optional<ObjectReader::TypeShape> ObjectReader::type_shape(RemoteAddr type) const {
  auto t = read_struct(type, std::max({l_.require(F::tp_flags), l_.require(F::tp_basicsize),
                                       l_.require(F::tp_itemsize), l_.require(F::tp_dictoffset)}) +
                                 8);
  if (!t) return std::nullopt;
  TypeShape shape;
  shape.addr = type;
  shape.flags = t->get<uint64_t>(l_.off(F::tp_flags)).value_or(0);
  shape.basicsize = t->get<int64_t>(l_.off(F::tp_basicsize)).value_or(0);
  shape.itemsize = t->get<int64_t>(l_.off(F::tp_itemsize)).value_or(0);
  shape.dictoffset = t->get<int64_t>(l_.off(F::tp_dictoffset)).value_or(0);
  // Values no type has are a misread (a freed or torn type): bounded here, the sums made of them
  // (dict_pointer's end of a variable-size object) cannot overflow.
  constexpr int64_t kMaxSize = int64_t{1} << 32;
  if (shape.basicsize < 0 || shape.basicsize > kMaxSize || shape.itemsize < 0 || shape.itemsize > (1 << 20) ||
      shape.dictoffset < -kMaxSize || shape.dictoffset > kMaxSize)
    return std::nullopt;
  return shape;
}

// _PyObject_GetDictPtr without a managed dict: tp_dictoffset from the start, or (negative) from
// the end of a variable-size object.
std::optional<RemoteAddr> ObjectReader::dict_pointer(RemoteAddr obj, const TypeShape& type) const {
  int64_t off = type.dictoffset;
  if (off == 0) return std::nullopt;
  if (off < 0) {
    // A count beyond 2**42 is a misread (as for the sizes), and would overflow this sum.
    auto n = mem_.read_as<int64_t>(obj + l_.off(F::ob_size));
    if (!n || *n < -(int64_t{1} << 42) || *n > (int64_t{1} << 42)) return std::nullopt;
    off += (type.basicsize + (*n < 0 ? -*n : *n) * type.itemsize + 7) & ~int64_t{7};
    if (off <= 0) return std::nullopt;
  }
  return obj + off;
}

std::optional<ObjectReader::InstanceStorage> ObjectReader::instance_storage(RemoteAddr obj,
                                                                            const TypeShape& type) const {
  const Facts& facts = l_.facts();
  InstanceStorage st;
  if (facts.classic_classes && type.addr == t_.instance27) {  // 2.7 classic instance: in_dict
    auto d = mem_.read_ptr(obj + l_.require(F::inst_dict));
    if (!d) return std::nullopt;
    st.dict = *d;
    return st;
  }
  using ID = Facts::InstanceDict;
  if (facts.instance_dict == ID::DictOffset || !(type.flags & facts.flag_managed_dict)) {
    auto at = dict_pointer(obj, type);
    if (!at) return st;
    auto d = mem_.read_ptr(*at);
    if (!d) return std::nullopt;
    st.dict = *d;
    return st;
  }
  // A managed dict (3.11+): the pre-header holds the dict, or the values kept without one.
  auto slot = mem_.read_ptr(obj + facts.managed_dict_offset);
  if (!slot) return std::nullopt;
  if (facts.instance_dict == ID::Tagged312 && (slot->value() & facts.managed_values_tag)) {
    st.values = RemoteAddr(slot->value() + 1);  // the slot holds the values pointer minus one
  } else if (!slot->null()) {
    st.dict = *slot;
    return st;
  } else if (facts.instance_dict == ID::PreHeader311) {
    auto v = mem_.read_ptr(obj + facts.managed_values_offset);
    if (!v) return std::nullopt;
    st.values = *v;
  } else if (facts.instance_dict == ID::Inline313 && (type.flags & facts.flag_inline_values)) {
    RemoteAddr inline_values = obj + type.basicsize;
    auto valid = mem_.read_as<uint8_t>(inline_values + l_.require(F::dv_valid));
    if (!valid) return std::nullopt;
    if (*valid) st.values = inline_values, st.inline_values = true;
  }
  if (st.values) {
    auto keys = mem_.read_ptr(type.addr + l_.require(F::ht_cached_keys));
    if (!keys) return std::nullopt;
    if (keys->null()) st.values = RemoteAddr();
    st.keys = *keys;
  }
  return st;
}

std::optional<RemoteAddr> ObjectReader::instance_dict(RemoteAddr obj) const {
  auto type = type_of(obj);
  auto shape = type ? type_shape(*type) : std::nullopt;
  auto st = shape ? instance_storage(obj, *shape) : std::nullopt;
  if (!st || st->dict.null()) return std::nullopt;
  return st->dict;
}

std::optional<RemoteAddr> ObjectReader::instance_attr(RemoteAddr obj, std::string_view name) const {
  auto type = type_of(obj);
  auto shape = type ? type_shape(*type) : std::nullopt;
  auto st = shape ? instance_storage(obj, *shape) : std::nullopt;
  if (!st) return std::nullopt;
  if (st->dict) return dict_get(st->dict, name);
  if (!st->values) return std::nullopt;
  std::optional<RemoteAddr> found;
  keys_values_items(st->keys, st->values, [&](RemoteAddr k, RemoteAddr v) {
    if (str_equals(k, name)) {
      found = v;
      return false;
    }
    return true;
  });
  return found;
}

std::optional<std::vector<uint8_t>> ObjectReader::read_bytes_object(RemoteAddr obj, size_t max) const {
  // 2.7's bytes is str.
  bool py2 = l_.facts().strings == Facts::Strings::Bytes27;
  if (!has_type(obj, py2 ? t_.str27 : t_.bytes)) return std::nullopt;
  auto size = mem_.read_as<int64_t>(obj + l_.off(F::ob_size));
  if (!size || *size < 0 || static_cast<uint64_t>(*size) > max) return std::nullopt;
  return mem_.read_bytes(obj + l_.require(py2 ? F::str_sval : F::bytes_sval), static_cast<size_t>(*size));
}

}  // namespace pyinspect
