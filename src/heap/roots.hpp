#pragma once
// Where the census and the object graph start. First what the garbage collector tracks (every
// generation and the permanent one, as gc.get_objects() returns it); then the roots no tracked
// object may reach: each interpreter's modules, sys, builtins and the rest of its state (import,
// codecs, fork and audit hooks), the interned strings, each thread state's members (its dict,
// exceptions, context) and, 3.11+, the frames running on the threads' data stacks.
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
  int threads = 0;
  int frames = 0;           // 3.11+ interpreter frames whose locals were used as roots
  std::vector<std::string> problems;  // lists that could not be walked completely
};

// Calls `visitor.visit(obj, edge)` for every object in a GC list, edge {Other, root Gc, "gc"}.
RootStats for_each_tracked(HeapContext& ctx, const PythonProcess& py, ReferentVisitor& visitor);
// Every other root, edge {Other, its RootKind, its label} (frame locals: as a frame's referents,
// {Local, root Frame}).
RootStats for_each_other_root(HeapContext& ctx, const PythonProcess& py, ReferentVisitor& visitor);

// The gc_generation structs of one interpreter (for refs: which objects are tracked).
std::vector<RemoteAddr> gc_generation_heads(HeapContext& ctx, const PythonProcess& py, RemoteAddr interp);

// One GC list, from `head` (the PyGC_Head of a gc_generation) round to it again: calls `visitor`
// with each object (the node past its GC header). Not complete when a link could not be read or
// the list looped without coming back to its head.
struct GcListWalk {
  uint64_t objects = 0;
  bool complete = true;
};
GcListWalk for_each_gc_object(HeapContext& ctx, RemoteAddr head, ReferentVisitor& visitor);

// Tells `ctx` what it cannot learn from a type object alone, before the walk: where each static
// builtin type's dict and subclasses are (3.12+: the main interpreter keeps them), and the types
// known by the module that holds them (_struct.Struct, whose tp_name names no module up to 3.9).
void index_types(HeapContext& ctx, const PythonProcess& py);

// sys.modules[module].__dict__[attr] in the main interpreter (the last in the list), if there.
std::optional<RemoteAddr> module_attr(HeapContext& ctx, const PythonProcess& py, const char* module, const char* attr);

// Referents of one _PyInterpreterFrame (3.11+): code, function, namespaces, live locals.
ReferentStatus for_each_frame_referent(HeapContext& ctx, RemoteAddr frame, ReferentVisitor& visitor);

}  // namespace pyinspect
