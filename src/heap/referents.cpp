#include "heap/heap_types.hpp"

namespace pyinspect {
// Placeholder, being written.
void for_each_referent(HeapContext&, RemoteAddr, const TypeInfo&, ReferentVisitor&) {}
}  // namespace pyinspect
