// _Py_DebugOffsets (src/abi/debug_offsets.hpp) from hand-built bytes. The struct below mirrors
// CPython 3.13's declaration (Include/internal/pycore_runtime.h); the test fills it with distinct
// values and checks that each lands in the layout member of the same meaning.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "abi/debug_offsets.hpp"
#include "base/error.hpp"

using namespace pyinspect;

namespace {

struct DebugOffsets313 {
  char cookie[8];
  uint64_t version;
  uint64_t free_threaded;
  struct {
    uint64_t size, finalizing, interpreters_head;
  } runtime_state;
  struct {
    uint64_t size, id, next, threads_head, gc, imports_modules, sysdict, builtins, ceval_gil, gil_runtime_state,
        gil_runtime_state_enabled, gil_runtime_state_locked, gil_runtime_state_holder;
  } interpreter_state;
  struct {
    uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id, datastack_chunk, status;
  } thread_state;
  struct {
    uint64_t size, previous, executable, instr_ptr, localsplus, owner;
  } interpreter_frame;
  struct {
    uint64_t size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames, localspluskinds,
        co_code_adaptive;
  } code_object;
  struct {
    uint64_t size, ob_type;
  } pyobject;
  struct {
    uint64_t size, tp_name, tp_repr, tp_flags;
  } type_object;
  struct {
    uint64_t size, ob_item, ob_size;
  } tuple_object;
  struct {
    uint64_t size, ob_item, ob_size;
  } list_object;
  struct {
    uint64_t size, ma_keys, ma_values;
  } dict_object;
  struct {
    uint64_t size, ob_fval;
  } float_object;
  struct {
    uint64_t size, lv_tag, ob_digit;
  } long_object;
  struct {
    uint64_t size, ob_size, ob_sval;
  } bytes_object;
  struct {
    uint64_t size, state, length, asciiobject_size;
  } unicode_object;
  struct {
    uint64_t size, collecting;
  } gc;
};

// Every member a different value, small enough to be a plausible offset; the members whose
// values every GIL build of CPython shares (the PyObject header and the objects built on it) get
// those values, as a real struct has them.
DebugOffsets313 filled(uint64_t version_hex) {
  DebugOffsets313 d;
  std::memcpy(d.cookie, "xdebugpy", 8);
  d.version = version_hex;
  d.free_threaded = 0;
  auto* words = reinterpret_cast<uint64_t*>(reinterpret_cast<char*>(&d) + 24);
  size_t n = (sizeof d - 24) / 8;
  for (size_t i = 0; i < n; ++i) words[i] = 1000 + 8 * i;
  d.pyobject.size = 16;                 // ob_refcnt, ob_type
  d.pyobject.ob_type = 8;
  d.type_object.tp_name = 24;           // after PyVarObject's header
  d.tuple_object.ob_size = 16;
  d.tuple_object.ob_item = 24;
  d.list_object.ob_size = 16;
  d.float_object.ob_fval = 16;
  d.bytes_object.ob_size = 16;
  d.bytes_object.ob_sval = 32;          // after ob_shash
  d.unicode_object.length = 16;
  d.thread_state.size = 5000;           // a struct is larger than its members' offsets
  // The GIL: the interpreter's own _gil at 0x2000, its members as offsets from the interpreter.
  d.interpreter_state.gil_runtime_state = 0x2000;
  d.interpreter_state.gil_runtime_state_locked = 0x2000 + 0x8;
  d.interpreter_state.gil_runtime_state_holder = 0x2000 + 0x10;
  return d;
}

std::vector<uint8_t> bytes_of(const DebugOffsets313& d) {
  std::vector<uint8_t> b(kDebugOffsetsReadSize, 0xee);
  std::memcpy(b.data(), &d, sizeof d);
  return b;
}

}  // namespace

TEST_CASE("debug offsets: no cookie, no header") {
  std::vector<uint8_t> b(kDebugOffsetsReadSize, 0);
  CHECK_FALSE(debug_offsets_header(b).has_value());
  std::memcpy(b.data(), "xdebugpz", 8);
  CHECK_FALSE(debug_offsets_header(b).has_value());
  CHECK_FALSE(debug_offsets_header(std::span<const uint8_t>(b.data(), 0)).has_value());
  // The cookie but too short for the header.
  std::memcpy(b.data(), "xdebugpy", 8);
  CHECK_FALSE(debug_offsets_header(std::span<const uint8_t>(b.data(), 16)).has_value());
  std::memcpy(b.data(), "xdebugpz", 8);
  try {
    layout_from_debug_offsets(b);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Corrupt);
  }
}

TEST_CASE("debug offsets: header") {
  auto d = filled(0x030D01F0);
  d.free_threaded = 1;
  auto h = debug_offsets_header(bytes_of(d));
  REQUIRE(h.has_value());
  CHECK(h->version_hex == 0x030D01F0u);
  CHECK(h->free_threaded);
}

TEST_CASE("debug offsets: a 3.13 struct gives the layout") {
  DebugOffsets313 d = filled(0x030D00F0);
  Layout l = layout_from_debug_offsets(bytes_of(d));
  CHECK(l.version.major == 3);
  CHECK(l.version.minor == 13);
  CHECK(l.version.micro == 0);
  CHECK(l.facts().frames == Facts::Frames::InterpreterFrames);

  auto same = [&](F f, uint64_t want) {
    INFO(kFieldSpecs[static_cast<size_t>(f)].id);
    CHECK(l.off(f) == static_cast<int64_t>(want));
    CHECK(l.source(f) == LayoutSource::DebugOffsets);
  };
  auto same_size = [&](S s, uint64_t want) {
    INFO(kSizeSpecs[static_cast<size_t>(s)].id);
    CHECK(l.size(s) == static_cast<int64_t>(want));
  };
  same(F::rt_interpreters_head, d.runtime_state.interpreters_head);
  same_size(S::sz_PyInterpreterState, d.interpreter_state.size);
  same(F::is_id, d.interpreter_state.id);
  same(F::is_next, d.interpreter_state.next);
  same(F::is_tstate_head, d.interpreter_state.threads_head);
  same(F::is_gc, d.interpreter_state.gc);
  same(F::is_modules, d.interpreter_state.imports_modules);
  same(F::is_sysdict, d.interpreter_state.sysdict);
  same(F::is_builtins, d.interpreter_state.builtins);
  same(F::is_ceval_gil, d.interpreter_state.ceval_gil);
  // The GIL members relative to the GIL struct, which is reached through interp->ceval.gil.
  same(F::gil_locked, 0x8);
  same(F::gil_last_holder, 0x10);
  same_size(S::sz_PyThreadState, d.thread_state.size);
  same(F::ts_prev, d.thread_state.prev);
  same(F::ts_next, d.thread_state.next);
  same(F::ts_interp, d.thread_state.interp);
  same(F::ts_current_frame, d.thread_state.current_frame);
  same(F::ts_thread_id, d.thread_state.thread_id);
  same(F::ts_native_thread_id, d.thread_state.native_thread_id);
  same(F::ts_datastack_chunk, d.thread_state.datastack_chunk);
  same_size(S::sz_PyInterpreterFrame, d.interpreter_frame.size);
  same(F::if_previous, d.interpreter_frame.previous);
  same(F::if_code, d.interpreter_frame.executable);
  same(F::if_instr, d.interpreter_frame.instr_ptr);
  same(F::if_localsplus, d.interpreter_frame.localsplus);
  same(F::if_owner, d.interpreter_frame.owner);
  same_size(S::sz_PyCodeObject, d.code_object.size);
  same(F::co_filename, d.code_object.filename);
  same(F::co_name, d.code_object.name);
  same(F::co_qualname, d.code_object.qualname);
  same(F::co_linetable, d.code_object.linetable);
  same(F::co_firstlineno, d.code_object.firstlineno);
  same(F::co_argcount, d.code_object.argcount);
  same(F::co_localsplusnames, d.code_object.localsplusnames);
  same(F::co_localspluskinds, d.code_object.localspluskinds);
  same(F::co_code_adaptive, d.code_object.co_code_adaptive);
  same_size(S::sz_PyObject, d.pyobject.size);
  same(F::ob_type, d.pyobject.ob_type);
  same_size(S::sz_PyTypeObject, d.type_object.size);
  same(F::tp_name, d.type_object.tp_name);
  same(F::tp_flags, d.type_object.tp_flags);
  same_size(S::sz_PyTupleObject, d.tuple_object.size);
  same(F::tuple_item, d.tuple_object.ob_item);
  same(F::ob_size, d.tuple_object.ob_size);
  same_size(S::sz_PyListObject, d.list_object.size);
  same(F::list_item, d.list_object.ob_item);
  same_size(S::sz_PyDictObject, d.dict_object.size);
  same(F::dict_keys, d.dict_object.ma_keys);
  same(F::dict_values, d.dict_object.ma_values);
  same(F::float_fval, d.float_object.ob_fval);
  same_size(S::sz_PyLongObject, d.long_object.size);
  same(F::long_tag, d.long_object.lv_tag);
  same(F::long_digit, d.long_object.ob_digit);
  same_size(S::sz_PyBytesObject, d.bytes_object.size);
  same(F::bytes_sval, d.bytes_object.ob_sval);
  same(F::uni_state, d.unicode_object.state);
  same(F::uni_length, d.unicode_object.length);
  same_size(S::sz_PyASCIIObject, d.unicode_object.asciiobject_size);
  same(F::gcs_collecting, d.gc.collecting);

  // What the struct does not publish stays unknown, for DWARF or the embedded table to fill.
  CHECK_FALSE(l.has(F::ts_frame));
  CHECK_FALSE(l.has(F::co_firsttraceable));
  CHECK_FALSE(l.has(F::dk_nentries));
}

TEST_CASE("debug offsets: implausible values are left unknown") {
  DebugOffsets313 d = filled(0x030D00F0);
  d.thread_state.current_frame = 1ull << 40;
  d.code_object.qualname = ~0ull;
  Layout l = layout_from_debug_offsets(bytes_of(d));
  CHECK_FALSE(l.has(F::ts_current_frame));
  CHECK_FALSE(l.has(F::co_qualname));
  CHECK(l.off(F::co_filename) == static_cast<int64_t>(d.code_object.filename));
  CHECK(l.off(F::ts_thread_id) == static_cast<int64_t>(d.thread_state.thread_id));
}

TEST_CASE("debug offsets: a GIL not inside the interpreter is not converted") {
  DebugOffsets313 d = filled(0x030D00F0);
  d.interpreter_state.gil_runtime_state_locked = 0x10;  // below the GIL's own offset
  Layout l = layout_from_debug_offsets(bytes_of(d));
  CHECK_FALSE(l.has(F::gil_locked));
}

TEST_CASE("debug offsets: an unknown version is unsupported") {
  // CPython 3.20 with a struct that fits no shape this pyinspect knows.
  std::vector<uint8_t> b(kDebugOffsetsReadSize, 0);
  std::memcpy(b.data(), "xdebugpy", 8);
  uint64_t version = 0x031400F0;
  std::memcpy(b.data() + 8, &version, 8);
  REQUIRE(debug_offsets_header(b).has_value());
  CHECK(debug_offsets_header(b)->version_hex == 0x031400F0u);
  try {
    layout_from_debug_offsets(b);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Unsupported);
  }
}

namespace {
// CPython 3.14's declaration (Include/internal/pycore_debug_offsets.h): members added to the
// interpreter state, interpreter frame and code object sections, and new set_object,
// gen_object, llist_node and debugger_support sections.
struct DebugOffsets314 {
  char cookie[8];
  uint64_t version, free_threaded;
  struct {
    uint64_t size, finalizing, interpreters_head;
  } runtime_state;
  struct {
    uint64_t size, id, next, threads_head, threads_main, gc, imports_modules, sysdict, builtins, ceval_gil,
        gil_runtime_state, gil_runtime_state_enabled, gil_runtime_state_locked, gil_runtime_state_holder,
        code_object_generation, tlbc_generation;
  } interpreter_state;
  struct {
    uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id, datastack_chunk, status;
  } thread_state;
  struct {
    uint64_t size, previous, executable, instr_ptr, localsplus, owner, stackpointer, tlbc_index;
  } interpreter_frame;
  struct {
    uint64_t size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames, localspluskinds,
        co_code_adaptive, co_tlbc;
  } code_object;
  struct {
    uint64_t size, ob_type;
  } pyobject;
  struct {
    uint64_t size, tp_name, tp_repr, tp_flags;
  } type_object;
  struct {
    uint64_t size, ob_item, ob_size;
  } tuple_object, list_object;
  struct {
    uint64_t size, used, table, mask;
  } set_object;
  struct {
    uint64_t size, ma_keys, ma_values;
  } dict_object;
  struct {
    uint64_t size, ob_fval;
  } float_object;
  struct {
    uint64_t size, lv_tag, ob_digit;
  } long_object;
  struct {
    uint64_t size, ob_size, ob_sval;
  } bytes_object;
  struct {
    uint64_t size, state, length, asciiobject_size;
  } unicode_object;
  struct {
    uint64_t size, collecting;
  } gc;
  struct {
    uint64_t size, gi_name, gi_iframe, gi_frame_state;
  } gen_object;
  struct {
    uint64_t next, prev;
  } llist_node;
  struct {
    uint64_t eval_breaker, remote_debugger_support, remote_debugging_enabled, debugger_pending_call,
        debugger_script_path, debugger_script_path_size;
  } debugger_support;
};
}  // namespace

TEST_CASE("debug offsets: a 3.14 struct gives the layout") {
  DebugOffsets314 d;
  std::memcpy(d.cookie, "xdebugpy", 8);
  d.version = 0x030E00F0;
  d.free_threaded = 0;
  auto* words = reinterpret_cast<uint64_t*>(reinterpret_cast<char*>(&d) + 24);
  for (size_t i = 0; i < (sizeof d - 24) / 8; ++i) words[i] = 2000 + 8 * i;
  d.pyobject.size = 16;
  d.pyobject.ob_type = 8;
  d.type_object.tp_name = 24;
  // CPython 3.14.0's own values where the check looks (its tuple holds a hash before the items).
  d.tuple_object.ob_size = 16;
  d.tuple_object.ob_item = 32;
  d.list_object.ob_size = 16;
  d.float_object.ob_fval = 16;
  d.bytes_object.ob_sval = 32;
  d.unicode_object.length = 16;
  d.code_object.co_code_adaptive = 208;
  d.interpreter_frame.stackpointer = 64;
  d.interpreter_frame.owner = 74;
  d.interpreter_frame.localsplus = 80;
  d.thread_state.size = 9000;
  d.interpreter_state.gil_runtime_state = 0x3000;
  d.interpreter_state.gil_runtime_state_locked = 0x3000 + 0x18;
  d.interpreter_state.gil_runtime_state_holder = 0x3000 + 0x8;
  std::vector<uint8_t> b(kDebugOffsetsReadSize, 0xee);
  std::memcpy(b.data(), &d, sizeof d);

  Layout l = layout_from_debug_offsets(b);
  CHECK(l.version.minor == 14);
  CHECK(l.off(F::tuple_item) == 32);
  CHECK(l.off(F::if_stackpointer) == 64);
  CHECK(l.off(F::co_code_adaptive) == 208);
  // _PyStackRef: the object without its tag bits; a tagged int (both bits set) is none.
  CHECK(l.facts().untag(0x7f0000001001) == RemoteAddr(0x7f0000001000));
  CHECK(l.facts().untag(0x7f0000001000) == RemoteAddr(0x7f0000001000));
  CHECK(l.facts().untag((uint64_t{42} << 2) | 3).null());
  CHECK(l.facts().first_shim_owner == 3);  // FRAME_OWNED_BY_INTERPRETER and _CSTACK are skipped
  CHECK(l.off(F::is_tstate_head) == static_cast<int64_t>(d.interpreter_state.threads_head));
  CHECK(l.off(F::is_gc) == static_cast<int64_t>(d.interpreter_state.gc));
  CHECK(l.off(F::is_modules) == static_cast<int64_t>(d.interpreter_state.imports_modules));
  CHECK(l.off(F::is_ceval_gil) == static_cast<int64_t>(d.interpreter_state.ceval_gil));
  CHECK(l.off(F::gil_locked) == 0x18);
  CHECK(l.off(F::gil_last_holder) == 0x8);
  CHECK(l.off(F::ts_current_frame) == static_cast<int64_t>(d.thread_state.current_frame));
  CHECK(l.off(F::ts_native_thread_id) == static_cast<int64_t>(d.thread_state.native_thread_id));
  CHECK(l.off(F::if_previous) == static_cast<int64_t>(d.interpreter_frame.previous));
  CHECK(l.off(F::if_code) == static_cast<int64_t>(d.interpreter_frame.executable));
  CHECK(l.off(F::if_instr) == static_cast<int64_t>(d.interpreter_frame.instr_ptr));
  CHECK(l.off(F::if_owner) == static_cast<int64_t>(d.interpreter_frame.owner));
  CHECK(l.off(F::co_name) == static_cast<int64_t>(d.code_object.name));
  CHECK(l.off(F::co_code_adaptive) == static_cast<int64_t>(d.code_object.co_code_adaptive));
  CHECK(l.off(F::set_used) == static_cast<int64_t>(d.set_object.used));
  CHECK(l.off(F::set_mask) == static_cast<int64_t>(d.set_object.mask));
  CHECK(l.off(F::dict_keys) == static_cast<int64_t>(d.dict_object.ma_keys));
  CHECK(l.off(F::long_digit) == static_cast<int64_t>(d.long_object.ob_digit));
  CHECK(l.off(F::uni_state) == static_cast<int64_t>(d.unicode_object.state));
  CHECK(l.off(F::gen_iframe) == static_cast<int64_t>(d.gen_object.gi_iframe));
  CHECK(l.size(S::sz_PyASCIIObject) == static_cast<int64_t>(d.unicode_object.asciiobject_size));
  CHECK(l.origin.find("3.14") != std::string::npos);

  // The same bytes labelled 3.13 are still read by their shape (3.14's), with a warning.
  d.version = 0x030D00F0;
  std::memcpy(b.data(), &d, sizeof d);
  CHECK(layout_from_debug_offsets(b).off(F::set_used) == static_cast<int64_t>(d.set_object.used));
}
