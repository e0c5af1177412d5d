// What each object refers to. The rules follow each type's tp_traverse (what gc.get_referents
// reports), and add the references CPython holds outside tp_traverse that keep objects alive:
// code objects' constants and names, the instance attributes 3.11+ keeps without a dict object,
// a 2.7 unicode's cached encoded form. Every read is checked; a field that cannot be read is
// skipped, never trusted.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "base/error.hpp"
#include "heap/heap_types.hpp"
#include "heap/roots.hpp"

namespace pyinspect {

namespace {

class Walker {
 public:
  Walker(HeapContext& ctx, RemoteAddr obj, const TypeInfo& ti, ReferentVisitor& v)
      : ctx_(ctx), l_(ctx.l), mem_(ctx.mem), obj_(obj), ti_(ti), v_(v) {}

  void run();
  // obj_ is a _PyInterpreterFrame on a thread's data stack.
  void frame_root() { interpreter_frame(obj_, true); }

 private:
  void emit(RemoteAddr child, const Edge& e) {
    if (child.null() || (child.value() & 7)) return;
    v_.visit(child, e);
  }
  // A PyObject* member of obj at layout field f, if the layout knows it.
  void field(F f, const char* name, RemoteAddr base = RemoteAddr()) {
    if (!l_.has(f)) return;
    RemoteAddr at = (base ? base : obj_) + l_.off(f);
    if (auto p = mem_.read_ptr(at)) emit(*p, {EdgeKind::Attr, -1, {}, name});
  }
  void array(RemoteAddr items, int64_t n, EdgeKind kind, int64_t limit = 1 << 26) {
    if (n <= 0 || !items) return;
    n = std::min(n, limit);
    constexpr int64_t kBatch = 4096;
    std::vector<uint64_t> buf;
    for (int64_t first = 0; first < n; first += kBatch) {
      int64_t k = std::min(kBatch, n - first);
      buf.resize(static_cast<size_t>(k));
      if (!mem_.read(items + first * 8, buf.data(), static_cast<size_t>(k) * 8)) return;
      for (int64_t i = 0; i < k; ++i) emit(RemoteAddr(buf[static_cast<size_t>(i)]), {kind, first + i, {}, nullptr});
    }
  }
  int64_t ob_size() { return mem_.read_as<int64_t>(obj_ + l_.off(F::ob_size)).value_or(0); }
  void dict(RemoteAddr d);
  void instance_parts();
  void interpreter_frame(RemoteAddr f, bool with_previous_objects);
  void tuple_or_list();
  void set();
  void deque();
  void code();
  void frame();
  void generator();
  void type_object();
  void conservative();

  HeapContext& ctx_;
  const Layout& l_;
  const Memory& mem_;
  RemoteAddr obj_;
  const TypeInfo& ti_;
  ReferentVisitor& v_;
};

void Walker::dict(RemoteAddr d) {
  int64_t i = 0;
  ctx_.reader.dict_items(d, [&](RemoteAddr k, RemoteAddr val) {
    emit(k, {EdgeKind::DictKey, i, {}, nullptr});
    emit(val, {EdgeKind::DictValue, i, k, nullptr});
    ++i;
    return true;
  });
}

// The parts every instance of a Python class has, whatever it derives from: its class, its
// __dict__ (or, 3.11+, its attribute values kept without one) and its __slots__.
void Walker::instance_parts() {
  if (!ti_.heap) {
    // A C type may keep an instance dict too (types.SimpleNamespace, functions, ...): the cases
    // this file models read it themselves; for the others, follow tp_dictoffset.
    if (ti_.cat == Cat::Other && ti_.dictoffset > 0)
      if (auto d = mem_.read_ptr(obj_ + ti_.dictoffset)) emit(*d, {EdgeKind::InstanceDict, -1, {}, "__dict__"});
    return;
  }
  emit(ti_.addr, {EdgeKind::Type, -1, {}, "__class__"});
  using ID = Traits::InstanceDict;
  ID model = l_.traits().instance_dict;
  bool managed = model != ID::DictOffset && (ti_.flags & tpflags::kManagedDict);
  if (managed) {
    if (auto d = ctx_.reader.instance_dict(obj_)) {
      emit(*d, {EdgeKind::InstanceDict, -1, {}, "__dict__"});
    } else if (auto keys = mem_.read_ptr(ti_.addr + l_.require(F::ht_cached_keys)); keys && !keys->null()) {
      // Attributes without a dict object: values indexed like the class's shared keys.
      RemoteAddr values;
      if (model == ID::Managed311) {
        values = mem_.read_ptr(obj_ + (-4 * 8)).value_or(RemoteAddr());
      } else if (model == ID::Managed312) {
        auto v = mem_.read_ptr(obj_ + (-3 * 8));
        if (v && (v->value() & 1)) values = RemoteAddr(v->value() + 1);
      } else if (ti_.flags & tpflags::kInlineValues) {
        RemoteAddr inline_values = obj_ + ti_.basicsize;
        auto valid = mem_.read_as<uint8_t>(inline_values + l_.require(F::dv_valid));
        if (valid && *valid) values = inline_values;
      }
      if (values) {
        int64_t i = 0;
        ctx_.reader.keys_values_items(*keys, values, [&](RemoteAddr k, RemoteAddr val) {
          emit(val, {EdgeKind::DictValue, i++, k, nullptr});
          return true;
        });
      }
    }
  } else if (ti_.dictoffset != 0) {
    int64_t off = ti_.dictoffset;
    if (off < 0) {
      // Variable-size objects keep their dict after the items (_PyObject_GetDictPtr). A count
      // beyond 2**42 is a misread (as for the sizes), and would overflow this sum.
      int64_t n = ob_size();
      if (n >= -(int64_t{1} << 42) && n <= (int64_t{1} << 42))
        off += (ti_.basicsize + (n < 0 ? -n : n) * ti_.itemsize + 7) & ~int64_t{7};
    }
    if (off > 0)
      if (auto d = mem_.read_ptr(obj_ + off)) emit(*d, {EdgeKind::InstanceDict, -1, {}, "__dict__"});
  }
  for (const auto& [off, name] : ti_.slots)
    if (auto p = mem_.read_ptr(obj_ + off)) emit(*p, {EdgeKind::Slot, -1, {}, name.c_str()});
}

void Walker::tuple_or_list() {
  if (ti_.cat == Cat::Tuple) {
    array(obj_ + l_.require(F::tuple_item), ob_size(), EdgeKind::Item);
  } else if (auto items = mem_.read_ptr(obj_ + l_.require(F::list_item))) {
    array(*items, ob_size(), EdgeKind::Item);
  }
}

void Walker::set() {
  auto mask = mem_.read_as<int64_t>(obj_ + l_.require(F::set_mask));
  auto table = mem_.read_ptr(obj_ + l_.require(F::set_table));
  if (!mask || !table || *mask < 0 || *mask >= (int64_t{1} << 30)) return;
  int64_t entry = l_.has(S::sz_setentry) ? l_.size(S::sz_setentry) : 16;
  int64_t key_off = l_.has(F::setentry_key) ? l_.off(F::setentry_key) : 0;
  int64_t n = *mask + 1;
  // In batches, as array() does: a corrupt mask must not make us allocate the table it claims
  // (up to 16 GiB) before a read tells whether that much memory is there.
  constexpr int64_t kBatch = 4096;
  std::vector<uint8_t> buf;
  int64_t item = 0;
  for (int64_t first = 0; first < n; first += kBatch) {
    int64_t k = std::min(kBatch, n - first);
    buf.resize(static_cast<size_t>(k * entry));
    if (!mem_.read(*table + first * entry, buf.data(), buf.size())) return;
    for (int64_t i = 0; i < k; ++i) {
      uint64_t key;
      std::memcpy(&key, buf.data() + i * entry + key_off, 8);
      // Deleted slots hold the static dummy key: an object too, counted once like any other.
      if (key) emit(RemoteAddr(key), {EdgeKind::Item, item++, {}, nullptr});
    }
  }
}

void Walker::deque() {
  // 3.x: 64 items per block and the length in ob_size; 2.7: 62 items and a `len` member.
  bool py2 = l_.traits().python2;
  const int64_t blocklen = py2 ? 62 : 64;
  int64_t left_off = l_.has(F::deque_leftblock) ? l_.off(F::deque_leftblock) : 16;
  int64_t index_off = l_.has(F::deque_leftindex) ? l_.off(F::deque_leftindex) : 32;
  int64_t len_off = py2 ? (l_.has(F::deque_len) ? l_.off(F::deque_len) : 48) : l_.off(F::ob_size);
  int64_t data_off = l_.has(F::block_data) ? l_.off(F::block_data) : 8;
  int64_t right_off = l_.has(F::block_rightlink) ? l_.off(F::block_rightlink) : 8 + 8 * blocklen;
  auto block = mem_.read_ptr(obj_ + left_off);
  auto index = mem_.read_as<int64_t>(obj_ + index_off);
  auto len = mem_.read_as<int64_t>(obj_ + len_off);
  if (!block || !index || !len || *index < 0 || *index >= blocklen || *len < 0) return;
  RemoteAddr b = *block;
  int64_t i = *index;
  std::vector<uint64_t> data(static_cast<size_t>(blocklen));
  // A corrupt or torn block list may loop back on itself, and a corrupt length would then keep
  // the walk going round: each block is read once.
  std::unordered_set<RemoteAddr> seen;
  for (int64_t done = 0; done < *len && b;) {
    if (!seen.insert(b).second) return;
    if (!mem_.read(b + data_off, data.data(), data.size() * 8)) return;
    for (; i < blocklen && done < *len; ++i, ++done)
      emit(RemoteAddr(data[static_cast<size_t>(i)]), {EdgeKind::Item, done, {}, nullptr});
    i = 0;
    auto next = mem_.read_ptr(b + right_off);
    if (!next) return;
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
           {F::co_code, "co_code"},
           {F::co_weakreflist, nullptr}})
    if (name) field(f, name);
}

// A _PyInterpreterFrame (3.11+): its code, function, namespaces and live locals.
void Walker::interpreter_frame(RemoteAddr f, bool with_frame_obj) {
  const Traits& t = l_.traits();
  auto code = mem_.read_as<uint64_t>(f + l_.require(F::if_code));
  if (code) {
    uint64_t c = *code;
    if (t.tagged_code_pointer) c &= ~uint64_t{7};
    emit(RemoteAddr(c), {EdgeKind::Attr, -1, {}, "f_code"});
  }
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
  if (n <= 0 || n > 100000) return;
  std::vector<uint64_t> slots(static_cast<size_t>(n));
  if (!mem_.read(f + l_.require(F::if_localsplus), slots.data(), slots.size() * 8)) return;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t p = slots[static_cast<size_t>(i)];
    if (t.tagged_code_pointer) p &= ~uint64_t{7};  // 3.14 stack references carry tag bits
    emit(RemoteAddr(p), {EdgeKind::Local, i, {}, nullptr});
  }
}

void Walker::frame() {
  field(F::fo_back, "f_back");
  field(F::fo_trace, "f_trace");
  if (l_.traits().frames != Traits::Frames::FrameObjects) {
    // 3.11+: the frame object owns its _PyInterpreterFrame when the function has returned.
    auto f = mem_.read_ptr(obj_ + l_.require(F::fo_frame));
    if (f && *f == obj_ + l_.require(F::fo_frame_data)) interpreter_frame(*f, false);
    return;
  }
  field(F::fo_code, "f_code");
  field(F::fo_builtins, "f_builtins");
  field(F::fo_globals, "f_globals");
  field(F::fo_locals, "f_locals");
  field(F::fo_gen, "f_gen");
  // Locals, cells and free variables: as many slots as the code has.
  auto code = mem_.read_ptr(obj_ + l_.require(F::fo_code));
  if (!code) return;
  int64_t n = mem_.read_as<int32_t>(*code + l_.require(F::co_nlocals)).value_or(0);
  for (F names : {F::co_cellvars, F::co_freevars}) {
    if (auto t = mem_.read_ptr(*code + l_.require(names)); t && !t->null()) {
      int64_t k = mem_.read_as<int64_t>(*t + l_.off(F::ob_size)).value_or(0);
      if (k < 0 || k > 100000) return;  // past the bound below; summed unchecked, it could overflow
      n += k;
    }
  }
  if (n < 0 || n > 100000) return;
  RemoteAddr plus = obj_ + l_.require(F::fo_localsplus);
  array(plus, n, EdgeKind::Local);
  // The value stack of a suspended frame (<=3.9: f_stacktop; 3.10: f_stackdepth items).
  if (auto vs = mem_.read_ptr(obj_ + l_.require(F::fo_valuestack)); vs && !vs->null() && l_.has(F::fo_stacktop)) {
    if (l_.version.is(3, 10)) {
      array(*vs, mem_.read_as<int32_t>(obj_ + l_.off(F::fo_stacktop)).value_or(0), EdgeKind::Local, 100000);
    } else if (auto top = mem_.read_ptr(obj_ + l_.off(F::fo_stacktop)); top && !top->null() && *top >= *vs) {
      array(*vs, (*top - *vs) / 8, EdgeKind::Local, 100000);
    }
  }
}

void Walker::generator() {
  field(F::gen_code, "gi_code");
  field(F::gen_name, "__name__");
  field(F::gen_qualname, "__qualname__");
  field(F::gen_frame, "gi_frame");
  if (l_.has(F::gen_iframe)) {
    // 3.11+: the frame is embedded; once the generator has finished (gi_frame_state at or
    // above FRAME_COMPLETED, which is 1 in 3.11-3.13) it holds nothing.
    auto state = mem_.read_as<int8_t>(obj_ + l_.require(F::gen_frame_state));
    if (state && *state < 1) interpreter_frame(obj_ + l_.off(F::gen_iframe), true);
  }
}

void Walker::type_object() {
  field(F::tp_dict, "__dict__");
  field(F::tp_cache, "tp_cache");
  field(F::tp_mro, "__mro__");
  field(F::tp_bases, "__bases__");
  field(F::tp_base, "__base__");
  field(F::tp_subclasses, "tp_subclasses");
  auto flags = ctx_.reader.type_flags(obj_);
  if (flags && (*flags & tpflags::kHeapType)) {
    field(F::ht_name, "__name__");
    field(F::ht_qualname, "__qualname__");
    field(F::ht_slots, "__slots__");
    field(F::ht_module, "__module__");
  }
}

void Walker::run() {
  instance_parts();
  switch (ti_.cat) {
    case Cat::Tuple:
    case Cat::List: tuple_or_list(); break;
    case Cat::Dict:
    case Cat::OrderedDict:
      dict(obj_);
      if (ti_.cat == Cat::OrderedDict) field(F::odict_inst_dict, "__dict__");
      break;
    case Cat::DefaultDict:
      dict(obj_);
      field(F::defdict_factory, "default_factory");
      break;
    case Cat::Set:
    case Cat::FrozenSet: set(); break;
    case Cat::Deque: deque(); break;
    case Cat::Type: type_object(); break;
    case Cat::Code: code(); break;
    case Cat::Frame: frame(); break;
    case Cat::Generator:
    case Cat::Coroutine:
    case Cat::AsyncGenerator: generator(); break;
    case Cat::Function:
      for (auto [f, name] : std::initializer_list<std::pair<F, const char*>>{
               {F::func_code, "__code__"},
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
      break;
    case Cat::Method:
      field(F::meth_func, "__func__");
      field(F::meth_self, "__self__");
      field(F::meth_class, "im_class");
      break;
    case Cat::CFunction:
      field(F::cfunc_self, "__self__");
      field(F::cfunc_module, "__module__");
      break;
    case Cat::Module:
      if (auto d = mem_.read_ptr(obj_ + l_.require(F::md_dict)))
        emit(*d, {EdgeKind::InstanceDict, -1, {}, "__dict__"});
      break;
    case Cat::Cell: field(F::cell_ref, "cell_contents"); break;
    case Cat::WeakRef: field(F::wr_callback, "__callback__"); break;  // the referent is weak
    case Cat::Property:
      field(F::prop_get, "fget");
      field(F::prop_set, "fset");
      field(F::prop_del, "fdel");
      field(F::prop_doc, "__doc__");
      field(F::prop_name, "__name__");
      break;
    case Cat::ClassMethod:
      field(F::cm_callable, "__func__");
      field(F::cm_dict, "__dict__");
      break;
    case Cat::StaticMethod:
      field(F::sm_callable, "__func__");
      field(F::sm_dict, "__dict__");
      break;
    case Cat::Slice:
      field(F::slice_start, "start");
      field(F::slice_stop, "stop");
      field(F::slice_step, "step");
      break;
    case Cat::Range:
      if (!l_.traits().python2) {  // 2.7's xrange holds C longs
        field(F::range_start, "start");
        field(F::range_stop, "stop");
        field(F::range_step, "step");
        field(F::range_length, "length");
      }
      break;
    case Cat::BaseException:
      field(F::exc_dict, "__dict__");
      field(F::exc_args, "args");
      field(F::exc_notes, "__notes__");
      field(F::exc_traceback, "__traceback__");
      field(F::exc_context, "__context__");
      field(F::exc_cause, "__cause__");
      break;
    case Cat::Traceback:
      field(F::tb_next, "tb_next");
      field(F::tb_frame, "tb_frame");
      break;
    case Cat::MappingProxy: field(F::mappingproxy_mapping, "mapping"); break;
    case Cat::MethodWrapper:
      field(F::wrapper_descr, "descr");
      field(F::wrapper_self, "__self__");
      break;
    case Cat::Descriptor:
    case Cat::MemberDescriptor:
      field(F::descr_type, "__objclass__");
      field(F::descr_name, "__name__");
      field(F::descr_qualname, "__qualname__");
      break;
    case Cat::Super:
      field(F::super_type, "__thisclass__");
      field(F::super_obj, "__self__");
      field(F::super_obj_type, "__self_class__");
      break;
    case Cat::Instance27:
      field(F::inst_class, "__class__");
      if (auto d = mem_.read_ptr(obj_ + l_.require(F::inst_dict)))
        emit(*d, {EdgeKind::InstanceDict, -1, {}, "__dict__"});
      break;
    case Cat::Class27:
      field(F::class_bases, "__bases__");
      if (auto d = mem_.read_ptr(obj_ + l_.require(F::class_dict)))
        emit(*d, {EdgeKind::InstanceDict, -1, {}, "__dict__"});
      field(F::class_name, "__name__");
      break;
    case Cat::Unicode27: field(F::uni27_defenc, "defenc"); break;
    case Cat::Object:
    case Cat::Buffered:
    case Cat::Other: conservative(); break;
    default: break;
  }
}

// A C type pyinspect does not model (an extension's, an interpreter type not listed here, or a
// heap type made from a C spec, like 3.12's _io classes) that the garbage collector traverses:
// its object pointers are somewhere in its fixed part. Every aligned word there that is not a
// slot, the dict or the weakref list is offered; the census keeps only those that point at real
// objects. A class written in Python has no such words (its layout is all slots), so nothing is
// scanned for it.
void Walker::conservative() {
  if (!(ti_.flags & tpflags::kHaveGc)) return;
  int64_t size = ti_.basicsize;
  if (size <= 16 || size > 4096) return;
  std::vector<uint64_t> words(static_cast<size_t>(size / 8));
  if (!mem_.read(obj_, words.data(), words.size() * 8)) return;
  for (size_t i = 2; i < words.size(); ++i) {
    int64_t off = static_cast<int64_t>(i * 8);
    if (off == ti_.weaklistoffset || off == ti_.dictoffset) continue;
    if (std::any_of(ti_.slots.begin(), ti_.slots.end(), [&](const auto& sl) { return sl.first == off; })) continue;
    emit(RemoteAddr(words[i]), {EdgeKind::Guess, static_cast<int64_t>(i), {}, nullptr});
  }
}

}  // namespace

void for_each_referent(HeapContext& ctx, RemoteAddr obj, const TypeInfo& type, ReferentVisitor& visit) {
  try {
    Walker(ctx, obj, type, visit).run();
  } catch (const Error&) {
    // A member this layout lacks (Layout::require): nothing more to follow from this object.
  }
}

}  // namespace pyinspect

namespace pyinspect {

void for_each_frame_referent(HeapContext& ctx, RemoteAddr frame, ReferentVisitor& visit) {
  static const TypeInfo none;  // a frame on a data stack is no object: no type, no instance parts
  try {
    Walker(ctx, frame, none, visit).frame_root();
  } catch (const Error&) {
  }
}

}  // namespace pyinspect
