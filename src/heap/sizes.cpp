// sys.getsizeof() of an object, computed from outside: S(o), what type(o).__sizeof__ returns,
// chosen by the builtin type the object's type derives from, plus H(o), the header
// _PySys_GetSizeOf adds on top (the GC header; from 3.11 the pre-header of managed dicts and
// weakrefs). Every rule reads the struct members __sizeof__ reads; none uses len() or any other
// Python-level view, since those are not what CPython counts. Where the versions differ, the rule
// asks the layout's facts (abi/facts.hpp).
#include <algorithm>
#include <cstdlib>

#include "heap/buffers.hpp"
#include "heap/heap_types.hpp"
#include "runtime/frames.hpp"

namespace pyinspect {

namespace {

using Size = std::optional<int64_t>;
using Problem = ObjectSize::Problem;

constexpr int64_t kPtr = 8;    // sizeof(PyObject*): pyinspect reads 64-bit targets
constexpr int64_t kWchar = 4;  // sizeof(wchar_t) on Linux (the <=3.11 wstr cache)
// A count or size beyond this is a misread (a freed or foreign object), not a Python object.
constexpr int64_t kMaxSize = int64_t{1} << 42;

bool plausible(int64_t n) { return n >= -kMaxSize && n <= kMaxSize; }
bool plausible_count(int64_t n) { return n >= 0 && n <= kMaxSize; }

// USABLE_FRACTION (Objects/dictobject.c).
int64_t usable_fraction(int64_t n) { return (n << 1) / 3; }

// The rules for one object. Every read goes through member() and friends, which remember why a
// value was missing: a member the layout lacks, or memory that could not be read.
class Sizer {
 public:
  Sizer(HeapContext& c, RemoteAddr obj, const TypeInfo& type) : c_(c), l_(c.l), f_(c.l.facts()), obj_(obj), type_(type) {}

  ObjectSize run() {
    ObjectSize out;
    if (type_.python_sizeof) {
      out.problem = Problem::PythonSizeof;
      return out;
    }
    Size s = sizeof_part();
    if (s && (*s < 0 || *s > kMaxSize || static_cast<uint64_t>(*s) > c_.max_object_bytes)) s = fail(Problem::Unreadable);
    Size h = s ? header_part() : std::nullopt;
    if (s && h) {
      out.bytes = static_cast<uint64_t>(*s + *h);
    } else {
      out.problem = problem_ == Problem::None ? Problem::Unreadable : problem_;
    }
    return out;
  }

 private:
  std::nullopt_t fail(Problem p) {
    if (problem_ == Problem::None) problem_ = p;
    return std::nullopt;
  }
  template <class T>
  std::optional<T> member(RemoteAddr base, F f) {
    if (!l_.has(f)) return fail(Problem::MissingMember);
    auto v = c_.mem.read_as<T>(base + l_.off(f));
    if (!v) return fail(Problem::Unreadable);
    return v;
  }
  std::optional<int64_t> layout_size(S s) {
    if (!l_.has(s)) return fail(Problem::MissingMember);
    return l_.size(s);
  }
  std::optional<RemoteAddr> member_ptr(RemoteAddr base, F f) {
    auto v = member<uint64_t>(base, f);
    if (!v) return std::nullopt;
    return RemoteAddr(*v);
  }
  // A Py_ssize_t count member that must be in [0, kMaxSize].
  Size member_count(RemoteAddr base, F f) {
    auto v = member<int64_t>(base, f);
    if (!v) return std::nullopt;
    if (!plausible_count(*v)) return fail(Problem::Unreadable);
    return v;
  }
  // len() of a tuple member that may be NULL (co_cellvars, co_freevars).
  Size tuple_len(RemoteAddr tuple) { return tuple.null() ? Size(0) : member_count(tuple, F::ob_size); }

  Size sizeof_part();
  Size header_part();
  Size generic();
  Size long_size();
  Size str_size();
  Size str27_size();
  Size unicode27_size();
  Size bytearray_size();
  Size list_size();
  Size set_size();
  Size keys_size(RemoteAddr keys);
  Size dict_size(int64_t basicsize);
  Size odict_size();
  Size deque_size();
  Size array_size();
  Size struct_size();
  Size stgdict_size();
  Size buffered_size();
  Size code_extra_size(RemoteAddr extra);
  Size code_size();
  Size frame_slots(RemoteAddr code);
  Size frame_size();
  Size gen_size();
  Size type_size();
  Size ctypes_type_size();

  HeapContext& c_;
  const Layout& l_;
  const Facts& f_;
  RemoteAddr obj_;
  const TypeInfo& type_;
  Problem problem_ = Problem::None;
};

// object.__sizeof__: the type's basicsize plus ob_size items when the type has items. Py_SIZE is
// taken as it is (signed, no rounding), as object___sizeof__ does.
Size Sizer::generic() {
  int64_t s = type_.basicsize;
  if (type_.itemsize > 0) {
    auto n = member<int64_t>(obj_, F::ob_size);
    if (!n) return std::nullopt;
    if (!plausible(*n)) return fail(Problem::Unreadable);
    s += *n * type_.itemsize;
  }
  return s;
}

// --- numbers and strings ---

Size Sizer::long_size() {
  if (f_.long_sizeof_own_type) {
    // 2.7 long_sizeof: the object's own type's basicsize and itemsize, |ob_size| digits.
    auto n = member<int64_t>(obj_, F::ob_size);
    if (!n) return std::nullopt;
    if (!plausible(*n)) return fail(Problem::Unreadable);
    return type_.basicsize + std::llabs(*n) * type_.itemsize;
  }
  // 3.x: offsetof(PyLongObject, ob_digit) + digits * sizeof(digit), which are PyLong_Type's
  // basicsize and itemsize whatever the subclass (bool's larger basicsize up to 3.11 included).
  const TypeInfo* lt = c_.t.long_ ? c_.info(c_.t.long_) : nullptr;
  if (!lt) return fail(Problem::Unreadable);
  int64_t digits;
  if (f_.long_size == Facts::LongSize::Tag) {
    auto tag = member<uint64_t>(obj_, F::long_tag);
    if (!tag) return std::nullopt;
    digits = static_cast<int64_t>(*tag >> f_.long_tag_shift);
  } else {
    auto n = member<int64_t>(obj_, F::ob_size);
    if (!n) return std::nullopt;
    if (!plausible(*n)) return fail(Problem::Unreadable);  // before llabs, which INT64_MIN overflows
    digits = std::llabs(*n);
  }
  if (!plausible_count(digits)) return fail(Problem::Unreadable);
  digits = std::max<int64_t>(digits, f_.long_min_digits);  // 3.11+: 0 (and False) count one digit
  return lt->basicsize + digits * lt->itemsize;
}

// 3.3+ str (unicode__sizeof__ / unicode_sizeof_impl). The fixed struct sizes count, not the type's
// basicsize: a str subclass instance is a legacy string of sizeof(PyUnicodeObject) plus its data.
Size Sizer::str_size() {
  auto ascii_size = layout_size(S::sz_PyASCIIObject);
  auto compact_size = layout_size(S::sz_PyCompactUnicodeObject);
  auto legacy_size = layout_size(S::sz_PyUnicodeObject);
  if (!ascii_size || !compact_size || !legacy_size) return std::nullopt;
  auto length = member_count(obj_, F::uni_length);
  auto state = member<uint32_t>(obj_, F::uni_state);
  if (!length || !state) return std::nullopt;
  // The bits above the known ones are padding, not always zero.
  const auto& bits = f_.unicode_state;
  int64_t kind = (*state >> bits.kind_shift) & 7;
  bool compact = (*state >> bits.compact_bit) & 1, ascii = (*state >> bits.ascii_bit) & 1;
  bool ready = bits.ready_bit < 0 || ((*state >> bits.ready_bit) & 1);
  bool compact_ascii = compact && ascii;
  int64_t size;
  RemoteAddr data;
  if (compact_ascii) {
    size = *ascii_size + *length + 1;
    data = obj_ + *ascii_size;
  } else if (compact) {
    size = *compact_size + (*length + 1) * kind;
    data = obj_ + *compact_size;
  } else {
    // Legacy (a subclass, or <=3.11 PyUnicode_FromUnicode): the data block is separate and may
    // not exist yet (a not-ready string has only wstr).
    auto d = member_ptr(obj_, F::uni_data);
    if (!d) return std::nullopt;
    data = *d;
    size = *legacy_size + (data.null() ? 0 : (*length + 1) * kind);
  }
  // <=3.11: the wchar_t copy, unless it is the data itself (a ready kind-4 string).
  if (l_.has(F::uni_wstr)) {
    auto wstr = member_ptr(obj_, F::uni_wstr);
    if (!wstr) return std::nullopt;
    if (!wstr->null() && (!ready || *wstr != data)) {
      Size wlen = compact_ascii ? length : member_count(obj_, F::uni_wstr_length);
      if (!wlen) return std::nullopt;
      size += (*wlen + 1) * kWchar;
    }
  }
  // The UTF-8 copy; a compact ASCII string's UTF-8 is its data and has no member for it.
  if (!compact_ascii) {
    auto utf8 = member_ptr(obj_, F::uni_utf8);
    if (!utf8) return std::nullopt;
    if (!utf8->null() && *utf8 != data) {
      auto n = member_count(obj_, F::uni_utf8_length);
      if (!n) return std::nullopt;
      size += *n + 1;
    }
  }
  return size;
}

// 2.7 str (string_sizeof): PyStringObject_SIZE, offsetof(ob_sval) + 1, whatever the subclass.
Size Sizer::str27_size() {
  if (!l_.has(F::str_sval)) return fail(Problem::MissingMember);
  auto n = member_count(obj_, F::ob_size);
  if (!n) return std::nullopt;
  return l_.off(F::str_sval) + 1 + *n * type_.itemsize;
}

// 2.7 unicode (unicode__sizeof__): the struct and length + 1 Py_UNICODE units (2 or 4 bytes by
// build). The cached default encoding (defenc) is not counted.
Size Sizer::unicode27_size() {
  auto base = layout_size(S::sz_PyUnicodeObject);
  auto unit = layout_size(S::sz_Py_UNICODE);
  auto n = member_count(obj_, F::uni27_length);
  if (!base || !unit || !n) return std::nullopt;
  return *base + (*n + 1) * *unit;
}

// --- containers ---

Size Sizer::bytearray_size() {
  auto alloc = member_count(obj_, F::bytearray_alloc);
  if (!alloc) return std::nullopt;
  return type_.basicsize + *alloc;
}

// list_sizeof counts the allocated slots, not len(): over-allocation differs per version.
Size Sizer::list_size() {
  auto allocated = member_count(obj_, F::list_allocated);
  if (!allocated) return std::nullopt;
  return type_.basicsize + *allocated * kPtr;
}

Size Sizer::set_size() {
  auto table = member_ptr(obj_, F::set_table);
  auto mask = member_count(obj_, F::set_mask);
  auto entry = layout_size(S::sz_setentry);
  if (!table || !mask || !entry) return std::nullopt;
  if (!l_.has(F::set_smalltable)) return fail(Problem::MissingMember);
  int64_t s = type_.basicsize;
  if (*table != obj_ + l_.off(F::set_smalltable)) s += (*mask + 1) * *entry;
  return s;
}

// _PyDict_KeysSize (3.6+): the keys object, its index table and its entries.
Size Sizer::keys_size(RemoteAddr keys) {
  // The header before the indices: sizeof(PyDictKeysObject) from 3.7 (flexible array), that
  // minus the 8-byte dk_indices union in 3.6. Both are the offset of dk_indices.
  if (!l_.has(F::dk_indices)) return fail(Problem::MissingMember);
  int64_t header = l_.off(F::dk_indices);
  if (f_.dict == Facts::Dict::Dict311) {
    auto log2_size = member<uint8_t>(keys, F::dk_log2_size);
    auto log2_index_bytes = member<uint8_t>(keys, F::dk_log2_index_bytes);
    auto kind = member<uint8_t>(keys, F::dk_kind);
    if (!log2_size || !log2_index_bytes || !kind) return std::nullopt;
    if (*log2_size > 36 || *log2_index_bytes > 39) return fail(Problem::Unreadable);
    // DICT_KEYS_GENERAL (0) entries carry the hash; unicode and split keys do not.
    auto entry = layout_size(*kind == 0 ? S::sz_PyDictKeyEntry : S::sz_PyDictUnicodeEntry);
    if (!entry) return std::nullopt;
    return header + (int64_t{1} << *log2_index_bytes) + usable_fraction(int64_t{1} << *log2_size) * *entry;
  }
  auto n = member_count(keys, F::dk_size);
  auto entry = layout_size(S::sz_PyDictKeyEntry);
  if (!n || !entry) return std::nullopt;
  if (*n == 0) return fail(Problem::Unreadable);
  // DK_IXSIZE: the narrowest index type that holds dk_size.
  int64_t ix = *n <= 0xff ? 1 : *n <= 0xffff ? 2 : *n <= 0xffffffffLL ? 4 : 8;
  return header + ix * *n + usable_fraction(*n) * *entry;
}

// dict_sizeof with the basicsize of the object's real type (a subclass, defaultdict, OrderedDict).
Size Sizer::dict_size(int64_t basicsize) {
  if (f_.dict == Facts::Dict::Dict27) {
    // 2.7: the table is counted when it is not the 8 entries inside the object.
    auto table = member_ptr(obj_, F::dict_table);
    auto mask = member_count(obj_, F::dict_mask);
    auto entry = layout_size(S::sz_PyDictEntry);
    if (!table || !mask || !entry) return std::nullopt;
    if (!l_.has(F::dict_smalltable)) return fail(Problem::MissingMember);
    int64_t s = basicsize;
    if (*table != obj_ + l_.off(F::dict_smalltable)) s += (*mask + 1) * *entry;
    return s;
  }
  auto keys = member_ptr(obj_, F::dict_keys);
  auto values = member_ptr(obj_, F::dict_values);
  if (!keys || !values) return std::nullopt;
  if (keys->null()) return fail(Problem::Unreadable);
  int64_t s = basicsize;
  if (!values->null()) {
    // A split table: its values array. 3.11+ sizes it from the shared keys' current state
    // (shared_keys_usable_size), which follows the type, not this dict.
    if (f_.dict == Facts::Dict::Dict311) {
      auto nentries = member_count(*keys, F::dk_nentries);
      auto usable = member_count(*keys, F::dk_usable);
      if (!nentries || !usable) return std::nullopt;
      s += (*nentries + *usable) * kPtr;
    } else {
      auto n = member_count(*keys, F::dk_size);
      if (!n) return std::nullopt;
      s += usable_fraction(*n) * kPtr;
    }
  }
  // Keys shared with a type (dk_refcnt > 1) are counted in the type, never in its instances'
  // dicts; the static empty keys have a large (3.12+: immortal) refcount.
  auto refcnt = member<int64_t>(*keys, F::dk_refcnt);
  if (!refcnt) return std::nullopt;
  if (*refcnt == 1) {
    auto k = keys_size(*keys);
    if (!k) return std::nullopt;
    s += *k;
  }
  return s;
}

// 3.x OrderedDict (odict_sizeof): the dict, the fast-lookup node table and a node per item while
// the linked list exists.
Size Sizer::odict_size() {
  Size s = dict_size(type_.basicsize);
  if (!s) return std::nullopt;
  auto fast = member<int64_t>(obj_, F::odict_fast_nodes_size);
  auto first = member_ptr(obj_, F::odict_first);
  auto used = member_count(obj_, F::dict_used);
  auto node = layout_size(S::sz_ODictNode);
  if (!fast || !first || !used || !node) return std::nullopt;
  if (!plausible_count(*fast)) return fail(Problem::Unreadable);
  *s += *fast * kPtr;
  if (!first->null()) *s += *node * *used;
  return s;
}

// collections.deque (deque_sizeof): the object and every block the items span. The length is a
// member of its own in 2.7 (`len`), ob_size from 3.x.
Size Sizer::deque_size() {
  auto block = layout_size(S::sz_block);
  if (!block) return std::nullopt;
  int64_t per_block = (*block - 2 * kPtr) / kPtr;  // BLOCK: two links and BLOCKLEN item pointers
  auto left = member<int64_t>(obj_, F::deque_leftindex);
  auto len = member<int64_t>(obj_, l_.has(F::deque_len) ? F::deque_len : F::ob_size);
  if (!left || !len) return std::nullopt;
  if (!plausible_count(*left) || !plausible_count(*len) || per_block <= 0) return fail(Problem::Unreadable);
  return type_.basicsize + (*left + *len + per_block - 1) / per_block * *block;
}

// array.array (array_sizeof / array_array___sizeof___impl): the allocated items.
Size Sizer::array_size() {
  auto allocated = member_count(obj_, F::array_allocated);
  auto descr = member_ptr(obj_, F::array_descr);
  if (!allocated || !descr) return std::nullopt;
  if (descr->null()) return fail(Problem::Unreadable);
  auto itemsize = member<int32_t>(*descr, F::arraydescr_itemsize);
  if (!itemsize) return std::nullopt;
  if (*itemsize <= 0 || *itemsize > 16) return fail(Problem::Unreadable);
  return type_.basicsize + *allocated * *itemsize;
}

// _struct.Struct (s_sizeof): the type's basicsize and the format codes with their sentinel. 2.7
// counts s_len of them; 3.x the codes stored ('10s' and '10i' are one code each, padding none),
// up to the one whose fmtdef is NULL.
Size Sizer::struct_size() {
  auto code = layout_size(S::sz_formatcode);
  auto n = member_count(obj_, F::struct_len);
  if (!code || !n) return std::nullopt;
  if (!f_.struct_sizeof_counts_codes) return type_.basicsize + (*n + 1) * *code;
  auto codes = member_ptr(obj_, F::struct_codes);
  if (!codes) return std::nullopt;
  if (codes->null() || !l_.has(F::formatcode_fmtdef)) return fail(codes->null() ? Problem::Unreadable : Problem::MissingMember);
  int64_t count = 0;
  for (;; ++count) {
    if (count > *n || count > 1 << 16) return fail(Problem::Unreadable);  // no sentinel where one must be
    auto fmtdef = member_ptr(*codes + count * *code, F::formatcode_fmtdef);
    if (!fmtdef) return std::nullopt;
    if (fmtdef->null()) break;
  }
  return type_.basicsize + (count + 1) * *code;
}

// ctypes' StgDict (PyCStgDict_sizeof): the dict, the StgDict's own fields, its format string, its
// shape, and the ffi element pointers.
Size Sizer::stgdict_size() {
  auto stg = layout_size(S::sz_StgDictObject);
  auto dict_struct = layout_size(S::sz_PyDictObject);
  if (!stg || !dict_struct) return std::nullopt;
  Size s = dict_size(type_.basicsize);
  auto format = member_ptr(obj_, F::stgdict_format);
  auto ndim = member<int32_t>(obj_, F::stgdict_ndim);
  auto elements = member_ptr(obj_, F::stgdict_elements);
  auto length = member_count(obj_, F::stgdict_length);
  if (!s || !format || !ndim || !elements || !length) return std::nullopt;
  if (*ndim < 0 || *ndim > 64) return fail(Problem::Unreadable);
  *s += *stg - *dict_struct;
  if (!format->null()) {
    auto text = c_.mem.read_cstring(*format, 1 << 16);
    if (!text) return fail(Problem::Unreadable);
    *s += static_cast<int64_t>(text->size()) + 1;
  }
  *s += *ndim * kPtr;
  if (!elements->null()) *s += (*length + 1) * kPtr;
  return s;
}

// _io's buffered objects count their buffer (bufferedio.c, __sizeof__).
Size Sizer::buffered_size() {
  Size base = generic();
  auto buf = member_ptr(obj_, F::buffered_buffer);
  auto size = member<int64_t>(obj_, F::buffered_buffer_size);
  if (!base || !buf || !size) return std::nullopt;
  if (*size < 0 || *size > kMaxSize) return fail(Problem::Unreadable);
  return *base + (buf->null() ? 0 : *size);
}

// --- code, frames, generators ---

// co_nlocalsplus + co_stacksize of a 3.11+ code object: the slots of its frames.
Size Sizer::frame_slots(RemoteAddr code) {
  auto nlocalsplus = member<int32_t>(code, F::co_nlocalsplus);
  auto stacksize = member<int32_t>(code, F::co_stacksize);
  if (!nlocalsplus || !stacksize) return std::nullopt;
  if (*nlocalsplus < 0 || *stacksize < 0) return fail(Problem::Unreadable);
  return int64_t{*nlocalsplus} + *stacksize;
}

// code_sizeof's co_extra term: the _PyCodeObjectExtra block of ce_size slots. 3.6 counts only the
// slots; 3.7+ the struct (which holds the first slot) and the other slots.
Size Sizer::code_extra_size(RemoteAddr extra) {
  auto ce_size = c_.mem.read_as<int64_t>(extra);
  if (!ce_size || *ce_size < 1 || *ce_size > 1 << 20) return fail(Problem::Unreadable);
  if (!f_.code_extra_counts_struct) return *ce_size * kPtr;
  auto head = layout_size(S::sz_PyCodeObjectExtra);
  if (!head) return std::nullopt;
  return *head + (*ce_size - 1) * kPtr;
}

Size Sizer::code_size() {
  using CS = Facts::CodeSizeof;
  if (f_.code_sizeof == CS::Generic) return generic();  // 2.7 code has no __sizeof__
  int64_t s;
  if (f_.code_sizeof == CS::CodeUnits) {
    // _PyObject_VAR_SIZE: basicsize + the code units of co_code_adaptive, rounded up to a pointer.
    auto n = member_count(obj_, F::ob_size);
    if (!n) return std::nullopt;
    s = (type_.basicsize + *n * type_.itemsize + kPtr - 1) & ~(kPtr - 1);
  } else {
    s = type_.basicsize;
    // co_cell2arg: a Py_ssize_t per cell variable (3.6 counts 8 per cell too, although its
    // array is of unsigned char).
    auto cell2arg = member_ptr(obj_, F::co_cell2arg);
    auto cellvars = member_ptr(obj_, F::co_cellvars);
    if (!cell2arg || !cellvars) return std::nullopt;
    if (!cell2arg->null() && !cellvars->null()) {
      auto cells = tuple_len(*cellvars);
      if (!cells) return std::nullopt;
      s += *cells * kPtr;
    }
    // 3.8-3.10: once a function has run often enough, its opcache: a byte per code unit of
    // co_code (the map) and co_opcache_size _PyOpcache entries.
    if (l_.has(F::co_opcache)) {
      auto opcache = member_ptr(obj_, F::co_opcache);
      if (!opcache) return std::nullopt;
      if (!opcache->null()) {
        auto co_code = member_ptr(obj_, F::co_code);
        auto entries = member<uint8_t>(obj_, F::co_opcache_size);
        auto entry = layout_size(S::sz_PyOpcache);
        if (!co_code || !entries || !entry) return std::nullopt;
        if (co_code->null()) return fail(Problem::Unreadable);
        auto code_bytes = member_count(*co_code, F::ob_size);
        if (!code_bytes) return std::nullopt;
        s += *code_bytes / 2 + *entries * *entry;  // _Py_CODEUNIT is 2 bytes
      }
    }
  }
  auto extra = member_ptr(obj_, F::co_extra);
  if (!extra) return std::nullopt;
  if (!extra->null()) {
    auto e = code_extra_size(*extra);
    if (!e) return std::nullopt;
    s += *e;
  }
  return s;
}

// frame_sizeof. The slot counts come from the code object, not from the frame's ob_size (a
// recycled <=3.10 zombie frame may be larger than its code needs).
Size Sizer::frame_size() {
  if (f_.frames != Facts::Frames::FrameObjects) {
    auto iframe = member_ptr(obj_, F::fo_frame);
    if (!iframe) return std::nullopt;
    auto code = iframe->null() ? std::nullopt : interp_frame_code(c_.reader, *iframe);
    if (!code) return fail(Problem::Unreadable);
    auto slots = frame_slots(*code);
    if (!slots) return std::nullopt;
    return type_.basicsize + *slots * kPtr;
  }
  // <=3.10: sizeof(PyFrameObject) (PyFrame_Type's basicsize) holds the first of the
  // stacksize + nlocals + cells + free variables slots.
  auto code = member_ptr(obj_, F::fo_code);
  if (!code) return std::nullopt;
  if (code->null()) return fail(Problem::Unreadable);
  auto nlocals = member<int32_t>(*code, F::co_nlocals);
  auto stacksize = member<int32_t>(*code, F::co_stacksize);
  auto cellvars = member_ptr(*code, F::co_cellvars);
  auto freevars = member_ptr(*code, F::co_freevars);
  if (!nlocals || !stacksize || !cellvars || !freevars) return std::nullopt;
  if (*nlocals < 0 || *stacksize < 0) return fail(Problem::Unreadable);
  auto cells = tuple_len(*cellvars);
  auto frees = tuple_len(*freevars);
  if (!cells || !frees) return std::nullopt;
  int64_t extras = int64_t{*stacksize} + *nlocals + *cells + *frees;
  return type_.basicsize + (extras - 1) * kPtr;
}

// 3.11+ generators, coroutines and async generators (gen_sizeof): the embedded frame's slots.
// Up to 3.10 they have no __sizeof__ of their own (the frame is a separate object).
Size Sizer::gen_size() {
  if (!f_.gen_sizeof_frame) return generic();
  std::optional<RemoteAddr> code;
  if (l_.has(F::gen_code)) {
    code = member_ptr(obj_, F::gen_code);  // 3.11: gi_code
  } else if (l_.has(F::gen_iframe)) {
    code = interp_frame_code(c_.reader, obj_ + l_.off(F::gen_iframe));  // 3.12+: the frame's code
  } else {
    return fail(Problem::MissingMember);
  }
  if (!code || code->null()) return fail(Problem::Unreadable);
  auto slots = frame_slots(*code);
  if (!slots) return std::nullopt;
  return type_.basicsize + *slots * kPtr;
}

// --- type objects ---

// 3.x type.__sizeof__: the heap type struct and its cached shared keys, or the static struct. A
// metaclass's larger basicsize is not counted. 2.7 types have no __sizeof__ of their own.
Size Sizer::type_size() {
  if (!f_.type_sizeof) return generic();
  if (f_.ctypes_type_sizeof && type_.ctypes_metatype) return ctypes_type_size();
  auto flags = c_.reader.type_flags(obj_);
  if (!flags) return fail(Problem::Unreadable);
  if (!(*flags & tpflags::kHeapType)) return layout_size(S::sz_PyTypeObject);
  int64_t s;
  if (l_.has(S::sz_PyHeapTypeObject)) {
    s = l_.size(S::sz_PyHeapTypeObject);
  } else {
    const TypeInfo* tt = c_.t.type ? c_.info(c_.t.type) : nullptr;  // PyType_Type's basicsize is the same
    if (!tt) return fail(Problem::Unreadable);
    s = tt->basicsize;
  }
  auto keys = member_ptr(obj_, F::ht_cached_keys);
  if (!keys) return std::nullopt;
  if (!keys->null()) {
    auto k = keys_size(*keys);  // counted whatever their refcount: the type owns them
    if (!k) return std::nullopt;
    s += *k;
  }
  return s;
}

// 3.13+ ctypes types (CType_Type.__sizeof__): the metatype's basicsize and items, the format
// string, the shape and the ffi element pointers of the StgInfo the type holds after its
// PyHeapTypeObject (aligned to 16, PyObject_GetTypeData).
Size Sizer::ctypes_type_size() {
  auto heap = layout_size(S::sz_PyHeapTypeObject);
  if (!heap) return std::nullopt;
  RemoteAddr info = obj_ + ((*heap + 15) & ~int64_t{15});
  auto n = member<int64_t>(obj_, F::ob_size);
  auto format = member_ptr(info, F::stginfo_format);
  auto ndim = member<int32_t>(info, F::stginfo_ndim);
  auto elements = member_ptr(info, F::stginfo_elements);
  auto length = member_count(info, F::stginfo_length);
  if (!n || !format || !ndim || !elements || !length) return std::nullopt;
  if (!plausible_count(*n) || *ndim < 0 || *ndim > 64) return fail(Problem::Unreadable);
  int64_t s = type_.basicsize + *n * type_.itemsize;
  if (!format->null()) {
    auto text = c_.mem.read_cstring(*format, 1 << 16);
    if (!text) return fail(Problem::Unreadable);
    s += static_cast<int64_t>(text->size()) + 1;
  }
  if (!elements->null()) s += (*length + 1) * kPtr;
  return s + *ndim * kPtr;
}

// S(o): what the __sizeof__ that type(o) resolves to returns.
Size Sizer::sizeof_part() {
  switch (type_.cat) {
    case Cat::Long: return long_size();
    case Cat::Str: return str_size();
    case Cat::Str27: return str27_size();
    case Cat::Unicode27: return unicode27_size();
    case Cat::ByteArray: return bytearray_size();
    case Cat::List: return list_size();
    case Cat::Dict:
    case Cat::DefaultDict: return dict_size(type_.basicsize);
    case Cat::OrderedDict: return odict_size();  // the C type (2.7's is a Python dict subclass)
    case Cat::Set:
    case Cat::FrozenSet: return set_size();
    case Cat::Deque: return deque_size();
    case Cat::Code: return code_size();
    case Cat::Frame: return frame_size();
    case Cat::Generator:
    case Cat::Coroutine:
    case Cat::AsyncGenerator: return gen_size();
    case Cat::Type: return type_size();
    case Cat::Array: return array_size();
    case Cat::Struct: return struct_size();
    case Cat::StgDict: return f_.stgdict_sizeof ? stgdict_size() : dict_size(type_.basicsize);
    case Cat::Buffered: return buffered_size();
    case Cat::NdArray:
      if (auto n = ndarray_sizeof(c_, obj_, type_)) return *n;
      return fail(Problem::Unreadable);
    default:
      // Everything else uses object.__sizeof__: tuple, bytes, float, complex, 2.7 int and bool,
      // functions, methods, cells, modules, exceptions, descriptors, 2.7 classic instances...
      return generic();
  }
}

// H(o): what _PySys_GetSizeOf adds to __sizeof__. It depends on the type's flags only, not on
// whether the object really has the header (static and immortal objects included).
Size Sizer::header_part() {
  using SH = Facts::SizeofHeader;
  if (f_.sizeof_header == SH::GcIfIsGc) {
    // PyObject_IS_GC: a GC type, unless its tp_is_gc says no for this object. The only tp_is_gc
    // in CPython is type_is_gc (type and the metaclasses inheriting it), true for heap types
    // only: a static type object has no GC header.
    if (!type_.gc) return 0;
    if (type_.cat == Cat::Type && l_.has(F::tp_is_gc)) {
      auto is_gc = member_ptr(type_.addr, F::tp_is_gc);
      if (!is_gc) return std::nullopt;
      if (!is_gc->null()) {
        auto flags = c_.reader.type_flags(obj_);
        if (!flags) return fail(Problem::Unreadable);
        if (!(*flags & tpflags::kHeapType)) return 0;
      }
    }
    return c_.gc_head_size();
  }
  // 3.11+: _PyType_PreHeaderSize, from the flags alone (tp_is_gc is no longer asked, so 3.11 and
  // 3.12 count a GC header for static type objects). 3.13 exempts static type objects again.
  if (f_.sizeof_header == SH::PreHeaderExceptStaticTypes && type_.addr == c_.t.type) {
    auto flags = c_.reader.type_flags(obj_);
    if (!flags) return fail(Problem::Unreadable);
    if (!(*flags & tpflags::kHeapType)) return 0;
  }
  // The pre-header: 3.11 for a managed dict, 3.12+ for a managed dict or weakref list.
  uint64_t managed = f_.flag_managed_dict | f_.flag_managed_weakref;
  return (type_.gc ? c_.gc_head_size() : 0) + ((type_.flags & managed) ? f_.pre_header_words * kPtr : 0);
}

}  // namespace

ObjectSize object_size(HeapContext& ctx, RemoteAddr obj, const TypeInfo& type) { return Sizer(ctx, obj, type).run(); }

const char* size_problem_text(ObjectSize::Problem p) {
  switch (p) {
    case Problem::None: return "";
    case Problem::PythonSizeof: return "a __sizeof__ written in Python (only running it would tell)";
    case Problem::Unreadable: return "memory its __sizeof__ reads could not be read, or held impossible values";
    case Problem::MissingMember: return "this build's layout lacks a member its __sizeof__ reads";
  }
  return "";
}

}  // namespace pyinspect
