#pragma once
// Where the census starts: every object the garbage collector tracks (all generations and the
// permanent one), and the roots no tracked object may reach: each interpreter's modules, sys and
// builtins dicts, the interned strings, and the locals of frames running on threads' data
// stacks (3.11+).
#include <functional>
#include <string>
#include <vector>

#include "heap/heap_types.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

struct RootStats {
  uint64_t gc_tracked = 0;  // objects found in the GC lists
  int generations = 0;      // lists walked
  int interpreters = 0;
  int frames = 0;           // 3.11+ interpreter frames whose locals were used as roots
  std::vector<std::string> problems;  // lists that could not be walked completely
};

// Calls `root(obj, edge)` for every root object. `visitor` receives the frame-local roots with
// their labels (as from a referent walk of the frame).
RootStats for_each_root(HeapContext& ctx, const PythonProcess& py, ReferentVisitor& visitor);

// The GC lists alone (for refs: which objects are tracked).
std::vector<RemoteAddr> gc_generation_heads(HeapContext& ctx, const PythonProcess& py, RemoteAddr interp);

// One GC list, from `head` (the PyGC_Head of a gc_generation) round to it again: calls `visitor`
// with each object (the node past its GC header). Not complete when a link could not be read or
// the list looped without coming back to its head.
struct GcListWalk {
  uint64_t objects = 0;
  bool complete = true;
};
GcListWalk for_each_gc_object(HeapContext& ctx, RemoteAddr head, ReferentVisitor& visitor);

// Referents of one _PyInterpreterFrame (3.11+): code, function, namespaces, live locals.
void for_each_frame_referent(HeapContext& ctx, RemoteAddr frame, ReferentVisitor& visitor);

}  // namespace pyinspect
