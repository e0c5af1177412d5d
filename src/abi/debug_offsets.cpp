#include "abi/debug_offsets.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"

namespace pyinspect {

namespace {
// One member of _Py_DebugOffsets, in declaration order, and the layout entry it gives (or none:
// members we do not use still take their 8 bytes).
struct Entry {
  enum Kind { Skip, Field, Size, Special } kind;
  int id;
};
// Members that need arithmetic, or that only check the shape of the struct.
enum Special {
  kGilBase,            // offset of the interpreter's own _gil
  kGilLockedInInterp,  // _gil.locked, from the interpreter (not from the GIL struct)
  kGilHolderInInterp,  // _gil.last_holder, likewise
  kObjectSize,         // sizeof(PyObject): 16 in every GIL build
  kSpecialCount
};
constexpr Entry skip() {
  return {Entry::Skip, 0};
}
constexpr Entry special(Special s) {
  return {Entry::Special, s};
}
constexpr Entry fld(F f) {
  return {Entry::Field, static_cast<int>(f)};
}
constexpr Entry sz(S s) {
  return {Entry::Size, static_cast<int>(s)};
}

struct Shape {
  const char* name;
  std::vector<Entry> entries;  // after cookie, version, free_threaded
};

// Building blocks: the sections, as 3.13 and 3.14 declare them.
std::vector<Entry> cat(std::initializer_list<std::vector<Entry>> parts) {
  std::vector<Entry> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
const std::vector<Entry> kRuntime = {skip(), skip(), fld(F::rt_interpreters_head)};
const std::vector<Entry> kThread = {sz(S::sz_PyThreadState),
                                    fld(F::ts_prev),
                                    fld(F::ts_next),
                                    fld(F::ts_interp),
                                    fld(F::ts_current_frame),
                                    fld(F::ts_thread_id),
                                    fld(F::ts_native_thread_id),
                                    fld(F::ts_datastack_chunk),
                                    skip()};
const std::vector<Entry> kFrame313 = {
    sz(S::sz_PyInterpreterFrame), fld(F::if_previous), fld(F::if_code), fld(F::if_instr),
    fld(F::if_localsplus),        fld(F::if_owner)};
const std::vector<Entry> kCode313 = {sz(S::sz_PyCodeObject),  fld(F::co_filename),        fld(F::co_name),
                                     fld(F::co_qualname),     fld(F::co_linetable),       fld(F::co_firstlineno),
                                     fld(F::co_argcount),     fld(F::co_localsplusnames), fld(F::co_localspluskinds),
                                     fld(F::co_code_adaptive)};
const std::vector<Entry> kObjects = {special(kObjectSize),    fld(F::ob_type),  // pyobject
                                     sz(S::sz_PyTypeObject),  fld(F::tp_name),    skip(),
                                     fld(F::tp_flags),                                              // type_object
                                     sz(S::sz_PyTupleObject), fld(F::tuple_item), fld(F::ob_size),  // tuple_object
                                     sz(S::sz_PyListObject),  fld(F::list_item),  skip()};          // list_object
const std::vector<Entry> kSet = {sz(S::sz_PySetObject), fld(F::set_used), fld(F::set_table), fld(F::set_mask)};
const std::vector<Entry> kScalars = {sz(S::sz_PyDictObject),
                                     fld(F::dict_keys),
                                     fld(F::dict_values),  // dict_object
                                     skip(),
                                     fld(F::float_fval),  // float_object
                                     sz(S::sz_PyLongObject),
                                     fld(F::long_tag),
                                     fld(F::long_digit),  // long_object
                                     sz(S::sz_PyBytesObject),
                                     skip(),
                                     fld(F::bytes_sval),  // bytes_object
                                     skip(),
                                     fld(F::uni_state),
                                     fld(F::uni_length),
                                     sz(S::sz_PyASCIIObject),  // unicode_object
                                     skip(),
                                     fld(F::gcs_collecting)};  // gc
const std::vector<Entry> kGen = {sz(S::sz_PyGenObject), fld(F::gen_name), fld(F::gen_iframe), fld(F::gen_frame_state)};
const std::vector<Entry> kGil = {fld(F::is_ceval_gil), special(kGilBase), skip(), special(kGilLockedInInterp),
                                 special(kGilHolderInInterp)};
const std::vector<Entry> kInterpHead = {sz(S::sz_PyInterpreterState), fld(F::is_id), fld(F::is_next),
                                        fld(F::is_tstate_head)};
const std::vector<Entry> kInterpDicts = {fld(F::is_gc), fld(F::is_modules), fld(F::is_sysdict), fld(F::is_builtins)};

// The shapes this pyinspect knows, newest first. 3.13.0 (Include/internal/pycore_runtime.h);
// 3.14 as released (pycore_debug_offsets.h: threads_main, code_object_generation,
// tlbc_generation, stackpointer, tlbc_index, co_tlbc, set_object, gen_object, llist_node,
// debugger_support); and 3.14's earlier development shape without the generation/tlbc members.
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {
      {"3.14", cat({kRuntime,
                    kInterpHead,
                    {skip()},
                    kInterpDicts,
                    kGil,
                    {skip(), skip()},
                    kThread,
                    kFrame313,
                    {fld(F::if_stackpointer), skip()},
                    kCode313,
                    {skip()},
                    kObjects,
                    kSet,
                    kScalars,
                    kGen,
                    {skip(), skip()},
                    std::vector<Entry>(6, skip())})},
      {"3.14 (development)", cat({kRuntime,
                                  kInterpHead,
                                  {skip()},
                                  kInterpDicts,
                                  kGil,
                                  kThread,
                                  kFrame313,
                                  {fld(F::if_stackpointer)},
                                  kCode313,
                                  kObjects,
                                  kSet,
                                  kScalars,
                                  kGen,
                                  std::vector<Entry>(6, skip())})},
      {"3.13", cat({kRuntime, kInterpHead, kInterpDicts, kGil, kThread, kFrame313, kCode313, kObjects, kScalars})},
  };
  return s;
}

constexpr size_t kHeaderSize = 24;  // cookie[8], version, free_threaded

uint64_t u64_at(std::span<const uint8_t> b, size_t off) {
  uint64_t v = 0;
  if (off + 8 <= b.size()) std::memcpy(&v, b.data() + off, 8);
  return v;
}

struct Decoded {
  Layout layout;
  int64_t specials[kSpecialCount] = {-1, -1, -1, -1};
};

Decoded decode(std::span<const uint8_t> bytes, const Shape& shape) {
  Decoded d;
  size_t off = kHeaderSize;
  for (const Entry& e : shape.entries) {
    uint64_t value = u64_at(bytes, off);
    off += 8;
    if (value > (1u << 20)) continue;  // not a plausible offset: leave it to other sources
    auto v = static_cast<int64_t>(value);
    if (e.kind == Entry::Field) d.layout.set(static_cast<F>(e.id), v, LayoutSource::DebugOffsets);
    if (e.kind == Entry::Size) d.layout.set(static_cast<S>(e.id), v);
    if (e.kind == Entry::Special) d.specials[e.id] = v;
  }
  return d;
}

// Values every GIL build of CPython 3.13+ has, whatever else changed: a shape that reads them
// at the wrong places is not this struct's shape.
bool plausible(const Decoded& d) {
  const Layout& l = d.layout;
  // (3.14's tuple holds its hash before the items: ob_item moved from 24 to 32.)
  return d.specials[kObjectSize] == 16 && l.off(F::ob_type) == 8 && l.off(F::tp_name) == 24 &&
         (l.off(F::tuple_item) == 24 || l.off(F::tuple_item) == 32) && l.off(F::ob_size) == 16 && l.off(F::float_fval) == 16 &&
         l.off(F::bytes_sval) == 32 && l.off(F::uni_length) == 16 && l.off(F::dict_keys) > 0 && l.off(F::ts_next) > 0 &&
         l.off(F::if_previous) >= 0 && l.off(F::co_name) > 0 &&
         l.size(S::sz_PyThreadState) > l.off(F::ts_native_thread_id) && l.off(F::is_tstate_head) > 0 &&
         l.off(F::is_gc) > 0 && l.off(F::is_modules) > 0;
}
}  // namespace

std::optional<DebugOffsetsHeader> debug_offsets_header(std::span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderSize || std::memcmp(bytes.data(), "xdebugpy", 8) != 0) return std::nullopt;
  DebugOffsetsHeader h;
  h.version_hex = static_cast<uint32_t>(u64_at(bytes, 8));
  h.free_threaded = u64_at(bytes, 16) != 0;
  return h;
}

Layout layout_from_debug_offsets(std::span<const uint8_t> bytes) {
  auto h = debug_offsets_header(bytes);
  if (!h) throw Error(ErrorCode::Corrupt, "no _Py_DebugOffsets cookie at _PyRuntime");
  PyVersion version = PyVersion::from_hex(h->version_hex);
  // The shape named for this version first, then the others: a later version that keeps an
  // earlier shape is read too, and the plausibility check refuses a shape that does not fit.
  std::vector<const Shape*> order;
  for (const auto& s : shapes())
    if (std::string(s.name).rfind(version.short_str(), 0) == 0) order.push_back(&s);
  for (const auto& s : shapes())
    if (std::find(order.begin(), order.end(), &s) == order.end()) order.push_back(&s);
  std::string known;
  for (const Shape* shape : order) {
    known += (known.empty() ? "" : ", ") + std::string(shape->name);
    Decoded d = decode(bytes, *shape);
    if (!plausible(d)) continue;
    Layout& l = d.layout;
    l.set_version(version);
    l.origin = std::string("_Py_DebugOffsets of the target (") + shape->name + " shape)";
    if (std::string(shape->name).rfind(version.short_str(), 0) != 0)
      LOG_WARN("CPython " << version.str() << ": reading its _Py_DebugOffsets with the " << shape->name << " shape");
    // We reach the GIL through interp->ceval.gil (a subinterpreter may share the main one), so
    // keep the members' offsets within the GIL struct.
    const int64_t* sp = d.specials;
    if (sp[kGilBase] >= 0 && sp[kGilLockedInInterp] > sp[kGilBase] && sp[kGilHolderInInterp] > sp[kGilBase]) {
      l.set(F::gil_locked, sp[kGilLockedInInterp] - sp[kGilBase], LayoutSource::DebugOffsets);
      l.set(F::gil_last_holder, sp[kGilHolderInInterp] - sp[kGilBase], LayoutSource::DebugOffsets);
    }
    l.set(S::sz_PyObject, sp[kObjectSize]);
    return l;
  }
  throw Error(ErrorCode::Unsupported,
              "CPython " + version.str() +
                  " publishes a _Py_DebugOffsets this pyinspect cannot read (known shapes: " + known + ")");
}

}  // namespace pyinspect
