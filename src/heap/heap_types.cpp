#include "heap/heap_types.hpp"

#include <algorithm>
#include <cstdio>

#include "base/log.hpp"

namespace pyinspect {

namespace {
using namespace tpflags;
constexpr int kTObject = 6, kTObjectEx = 16;  // PyMemberDef types that hold a PyObject*
}  // namespace

const char* cat_name(Cat c) {
  static const char* const names[] = {
      "other", "object", "type", "NoneType", "int (2.7)", "int", "float", "complex", "str (2.7)",
      "unicode (2.7)", "str", "bytes", "bytearray", "tuple", "list", "dict", "set", "frozenset", "deque",
      "OrderedDict", "defaultdict", "code", "frame", "function", "method", "builtin function", "module", "cell",
      "generator", "coroutine", "async generator", "weakref", "property", "classmethod", "staticmethod", "slice",
      "range", "memoryview", "exception", "traceback", "mappingproxy", "method-wrapper", "descriptor",
      "member descriptor", "super", "array", "buffered io", "struct", "StgDict", "instance (2.7)", "classobj (2.7)",
      "numpy.ndarray", "mmap"};
  static_assert(sizeof names / sizeof names[0] == static_cast<size_t>(Cat::Count));
  return names[static_cast<size_t>(c)];
}

HeapContext::HeapContext(const Memory& m, const Layout& layout, const TypeAddrs& types, const Maps* maps)
    : mem(m), l(layout), t(types), reader(m, layout, types), maps_(maps) {
  if (maps) {
    uint64_t writable = 0;
    for (const auto& e : maps->entries())
      if (e.writable) writable += e.size();
    if (writable) max_object_bytes = writable;
  }
  auto add = [&](RemoteAddr a, Cat c) {
    if (a) builtin_cats_[a.value()] = c;
  };
  const bool unicode_is_str = l.facts().strings == Facts::Strings::Pep393;
  add(t.object, Cat::Object);
  add(t.type, Cat::Type);
  add(t.int27, Cat::Int27);
  add(t.long_, Cat::Long);  // bool derives from it (2.7: from int), and is classified by its base
  add(t.float_, Cat::Float);
  add(t.complex, Cat::Complex);
  add(t.str27, Cat::Str27);
  add(t.unicode, unicode_is_str ? Cat::Str : Cat::Unicode27);
  add(t.bytes, Cat::Bytes);
  add(t.bytearray, Cat::ByteArray);
  add(t.tuple, Cat::Tuple);
  add(t.list, Cat::List);
  add(t.dict, Cat::Dict);
  add(t.set, Cat::Set);
  add(t.frozenset, Cat::FrozenSet);
  add(t.code, Cat::Code);
  add(t.frame, Cat::Frame);
  add(t.function, Cat::Function);
  add(t.method, Cat::Method);
  add(t.cfunction, Cat::CFunction);
  add(t.cmethod, Cat::CFunction);
  add(t.module, Cat::Module);
  add(t.cell, Cat::Cell);
  add(t.gen, Cat::Generator);
  add(t.coro, Cat::Coroutine);
  add(t.asyncgen, Cat::AsyncGenerator);
  add(t.weakref, Cat::WeakRef);
  add(t.weakproxy, Cat::WeakRef);
  add(t.weakcallproxy, Cat::WeakRef);
  add(t.property, Cat::Property);
  add(t.classmethod, Cat::ClassMethod);
  add(t.staticmethod, Cat::StaticMethod);
  add(t.slice, Cat::Slice);
  add(t.range, Cat::Range);
  add(t.memoryview, Cat::MemoryView);
  add(t.traceback, Cat::Traceback);
  add(t.mappingproxy, Cat::MappingProxy);
  add(t.method_wrapper, Cat::MethodWrapper);
  add(t.method_descr, Cat::Descriptor);
  add(t.wrapper_descr, Cat::Descriptor);
  add(t.getset_descr, Cat::Descriptor);
  add(t.classmethod_descr, Cat::Descriptor);
  add(t.member_descr, Cat::MemberDescriptor);
  add(t.super, Cat::Super);
  add(t.instance27, Cat::Instance27);
  add(t.class27, Cat::Class27);
  add(t.none_type, Cat::NoneType);
  if (!t.none_type && t.none)
    if (auto nt = reader.type_of(t.none)) add(*nt, Cat::NoneType);
  if (l.has(S::sz_PyGC_Head)) gc_head_ = l.size(S::sz_PyGC_Head);
}

Cat HeapContext::classify(RemoteAddr type, RemoteAddr& builtin) {
  RemoteAddr cur = type, first_static;
  for (int depth = 0; depth < 64 && cur; ++depth) {
    if (auto it = builtin_cats_.find(cur.value()); it != builtin_cats_.end()) {
      if (it->second == Cat::Object && first_static && first_static != cur) {
        // A C type of its own that only derives from object (types.SimpleNamespace, _io...):
        // not a plain object, its layout is its own.
        builtin = first_static;
        return Cat::Other;
      }
      builtin = cur;
      return it->second;
    }
    auto flags = reader.type_flags(cur);
    bool heap = flags && (*flags & tpflags::kHeapType);
    if (!heap && !first_static) first_static = cur;
    // Types of extension modules are not exported: known by name. A C type's tp_name carries
    // its module ("collections.deque"); a class statement's never has a dot, so a Python class
    // cannot be mistaken for one. (From 3.12 deque and defaultdict are heap types; array.array
    // from 3.10.)
    if (auto name = reader.type_name(cur); name && name->find('.') != std::string::npos) {
      Cat c = Cat::Other;
      if (*name == "collections.deque") c = Cat::Deque;
      if (*name == "collections.OrderedDict") c = Cat::OrderedDict;
      if (*name == "collections.defaultdict") c = Cat::DefaultDict;
      if (*name == "array.array") c = Cat::Array;
      if (*name == "_io.BufferedReader" || *name == "_io.BufferedWriter" || *name == "_io.BufferedRandom")
        c = Cat::Buffered;
      if (*name == "_struct.Struct") c = Cat::Struct;
      if (*name == "numpy.ndarray") c = Cat::NdArray;
      if (*name == "mmap.mmap") c = Cat::Mmap;
      if (c != Cat::Other) {
        builtin_cats_[cur.value()] = c;
        builtin = cur;
        return c;
      }
    }
    // ctypes' StgDict, the dict of every ctypes type, has a C __sizeof__ of its own; its tp_name
    // has no module (2.7-3.12).
    if (!heap && l.has(F::stgdict_proto))
      if (auto name = reader.type_name(cur); name && *name == "StgDict") {
        builtin_cats_[cur.value()] = Cat::StgDict;
        builtin = cur;
        return Cat::StgDict;
      }
    auto base = mem.read_ptr(cur + l.require(F::tp_base));
    if (!base || base->null()) break;
    cur = *base;
  }
  // No known base: a C type of an extension. Its flags still say what it derives from.
  auto flags = reader.type_flags(type).value_or(0);
  builtin = first_static;  // the C type whose layout the instances have
  if (flags & kTypeSubclass) return Cat::Type;
  if (flags & kBaseExcSubclass) return Cat::BaseException;
  if (flags & kDictSubclass) return Cat::Dict;
  if (flags & kListSubclass) return Cat::List;
  if (flags & kTupleSubclass) return Cat::Tuple;
  const bool py3_strings = l.facts().strings == Facts::Strings::Pep393;
  if (flags & kUnicodeSubclass) return py3_strings ? Cat::Str : Cat::Unicode27;
  if (flags & kBytesSubclass) return py3_strings ? Cat::Bytes : Cat::Str27;
  if (flags & kLongSubclass) return Cat::Long;
  if (l.facts().int_type && (flags & kIntSubclass27)) return Cat::Int27;
  return Cat::Other;
}

const TypeInfo* HeapContext::type_of(RemoteAddr obj) {
  auto type = reader.type_of(obj);
  if (!type) return nullptr;
  return info(*type);
}

const TypeInfo* HeapContext::info(RemoteAddr type) {
  if (auto it = index_.find(type); it != index_.end()) return &types_[it->second];
  // A type object is itself an object whose type is a type (PyType_Type or a metaclass);
  // anything else is not a type and is cached as such (id stays invalid).
  auto meta = reader.type_of(type);
  if (!meta) return nullptr;
  auto meta_flags = reader.type_flags(*meta);
  bool is_type = *meta == t.type || (meta_flags && (*meta_flags & kTypeSubclass)) ||
                 (l.facts().classic_classes && *meta == t.class27);
  if (!is_type || !plausible_type(type)) return nullptr;
  TypeInfo ti = build(type);
  ti.id = static_cast<uint32_t>(types_.size());
  types_.push_back(std::move(ti));
  index_.emplace(type, types_.back().id);
  return &types_.back();
}

// A type object is "ready" (Py_TPFLAGS_READY, set by PyType_Ready on types in use), has sane sizes
// and a printable name: what stale or random memory rarely is. A static type in a binary's data
// need not be ready: 2.7 makes instances of some (classmethod_descriptor) before anything readies
// their type. (The sizes rules multiply the item size by a count of up to 2**42: a bounded item
// size keeps that in range.)
bool HeapContext::plausible_type(RemoteAddr type) {
  auto flags = reader.type_flags(type);
  auto basicsize = mem.read_as<int64_t>(type + l.require(F::tp_basicsize));
  auto itemsize = mem.read_as<int64_t>(type + l.require(F::tp_itemsize));
  if (!flags || !basicsize || *basicsize < 16 || *basicsize > (1 << 20)) return false;
  if (!(*flags & kReady) && ((*flags & kHeapType) || !in_binary_data(type))) return false;
  if (!itemsize || *itemsize < 0 || *itemsize > (1 << 20)) return false;
  auto name = reader.type_name(type);
  if (!name) return !name_file_missing(type).empty();
  if (name->empty()) return false;
  return std::all_of(name->begin(), name->end(), [](char c) { return c > ' ' && c < 127; });
}

// A type whose tp_name points into a file mapping that cannot be read: a core whose extension
// module is not here (its read-only data is not in the core; a static type's name is there, and
// so is that of a heap type made from a PyType_Spec). The file's path, or "" when that is not
// the case. Such a type is counted, under a name that says so, not dropped.
std::string HeapContext::name_file_missing(RemoteAddr type) {
  if (!maps_) return "";
  auto p = mem.read_ptr(type + l.require(F::tp_name));
  if (!p) return "";
  const MapEntry* m = maps_->find(*p);
  if (!m || !m->is_file() || !m->readable) return "";  // (a guard gap between segments is none)
  char c;
  return mem.read(*p, &c, 1) ? "" : m->path;
}

// In a binary's mapped data: a file mapping, or the anonymous .bss right after one.
bool HeapContext::in_binary_data(RemoteAddr addr) const {
  if (!maps_) return false;
  const auto& e = maps_->entries();
  for (size_t i = 0; i < e.size(); ++i) {
    if (!e[i].contains(addr.value())) continue;
    return e[i].is_file() || (i > 0 && e[i - 1].end == e[i].start && e[i - 1].is_file());
  }
  return false;
}

TypeInfo HeapContext::build(RemoteAddr type) {
  TypeInfo ti;
  ti.addr = type;
  ti.metatype = reader.type_of(type).value_or(RemoteAddr());
  auto s = reader.read_struct(type, l.require(S::sz_PyTypeObject));
  if (!s) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "<unreadable type %#llx>", static_cast<unsigned long long>(type.value()));
    ti.name = buf;
    ti.module = l.facts().builtins_module;
    return ti;
  }
  ti.flags = s->get<uint64_t>(l.off(F::tp_flags)).value_or(0);
  ti.basicsize = s->get<int64_t>(l.off(F::tp_basicsize)).value_or(0);
  ti.itemsize = s->get<int64_t>(l.off(F::tp_itemsize)).value_or(0);
  ti.dictoffset = s->get<int64_t>(l.off(F::tp_dictoffset)).value_or(0);
  ti.weaklistoffset = s->get<int64_t>(l.off(F::tp_weaklistoffset)).value_or(0);
  ti.heap = ti.flags & tpflags::kHeapType;
  ti.gc = ti.flags & tpflags::kHaveGc;
  ti.cat = classify(type, ti.builtin);
  name_type(ti, *s);
  read_slots(ti);
  read_mro(ti, *s);
  if (l.facts().ctypes_type_sizeof && (ti.flags & tpflags::kTypeSubclass))
    ti.ctypes_metatype = derives_from(type, "_ctypes.CType_Type");
  if (!ti.heap && l.has(F::tp_del))
    if (auto del = s->ptr(l.off(F::tp_del)); del && !del->null()) ti.has_finalizer = true;
  return ti;
}

// As the type's own __module__ and __qualname__ give it: builtins bare, others module.QualName
// (as guppy and objgraph show them). A heap type's module is its dict's __module__ and its name
// ht_qualname; a static type's tp_name is "module.Name", or "Name" for builtins.
void HeapContext::name_type(TypeInfo& ti, const StructBytes& s) {
  std::string tp_name;
  if (auto p = s.ptr(l.off(F::tp_name))) tp_name = mem.read_cstring(*p, 256).value_or("");
  auto placeholder = [&] {
    std::string file = name_file_missing(ti.addr);
    char buf[64];
    std::snprintf(buf, sizeof buf, "<type %#llx", static_cast<unsigned long long>(ti.addr.value()));
    ti.name_unreadable = true;
    return file.empty() ? std::string(buf) + ">" : std::string(buf) + " of " + file.substr(file.rfind('/') + 1) + ", not here>";
  };
  const std::string builtins = l.facts().builtins_module;
  if (ti.heap) {
    std::string qual;
    if (l.has(F::ht_qualname))
      if (auto q = mem.read_ptr(ti.addr + l.off(F::ht_qualname))) qual = reader.read_str(*q, 256).value_or("");
    if (qual.empty()) qual = tp_name.empty() ? placeholder() : tp_name;
    std::string module;
    if (auto d = s.ptr(l.off(F::tp_dict)); d && !d->null())
      if (auto m = reader.dict_get(*d, "__module__")) module = reader.read_str(*m, 256).value_or("");
    ti.module = module.empty() ? builtins : module;
    ti.name = ti.module == builtins ? qual : ti.module + "." + qual;
  } else if (ti.cat == Cat::Class27) {
    ti.name = tp_name.empty() ? placeholder() : tp_name;
    ti.module = builtins;
  } else if (tp_name.empty()) {
    ti.name = placeholder();
    ti.module = "<unknown>";
  } else {
    size_t dot = tp_name.rfind('.');
    ti.module = dot == std::string::npos ? builtins : tp_name.substr(0, dot);
    ti.name = tp_name;
  }
}

// __slots__: PyMemberDefs stored after the heap type object (at Py_TYPE(type)->tp_basicsize),
// Py_SIZE(type) of them, for this type and each heap base. A layout without PyMemberDef (one read
// from _Py_DebugOffsets alone) knows no slots.
void HeapContext::read_slots(TypeInfo& ti) {
  if (!l.has(F::mdef_name) || !l.has(F::mdef_type) || !l.has(F::mdef_offset) || !l.has(S::sz_PyMemberDef)) return;
  int64_t md_name = l.off(F::mdef_name), md_type = l.off(F::mdef_type), md_offset = l.off(F::mdef_offset);
  int64_t md_size = l.size(S::sz_PyMemberDef);
  RemoteAddr cur = ti.addr;
  for (int depth = 0; depth < 64 && cur; ++depth) {
    auto flags = reader.type_flags(cur);
    if (!flags || !(*flags & tpflags::kHeapType)) break;
    auto meta = reader.type_of(cur);
    auto n = mem.read_as<int64_t>(cur + l.off(F::ob_size));
    auto meta_size = meta ? mem.read_as<int64_t>(*meta + l.off(F::tp_basicsize)) : std::nullopt;
    if (n && meta_size && *n > 0 && *n < 4096 && *meta_size > 0) {
      std::vector<uint8_t> buf(static_cast<size_t>(*n * md_size));
      if (mem.read(cur + *meta_size, buf.data(), buf.size())) {
        StructBytes members(std::move(buf));
        for (int64_t i = 0; i < *n; ++i) {
          auto mt = members.get<int32_t>(i * md_size + md_type);
          auto off = members.get<int64_t>(i * md_size + md_offset);
          auto name = members.ptr(i * md_size + md_name);
          if (!mt || !off || (*mt != kTObjectEx && *mt != kTObject) || *off <= 0 || *off >= ti.basicsize) continue;
          std::string nm = name ? mem.read_cstring(*name, 128).value_or("?") : "?";
          if (std::none_of(ti.slots.begin(), ti.slots.end(), [&](const auto& sl) { return sl.first == *off; }))
            ti.slots.emplace_back(*off, nm);
        }
      }
    }
    auto base = mem.read_ptr(cur + l.off(F::tp_base));
    if (!base) break;
    cur = *base;
  }
}

bool HeapContext::derives_from(RemoteAddr type, const char* tp_name) {
  RemoteAddr cur = type;
  for (int depth = 0; depth < 64 && cur; ++depth) {
    if (auto name = reader.type_name(cur); name && *name == tp_name) return true;
    auto base = mem.read_ptr(cur + l.require(F::tp_base));
    if (!base) return false;
    cur = *base;
  }
  return false;
}

// A __sizeof__ written in Python, and __del__, in the MRO's heap classes.
void HeapContext::read_mro(TypeInfo& ti, const StructBytes& s) {
  auto mro = s.ptr(l.off(F::tp_mro));
  if (!mro || mro->null()) return;
  auto n = mem.read_as<int64_t>(*mro + l.off(F::ob_size));
  bool sizeof_found = false;
  for (int64_t i = 0; n && i < std::min<int64_t>(*n, 64); ++i) {
    auto k = mem.read_ptr(*mro + l.off(F::tuple_item) + 8 * i);
    if (!k) break;
    auto kflags = reader.type_flags(*k);
    bool kheap = kflags && (*kflags & tpflags::kHeapType);
    auto kd = mem.read_ptr(*k + l.off(F::tp_dict));
    if (!kheap) {
      // The first C type in the MRO decides. One that is not modelled and has a __sizeof__ of its
      // own (not object's) counts something pyinspect does not.
      if (!sizeof_found && ti.cat == Cat::Other && *k != t.object && kd && !kd->null() && reader.dict_get(*kd, "__sizeof__"))
        ti.c_sizeof = true;
      sizeof_found = true;  // a C type's __sizeof__ decides from here on
      continue;
    }
    if (!kd || kd->null()) continue;
    if (!sizeof_found) {
      // A heap type made from a C spec (array.array 3.10+, deque 3.12+) holds its C __sizeof__
      // as a method descriptor; only anything else is written in Python.
      if (auto sz = reader.dict_get(*kd, "__sizeof__")) {
        sizeof_found = true;
        auto st = reader.type_of(*sz);
        ti.python_sizeof = !(st && (*st == t.method_descr || *st == t.wrapper_descr));
        // A C __sizeof__ of a type that is not modelled (re.Pattern, _io.BytesIO from 3.12...).
        if (!ti.python_sizeof && (ti.cat == Cat::Other || ti.cat == Cat::Object)) ti.c_sizeof = true;
      }
    }
    if (reader.dict_get(*kd, "__del__")) ti.has_finalizer = true;
  }
}

}  // namespace pyinspect
