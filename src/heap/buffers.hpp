#pragma once
// Native memory that Python objects own: the data of a bytearray, an array.array, a numpy array
// that owns its data, an _io buffered object's buffer, an mmap's mapping. `pyinspect memory`
// counts it as buffers owned by objects (docs/memory.md); `heap` sizes these objects as
// sys.getsizeof does, buffer included where their __sizeof__ counts it.
#include <cstdint>
#include <optional>

#include "heap/heap_types.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

struct OwnedBuffer {
  uint64_t addr = 0;      // where the data starts
  uint64_t bytes = 0;     // how much the object owns there
  bool in_sizeof = true;  // sys.getsizeof(obj) counts it (an mmap's mapping it does not)
};

// The buffer `obj` owns, if it is of a type that owns one and holds one now.
std::optional<OwnedBuffer> owned_buffer(HeapContext& ctx, RemoteAddr obj, const TypeInfo& ti);

// numpy's major version in the target (sys.modules['numpy'].__version__), 0 if not imported.
int numpy_major_version(HeapContext& ctx, const PythonProcess& py);

// numpy.ndarray's __sizeof__ (numpy's array_sizeof): the type's basicsize, the dimensions and
// strides arrays (2 * nd words), and the data when the array owns it. nullopt when unreadable,
// or for a numpy whose structs are not known here.
std::optional<int64_t> ndarray_sizeof(HeapContext& ctx, RemoteAddr obj, const TypeInfo& ti);

}  // namespace pyinspect
