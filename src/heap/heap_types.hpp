#pragma once
// What the census knows about each type object of the target, computed once per type, and the
// context every per-object rule (size, referents) reads through.
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "abi/layout.hpp"
#include "base/remote.hpp"
#include "proc/maps.hpp"
#include "proc/memory.hpp"
#include "runtime/objects.hpp"
#include "runtime/types.hpp"

namespace pyinspect {

// What a type's instances are, by the CPython type they derive from: the nearest type in the
// tp_base chain whose address is one of CPython's own type objects (or, for C types that are not
// exported, whose tp_name names it: collections.deque, ...). A class `class A(dict)` is a Dict.
enum class Cat : uint8_t {
  Other,  // a C type not modelled here: generic size; referents only through its instance dict
  Object, // object, or a class deriving from object alone
  Type,
  NoneType,
  Int27,
  Long,      // int (3.x), long (2.7), and bool, which derives from one of them
  Float,
  Complex,
  Str27,
  Unicode27,
  Str,
  Bytes,
  ByteArray,
  Tuple,
  List,
  Dict,
  Set,
  FrozenSet,
  Deque,
  OrderedDict,
  DefaultDict,
  Code,
  Frame,
  Function,
  Method,
  CFunction,
  Module,
  Cell,
  Generator,
  Coroutine,
  AsyncGenerator,
  WeakRef,
  Property,
  ClassMethod,
  StaticMethod,
  Slice,
  Range,
  MemoryView,
  BaseException,
  Traceback,
  MappingProxy,
  MethodWrapper,
  Descriptor,        // method / wrapper / getset / classmethod descriptors
  MemberDescriptor,  // member descriptors (__slots__ entries)
  Super,
  Array,             // array.array (an extension type)
  Buffered,          // _io.BufferedReader / Writer / Random
  Struct,            // _struct.Struct
  StgDict,           // ctypes' StgDict (2.7-3.12), the dict of every ctypes type
  Instance27,        // 2.7 classic instance
  Class27,           // 2.7 classic class
  NdArray,           // numpy.ndarray (numpy's C type)
  Mmap,              // mmap.mmap
  Count
};
const char* cat_name(Cat c);

struct TypeInfo {
  RemoteAddr addr;
  uint32_t id = 0;              // index in the context's type table
  Cat cat = Cat::Other;
  RemoteAddr builtin;           // the CPython type `cat` comes from
  RemoteAddr metatype;          // Py_TYPE(type)
  uint64_t flags = 0;
  int64_t basicsize = 0, itemsize = 0, dictoffset = 0, weaklistoffset = 0;
  bool heap = false;            // Py_TPFLAGS_HEAPTYPE
  bool gc = false;              // Py_TPFLAGS_HAVE_GC
  bool python_sizeof = false;   // a class in the MRO defines __sizeof__ in Python: size unknown
  // A C type pyinspect does not model defines a __sizeof__ of its own: it is sized as object's
  // __sizeof__ would, which may count less than the type's own (said, by type, never hidden).
  bool c_sizeof = false;
  bool has_finalizer = false;   // defines __del__ (heap types) or has tp_del / a tp_finalize of its own
  bool ctypes_metatype = false; // derives from _ctypes.CType_Type (3.13+): its instances are ctypes types
  bool name_unreadable = false; // tp_name could not be read (a core without the file it is in)
  // Object slots of instances (__slots__ of this type and its heap bases): offset and name.
  std::vector<std::pair<int64_t, std::string>> slots;
  std::string name;    // builtins bare ("dict"), others "module.QualName" ("__main__.ObjectA")
  std::string module;  // "builtins" for builtins (2.7: "__builtin__")

  ObjectReader::TypeShape shape() const { return {addr, flags, basicsize, itemsize, dictoffset}; }
};

class HeapContext {
 public:
  // `maps`, when given, lets a static type that was never readied be believed (binaries' data).
  HeapContext(const Memory& mem, const Layout& layout, const TypeAddrs& types, const Maps* maps = nullptr);

  const Memory& mem;
  const Layout& l;
  const TypeAddrs& t;
  ObjectReader reader;

  // The type of `obj` (reads ob_type), or nullptr if it does not look like a type object.
  const TypeInfo* type_of(RemoteAddr obj);
  // Information on a type object (cached); nullptr if `type` is not readable as a type.
  const TypeInfo* info(RemoteAddr type);
  const std::deque<TypeInfo>& all_types() const { return types_; }

  // sizeof(PyGC_Head) for this build (16 from 3.8; 32 or 24 on 2.7-3.7).
  int64_t gc_head_size() const { return gc_head_; }
  // numpy's major version when the target imported it (its structs changed in 2.0), else 0.
  int numpy_major = 0;
  // No object owns more memory than the target has writable mappings (their total size, when the
  // maps are known): a size beyond it is a misread, not an object's.
  uint64_t max_object_bytes = UINT64_MAX;
  void set_gc_head_size(int64_t v) { gc_head_ = v; }

  // 3.12+: a static type's dict and subclasses, kept by the (main) interpreter, not the type
  // (heap/roots.cpp, index_static_types).
  struct StaticTypeState {
    RemoteAddr dict, subclasses;
  };
  void note_static_type(RemoteAddr type, StaticTypeState st) { static_types_[type.value()] = st; }
  const StaticTypeState* static_type(RemoteAddr type) const {
    auto it = static_types_.find(type.value());
    return it == static_types_.end() ? nullptr : &it->second;
  }

 private:
  TypeInfo build(RemoteAddr type);
  void name_type(TypeInfo& ti, const StructBytes& type_struct);
  void read_slots(TypeInfo& ti);
  void read_mro(TypeInfo& ti, const StructBytes& type_struct);
  bool derives_from(RemoteAddr type, const char* tp_name);

 public:
  // Types known by where a module keeps them rather than by name (a type whose tp_name names no
  // module): `cat` for the type found at sys.modules[module].__dict__[attr].
  void note_builtin_cat(RemoteAddr type, Cat cat) { builtin_cats_[type.value()] = cat; }

 private:
  bool plausible_type(RemoteAddr type);
  std::string name_file_missing(RemoteAddr type);
  bool in_binary_data(RemoteAddr addr) const;
  const Maps* maps_;
  Cat classify(RemoteAddr type, RemoteAddr& builtin);
  std::unordered_map<RemoteAddr, uint32_t> index_;
  std::deque<TypeInfo> types_;  // stable addresses: edges point at slot names
  std::unordered_map<uint64_t, Cat> builtin_cats_;
  std::unordered_map<uint64_t, StaticTypeState> static_types_;
  int64_t gc_head_ = 16;
};

// --- per-object rules (sizes.cpp, referents.cpp) ---

// sys.getsizeof(obj) as the target would compute it, or why it could not be known.
struct ObjectSize {
  enum class Problem : uint8_t {
    None,
    PythonSizeof,   // a class in its MRO defines __sizeof__ in Python: only running it would tell
    Unreadable,     // a member its __sizeof__ reads could not be read (or was out of range)
    MissingMember,  // this build's layout lacks a member its __sizeof__ reads
  };
  std::optional<uint64_t> bytes;
  Problem problem = Problem::None;
};
ObjectSize object_size(HeapContext& ctx, RemoteAddr obj, const TypeInfo& type);
const char* size_problem_text(ObjectSize::Problem p);

// How a reference is held, for labelling graph edges; the census ignores it.
enum class EdgeKind : uint8_t {
  Item,          // [index] of a tuple, list, deque, set (index = position)
  DictKey,       // a key of a dict (index = entry position)
  DictValue,     // a value of a dict; key = the key object
  Attr,          // a named field: name (static string, e.g. "__func__", "f_globals")
  InstanceDict,  // the __dict__ of an instance, module (md_dict) or type (tp_dict)
  Slot,          // a __slots__ member: name
  Type,          // __class__ (the instance's heap type)
  Local,         // a frame local or cell: name may be null, index = slot
  Guess,         // a word of an object pyinspect does not model that may be a reference
  Other,
};
// A reference the garbage collector's tp_traverse does not report (so neither does
// gc.get_referents()), and why: what an in-process census built on gc cannot see.
enum class Hidden : uint8_t {
  No,
  DictStrKey,   // the str keys of a dict whose keys are all str (dict_traverse skips them)
  CodeObject,   // a code object's constants, names and tables (code is no GC object)
  TypeObject,   // a type's names and slots, and everything a static type holds (no GC object)
  Descriptor,   // a descriptor's name and qualified name
  Other,        // another member that traversal leaves out
  Count
};

// Where a root comes from (heap/roots.hpp); None for a reference one object holds.
enum class RootKind : uint8_t {
  None,
  Gc,           // an object the garbage collector tracks (in a GC list)
  Interpreter,  // sys.modules, sys, builtins, the import and codec state, fork and audit hooks
  Interned,     // the interned strings
  Thread,       // a thread state's dict, exceptions, context, profile and trace functions
  Frame,        // the locals of a frame running on a thread's data stack (3.11+)
  Count
};

struct Edge {
  EdgeKind kind = EdgeKind::Other;
  int64_t index = -1;
  RemoteAddr key;
  const char* name = nullptr;
  Hidden hidden = Hidden::No;
  RootKind root = RootKind::None;
};

class ReferentVisitor {
 public:
  virtual ~ReferentVisitor() = default;
  virtual void visit(RemoteAddr child, const Edge& edge) = 0;
};

// Every object `obj` refers to, as gc.get_referents() would report it, plus the references
// CPython keeps outside tp_traverse that keep objects alive (code objects' constants and names,
// the instance attributes of 3.11+ values), marked `hidden`. Children are not validated beyond
// being non-null and aligned: the census checks them.
// Whether every reference could be read: Unreadable when some memory it needed could not be read
// (the references found are still reported), MissingMember when this build's layout lacks a
// member the type's rule needs.
enum class ReferentStatus : uint8_t { Complete, Unreadable, MissingMember };
ReferentStatus for_each_referent(HeapContext& ctx, RemoteAddr obj, const TypeInfo& type, ReferentVisitor& visit);

}  // namespace pyinspect
