#include "heap/heap_types.hpp"

namespace pyinspect {
// Placeholder, being written.
std::optional<uint64_t> object_size(HeapContext&, RemoteAddr, const TypeInfo&) { return std::nullopt; }
}  // namespace pyinspect
