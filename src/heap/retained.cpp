#include "heap/retained.hpp"

#include <algorithm>
#include <chrono>
#include <future>
#include <queue>
#include <tuple>

#include "base/log.hpp"
#include "base/progress.hpp"
#include "heap/dominators.hpp"
#include "heap/refs.hpp"

namespace pyinspect {

namespace {

// What the interpreter holds by design and retains everything through: modules, their
// namespaces, and the objects its own state names (sys.modules, builtins, the interned strings).
// Listing them would put "sys.modules retains 90%" above every real answer.
std::vector<bool> interpreter_containers(ObjectGraph& g) {
  std::vector<bool> skip(g.size(), false);
  for (const auto& r : g.roots())
    if (r.rank == GraphRoot::Interpreter) skip[r.node] = true;
  for (uint32_t n = 0; n < g.size(); ++n) {
    if (g.type(n).cat != Cat::Module) continue;
    skip[n] = true;
    auto [b, e] = g.out(n);
    for (const uint32_t* m = b; m != e; ++m)
      if (g.owner(*m) == n) skip[*m] = true;  // its __dict__
  }
  return skip;
}

}  // namespace

RetainedResult compute_retained(ObjectGraph& g, size_t top, bool progress) {
  auto t0 = std::chrono::steady_clock::now();
  auto ms = [&t0] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
  RetainedResult r;
  Progress bar(progress);
  // The tree is built on another thread while this one sizes the objects (the sizes read the copy
  // through the context, which only this thread uses).
  std::future<DominatorTree> building = dominator_tree_async(g);
  bar.phase("sizing the objects", "", g.size());
  std::vector<uint64_t> own(g.size(), 0);
  for (uint32_t n = 0; n < g.size(); ++n) {
    auto size = g.size_of(n);
    own[n] = size.value_or(0);
    r.unknown_size_objects += size ? 0 : 1;
    r.total_size += own[n];
    if ((n & 0xffff) == 0) bar.update(n);
  }
  LOG_INFO("retained: objects sized in " << ms() << " ms");
  bar.phase("finding the dominators");
  DominatorTree tree = building.get();
  LOG_INFO("retained: dominator tree of " << tree.order.size() << " objects in " << ms() << " ms");
  for (uint32_t n = 0; n < g.size(); ++n)
    if (tree.reached(n)) {
      ++r.reachable_objects;
      r.reachable_size += own[n];
    }
  r.total_objects = g.size();
  r.unreachable_objects = r.total_objects - r.reachable_objects;
  r.unreachable_size = r.total_size - r.reachable_size;
  r.roots = g.roots().size();
  r.graph_references = g.edges();
  RetainedSizes sizes = retained_sizes(tree, std::move(own));
  LOG_INFO("retained: sizes summed in " << ms() << " ms");

  // The listing rules (retained.hpp): the interpreter's containers, and every object that passes
  // most of what it retains on to one object it dominates.
  bar.phase("choosing the objects");
  std::vector<bool> skip = interpreter_containers(g);
  // (By node rather than in the tree's order: the arrays are read in sequence.)
  for (uint32_t n = 0; n < g.size(); ++n) {
    uint32_t d = tree.idom[n];
    if (d != DominatorTree::kRoot && d != DominatorTree::kUnreached &&
        static_cast<double>(sizes.bytes[n]) >= kPassThroughShare * static_cast<double>(sizes.bytes[d]))
      skip[d] = true;
  }
  // The largest first; among equals, more objects, then the lower address.
  auto larger = [&](uint32_t a, uint32_t b) {
    return std::make_tuple(sizes.bytes[a], sizes.count[a], b) > std::make_tuple(sizes.bytes[b], sizes.count[b], a);
  };
  std::priority_queue<uint32_t, std::vector<uint32_t>, decltype(larger)> best(larger);  // the smallest on top
  std::vector<uint32_t> suspects;
  double threshold = kLeakSuspectShare * static_cast<double>(r.total_size);
  for (uint32_t n = 0; n < g.size(); ++n) {
    if (skip[n] || !tree.reached(n)) continue;
    ++r.listable;
    if (r.total_size && static_cast<double>(sizes.bytes[n]) > threshold) suspects.push_back(n);
    if (best.size() < top) {
      best.push(n);
    } else if (top && larger(n, best.top())) {
      best.pop();
      best.push(n);
    }
  }
  std::vector<uint32_t> listed;
  for (; !best.empty(); best.pop()) listed.push_back(best.top());
  std::reverse(listed.begin(), listed.end());
  std::sort(suspects.begin(), suspects.end(), larger);

  // One breadth-first walk gives every chain; it ends once it has reached every object listed.
  bar.phase("writing the chains");
  std::vector<bool> wanted(g.size(), false);
  size_t left = 0;
  for (const auto* v : {&listed, &suspects})
    for (uint32_t n : *v)
      if (!wanted[n]) {
        wanted[n] = true;
        ++left;
      }
  Chains chains(g, [&](uint32_t n) { return wanted[n] && --left == 0; });
  auto row = [&](uint32_t n) {
    RetainedRow x;
    x.address = g.addr(n).value();
    x.kind = g.kind(n);
    x.repr = g.repr(n);
    x.size = g.size_of(n);
    x.retained_size = sizes.bytes[n];
    x.retained_count = sizes.count[n];
    if (tree.idom[n] != DominatorTree::kRoot) x.dominator = g.addr(tree.idom[n]).value();
    x.chain = chains.text(g, n);
    x.share = r.total_size ? static_cast<double>(x.retained_size) / static_cast<double>(r.total_size) : 0;
    return x;
  };
  for (uint32_t n : listed) r.rows.push_back(row(n));
  for (uint32_t n : suspects) r.suspects.push_back(row(n));
  bar.clear();
  LOG_INFO("retained: " << r.listable << " objects listable, " << r.rows.size() << " rows, " << r.suspects.size()
                        << " leak suspects, in " << ms() << " ms");
  return r;
}

}  // namespace pyinspect
