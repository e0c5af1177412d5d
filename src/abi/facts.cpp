// Every version fact, decided in one place. Each line names the version that changed it; the
// sources are CPython's headers and Objects/, Python/ files of that version.
#include "abi/facts.hpp"

#include <algorithm>

namespace pyinspect {

namespace {
constexpr int64_t kWord = 8;  // sizeof(PyObject*): pyinspect reads 64-bit targets
}

Facts Facts::for_version(const PyVersion& asked) {
  // A version newer than any known one (accepted only through its _Py_DebugOffsets) is read with
  // the newest facts known.
  PyVersion v = asked;
  if (newer_than_known(v)) {
    const KnownVersion& last = known_versions().back();
    v.major = last.major, v.minor = last.minor;
  }
  auto at_least = [&](int ma, int mi) { return v.at_least(ma, mi); };
  Facts f;
  const bool py2 = v.major == 2;

  // Finding the interpreter.
  if (at_least(3, 7)) f.runtime_symbol = "_PyRuntime";
  f.debug_offsets = at_least(3, 13);
  if (!at_least(3, 7)) f.tstate_current_symbol = "_PyThreadState_Current";
  f.thread_name_attr = py2 ? "_Thread__name" : "_name";

  // Frames and code.
  f.frames = at_least(3, 13)   ? Frames::InterpreterFrames
             : at_least(3, 11) ? Frames::InterpreterFramesViaCFrame
                               : Frames::FrameObjects;
  f.lines = at_least(3, 11) ? LineTable::Locations311 : v.is(3, 10) ? LineTable::Linetable310 : LineTable::Lnotab;
  f.lnotab_signed = at_least(3, 6);
  f.lasti_in_code_units = v.is(3, 10);
  f.value_stack = v.is(3, 10) ? ValueStack::Depth : ValueStack::TopPointer;
  if (at_least(3, 12)) f.first_shim_owner = 3;
  f.eval_function = py2 ? "PyEval_EvalFrameEx" : "_PyEval_EvalFrameDefault";
  f.eval_calls = at_least(3, 12)   ? Facts::EvalCalls::ShimFrames
                 : at_least(3, 11) ? Facts::EvalCalls::EntryFlag
                                   : Facts::EvalCalls::PerFrame;
  if (at_least(3, 14)) f.stackref_tag_bits = 3;  // Py_TAG_BITS (Include/internal/pycore_stackref.h)

  // Strings and numbers.
  f.strings = py2 ? Strings::Bytes27 : Strings::Pep393;
  f.builtins_module = py2 ? "__builtin__" : "builtins";
  if (!at_least(3, 12)) f.unicode_state.ready_bit = 7;
  f.int_type = py2;
  f.long_size = at_least(3, 12) ? LongSize::Tag : LongSize::ObSize;
  f.range_objects = !py2;

  // Dicts and instances.
  f.dict = py2 ? Dict::Dict27 : at_least(3, 11) ? Dict::Dict311 : Dict::Dict36;
  if (at_least(3, 11)) {
    f.flag_managed_dict = 1ull << 4;  // Py_TPFLAGS_MANAGED_DICT
    f.managed_dict_offset = -3 * kWord;
  }
  if (at_least(3, 12)) f.flag_managed_weakref = 1ull << 3;  // Py_TPFLAGS_MANAGED_WEAKREF
  if (at_least(3, 13)) {
    f.instance_dict = InstanceDict::Inline313;
    f.flag_inline_values = 1ull << 2;  // Py_TPFLAGS_INLINE_VALUES
  } else if (at_least(3, 12)) {
    f.instance_dict = InstanceDict::Tagged312;
    f.managed_values_tag = 1;
  } else if (at_least(3, 11)) {
    f.instance_dict = InstanceDict::PreHeader311;
    f.managed_values_offset = -4 * kWord;
  }
  f.classic_classes = py2;

  // sys.getsizeof.
  f.sizeof_header = at_least(3, 13)   ? SizeofHeader::PreHeaderExceptStaticTypes
                    : at_least(3, 11) ? SizeofHeader::PreHeaderFromFlags
                                      : SizeofHeader::GcIfIsGc;
  if (at_least(3, 11)) f.pre_header_words = 2;
  f.long_sizeof_own_type = py2;
  if (at_least(3, 11)) f.long_min_digits = 1;
  f.code_sizeof = py2 ? CodeSizeof::Generic : at_least(3, 11) ? CodeSizeof::CodeUnits : CodeSizeof::CellsAndOpcache;
  f.code_extra_counts_struct = at_least(3, 7);
  f.type_sizeof = !py2;
  f.gen_sizeof_frame = at_least(3, 11);
  f.stgdict_sizeof = at_least(3, 7) && !at_least(3, 13);  // 3.6's is dict's, with its basicsize
  f.struct_sizeof_counts_codes = !py2;
  f.ctypes_type_sizeof = at_least(3, 13);

  // The collector and lifetimes.
  f.immortal_objects = at_least(3, 12);
  f.immortal_zero_bits = at_least(3, 14) ? 0x0000ffff00000000ull : 0xffffffff00000000ull;
  f.finalizers_block_collection = !at_least(3, 4);  // PEP 442

  // Threads and tasks.
  static const char* const kGilStatics[] = {"gil_cond", "gil_mutex", "switch_cond", "switch_mutex", nullptr};
  if (at_least(3, 2) && !at_least(3, 7)) f.gil_static_words = kGilStatics;
  if (!at_least(3, 0)) f.gil_static_lock = "interpreter_lock";
  f.lock_wait = at_least(3, 14) ? LockWait::ParkingLot : LockWait::SemaphorePointer;
  f.rlock_held_by_owner = at_least(3, 14);
  f.task_registry = at_least(3, 14) ? TaskRegistry::ThreadLists : TaskRegistry::ModuleSets;

  // pymalloc.
  if (at_least(3, 10)) {
    f.pool_size = 16 << 10;
    f.arena_size = 1 << 20;
  }
  f.obmalloc = at_least(3, 13)   ? Obmalloc::InterpreterPointer
               : at_least(3, 12) ? Obmalloc::InInterpreter
                                 : Obmalloc::Statics;
  return f;
}

const std::vector<KnownVersion>& known_versions() {
  static const std::vector<KnownVersion> v = {
#define PYVERSION(major, minor, tested) {major, minor, tested != 0},
#include "abi/versions.def"
#undef PYVERSION
  };
  return v;
}

std::string known_versions_text() {
  // Runs of consecutive minors within a major: "2.7 and 3.6-3.14".
  std::string out;
  const auto& v = known_versions();
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1].major == v[i].major && v[j + 1].minor == v[j].minor + 1) ++j;
    std::string run = std::to_string(v[i].major) + "." + std::to_string(v[i].minor);
    if (j > i) run += "-" + std::to_string(v[j].major) + "." + std::to_string(v[j].minor);
    out += (out.empty() ? "" : j + 1 == v.size() ? " and " : ", ") + run;
    i = j + 1;
  }
  return out;
}

bool known_version(const PyVersion& v) {
  const auto& k = known_versions();
  return std::any_of(k.begin(), k.end(), [&](const KnownVersion& x) { return v.is(x.major, x.minor); });
}

bool newer_than_known(const PyVersion& v) {
  const KnownVersion& last = known_versions().back();
  return v.major > last.major || (v.major == last.major && v.minor > last.minor);
}

}  // namespace pyinspect
