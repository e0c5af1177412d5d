#pragma once
// `pyinspect refs`: objgraph's show_refs, show_backrefs and find_backref_chain, and the reference
// cycles objects sit in, computed on the object graph of a copy of the target's heap.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "heap/graph.hpp"
#include "runtime/model.hpp"

namespace pyinspect {

struct RefsOptions {
  std::string type;                 // --type: "ObjectA" or "module.ObjectA"
  std::optional<uint64_t> address;  // --address
  bool backrefs = false;
  bool chain = false;
  bool cycles = false;
  int max_depth = 3;
  int too_many = 10;
  int max_objects = 3;
};

struct RefsNode {
  uint32_t id = 0;  // graph node, or a "more references" pseudo node (>= graph size)
  uint64_t address = 0;
  std::string kind;   // "dict of __main__.ObjectA", "str"...
  std::string type;   // exact type name
  std::string repr;   // short: "3 items", "'abc...'", a function's name
  std::optional<uint64_t> size;
  // The object asked about (--address, or the end of --chain): its retained size and how many
  // objects that is (heap/dominators.hpp); unset for others, or when no root reaches it.
  std::optional<uint64_t> retained_size, retained_count;
  int depth = 0;
  bool start = false;
  bool finalizer = false;   // its class defines __del__ (or the C type tp_del)
  std::vector<std::string> roots;  // root labels when it is a root ("sys.modules", a frame...)
  int64_t more = 0;         // > 0: a pseudo node standing for this many further references
};

struct RefsEdge {
  uint32_t from = 0, to = 0;  // referrer -> referent, always
  std::string label;
};

struct RefsCycle {
  std::vector<uint32_t> members;  // the ones shown (start objects first), at most 100
  uint64_t count = 0;             // all members
  std::vector<std::pair<std::string, uint64_t>> kinds;  // kind -> count
  bool finalizer = false;
  uint64_t size = 0;
  uint64_t referrers = 0;    // objects outside the cycle that refer to a member
  bool reachable = false;    // from a root (not counting gc.garbage): alive for a reason
  bool in_garbage = false;   // gc.garbage holds a member
  // The cycles of the same shape (this one among them): the same kinds, referring to each other
  // the same way. How many, their bytes, and how many are alive, unreachable or in gc.garbage.
  struct Similar {
    uint64_t cycles = 0, size = 0, alive = 0, unreachable = 0, in_garbage = 0;
  };
  Similar similar;
  std::string ring;  // a simple ring's members and references, in order ("" for other shapes)
};

struct RefsResult {
  int pid = 0;
  PythonInfo python;
  std::string mode;  // "refs", "backrefs", "chain", "cycles"
  uint64_t matched = 0;
  std::vector<uint32_t> starts;
  std::vector<RefsNode> nodes;
  std::vector<RefsEdge> edges;
  std::string chain_text;            // sys.modules['app'].__dict__['REGISTRY'][3]
  std::vector<uint32_t> chain;       // node ids, root first
  bool chain_found = false;
  uint64_t chain_reachable = 0;      // matching objects some root reaches
  bool retained_asked = false;       // --address or --chain: the start object's retained size
  std::vector<RefsCycle> cycles;
  uint64_t graph_objects = 0, graph_references = 0;
  int64_t pause_ns = 0, elapsed_ns = 0;
  bool finalizers_block_collection = false;  // 2.7: a cycle with __del__ is never freed
  bool paused = true;                 // false with --nonblocking: the graph may be torn
  std::string core;                   // the core file read, empty for a live process
  std::vector<std::string> warnings;
};

// Throws Error(Usage) when nothing matches --type / --address.
RefsResult compute_refs(ObjectGraph& g, const RefsOptions& opts);

// The shortest chains of references from the roots to every object they reach: one breadth-first
// walk, the best reasons to be alive first (GraphRoot::Rank), so that one chain or many cost one
// walk (`refs --chain`, `heap --retained`).
class Chains {
 public:
  // visit: called on each object once, in the order the walk reaches it; the walk stops early
  // when it returns true (the chains of the objects reached so far are final: shortest first).
  explicit Chains(const ObjectGraph& g, const std::function<bool(uint32_t)>& visit = {});
  bool reached(uint32_t n) const { return root_of_[n] >= 0; }
  std::vector<uint32_t> path(uint32_t n) const;  // root first; empty if not reached
  // The chain to n as a Python expression: "sys.modules['app'].__dict__['CACHE'][3]"; each
  // reference along it (path(n)[i] -> path(n)[i + 1]) in refs when given.
  std::string text(ObjectGraph& g, uint32_t n, std::vector<GraphRef>* refs = nullptr) const;

 private:
  std::vector<uint32_t> parent_;
  std::vector<int32_t> root_of_;  // index in g.roots(), -1 if not reached
};

}  // namespace pyinspect
