#include "abi/debug_offsets.hpp"

#include <cstring>
#include <vector>

#include "base/error.hpp"

namespace pyinspect {

namespace {
// One member of _Py_DebugOffsets, in declaration order, and the layout entry it gives (or none:
// members we do not use still take their 8 bytes).
struct Entry {
  enum Kind { Skip, Field, Size, Special } kind;
  int id;
};
// Members that need arithmetic before they fit the layout's meaning.
enum Special { kGilBase, kGilLockedInInterp, kGilHolderInInterp };
constexpr Entry skip() { return {Entry::Skip, 0}; }
constexpr Entry special(Special s) { return {Entry::Special, s}; }
constexpr Entry fld(F f) { return {Entry::Field, static_cast<int>(f)}; }
constexpr Entry sz(S s) { return {Entry::Size, static_cast<int>(s)}; }

// 3.13 (Include/internal/pycore_runtime.h): after cookie, version, free_threaded.
const std::vector<Entry> kDebugOffsets313 = {
    // runtime_state
    skip(), skip(), fld(F::rt_interpreters_head),
    // interpreter_state
    sz(S::sz_PyInterpreterState), fld(F::is_id), fld(F::is_next), fld(F::is_tstate_head), fld(F::is_gc),
    fld(F::is_modules), fld(F::is_sysdict), fld(F::is_builtins), fld(F::is_ceval_gil),
    // gil_runtime_state (offset of the interpreter's own _gil), enabled, and then locked and
    // holder as offsets from the interpreter, not from the GIL struct.
    special(kGilBase), skip(), special(kGilLockedInInterp), special(kGilHolderInInterp),
    // thread_state
    sz(S::sz_PyThreadState), fld(F::ts_prev), fld(F::ts_next), fld(F::ts_interp), fld(F::ts_current_frame),
    fld(F::ts_thread_id), fld(F::ts_native_thread_id), fld(F::ts_datastack_chunk), skip(),
    // interpreter_frame
    sz(S::sz_PyInterpreterFrame), fld(F::if_previous), fld(F::if_code), fld(F::if_instr), fld(F::if_localsplus),
    fld(F::if_owner),
    // code_object
    sz(S::sz_PyCodeObject), fld(F::co_filename), fld(F::co_name), fld(F::co_qualname), fld(F::co_linetable),
    fld(F::co_firstlineno), fld(F::co_argcount), fld(F::co_localsplusnames), fld(F::co_localspluskinds),
    fld(F::co_code_adaptive),
    // pyobject
    sz(S::sz_PyObject), fld(F::ob_type),
    // type_object
    sz(S::sz_PyTypeObject), fld(F::tp_name), skip(), fld(F::tp_flags),
    // tuple_object
    sz(S::sz_PyTupleObject), fld(F::tuple_item), fld(F::ob_size),
    // list_object
    sz(S::sz_PyListObject), fld(F::list_item), skip(),
    // dict_object
    sz(S::sz_PyDictObject), fld(F::dict_keys), fld(F::dict_values),
    // float_object
    skip(), fld(F::float_fval),
    // long_object
    sz(S::sz_PyLongObject), fld(F::long_tag), fld(F::long_digit),
    // bytes_object
    sz(S::sz_PyBytesObject), skip(), fld(F::bytes_sval),
    // unicode_object
    skip(), fld(F::uni_state), fld(F::uni_length), sz(S::sz_PyASCIIObject),
    // gc
    skip(), fld(F::gcs_collecting),
};

constexpr size_t kHeaderSize = 24;  // cookie[8], version, free_threaded

uint64_t u64_at(std::span<const uint8_t> b, size_t off) {
  uint64_t v = 0;
  if (off + 8 <= b.size()) std::memcpy(&v, b.data() + off, 8);
  return v;
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
  PyVersion v = PyVersion::from_hex(h->version_hex);
  const std::vector<Entry>* table = nullptr;
  if (v.is(3, 13)) table = &kDebugOffsets313;
  if (!table)
    throw Error(ErrorCode::Unsupported, "CPython " + v.str() + " publishes a _Py_DebugOffsets layout this pyinspect does not know; "
                                        "supported: 3.13");
  Layout l;
  l.set_version(v);
  l.origin = "_Py_DebugOffsets of the target";
  size_t off = kHeaderSize;
  int64_t specials[3] = {-1, -1, -1};
  for (const Entry& e : *table) {
    uint64_t value = u64_at(bytes, off);
    off += 8;
    if (value > (1u << 20)) continue;  // not a plausible offset: leave it to other sources
    auto off_value = static_cast<int64_t>(value);
    if (e.kind == Entry::Field) l.set(static_cast<F>(e.id), off_value, LayoutSource::DebugOffsets);
    if (e.kind == Entry::Size) l.set(static_cast<S>(e.id), off_value);
    if (e.kind == Entry::Special) specials[e.id] = off_value;
  }
  // We reach the GIL through interp->ceval.gil (a subinterpreter may share the main one), so
  // keep the members' offsets within the GIL struct.
  if (specials[kGilBase] >= 0 && specials[kGilLockedInInterp] > specials[kGilBase] &&
      specials[kGilHolderInInterp] > specials[kGilBase]) {
    l.set(F::gil_locked, specials[kGilLockedInInterp] - specials[kGilBase], LayoutSource::DebugOffsets);
    l.set(F::gil_last_holder, specials[kGilHolderInInterp] - specials[kGilBase], LayoutSource::DebugOffsets);
  }
  return l;
}

}  // namespace pyinspect
