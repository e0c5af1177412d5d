// sys.getsizeof() of an object, computed from outside: S(o), what type(o).__sizeof__ returns,
// chosen by the builtin type the object's type derives from, plus H(o), the header
// _PySys_GetSizeOf adds on top (the GC header; from 3.11 the pre-header of managed dicts and
// weakrefs). Every rule reads the struct members __sizeof__ reads; none uses len() or any other
// Python-level view, since those are not what CPython counts.
#include <algorithm>
#include <cstdlib>

#include "heap/heap_types.hpp"

namespace pyinspect {

namespace {

using Size = std::optional<int64_t>;

constexpr uint64_t kManagedWeakref = 1ull << 3;  // Py_TPFLAGS_MANAGED_WEAKREF, 3.12+
constexpr int64_t kPtr = 8;                      // sizeof(PyObject*): pyinspect reads 64-bit targets
constexpr int64_t kPreHeader = 2 * kPtr;         // 3.11+: the two words before the GC header
constexpr int64_t kWchar = 4;                    // sizeof(wchar_t) on Linux (the <=3.11 wstr cache)
// A count or size beyond this is a misread (a freed or foreign object), not a Python object.
constexpr int64_t kMaxSize = int64_t{1} << 42;

bool plausible(int64_t n) {
  return n >= -kMaxSize && n <= kMaxSize;
}
bool plausible_count(int64_t n) {
  return n >= 0 && n <= kMaxSize;
}

// Member `f` of the struct at `base`; nullopt when unreadable or when this build's layout does not
// have the member.
template <class T>
std::optional<T> member(const HeapContext& c, RemoteAddr base, F f) {
  if (!c.l.has(f)) return std::nullopt;
  return c.mem.read_as<T>(base + c.l.off(f));
}
std::optional<RemoteAddr> member_ptr(const HeapContext& c, RemoteAddr base, F f) {
  auto v = member<uint64_t>(c, base, f);
  if (!v) return std::nullopt;
  return RemoteAddr(*v);
}
// A Py_ssize_t count member that must be in [0, kMaxSize].
Size member_count(const HeapContext& c, RemoteAddr base, F f) {
  auto v = member<int64_t>(c, base, f);
  if (!v || !plausible_count(*v)) return std::nullopt;
  return v;
}
// len() of a tuple member that may be NULL (co_cellvars, co_freevars).
Size tuple_len(const HeapContext& c, RemoteAddr tuple) {
  if (tuple.null()) return 0;
  return member_count(c, tuple, F::ob_size);
}

// USABLE_FRACTION (Objects/dictobject.c).
int64_t usable_fraction(int64_t n) {
  return (n << 1) / 3;
}

// object.__sizeof__: the type's basicsize plus ob_size items when the type has items. Py_SIZE is
// taken as it is (signed, no rounding), as object___sizeof__ does.
Size generic_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  int64_t s = type.basicsize;
  if (type.itemsize > 0) {
    auto n = member<int64_t>(c, obj, F::ob_size);
    if (!n || !plausible(*n)) return std::nullopt;
    s += *n * type.itemsize;
  }
  return s;
}

// --- numbers and strings ---

Size long_size(HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  if (c.l.traits().python2) {
    // 2.7 long_sizeof: the object's own type's basicsize and itemsize, |ob_size| digits.
    auto n = member<int64_t>(c, obj, F::ob_size);
    if (!n || !plausible(*n)) return std::nullopt;
    return type.basicsize + std::llabs(*n) * type.itemsize;
  }
  // 3.x: offsetof(PyLongObject, ob_digit) + digits * sizeof(digit), which are PyLong_Type's
  // basicsize and itemsize whatever the subclass (bool's larger basicsize up to 3.11 included).
  const TypeInfo* lt = c.t.long_ ? c.info(c.t.long_) : nullptr;
  if (!lt) return std::nullopt;
  int64_t digits;
  if (c.l.traits().long_tag) {
    // 3.12+: lv_tag = ndigits << 3 | sign bits (_PyLong_NON_SIZE_BITS).
    auto tag = member<uint64_t>(c, obj, F::long_tag);
    if (!tag) return std::nullopt;
    digits = static_cast<int64_t>(*tag >> 3);
  } else {
    auto n = member<int64_t>(c, obj, F::ob_size);
    if (!n || !plausible(*n)) return std::nullopt;  // before llabs, which INT64_MIN overflows
    digits = std::llabs(*n);
  }
  if (!plausible_count(digits)) return std::nullopt;
  // 3.11+ counts at least one digit: 0 (and False) is 28 bytes there, 24 before.
  if (c.l.version.at_least(3, 11)) digits = std::max<int64_t>(digits, 1);
  return lt->basicsize + digits * lt->itemsize;
}

// 3.3+ str (unicode__sizeof__ / unicode_sizeof_impl). The fixed struct sizes count, not the type's
// basicsize: a str subclass instance is a legacy string of sizeof(PyUnicodeObject) plus its data.
Size str_size(const HeapContext& c, RemoteAddr obj) {
  const Layout& l = c.l;
  if (!l.has(S::sz_PyASCIIObject) || !l.has(S::sz_PyCompactUnicodeObject) || !l.has(S::sz_PyUnicodeObject))
    return std::nullopt;
  auto length = member_count(c, obj, F::uni_length);
  auto state = member<uint32_t>(c, obj, F::uni_state);
  if (!length || !state) return std::nullopt;
  // state: interned:2, kind:3, compact:1, ascii:1, then (up to 3.11) ready:1; the bits above are
  // padding, not always zero.
  int64_t kind = (*state >> 2) & 7;
  bool compact = (*state >> 5) & 1, ascii = (*state >> 6) & 1;
  bool ready = !l.traits().unicode_ready_bit || ((*state >> 7) & 1);
  bool compact_ascii = compact && ascii;
  int64_t size;
  RemoteAddr data;
  if (compact_ascii) {
    size = l.size(S::sz_PyASCIIObject) + *length + 1;
    data = obj + l.size(S::sz_PyASCIIObject);
  } else if (compact) {
    size = l.size(S::sz_PyCompactUnicodeObject) + (*length + 1) * kind;
    data = obj + l.size(S::sz_PyCompactUnicodeObject);
  } else {
    // Legacy (a subclass, or <=3.11 PyUnicode_FromUnicode): the data block is separate and may
    // not exist yet (a not-ready string has only wstr).
    auto d = member_ptr(c, obj, F::uni_data);
    if (!d) return std::nullopt;
    data = *d;
    size = l.size(S::sz_PyUnicodeObject) + (data.null() ? 0 : (*length + 1) * kind);
  }
  // <=3.11: the wchar_t copy, unless it is the data itself (a ready kind-4 string).
  if (l.has(F::uni_wstr)) {
    auto wstr = member_ptr(c, obj, F::uni_wstr);
    if (!wstr) return std::nullopt;
    if (!wstr->null() && (!ready || *wstr != data)) {
      Size wlen = compact_ascii ? length : member_count(c, obj, F::uni_wstr_length);
      if (!wlen) return std::nullopt;
      size += (*wlen + 1) * kWchar;
    }
  }
  // The UTF-8 copy; a compact ASCII string's UTF-8 is its data and has no member for it.
  if (!compact_ascii) {
    auto utf8 = member_ptr(c, obj, F::uni_utf8);
    if (!utf8) return std::nullopt;
    if (!utf8->null() && *utf8 != data) {
      auto n = member_count(c, obj, F::uni_utf8_length);
      if (!n) return std::nullopt;
      size += *n + 1;
    }
  }
  return size;
}

// 2.7 str (string_sizeof): PyStringObject_SIZE, offsetof(ob_sval) + 1, whatever the subclass.
Size str27_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  if (!c.l.has(F::str_sval)) return std::nullopt;
  auto n = member_count(c, obj, F::ob_size);
  if (!n) return std::nullopt;
  return c.l.off(F::str_sval) + 1 + *n * type.itemsize;
}

// 2.7 unicode (unicode__sizeof__): the struct and length + 1 Py_UNICODE units (2 or 4 bytes by
// build). The cached default encoding (defenc) is not counted.
Size unicode27_size(const HeapContext& c, RemoteAddr obj) {
  if (!c.l.has(S::sz_PyUnicodeObject) || !c.l.has(S::sz_Py_UNICODE)) return std::nullopt;
  auto n = member_count(c, obj, F::uni27_length);
  if (!n) return std::nullopt;
  return c.l.size(S::sz_PyUnicodeObject) + (*n + 1) * c.l.size(S::sz_Py_UNICODE);
}

// --- containers ---

Size bytearray_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  auto alloc = member_count(c, obj, F::bytearray_alloc);
  if (!alloc) return std::nullopt;
  return type.basicsize + *alloc;
}

// list_sizeof counts the allocated slots, not len(): over-allocation differs per version.
Size list_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  auto allocated = member_count(c, obj, F::list_allocated);
  if (!allocated) return std::nullopt;
  return type.basicsize + *allocated * kPtr;
}

Size set_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  auto table = member_ptr(c, obj, F::set_table);
  auto mask = member_count(c, obj, F::set_mask);
  if (!table || !mask || !c.l.has(F::set_smalltable) || !c.l.has(S::sz_setentry)) return std::nullopt;
  int64_t s = type.basicsize;
  if (*table != obj + c.l.off(F::set_smalltable)) s += (*mask + 1) * c.l.size(S::sz_setentry);
  return s;
}

// _PyDict_KeysSize (3.6+): the keys object, its index table and its entries.
Size keys_size(const HeapContext& c, RemoteAddr keys) {
  const Layout& l = c.l;
  // The header before the indices: sizeof(PyDictKeysObject) from 3.7 (flexible array), that
  // minus the 8-byte dk_indices union in 3.6. Both are the offset of dk_indices.
  if (!l.has(F::dk_indices)) return std::nullopt;
  int64_t header = l.off(F::dk_indices);
  if (l.traits().dict == Traits::Dict::Dict311) {
    auto log2_size = member<uint8_t>(c, keys, F::dk_log2_size);
    auto log2_index_bytes = member<uint8_t>(c, keys, F::dk_log2_index_bytes);
    auto kind = member<uint8_t>(c, keys, F::dk_kind);
    if (!log2_size || !log2_index_bytes || !kind || *log2_size > 36 || *log2_index_bytes > 39) return std::nullopt;
    // DICT_KEYS_GENERAL (0) entries carry the hash; unicode and split keys do not.
    S entry = *kind == 0 ? S::sz_PyDictKeyEntry : S::sz_PyDictUnicodeEntry;
    if (!l.has(entry)) return std::nullopt;
    return header + (int64_t{1} << *log2_index_bytes) + usable_fraction(int64_t{1} << *log2_size) * l.size(entry);
  }
  auto n = member_count(c, keys, F::dk_size);
  if (!n || *n == 0 || !l.has(S::sz_PyDictKeyEntry)) return std::nullopt;
  // DK_IXSIZE: the narrowest index type that holds dk_size.
  int64_t ix = *n <= 0xff ? 1 : *n <= 0xffff ? 2 : *n <= 0xffffffffLL ? 4 : 8;
  return header + ix * *n + usable_fraction(*n) * l.size(S::sz_PyDictKeyEntry);
}

// dict_sizeof with the basicsize of the object's real type (a subclass, defaultdict, OrderedDict).
Size dict_size(const HeapContext& c, RemoteAddr obj, int64_t basicsize) {
  const Layout& l = c.l;
  if (l.traits().dict == Traits::Dict::Dict27) {
    // 2.7: the table is counted when it is not the 8 entries inside the object.
    auto table = member_ptr(c, obj, F::dict_table);
    auto mask = member_count(c, obj, F::dict_mask);
    if (!table || !mask || !l.has(F::dict_smalltable) || !l.has(S::sz_PyDictEntry)) return std::nullopt;
    int64_t s = basicsize;
    if (*table != obj + l.off(F::dict_smalltable)) s += (*mask + 1) * l.size(S::sz_PyDictEntry);
    return s;
  }
  auto keys = member_ptr(c, obj, F::dict_keys);
  auto values = member_ptr(c, obj, F::dict_values);
  if (!keys || !values || keys->null()) return std::nullopt;
  int64_t s = basicsize;
  if (!values->null()) {
    // A split table: its values array. 3.11+ sizes it from the shared keys' current state
    // (shared_keys_usable_size), which follows the type, not this dict.
    if (l.traits().dict == Traits::Dict::Dict311) {
      auto nentries = member_count(c, *keys, F::dk_nentries);
      auto usable = member_count(c, *keys, F::dk_usable);
      if (!nentries || !usable) return std::nullopt;
      s += (*nentries + *usable) * kPtr;
    } else {
      auto n = member_count(c, *keys, F::dk_size);
      if (!n) return std::nullopt;
      s += usable_fraction(*n) * kPtr;
    }
  }
  // Keys shared with a type (dk_refcnt > 1) are counted in the type, never in its instances'
  // dicts; the static empty keys have a large (3.12+: immortal) refcount.
  auto refcnt = member<int64_t>(c, *keys, F::dk_refcnt);
  if (!refcnt) return std::nullopt;
  if (*refcnt == 1) {
    auto k = keys_size(c, *keys);
    if (!k) return std::nullopt;
    s += *k;
  }
  return s;
}

// 3.x OrderedDict (odict_sizeof): the dict, the fast-lookup node table and a node per item while
// the linked list exists. od_first, od_fast_nodes_size and sizeof(_ODictNode) come from the
// layout; where it lacks them, fixed x86-64 values stand in (48, 72, 32: sizeof.md section 4).
Size odict_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  Size s = dict_size(c, obj, type.basicsize);
  if (!s) return std::nullopt;
  const Layout& l = c.l;
  auto fast = c.mem.read_as<int64_t>(obj + (l.has(F::odict_fast_nodes_size) ? l.off(F::odict_fast_nodes_size) : 72));
  auto first = c.mem.read_ptr(obj + (l.has(F::odict_first) ? l.off(F::odict_first) : 48));
  auto used = member_count(c, obj, F::dict_used);
  if (!fast || !plausible_count(*fast) || !first || !used) return std::nullopt;
  int64_t node = l.has(S::sz_ODictNode) ? l.size(S::sz_ODictNode) : 32;
  *s += *fast * kPtr;
  if (!first->null()) *s += node * *used;
  return s;
}

// collections.deque (deque_sizeof): the object and every block the items span. 2.7's _collections
// is an extension module, outside libpython's DWARF: unless the context was given them, its
// dequeobject offsets are the fixed x86-64 ones (leftindex 32, len 48) and a BLOCK holds 62 items
// in 512 bytes (sizeof.md section 4). 3.x: 64 items in 528 bytes where the layout lacks the size.
Size deque_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  const Layout& l = c.l;
  const bool py2 = l.traits().python2;
  int64_t left_off = l.has(F::deque_leftindex)         ? l.off(F::deque_leftindex)
                     : c.fallback.deque_leftindex >= 0 ? c.fallback.deque_leftindex
                     : py2                             ? 32
                                                       : 40;
  int64_t len_off = !py2                        ? l.off(F::ob_size)  // 3.x: the length is ob_size
                    : l.has(F::deque_len)       ? l.off(F::deque_len)
                    : c.fallback.deque_len >= 0 ? c.fallback.deque_len
                                                : 48;
  int64_t block = l.has(S::sz_block) ? l.size(S::sz_block) : py2 ? 512 : 528;
  int64_t per_block = (block - 2 * kPtr) / kPtr;  // BLOCK: two links and BLOCKLEN item pointers
  auto left = c.mem.read_as<int64_t>(obj + left_off);
  auto len = c.mem.read_as<int64_t>(obj + len_off);
  if (!left || !len || !plausible_count(*left) || !plausible_count(*len) || per_block <= 0) return std::nullopt;
  return type.basicsize + (*left + *len + per_block - 1) / per_block * block;
}

// array.array (array_sizeof / array_array___sizeof___impl): the allocated items. arraymodule is an
// extension module, outside libpython's DWARF: `allocated` at 32, `ob_descr` at 40 and
// arraydescr.itemsize (an int at 4) are the constants of sizeof.md section 4.
Size array_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  auto allocated = c.mem.read_as<int64_t>(obj + 32);
  auto descr = c.mem.read_ptr(obj + 40);
  if (!allocated || !plausible_count(*allocated) || !descr || descr->null()) return std::nullopt;
  auto itemsize = c.mem.read_as<int32_t>(*descr + 4);
  if (!itemsize || *itemsize <= 0 || *itemsize > 16) return std::nullopt;
  return type.basicsize + *allocated * *itemsize;
}

// --- code, frames, generators ---

// The code object of a 3.11+ _PyInterpreterFrame (3.14+: a tagged _PyStackRef).
std::optional<RemoteAddr> interp_frame_code(const HeapContext& c, RemoteAddr iframe) {
  auto code = member<uint64_t>(c, iframe, F::if_code);
  if (!code) return std::nullopt;
  if (c.l.traits().tagged_code_pointer) *code &= ~uint64_t{7};
  if (*code == 0) return std::nullopt;
  return RemoteAddr(*code);
}

// co_nlocalsplus + co_stacksize of a 3.11+ code object: the slots of its frames.
Size frame_slots(const HeapContext& c, RemoteAddr code) {
  auto nlocalsplus = member<int32_t>(c, code, F::co_nlocalsplus);
  auto stacksize = member<int32_t>(c, code, F::co_stacksize);
  if (!nlocalsplus || !stacksize || *nlocalsplus < 0 || *stacksize < 0) return std::nullopt;
  return int64_t{*nlocalsplus} + *stacksize;
}

// code_sizeof's co_extra term: the _PyCodeObjectExtra block of ce_size slots. 3.6 counts only the
// slots; 3.7+ the struct (which holds the first slot) and the other slots.
Size code_extra_size(const HeapContext& c, RemoteAddr extra) {
  auto ce_size = c.mem.read_as<int64_t>(extra);
  if (!ce_size || *ce_size < 1 || *ce_size > 1 << 20) return std::nullopt;
  if (!c.l.version.at_least(3, 7)) return *ce_size * kPtr;
  int64_t head = c.l.has(S::sz_PyCodeObjectExtra) ? c.l.size(S::sz_PyCodeObjectExtra) : 2 * kPtr;
  return head + (*ce_size - 1) * kPtr;
}

Size code_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  const Layout& l = c.l;
  if (l.traits().python2) return generic_size(c, obj, type);  // 2.7 code has no __sizeof__
  int64_t s;
  if (l.version.at_least(3, 11)) {
    // _PyObject_VAR_SIZE: basicsize + the code units of co_code_adaptive, rounded up to a pointer.
    auto n = member_count(c, obj, F::ob_size);
    if (!n) return std::nullopt;
    s = (type.basicsize + *n * type.itemsize + kPtr - 1) & ~(kPtr - 1);
  } else {
    s = type.basicsize;
    // co_cell2arg: a Py_ssize_t per cell variable (3.6 counts 8 per cell too, although its
    // array is of unsigned char).
    auto cell2arg = member_ptr(c, obj, F::co_cell2arg);
    auto cellvars = member_ptr(c, obj, F::co_cellvars);
    if (!cell2arg || !cellvars) return std::nullopt;
    if (!cell2arg->null() && !cellvars->null()) {
      auto cells = tuple_len(c, *cellvars);
      if (!cells) return std::nullopt;
      s += *cells * kPtr;
    }
    // 3.8-3.10: once a function has run often enough, its opcache: a byte per code unit of
    // co_code (the map) and co_opcache_size _PyOpcache entries.
    if (l.has(F::co_opcache)) {
      auto opcache = member_ptr(c, obj, F::co_opcache);
      if (!opcache) return std::nullopt;
      if (!opcache->null()) {
        auto co_code = member_ptr(c, obj, F::co_code);
        auto entries = member<uint8_t>(c, obj, F::co_opcache_size);
        if (!co_code || co_code->null() || !entries) return std::nullopt;
        auto code_bytes = member_count(c, *co_code, F::ob_size);
        if (!code_bytes) return std::nullopt;
        // sizeof(_PyOpcache), 32 in 3.8-3.10 (sizeof.md section 2.15): not in the layout, as
        // the DWARF reader cannot size a struct whose typedef has the same name as its tag.
        constexpr int64_t entry = 32;
        s += *code_bytes / 2 + *entries * entry;  // _Py_CODEUNIT is 2 bytes
      }
    }
  }
  auto extra = member_ptr(c, obj, F::co_extra);
  if (!extra) return std::nullopt;
  if (!extra->null()) {
    auto e = code_extra_size(c, *extra);
    if (!e) return std::nullopt;
    s += *e;
  }
  return s;
}

// frame_sizeof. The slot counts come from the code object, not from the frame's ob_size (a
// recycled <=3.10 zombie frame may be larger than its code needs).
Size frame_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  if (c.l.version.at_least(3, 11)) {
    auto iframe = member_ptr(c, obj, F::fo_frame);
    if (!iframe || iframe->null()) return std::nullopt;
    auto code = interp_frame_code(c, *iframe);
    if (!code) return std::nullopt;
    auto slots = frame_slots(c, *code);
    if (!slots) return std::nullopt;
    return type.basicsize + *slots * kPtr;
  }
  // <=3.10: sizeof(PyFrameObject) (PyFrame_Type's basicsize) holds the first of the
  // stacksize + nlocals + cells + free variables slots.
  auto code = member_ptr(c, obj, F::fo_code);
  if (!code || code->null()) return std::nullopt;
  auto nlocals = member<int32_t>(c, *code, F::co_nlocals);
  auto stacksize = member<int32_t>(c, *code, F::co_stacksize);
  auto cellvars = member_ptr(c, *code, F::co_cellvars);
  auto freevars = member_ptr(c, *code, F::co_freevars);
  if (!nlocals || !stacksize || !cellvars || !freevars || *nlocals < 0 || *stacksize < 0) return std::nullopt;
  auto cells = tuple_len(c, *cellvars);
  auto frees = tuple_len(c, *freevars);
  if (!cells || !frees) return std::nullopt;
  int64_t extras = int64_t{*stacksize} + *nlocals + *cells + *frees;
  return type.basicsize + (extras - 1) * kPtr;
}

// 3.11+ generators, coroutines and async generators (gen_sizeof): the embedded frame's slots.
// Up to 3.10 they have no __sizeof__ of their own (the frame is a separate object).
Size gen_size(const HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  if (!c.l.version.at_least(3, 11)) return generic_size(c, obj, type);
  std::optional<RemoteAddr> code;
  if (c.l.has(F::gen_code)) {
    code = member_ptr(c, obj, F::gen_code);  // 3.11: gi_code
  } else if (c.l.has(F::gen_iframe)) {
    code = interp_frame_code(c, obj + c.l.off(F::gen_iframe));  // 3.12+: the frame's code
  }
  if (!code || code->null()) return std::nullopt;
  auto slots = frame_slots(c, *code);
  if (!slots) return std::nullopt;
  return type.basicsize + *slots * kPtr;
}

// --- type objects ---

// 3.x type.__sizeof__: the heap type struct and its cached shared keys, or the static struct. A
// metaclass's larger basicsize is not counted. 2.7 types have no __sizeof__ of their own.
Size type_size(HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  const Layout& l = c.l;
  if (l.traits().python2) return generic_size(c, obj, type);
  auto flags = c.reader.type_flags(obj);
  if (!flags) return std::nullopt;
  if (!(*flags & tpflags::kHeapType)) {
    if (!l.has(S::sz_PyTypeObject)) return std::nullopt;
    return l.size(S::sz_PyTypeObject);
  }
  int64_t s;
  if (l.has(S::sz_PyHeapTypeObject)) {
    s = l.size(S::sz_PyHeapTypeObject);
  } else {
    const TypeInfo* tt = c.t.type ? c.info(c.t.type) : nullptr;  // PyType_Type's basicsize is the same
    if (!tt) return std::nullopt;
    s = tt->basicsize;
  }
  auto keys = member_ptr(c, obj, F::ht_cached_keys);
  if (!keys) return std::nullopt;
  if (!keys->null()) {
    auto k = keys_size(c, *keys);  // counted whatever their refcount: the type owns them
    if (!k) return std::nullopt;
    s += *k;
  }
  return s;
}

// S(o): what the __sizeof__ that type(o) resolves to returns.
Size sizeof_part(HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  const bool py2 = c.l.traits().python2;
  switch (type.cat) {
    case Cat::Long:
      return long_size(c, obj, type);
    case Cat::Bool:  // 3.x: int.__sizeof__; 2.7: a PyInt
      return py2 ? generic_size(c, obj, type) : long_size(c, obj, type);
    case Cat::Str:
      return str_size(c, obj);
    case Cat::Str27:
      return str27_size(c, obj, type);
    case Cat::Unicode27:
      return unicode27_size(c, obj);
    case Cat::ByteArray:
      return bytearray_size(c, obj, type);
    case Cat::List:
      return list_size(c, obj, type);
    case Cat::Dict:
    case Cat::DefaultDict:
      return dict_size(c, obj, type.basicsize);
    case Cat::OrderedDict:  // 2.7's is a Python dict subclass; this is the 3.x C type
      return py2 ? dict_size(c, obj, type.basicsize) : odict_size(c, obj, type);
    case Cat::Set:
    case Cat::FrozenSet:
      return set_size(c, obj, type);
    case Cat::Deque:
      return deque_size(c, obj, type);
    case Cat::Code:
      return code_size(c, obj, type);
    case Cat::Frame:
      return frame_size(c, obj, type);
    case Cat::Generator:
    case Cat::Coroutine:
    case Cat::AsyncGenerator:
      return gen_size(c, obj, type);
    case Cat::Type:
      return type_size(c, obj, type);
    case Cat::Array:
      return array_size(c, obj, type);
    case Cat::Buffered: {
      // _io's buffered objects count their buffer (bufferedio.c, __sizeof__).
      auto base = generic_size(c, obj, type);
      if (!base || !c.l.has(F::buffered_buffer) || !c.l.has(F::buffered_buffer_size)) return base;
      auto buf = c.mem.read_ptr(obj + c.l.off(F::buffered_buffer));
      auto size = c.mem.read_as<int64_t>(obj + c.l.off(F::buffered_buffer_size));
      if (!buf || !size || *size < 0) return std::nullopt;
      return *base + (buf->null() ? 0 : static_cast<uint64_t>(*size));
    }
    default:
      // Everything else uses object.__sizeof__: tuple, bytes, float, complex, 2.7 int, functions,
      // methods, cells, modules, exceptions, descriptors, 2.7 classic instances and classes...
      return generic_size(c, obj, type);
  }
}

// H(o): what _PySys_GetSizeOf adds to __sizeof__. It depends on the type's flags only, not on
// whether the object really has the header (static and immortal objects included).
Size header_part(HeapContext& c, RemoteAddr obj, const TypeInfo& type) {
  const PyVersion& v = c.l.version;
  if (!v.at_least(3, 11)) {
    // PyObject_IS_GC: a GC type, unless its tp_is_gc says no for this object. The only tp_is_gc
    // in CPython is type_is_gc (type and the metaclasses inheriting it), true for heap types
    // only: a static type object has no GC header.
    if (!type.gc) return 0;
    if (type.cat == Cat::Type && c.l.has(F::tp_is_gc)) {
      auto is_gc = c.mem.read_ptr(type.addr + c.l.off(F::tp_is_gc));
      if (!is_gc) return std::nullopt;
      if (!is_gc->null()) {
        auto flags = c.reader.type_flags(obj);
        if (!flags) return std::nullopt;
        if (!(*flags & tpflags::kHeapType)) return 0;
      }
    }
    return c.gc_head_size();
  }
  // 3.11+: _PyType_PreHeaderSize, from the flags alone (tp_is_gc is no longer asked, so 3.11 and
  // 3.12 count a GC header for static type objects). 3.13 exempts static type objects again.
  if (v.at_least(3, 13) && type.addr == c.t.type) {
    auto flags = c.reader.type_flags(obj);
    if (!flags) return std::nullopt;
    if (!(*flags & tpflags::kHeapType)) return 0;
  }
  // The pre-header: 3.11 for a managed dict, 3.12+ for a managed dict or weakref list.
  uint64_t managed = tpflags::kManagedDict | (v.at_least(3, 12) ? kManagedWeakref : 0);
  return (type.gc ? c.gc_head_size() : 0) + ((type.flags & managed) ? kPreHeader : 0);
}

}  // namespace

std::optional<uint64_t> object_size(HeapContext& ctx, RemoteAddr obj, const TypeInfo& type) {
  // A __sizeof__ written in Python can return anything; only running it would tell.
  if (type.python_sizeof) return std::nullopt;
  Size s = sizeof_part(ctx, obj, type);
  if (!s || *s < 0 || *s > kMaxSize) return std::nullopt;
  Size h = header_part(ctx, obj, type);
  if (!h) return std::nullopt;
  return static_cast<uint64_t>(*s + *h);
}

}  // namespace pyinspect
