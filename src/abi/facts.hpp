#pragma once
// What differs between CPython versions besides struct member offsets: behaviours, encodings and
// constants, one named fact each. Facts::for_version (facts.cpp) decides every one of them from
// the version, in one place, and the list of known versions is src/abi/versions.def. Runtime and
// heap code read these facts and never compare version numbers (docs/architecture.md,
// principles: one door per version).
#include <cstdint>
#include <string>
#include <vector>

#include "abi/version.hpp"
#include "base/remote.hpp"

namespace pyinspect {

struct Facts {
  // --- finding the interpreter ---
  const char* runtime_symbol = nullptr;         // 3.7+: _PyRuntime, the runtime state
  bool debug_offsets = false;                   // 3.13+: _Py_DebugOffsets begins _PyRuntime
  const char* tstate_current_symbol = nullptr;  // <=3.6: _PyThreadState_Current, the GIL holder
  const char* thread_name_attr = "_name";       // threading.Thread's name (2.7: name-mangled)

  // --- frames and code ---
  enum class Frames { FrameObjects, InterpreterFramesViaCFrame, InterpreterFrames };
  enum class LineTable { Lnotab, Linetable310, Locations311 };
  Frames frames = Frames::FrameObjects;
  LineTable lines = LineTable::Lnotab;
  bool lnotab_signed = true;         // 3.6+: line increments in co_lnotab are signed bytes
  bool lasti_in_code_units = false;  // 3.10: f_lasti counts 2-byte code units
  // <=3.10 frame objects: the value stack's extent is f_stacktop (a pointer, <=3.9) or
  // f_stackdepth (a count, 3.10); both are the layout member fo_stacktop.
  enum class ValueStack { TopPointer, Depth };
  ValueStack value_stack = ValueStack::TopPointer;
  int frame_owned_by_generator = 1;  // 3.11+: FRAME_OWNED_BY_GENERATOR
  // 3.12+: frames whose owner is this or higher are no Python frames of their own (3.12-3.13:
  // FRAME_OWNED_BY_CSTACK = 3; 3.14: FRAME_OWNED_BY_INTERPRETER = 3, FRAME_OWNED_BY_CSTACK = 4).
  int first_shim_owner = -1;
  int frame_completed = 1;
  // Native frames: the C function that evaluates Python frames (2.7: PyEval_EvalFrameEx), and how
  // a thread's Python frames divide among its calls of it: one call per frame (<=3.10), or one
  // call for a run of frames that begins (outermost) at a frame marked is_entry (3.11) or just
  // inside a C-stack shim frame (3.12+: the owner at or above first_shim_owner).
  const char* eval_function = "_PyEval_EvalFrameDefault";
  enum class EvalCalls { PerFrame, EntryFlag, ShimFrames };
  EvalCalls eval_calls = EvalCalls::PerFrame;  // 3.11+: gi_frame_state at or above FRAME_COMPLETED: finished
  // 3.14+: f_executable and the stack slots are _PyStackRef: the low bits are tags (Py_TAG_BITS),
  // and a value whose tag bits are all set is a tagged int (Py_INT_TAG), not an object.
  uint64_t stackref_tag_bits = 0;
  RemoteAddr untag(uint64_t ref) const {
    if (stackref_tag_bits && (ref & stackref_tag_bits) == stackref_tag_bits) return RemoteAddr();
    return RemoteAddr(ref & ~stackref_tag_bits);
  }

  // --- strings and numbers ---
  // 2.7: `str` is PyStringObject (bytes) and text is `unicode` (a Py_UNICODE buffer); 3.x: PEP 393.
  enum class Strings { Bytes27, Pep393 };
  Strings strings = Strings::Pep393;
  const char* builtins_module = "builtins";
  // Bits of PyASCIIObject.state: interned:2, kind:3, compact:1, ascii:1, then (<=3.11) ready:1.
  struct UnicodeState {
    int kind_shift = 2, compact_bit = 5, ascii_bit = 6, ready_bit = -1;  // -1: no ready bit
  };
  UnicodeState unicode_state;
  bool int_type = false;  // 2.7: PyIntObject (a C long) beside PyLongObject
  // Where an int keeps its digit count: a signed ob_size, or (3.12+) lv_tag = ndigits << shift |
  // sign (0 positive, 1 zero, 2 negative).
  enum class LongSize { ObSize, Tag };
  LongSize long_size = LongSize::ObSize;
  int long_tag_shift = 3;
  uint64_t long_sign_mask = 3;
  int long_digit_bits = 30;
  bool range_objects = true;  // range's start/stop/step are objects (2.7's xrange: C longs)

  // --- dicts and instances ---
  enum class Dict { Dict27, Dict36, Dict311 };
  Dict dict = Dict::Dict36;
  // Where an instance keeps its attributes when its type manages the dict (Py_TPFLAGS_MANAGED_DICT).
  enum class InstanceDict {
    DictOffset,    // tp_dictoffset only
    PreHeader311,  // 3.11: dict pointer and values pointer in the pre-header
    Tagged312,     // 3.12: one pre-header word, the dict or (tagged) the values
    Inline313,     // 3.13+: the dict pointer in the pre-header, values inline after the object
  };
  InstanceDict instance_dict = InstanceDict::DictOffset;
  int64_t managed_dict_offset = 0;    // from the object's address, the managed dict pointer
  int64_t managed_values_offset = 0;  // 3.11: the values pointer
  uint64_t managed_values_tag = 0;    // 3.12: the dict slot holds (values - 1) | this bit
  uint64_t flag_managed_dict = 0, flag_managed_weakref = 0, flag_inline_values = 0;
  bool classic_classes = false;  // 2.7: old-style instances (instance) and classes (classobj)

  // --- sys.getsizeof ---
  // What _PySys_GetSizeOf adds to __sizeof__: the GC header when PyObject_IS_GC (asks tp_is_gc,
  // <=3.10); the pre-header from the type's flags alone (3.11-3.12); the same but none for static
  // type objects (3.13+).
  enum class SizeofHeader { GcIfIsGc, PreHeaderFromFlags, PreHeaderExceptStaticTypes };
  SizeofHeader sizeof_header = SizeofHeader::GcIfIsGc;
  int64_t pre_header_words = 0;  // 3.11+: the managed pre-header (dict, values / weakref)
  // int.__sizeof__: the object's own type's sizes (2.7 long_sizeof), or PyLong_Type's with at
  // least `long_min_digits` digits (3.11+ count one digit for 0).
  bool long_sizeof_own_type = false;
  int long_min_digits = 0;
  enum class CodeSizeof { Generic, CellsAndOpcache, CodeUnits };  // 2.7 code has no __sizeof__
  CodeSizeof code_sizeof = CodeSizeof::Generic;
  // co_extra: ce_size pointer slots (3.6) or the _PyCodeObjectExtra struct and ce_size - 1 more.
  bool code_extra_counts_struct = true;
  bool type_sizeof = true;         // 3.x type.__sizeof__ (2.7: object.__sizeof__)
  bool gen_sizeof_frame = false;   // 3.11+: a generator's size counts its embedded frame's slots
  // ctypes' StgDict has a __sizeof__ of its own (3.x up to 3.12; 2.7's is dict's, with StgDict's
  // basicsize).
  bool stgdict_sizeof = false;
  // _struct.Struct's __sizeof__ counts the format codes it stored, up to their sentinel (3.x; 2.7
  // counts s_len, the items).
  bool struct_sizeof_counts_codes = true;
  // 3.13+: a ctypes type's size is _ctypes.CType_Type.__sizeof__: its metatype's basicsize and
  // the type information it keeps inside (format, shape, ffi elements), not type.__sizeof__.
  bool ctypes_type_sizeof = false;

  // --- the collector and lifetimes ---
  // 3.12+: an immortal object's ob_refcnt has bit 31 set and nothing in the bits above that must
  // be zero (3.12-3.13: all 32 high bits; 3.14: ob_overflow, bits 32-47, ob_flags above them may
  // be set). A freed block, whose first word is a pointer, never passes.
  bool immortal_objects = false;
  uint64_t immortal_zero_bits = 0;
  bool immortal(int64_t refcnt) const {
    auto v = static_cast<uint64_t>(refcnt);
    return immortal_objects && (v & (1ull << 31)) && !(v & immortal_zero_bits);
  }
  bool finalizers_block_collection = false;  // 2.7: a cycle with __del__ goes to gc.garbage

  // --- threads and tasks ---
  // <=3.6: the GIL's waiters sleep on static variables of ceval that no layout names, found in
  // the binary's symbol table (not in a stripped one): 3.2-3.6 the condition variables and
  // mutexes of Python/ceval_gil.h (null-terminated names; a thread taking the GIL waits on
  // gil_cond); 2.7 the sem_t that `interpreter_lock`, a PyThread_type_lock, points to.
  const char* const* gil_static_words = nullptr;
  const char* gil_static_lock = nullptr;
  // How a thread blocked on a _thread.lock or RLock sleeps: on the futex word at the start of the
  // sem_t that the lock's PyThread_type_lock points to (<=3.13), or (3.14+) parked on the lock's
  // inline PyMutex: it sleeps on the semaphore of a wait_entry on its own stack whose `addr` is
  // the mutex's address (Python/parking_lot.c).
  enum class LockWait { SemaphorePointer, ParkingLot };
  LockWait lock_wait = LockWait::SemaphorePointer;
  // An RLock is held while its count is above 0 (<=3.13: rlock_count), or (3.14+: the
  // _PyRecursiveMutex's level counts the holds beyond the first) while its owner is set.
  bool rlock_held_by_owner = false;
  // Where asyncio keeps its pending tasks: the WeakSets and sets of the asyncio.tasks module
  // (<=3.13), or (3.14+) a linked list per thread (and one in the interpreter for the tasks of
  // threads that ended) through each C task's task_node, which `_AsyncioDebug` describes.
  enum class TaskRegistry { ModuleSets, ThreadLists };
  TaskRegistry task_registry = TaskRegistry::ModuleSets;

  // --- pymalloc ---
  uint64_t pool_size = 4096, arena_size = 256 << 10;  // 3.10+: 16 KiB pools, 1 MiB arenas
  enum class Obmalloc { Statics, InInterpreter, InterpreterPointer };  // static <=3.11; 3.12; 3.13+
  Obmalloc obmalloc = Obmalloc::Statics;

  static Facts for_version(const PyVersion& v);
};

// The versions of src/abi/versions.def.
struct KnownVersion {
  int major, minor;
  bool tested;
};
const std::vector<KnownVersion>& known_versions();
// "2.7 and 3.6-3.14", from versions.def.
std::string known_versions_text();
// Whether pyinspect knows facts for this major.minor.
bool known_version(const PyVersion& v);
// A version newer than every known one: facts of the newest are used when the target's own
// _Py_DebugOffsets describe it (and pass validation).
bool newer_than_known(const PyVersion& v);

}  // namespace pyinspect
