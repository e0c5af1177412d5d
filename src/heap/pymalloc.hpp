#pragma once
// pymalloc's arenas: how much memory the small-object allocator holds, how much of it is in
// use and how much sits in free pools (memory Python keeps and does not return to the OS).
#include "heap/census.hpp"
#include "heap/heap_types.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

// Fills the pymalloc fields of `m` from the (copied) memory; leaves pymalloc_known false, and
// says why in pymalloc_unknown, when the allocator's state cannot be found (stripped builds
// before 3.12, whose arenas are static variables; PYTHONMALLOC=malloc; no arena yet).
void read_pymalloc(HeapContext& ctx, const PythonProcess& py, MemorySummary& m);

}  // namespace pyinspect
