#pragma once
// The object graph of the whole heap, for `pyinspect refs`: every live object once (found the
// way the census finds them), with the references between them in both directions, and the
// roots a reference chain can start from.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "heap/csr.hpp"
#include "heap/heap_types.hpp"
#include "heap/snapshot.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

class AddressSet;
class Progress;
namespace graph_detail {
class Builder;
}

struct GraphRoot {
  uint32_t node;
  std::string label;  // "sys.modules", "[thread 4242] main(): objs", ...
  // How good a reason to be alive it is, chains trying the best first: the interpreter's named
  // state (sys.modules, builtins, the interned strings...) holds objects for good; a thread's
  // frame (or one of its locals) only while it runs; then what thread states hold; last, a word
  // of the runtime state that merely looks like a reference.
  enum Rank : uint8_t { Interpreter, Frame, Thread, Scanned };
  Rank rank = Interpreter;
  bool frame() const { return rank == Frame; }
};

// One reference, as an object holds it.
struct GraphRef {
  uint32_t node;
  std::string label;  // "[3]", "['key']", "__dict__", "objs" (a frame local), ...
  EdgeKind kind;
};

class ObjectGraph {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // Walks the heap of `snap` (ctx reads it) from the same roots as the census.
  // progress: a progress line on stderr.
  ObjectGraph(HeapContext& ctx, const HeapSnapshot& snap, const PythonProcess& py, bool progress = false);
  ~ObjectGraph();

  size_t size() const { return addrs_.size(); }
  RemoteAddr addr(uint32_t n) const { return RemoteAddr(addrs_[n]); }
  const TypeInfo& type(uint32_t n) const { return ctx_.all_types()[types_[n]]; }
  uint32_t find(RemoteAddr a) const;  // kNone if not a live object

  // Referents and referrers of n (an object may appear more than once).
  std::pair<const uint32_t*, const uint32_t*> out(uint32_t n) const {
    return {out_edges_.data() + out_start_[n], out_edges_.data() + out_start_[n + 1]};
  }
  std::pair<const uint32_t*, const uint32_t*> in(uint32_t n) const {
    return {in_edges_.data() + in_start_[n], in_edges_.data() + in_start_[n + 1]};
  }
  // The same references as whole arrays, for algorithms over the whole graph (dominators).
  CsrView forward() const { return {out_start_.data(), out_edges_.data()}; }
  CsrView backward() const { return {in_start_.data(), in_edges_.data()}; }
  const std::vector<GraphRoot>& roots() const { return roots_; }
  // Root labels of n, if n is one (several roots may name one object).
  std::vector<std::string> root_labels(uint32_t n) const;
  size_t edges() const { return out_edges_.size(); }

  // How n refers to m, as a label ("__dict__", "['key']", "[3]", "name", ...); empty if unknown.
  std::string edge_label(uint32_t n, uint32_t m);
  GraphRef reference(uint32_t n, uint32_t m);  // label and kind
  // n's references in the order n holds them, each referent once (its first reference); only
  // the first max_labels get their label (a list of millions need not name them all).
  std::vector<GraphRef> referents(uint32_t n, size_t max_labels = SIZE_MAX);
  // The node of the object whose __dict__ n is, or kNone.
  uint32_t owner(uint32_t n) const;
  // The kind shown for n (type name, "dict of X" when it is an object's __dict__).
  std::string kind(uint32_t n);
  // A short description: "N items", a string's first characters, a function's name...
  std::string repr(uint32_t n);
  std::optional<uint64_t> size_of(uint32_t n);

  HeapContext& context() { return ctx_; }
  uint32_t garbage_list() const { return garbage_; }  // gc.garbage, or kNone
  // What could not be walked completely (a torn GC list, ...).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  void walk(graph_detail::Builder& b, const PythonProcess& py);
  void index(graph_detail::Builder& b, Progress& bar);

  HeapContext& ctx_;
  std::unique_ptr<AddressSet> set_;  // the objects; node n is the n-th by address
  std::vector<uint64_t> addrs_;
  std::vector<uint32_t> types_;
  std::vector<uint32_t> out_start_, in_start_;
  std::vector<uint32_t> out_edges_, in_edges_;
  std::vector<GraphRoot> roots_;
  std::vector<std::pair<uint32_t, uint32_t>> owner_;
  uint32_t garbage_ = kNone;  // (dict node, owner node), sorted
  std::vector<std::string> warnings_;
};

}  // namespace pyinspect
