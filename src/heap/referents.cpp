// What each object refers to. The rules follow each type's tp_traverse (what gc.get_referents
// reports), and add the references CPython holds outside tp_traverse that keep objects alive:
// code objects' constants and names, types' names, the str keys of dicts, a 2.7 unicode's cached
// encoded form. Those are marked hidden, with the reason (heap_types.hpp). Every read is checked;
// a field that cannot be read is skipped, never trusted, and the object's walk says so.
#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_set>

#include "base/error.hpp"
#include "heap/heap_types.hpp"
#include "heap/roots.hpp"
#include "runtime/frames.hpp"

namespace pyinspect {

namespace {

class Walker {
 public:
  Walker(HeapContext& ctx, RemoteAddr obj, const TypeInfo& ti, ReferentVisitor& v)
      : ctx_(ctx), l_(ctx.l), f_(ctx.l.facts()), mem_(ctx.mem), obj_(obj), ti_(ti), v_(v) {}

  void run();
  // obj_ is a _PyInterpreterFrame on a thread's data stack.
  void frame_root() { interpreter_frame(obj_, true); }
  ReferentStatus status() const { return status_; }
  void missing_member() { status_ = ReferentStatus::MissingMember; }

 private:
  void unreadable() {
    if (status_ == ReferentStatus::Complete) status_ = ReferentStatus::Unreadable;
  }
  void emit(RemoteAddr child, Edge e) {
    if (child.null() || (child.value() & 7)) return;
    if (e.hidden == Hidden::No) e.hidden = hidden_;
    v_.visit(child, e);
  }
  // A PyObject* member of obj at layout field f, if the layout knows it (members some versions
  // do not have are simply not there).
  void field(F f, const char* name, RemoteAddr base = RemoteAddr(), Hidden hidden = Hidden::No) {
    if (!l_.has(f)) return;
    RemoteAddr at = (base ? base : obj_) + l_.off(f);
    if (auto p = mem_.read_ptr(at))
      emit(*p, {EdgeKind::Attr, -1, {}, name, hidden});
    else
      unreadable();
  }
  void array(RemoteAddr items, int64_t n, EdgeKind kind, int64_t limit = 1 << 26) {
    if (n <= 0 || !items) return;
    n = std::min(n, limit);
    constexpr int64_t kBatch = 4096;
    std::vector<uint64_t> buf;
    for (int64_t first = 0; first < n; first += kBatch) {
      int64_t k = std::min(kBatch, n - first);
      buf.resize(static_cast<size_t>(k));
      if (!mem_.read(items + first * 8, buf.data(), static_cast<size_t>(k) * 8)) return unreadable();
      for (int64_t i = 0; i < k; ++i) emit(RemoteAddr(buf[static_cast<size_t>(i)]), {kind, first + i, {}, nullptr});
    }
  }
  int64_t ob_size() {
    auto n = mem_.read_as<int64_t>(obj_ + l_.off(F::ob_size));
    if (!n) unreadable();
    return n.value_or(0);
  }
  bool str_keys_hidden(RemoteAddr d);
  void dict(RemoteAddr d);
  void instance_parts();
  void interpreter_frame(RemoteAddr f, bool with_frame_obj);
  void tuple_or_list();
  void set();
  void deque();
  void code();
  void frame();
  void generator();
  void function();
  void type_object();
  void stgdict();
  void module_state();
  void conservative();
  Hidden hidden_reason();
  void own_dict(F f);

  HeapContext& ctx_;
  const Layout& l_;
  const Facts& f_;
  const Memory& mem_;
  RemoteAddr obj_;
  const TypeInfo& ti_;
  ReferentVisitor& v_;
  Hidden hidden_ = Hidden::No;  // for every reference: the object is no GC object
  ReferentStatus status_ = ReferentStatus::Complete;
};

// dict_traverse leaves out the keys of a dict that holds str keys only (3.x: a unicode or split
// keys table; where the table does not say, 3.6-3.10, all keys being str stands for it). 2.7's
// visits every key.
bool Walker::str_keys_hidden(RemoteAddr d) {
  switch (f_.dict) {
    case Facts::Dict::Dict27: return false;
    case Facts::Dict::Dict311: {
      auto keys = mem_.read_ptr(d + l_.require(F::dict_keys));
      auto kind = keys ? mem_.read_as<uint8_t>(*keys + l_.require(F::dk_kind)) : std::nullopt;
      return kind && *kind != 0;
    }
    case Facts::Dict::Dict36: {
      bool all_str = true;
      ctx_.reader.dict_items(d, [&](RemoteAddr k, RemoteAddr) {
        all_str = ctx_.reader.has_type(k, ctx_.t.unicode);
        return all_str;
      });
      return all_str;
    }
  }
  return false;
}

void Walker::dict(RemoteAddr d) {
  int64_t i = 0;
  Hidden key_hidden = str_keys_hidden(d) ? Hidden::DictStrKey : Hidden::No;
  bool ok = ctx_.reader.dict_items(d, [&](RemoteAddr k, RemoteAddr val) {
    emit(k, {EdgeKind::DictKey, i, {}, nullptr, key_hidden});
    emit(val, {EdgeKind::DictValue, i, k, nullptr});
    ++i;
    return true;
  });
  if (!ok) unreadable();
}

// The parts every instance of a Python class has, whatever it derives from: its class, its
// __dict__ (or, 3.11+, its attribute values kept without one) and its __slots__.
void Walker::instance_parts() {
  if (!ti_.heap) {
    // A C type may keep an instance dict too (types.SimpleNamespace, functions, ...): the cases
    // this file models read it themselves; for the others, follow tp_dictoffset.
    if (ti_.cat == Cat::Other && ti_.dictoffset != 0) {
      auto st = ctx_.reader.instance_storage(obj_, ti_.shape());
      if (!st) return unreadable();
      emit(st->dict, {EdgeKind::InstanceDict, -1, {}, "__dict__"});
    }
    return;
  }
  emit(ti_.addr, {EdgeKind::Type, -1, {}, "__class__"});
  auto st = ctx_.reader.instance_storage(obj_, ti_.shape());
  if (!st) {
    unreadable();
  } else if (st->dict) {
    emit(st->dict, {EdgeKind::InstanceDict, -1, {}, "__dict__"});
  } else if (st->values) {
    // Attributes without a dict object: values indexed like the class's shared keys.
    int64_t i = 0;
    bool ok = ctx_.reader.keys_values_items(st->keys, st->values, [&](RemoteAddr k, RemoteAddr val) {
      emit(val, {EdgeKind::DictValue, i++, k, nullptr});
      return true;
    });
    if (!ok) unreadable();
  }
  for (const auto& [off, name] : ti_.slots) {
    if (auto p = mem_.read_ptr(obj_ + off))
      emit(*p, {EdgeKind::Slot, -1, {}, name.c_str()});
    else
      unreadable();
  }
}

void Walker::tuple_or_list() {
  if (ti_.cat == Cat::Tuple) {
    array(obj_ + l_.require(F::tuple_item), ob_size(), EdgeKind::Item);
  } else if (auto items = mem_.read_ptr(obj_ + l_.require(F::list_item))) {
    array(*items, ob_size(), EdgeKind::Item);
  } else {
    unreadable();
  }
}

void Walker::set() {
  auto mask = mem_.read_as<int64_t>(obj_ + l_.require(F::set_mask));
  auto table = mem_.read_ptr(obj_ + l_.require(F::set_table));
  if (!mask || !table || *mask < 0 || *mask >= (int64_t{1} << 30)) return unreadable();
  int64_t entry = l_.require(S::sz_setentry);
  int64_t key_off = l_.require(F::setentry_key);
  int64_t n = *mask + 1;
  // In batches, as array() does: a corrupt mask must not make us allocate the table it claims
  // (up to 16 GiB) before a read tells whether that much memory is there.
  constexpr int64_t kBatch = 4096;
  std::vector<uint8_t> buf;
  int64_t item = 0;
  for (int64_t first = 0; first < n; first += kBatch) {
    int64_t k = std::min(kBatch, n - first);
    buf.resize(static_cast<size_t>(k * entry));
    if (!mem_.read(*table + first * entry, buf.data(), buf.size())) return unreadable();
    for (int64_t i = 0; i < k; ++i) {
      uint64_t key;
      std::memcpy(&key, buf.data() + i * entry + key_off, 8);
      // Deleted slots hold the static dummy key: an object too, counted once like any other.
      if (key) emit(RemoteAddr(key), {EdgeKind::Item, item++, {}, nullptr});
    }
  }
}

void Walker::deque() {
  // BLOCKLEN item pointers and two links per block (2.7: 62 items, 3.x: 64); the length is
  // `len` in 2.7, ob_size from 3.x.
  const int64_t blocklen = (l_.require(S::sz_block) - 16) / 8;
  const int64_t data_off = l_.require(F::block_data), right_off = l_.require(F::block_rightlink);
  auto block = mem_.read_ptr(obj_ + l_.require(F::deque_leftblock));
  auto index = mem_.read_as<int64_t>(obj_ + l_.require(F::deque_leftindex));
  auto len = mem_.read_as<int64_t>(obj_ + l_.off(l_.has(F::deque_len) ? F::deque_len : F::ob_size));
  if (!block || !index || !len || *index < 0 || *index >= blocklen || *len < 0 || blocklen <= 0) return unreadable();
  RemoteAddr b = *block;
  int64_t i = *index;
  std::vector<uint64_t> data(static_cast<size_t>(blocklen));
  // A corrupt or torn block list may loop back on itself, and a corrupt length would then keep
  // the walk going round: each block is read once.
  std::unordered_set<RemoteAddr> seen;
  for (int64_t done = 0; done < *len;) {
    if (b.null() || !seen.insert(b).second) return unreadable();
    if (!mem_.read(b + data_off, data.data(), data.size() * 8)) return unreadable();
    for (; i < blocklen && done < *len; ++i, ++done)
      emit(RemoteAddr(data[static_cast<size_t>(i)]), {EdgeKind::Item, done, {}, nullptr});
    i = 0;
    if (done == *len) break;
    auto next = mem_.read_ptr(b + right_off);
    if (!next) return unreadable();
    b = *next;
  }
}

void Walker::code() {
  // Not GC objects: gc.get_referents(code) is empty, yet these keep their objects alive.
  for (auto [f, name] : std::initializer_list<std::pair<F, const char*>>{
           {F::co_consts, "co_consts"},
           {F::co_names, "co_names"},
           {F::co_varnames, "co_varnames"},
           {F::co_freevars, "co_freevars"},
           {F::co_cellvars, "co_cellvars"},
           {F::co_localsplusnames, "co_localsplusnames"},
           {F::co_localspluskinds, "co_localspluskinds"},
           {F::co_filename, "co_filename"},
           {F::co_name, "co_name"},
           {F::co_qualname, "co_qualname"},
           {F::co_lnotab, "co_lnotab"},
           {F::co_linetable, "co_linetable"},
           {F::co_exceptiontable, "co_exceptiontable"},
           {F::co_code, "co_code"}})
    field(f, name);
}

// A _PyInterpreterFrame (3.11+): its code, function, namespaces and live locals.
void Walker::interpreter_frame(RemoteAddr f, bool with_frame_obj) {
  if (auto code = interp_frame_code(ctx_.reader, f)) emit(*code, {EdgeKind::Attr, -1, {}, "f_code"});
  field(F::if_func, "f_func", f);
  field(F::if_globals, "f_globals", f);
  field(F::if_builtins, "f_builtins", f);
  field(F::if_locals, "f_locals", f);
  if (with_frame_obj) field(F::if_frame_obj, "frame_obj", f);
  int64_t n = 0;
  if (l_.has(F::if_stacktop)) {
    n = mem_.read_as<int32_t>(f + l_.off(F::if_stacktop)).value_or(0);
  } else if (l_.has(F::if_stackpointer)) {  // 3.14: a pointer past the last live slot
    auto sp = mem_.read_ptr(f + l_.off(F::if_stackpointer));
    if (sp) n = (*sp - (f + l_.require(F::if_localsplus))) / 8;
  }
  if (n <= 0) return;
  if (n > 100000) return unreadable();
  std::vector<uint64_t> slots(static_cast<size_t>(n));
  if (!mem_.read(f + l_.require(F::if_localsplus), slots.data(), slots.size() * 8)) return unreadable();
  for (int64_t i = 0; i < n; ++i) emit(f_.untag(slots[static_cast<size_t>(i)]), {EdgeKind::Local, i, {}, nullptr});
}

void Walker::frame() {
  field(F::fo_back, "f_back");
  field(F::fo_trace, "f_trace");
  if (f_.frames != Facts::Frames::FrameObjects) {
    // 3.11+: the frame object owns its _PyInterpreterFrame when the function has returned.
    auto f = mem_.read_ptr(obj_ + l_.require(F::fo_frame));
    if (f && *f == obj_ + l_.require(F::fo_frame_data)) interpreter_frame(*f, false);
    return;
  }
  field(F::fo_code, "f_code");
  field(F::fo_builtins, "f_builtins");
  field(F::fo_globals, "f_globals");
  field(F::fo_locals, "f_locals");
  field(F::fo_gen, "f_gen", RemoteAddr(), Hidden::Other);  // frame_traverse leaves it out
  // Locals, cells and free variables: as many slots as the code has.
  auto code = mem_.read_ptr(obj_ + l_.require(F::fo_code));
  if (!code) return unreadable();
  int64_t n = mem_.read_as<int32_t>(*code + l_.require(F::co_nlocals)).value_or(0);
  for (F names : {F::co_cellvars, F::co_freevars}) {
    if (auto t = mem_.read_ptr(*code + l_.require(names)); t && !t->null()) {
      int64_t k = mem_.read_as<int64_t>(*t + l_.off(F::ob_size)).value_or(0);
      if (k < 0 || k > 100000) return unreadable();  // past the bound below; summed unchecked, it could overflow
      n += k;
    }
  }
  if (n < 0 || n > 100000) return unreadable();
  array(obj_ + l_.require(F::fo_localsplus), n, EdgeKind::Local);
  // The value stack of a suspended frame: f_stacktop (a pointer, <=3.9) or f_stackdepth (3.10).
  auto vs = mem_.read_ptr(obj_ + l_.require(F::fo_valuestack));
  if (!vs || vs->null() || !l_.has(F::fo_stacktop)) return;
  if (f_.value_stack == Facts::ValueStack::Depth) {
    array(*vs, mem_.read_as<int32_t>(obj_ + l_.off(F::fo_stacktop)).value_or(0), EdgeKind::Local, 100000);
  } else if (auto top = mem_.read_ptr(obj_ + l_.off(F::fo_stacktop)); top && !top->null() && *top >= *vs) {
    array(*vs, (*top - *vs) / 8, EdgeKind::Local, 100000);
  }
}

void Walker::generator() {
  field(F::gen_code, "gi_code");
  field(F::gen_name, "__name__");
  field(F::gen_qualname, "__qualname__");
  field(F::gen_frame, "gi_frame");
  if (l_.has(F::gen_iframe)) {
    // 3.11+: the frame is embedded; once the generator has finished it holds nothing.
    auto state = mem_.read_as<int8_t>(obj_ + l_.require(F::gen_frame_state));
    if (!state) return unreadable();
    if (*state < f_.frame_completed) interpreter_frame(obj_ + l_.off(F::gen_iframe), true);
  }
}

void Walker::function() {
  for (auto [f, name] : std::initializer_list<std::pair<F, const char*>>{{F::func_code, "__code__"},
                                                                         {F::func_globals, "__globals__"},
                                                                         {F::func_builtins, "__builtins__"},
                                                                         {F::func_module, "__module__"},
                                                                         {F::func_defaults, "__defaults__"},
                                                                         {F::func_kwdefaults, "__kwdefaults__"},
                                                                         {F::func_doc, "__doc__"},
                                                                         {F::func_name, "__name__"},
                                                                         {F::func_dict, "__dict__"},
                                                                         {F::func_closure, "__closure__"},
                                                                         {F::func_annotations, "__annotations__"},
                                                                         {F::func_qualname, "__qualname__"},
                                                                         {F::func_typeparams, "__type_params__"}})
    field(f, name);
}

void Walker::type_object() {
  // A static type is no GC object: everything it holds is hidden (run() says so); type_traverse
  // of a heap type reports these five and its module, not its names, slots or subclasses.
  if (const auto* st = ctx_.static_type(obj_)) {
    // 3.12+ static builtin types: the interpreter keeps their dict and subclasses.
    emit(st->dict, {EdgeKind::Attr, -1, {}, "__dict__"});
    emit(st->subclasses, {EdgeKind::Attr, -1, {}, "tp_subclasses", Hidden::TypeObject});
  } else {
    field(F::tp_dict, "__dict__");
    field(F::tp_subclasses, "tp_subclasses", RemoteAddr(), Hidden::TypeObject);
  }
  field(F::tp_cache, "tp_cache");
  field(F::tp_mro, "__mro__");
  field(F::tp_bases, "__bases__");
  field(F::tp_base, "__base__");
  auto flags = ctx_.reader.type_flags(obj_);
  if (!flags) return unreadable();
  if (*flags & tpflags::kHeapType) {
    field(F::ht_name, "__name__", RemoteAddr(), Hidden::TypeObject);
    field(F::ht_qualname, "__qualname__", RemoteAddr(), Hidden::TypeObject);
    field(F::ht_slots, "__slots__", RemoteAddr(), Hidden::TypeObject);
    field(F::ht_module, "__module__");
  }
}

// A C module's state (PEP 3121): m_size bytes that its m_traverse reports to the collector. Its
// object pointers are guesses, as in conservative().
void Walker::module_state() {
  if (!l_.has(F::md_state) || !l_.has(F::md_def) || !l_.has(F::mdef_size)) return;
  auto state = mem_.read_ptr(obj_ + l_.off(F::md_state));
  auto def = mem_.read_ptr(obj_ + l_.off(F::md_def));
  if (!state || !def) return unreadable();
  if (state->null() || def->null()) return;
  auto size = mem_.read_as<int64_t>(*def + l_.off(F::mdef_size));
  if (!size) return unreadable();
  if (*size < 8 || *size > 64 * 1024) return;
  std::vector<uint64_t> words(static_cast<size_t>(*size / 8));
  if (!mem_.read(*state, words.data(), words.size() * 8)) return unreadable();
  for (size_t i = 0; i < words.size(); ++i)
    emit(RemoteAddr(words[i]), {EdgeKind::Guess, static_cast<int64_t>(i), {}, "module state"});
}

// ctypes' StgDict: a dict, and the type information after it.
void Walker::stgdict() {
  dict(obj_);
  field(F::stgdict_proto, "proto");
  field(F::stgdict_argtypes, "argtypes");
  field(F::stgdict_converters, "converters");
  field(F::stgdict_restype, "restype");
  field(F::stgdict_checker, "checker");
}

// The members that categories with nothing else to follow report, in their tp_traverse's order
// (a member the version's layout lacks is simply not there).
struct Member {
  F field;
  const char* name;
  Hidden hidden = Hidden::No;
};

const std::vector<Member>& plain_members(Cat cat) {
  static const std::map<Cat, std::vector<Member>> table = {
      {Cat::OrderedDict, {{F::odict_inst_dict, "__dict__"}}},
      {Cat::DefaultDict, {{F::defdict_factory, "default_factory"}}},
      {Cat::Method, {{F::meth_func, "__func__"}, {F::meth_self, "__self__"}, {F::meth_class, "im_class"}}},
      {Cat::CFunction, {{F::cfunc_self, "__self__"}, {F::cfunc_module, "__module__"}}},
      {Cat::Cell, {{F::cell_ref, "cell_contents"}}},
      {Cat::WeakRef, {{F::wr_callback, "__callback__"}}},  // the referent is weak
      {Cat::Property,
       {{F::prop_get, "fget"}, {F::prop_set, "fset"}, {F::prop_del, "fdel"}, {F::prop_doc, "__doc__"},
        {F::prop_name, "__name__"}}},
      {Cat::ClassMethod, {{F::cm_callable, "__func__"}, {F::cm_dict, "__dict__"}}},
      {Cat::StaticMethod, {{F::sm_callable, "__func__"}, {F::sm_dict, "__dict__"}}},
      {Cat::Slice, {{F::slice_start, "start"}, {F::slice_stop, "stop"}, {F::slice_step, "step"}}},
      {Cat::BaseException,
       {{F::exc_dict, "__dict__"}, {F::exc_args, "args"}, {F::exc_notes, "__notes__"},
        {F::exc_traceback, "__traceback__"}, {F::exc_context, "__context__"}, {F::exc_cause, "__cause__"}}},
      {Cat::Traceback, {{F::tb_next, "tb_next"}, {F::tb_frame, "tb_frame"}}},
      {Cat::MappingProxy, {{F::mappingproxy_mapping, "mapping"}}},
      {Cat::MethodWrapper, {{F::wrapper_descr, "descr"}, {F::wrapper_self, "__self__"}}},
      // descr_traverse reports d_type alone
      {Cat::Descriptor,
       {{F::descr_type, "__objclass__"}, {F::descr_name, "__name__", Hidden::Descriptor},
        {F::descr_qualname, "__qualname__", Hidden::Descriptor}}},
      {Cat::MemberDescriptor,
       {{F::descr_type, "__objclass__"}, {F::descr_name, "__name__", Hidden::Descriptor},
        {F::descr_qualname, "__qualname__", Hidden::Descriptor}}},
      {Cat::Super, {{F::super_type, "__thisclass__"}, {F::super_obj, "__self__"}, {F::super_obj_type, "__self_class__"}}},
      {Cat::Instance27, {{F::inst_class, "__class__"}}},
      {Cat::Class27, {{F::class_bases, "__bases__"}, {F::class_name, "__name__"}}},
      {Cat::Unicode27, {{F::uni27_defenc, "defenc"}}},
  };
  static const std::vector<Member> none;
  auto it = table.find(cat);
  return it == table.end() ? none : it->second;
}

// The reason every reference of this object is hidden from gc.get_referents(), if one is: only
// GC objects are asked (a static type object is none: tp_is_gc says so).
Hidden Walker::hidden_reason() {
  if (ti_.cat == Cat::Type) {
    auto flags = ctx_.reader.type_flags(obj_);
    if (flags && !(*flags & tpflags::kHeapType)) return Hidden::TypeObject;
  }
  if (!ti_.gc) return ti_.cat == Cat::Code ? Hidden::CodeObject : Hidden::Other;
  return Hidden::No;
}

// The dict a module, a 2.7 instance or a 2.7 class holds in member f.
void Walker::own_dict(F f) {
  if (auto d = mem_.read_ptr(obj_ + l_.require(f)))
    emit(*d, {EdgeKind::InstanceDict, -1, {}, "__dict__"});
  else
    unreadable();
}

void Walker::run() {
  hidden_ = hidden_reason();
  instance_parts();
  switch (ti_.cat) {
    case Cat::Tuple:
    case Cat::List: tuple_or_list(); break;
    case Cat::Dict:
    case Cat::OrderedDict:
    case Cat::DefaultDict: dict(obj_); break;
    case Cat::StgDict: stgdict(); break;
    case Cat::Set:
    case Cat::FrozenSet: set(); break;
    case Cat::Deque: deque(); break;
    case Cat::Type: type_object(); break;
    case Cat::Code: code(); break;
    case Cat::Frame: frame(); break;
    case Cat::Generator:
    case Cat::Coroutine:
    case Cat::AsyncGenerator: generator(); break;
    case Cat::Function: function(); break;
    case Cat::Module:
      own_dict(F::md_dict);
      module_state();
      break;
    case Cat::Range:
      if (f_.range_objects) {  // 2.7's xrange holds C longs
        field(F::range_start, "start");
        field(F::range_stop, "stop");
        field(F::range_step, "step");
        field(F::range_length, "length");
      }
      break;
    case Cat::Instance27: own_dict(F::inst_dict); break;
    case Cat::Class27: own_dict(F::class_dict); break;
    case Cat::Object:
    case Cat::Buffered:
    case Cat::Struct:
    case Cat::Other: conservative(); break;
    default: break;
  }
  for (const Member& m : plain_members(ti_.cat)) field(m.field, m.name, RemoteAddr(), m.hidden);
}

// A C type pyinspect does not model (an extension's, an interpreter type not listed here, or a
// heap type made from a C spec, like 3.12's _io classes): its object pointers are somewhere in
// its fixed part, or (a variable-size type of pointer-sized
// items, like the nodes of a context's HAMT) in its items. Every aligned word there that is not a
// slot, the dict or the weakref list is offered; the census keeps only those that point at real
// objects. A class written in Python has no such words (its layout is all slots), so nothing is
// scanned for it.
void Walker::conservative() {
  // A C type that is no GC object may still hold references (functools' LRU list elements hold a
  // cache's keys and results); only GC objects report them to the collector (run() marks them).
  if (!(ti_.flags & tpflags::kHaveGc) && ti_.cat != Cat::Other && ti_.cat != Cat::Object) return;
  int64_t size = ti_.basicsize;
  if (ti_.itemsize == 8) {
    int64_t n = ob_size();
    if (n > 0 && n <= 4096) size += n * 8;
  }
  if (size <= 16 || size > 64 * 1024) return;
  std::vector<uint64_t> words(static_cast<size_t>(size / 8));
  if (!mem_.read(obj_, words.data(), words.size() * 8)) return unreadable();
  for (size_t i = 2; i < words.size(); ++i) {
    int64_t off = static_cast<int64_t>(i * 8);
    if (off == ti_.weaklistoffset || off == ti_.dictoffset) continue;
    if (std::any_of(ti_.slots.begin(), ti_.slots.end(), [&](const auto& sl) { return sl.first == off; })) continue;
    emit(RemoteAddr(words[i]), {EdgeKind::Guess, static_cast<int64_t>(i), {}, nullptr});
  }
}

}  // namespace

ReferentStatus for_each_referent(HeapContext& ctx, RemoteAddr obj, const TypeInfo& type, ReferentVisitor& visit) {
  Walker w(ctx, obj, type, visit);
  try {
    w.run();
  } catch (const Error&) {
    // A member this layout lacks (Layout::require): nothing more to follow from this object.
    w.missing_member();
  }
  return w.status();
}

ReferentStatus for_each_frame_referent(HeapContext& ctx, RemoteAddr frame, ReferentVisitor& visit) {
  static const TypeInfo none;  // a frame on a data stack is no object: no type, no instance parts
  Walker w(ctx, frame, none, visit);
  try {
    w.frame_root();
  } catch (const Error&) {
    w.missing_member();
  }
  return w.status();
}

}  // namespace pyinspect
