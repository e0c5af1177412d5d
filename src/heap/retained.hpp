#pragma once
// `pyinspect heap --retained`: the objects that retain the most memory (what would be freed with
// them: heap/dominators.hpp), each with the chain of references from a root to it, and the leak
// suspects: the objects that retain more than a tenth of all object bytes (Eclipse MAT's Leak
// Suspects).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "heap/graph.hpp"
#include "runtime/model.hpp"

namespace pyinspect {

// An object retaining more than this share of all object bytes is a leak suspect.
constexpr double kLeakSuspectShare = 0.10;
// An object one of whose dominated objects retains at least this share of it is not listed: that
// object is, and its chain passes through this one (a module's dict holding a cache tells nothing
// the cache does not).
constexpr double kPassThroughShare = 0.90;
// --top with --retained: at most this many rows, each with its chain.
constexpr size_t kMaxRetainedRows = 1000;

struct RetainedRow {
  uint64_t address = 0;
  std::string kind;              // as heap and refs name it: "dict", "dict of app.Cache", "app.Node"
  std::string repr;              // "40000 items", a name, a string's start...
  std::optional<uint64_t> size;  // its own: sys.getsizeof, none when unknown
  uint64_t retained_size = 0;    // its own and that of everything it dominates (unknown sizes as 0)
  uint64_t retained_count = 0;   // itself and the objects it dominates
  std::optional<uint64_t> dominator;  // address of its immediate dominator; none: all roots together
  std::string chain;             // from a root, as refs --chain writes it
  double share = 0;              // retained_size / all object bytes
};

struct RetainedResult {
  int pid = 0;
  PythonInfo python;
  uint64_t total_objects = 0, total_size = 0;            // every object of the graph
  uint64_t reachable_objects = 0, reachable_size = 0;    // in the dominator tree: a root reaches them
  uint64_t unreachable_objects = 0, unreachable_size = 0;  // what no root reaches (garbage cycles,
                                                           // objects only C state holds)
  uint64_t unknown_size_objects = 0;  // counted with size 0
  uint64_t roots = 0, graph_references = 0;
  uint64_t listable = 0;               // objects the listing rules let through; rows are the first
  std::vector<RetainedRow> rows;       // the largest retained first
  std::vector<RetainedRow> suspects;   // listable objects above kLeakSuspectShare, largest first
  int64_t pause_ns = 0, elapsed_ns = 0;
  bool paused = true;
  std::string core;  // the core file read, empty for a live process
  std::vector<std::string> warnings;
};

// The `top` listable objects that retain the most, and every leak suspect. Listable: an object a
// root reaches that is not a module, a module's namespace or one of the interpreter's own roots
// (sys.modules, builtins, the interned strings: they retain what they hold by design), and that
// passes no kPassThroughShare of its retained size on to one object it dominates.
RetainedResult compute_retained(ObjectGraph& g, size_t top, bool progress = false);

}  // namespace pyinspect
