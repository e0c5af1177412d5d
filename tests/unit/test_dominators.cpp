// Dominators and retained sizes (src/heap/dominators.hpp) on plain graphs: against the
// definition itself (d dominates v when no root reaches v once d is taken out) on many random
// graphs, and on the shapes retained sizes are about: an object two holders share, cycles, a
// chain far longer than any call stack could walk.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "heap/dominators.hpp"

using namespace pyinspect;

namespace {

// A graph as both directions of compressed rows, built from (from, to) pairs.
struct Graph {
  size_t n = 0;
  std::vector<uint32_t> out_start, out_edges, in_start, in_edges;
  std::vector<std::pair<uint32_t, uint32_t>> pairs;

  Graph(size_t nodes, std::vector<std::pair<uint32_t, uint32_t>> edges) : n(nodes), pairs(std::move(edges)) {
    rows(true, out_start, out_edges);
    rows(false, in_start, in_edges);
  }
  void rows(bool forward, std::vector<uint32_t>& start, std::vector<uint32_t>& edges) const {
    start.assign(n + 1, 0);
    for (auto [a, b] : pairs) ++start[(forward ? a : b) + 1];
    for (size_t i = 0; i < n; ++i) start[i + 1] += start[i];
    edges.assign(pairs.size(), 0);
    std::vector<uint32_t> fill(start.begin(), start.end() - 1);
    for (auto [a, b] : pairs) edges[fill[forward ? a : b]++] = forward ? b : a;
  }
  DominatorTree tree(const std::vector<uint32_t>& roots) const {
    return dominator_tree(n, CsrView{out_start.data(), out_edges.data()}, CsrView{in_start.data(), in_edges.data()},
                          roots);
  }
};

// What the roots reach without passing through `removed` (n: nothing removed).
std::vector<bool> reach(const Graph& g, const std::vector<uint32_t>& roots, size_t removed) {
  std::vector<bool> seen(g.n, false);
  std::vector<uint32_t> work;
  for (uint32_t r : roots)
    if (r != removed && !seen[r]) {
      seen[r] = true;
      work.push_back(r);
    }
  while (!work.empty()) {
    uint32_t v = work.back();
    work.pop_back();
    for (auto [a, b] : g.pairs)
      if (a == v && b != removed && !seen[b]) {
        seen[b] = true;
        work.push_back(b);
      }
  }
  return seen;
}

// Immediate dominators by the definition: the strict dominators of v are the nodes whose removal
// cuts v off from the roots; they form a chain, and the immediate one is the one the others all
// dominate (the one with the most strict dominators of its own). The roots together (kRoot)
// dominate every reached node.
std::vector<uint32_t> brute_idom(const Graph& g, const std::vector<uint32_t>& roots,
                                 std::vector<std::set<uint32_t>>& doms) {
  auto all = reach(g, roots, g.n);
  doms.assign(g.n, {});
  for (uint32_t d = 0; d < g.n; ++d) {
    if (!all[d]) continue;
    auto without = reach(g, roots, d);
    for (uint32_t v = 0; v < g.n; ++v)
      if (v != d && all[v] && !without[v]) doms[v].insert(d);
  }
  std::vector<uint32_t> idom(g.n, DominatorTree::kUnreached);
  for (uint32_t v = 0; v < g.n; ++v) {
    if (!all[v]) continue;
    idom[v] = DominatorTree::kRoot;
    size_t best = 0;
    for (uint32_t d : doms[v])
      if (doms[d].size() + 1 > best) {
        best = doms[d].size() + 1;
        idom[v] = d;
      }
  }
  return idom;
}

// Each reached node once in the order, after its immediate dominator; the others nowhere.
void check_order(const DominatorTree& t) {
  std::vector<int64_t> pos(t.idom.size(), -1);
  for (size_t i = 0; i < t.order.size(); ++i) {
    REQUIRE(pos[t.order[i]] == -1);
    pos[t.order[i]] = static_cast<int64_t>(i);
  }
  for (uint32_t v = 0; v < t.idom.size(); ++v) {
    CHECK((pos[v] >= 0) == t.reached(v));
    if (t.reached(v) && t.idom[v] != DominatorTree::kRoot) CHECK(pos[t.idom[v]] < pos[v]);
  }
}

constexpr uint32_t R = DominatorTree::kRoot;
constexpr uint32_t U = DominatorTree::kUnreached;

}  // namespace

TEST_CASE("dominators: random graphs against the definition (removing d cuts v off the roots)") {
  std::mt19937 rng(20240611);
  for (int round = 0; round < 600; ++round) {
    size_t n = 1 + rng() % 24;
    size_t m = rng() % (3 * n + 1);
    std::vector<std::pair<uint32_t, uint32_t>> edges;
    for (size_t i = 0; i < m; ++i) edges.emplace_back(rng() % n, rng() % n);  // self references and repeats too
    std::vector<uint32_t> roots;
    size_t nroots = round % 5 == 0 ? 0 : 1 + rng() % 3;
    for (size_t i = 0; i < nroots; ++i) roots.push_back(static_cast<uint32_t>(rng() % n));  // repeats too
    Graph g(n, edges);
    auto t = g.tree(roots);
    std::vector<std::set<uint32_t>> doms;
    auto want = brute_idom(g, roots, doms);
    INFO("round " << round << ", " << n << " nodes, " << m << " edges");
    REQUIRE(t.idom.size() == n);
    CHECK(t.idom == want);
    check_order(t);
    // Retained sizes: a node's own size and that of every node it dominates.
    std::vector<uint64_t> own(n);
    for (size_t v = 0; v < n; ++v) own[v] = 1 + rng() % 1000;
    auto rs = retained_sizes(t, own);
    for (uint32_t d = 0; d < n; ++d) {
      if (want[d] == U) {
        CHECK(rs.count[d] == 0);
        CHECK(dominated_by(t, d).empty());
        continue;
      }
      uint64_t bytes = own[d], count = 1;
      std::set<uint32_t> members{d};
      for (uint32_t v = 0; v < n; ++v)
        if (doms[v].count(d)) {
          bytes += own[v];
          ++count;
          members.insert(v);
        }
      CHECK(rs.bytes[d] == bytes);
      CHECK(rs.count[d] == count);
      auto got = dominated_by(t, d);
      CHECK(got.front() == d);
      CHECK(std::set<uint32_t>(got.begin(), got.end()) == members);
      CHECK(got.size() == members.size());
    }
  }
}

TEST_CASE("dominators: a shared object is retained by the common dominator only") {
  // 0 (root) -> 1, 2 (two holders) -> 3 (what they share) -> 4; 1 -> 5 (1's own).
  Graph g(6, {{0, 1}, {0, 2}, {1, 3}, {2, 3}, {3, 4}, {1, 5}});
  auto t = g.tree({0});
  CHECK(t.idom == std::vector<uint32_t>{R, 0, 0, 0, 3, 1});
  auto rs = retained_sizes(t, {1, 10, 100, 1000, 10000, 100000});
  CHECK(rs.bytes[1] == 100010);  // itself and its own, not the shared object
  CHECK(rs.bytes[2] == 100);
  CHECK(rs.bytes[3] == 11000);
  CHECK(rs.bytes[0] == 111111);
  CHECK(rs.count[0] == 6);

  // The same holders as two roots: only all roots together retain what they share.
  Graph two(4, {{0, 2}, {1, 2}, {2, 3}});
  auto t2 = two.tree({0, 1});
  CHECK(t2.idom == std::vector<uint32_t>{R, R, R, 2});
  // One root refers to the other: the other is still a root of its own.
  Graph nested(3, {{0, 1}, {1, 2}});
  CHECK(nested.tree({0, 1}).idom == std::vector<uint32_t>{R, R, 1});
}

TEST_CASE("dominators: cycles, self references, repeated references, what no root reaches") {
  // 0 -> 1 -> 2 -> 3 -> 1 (a ring entered at 1), 3 -> 3, 2 -> 3 twice; 4 -> 1 but nothing reaches 4;
  // 5 <-> 6 a ring no root reaches.
  Graph g(7, {{0, 1}, {1, 2}, {2, 3}, {3, 1}, {3, 3}, {2, 3}, {2, 3}, {4, 1}, {5, 6}, {6, 5}});
  auto t = g.tree({0});
  CHECK(t.idom == std::vector<uint32_t>{R, 0, 1, 2, U, U, U});
  check_order(t);
  auto rs = retained_sizes(t, {1, 2, 4, 8, 16, 32, 64});
  CHECK(rs.bytes[1] == 14);
  CHECK(rs.count[1] == 3);
  CHECK(rs.count[4] == 0);
  CHECK(rs.count[5] == 0);
  // A ring with two ways in: 0 -> 1 and 0 -> 2, 1 <-> 2: neither dominates the other.
  Graph ring(3, {{0, 1}, {0, 2}, {1, 2}, {2, 1}});
  CHECK(ring.tree({0}).idom == std::vector<uint32_t>{R, 0, 0});
  // No roots: nothing is reached.
  CHECK(ring.tree({}).idom == std::vector<uint32_t>{U, U, U});
  CHECK(ring.tree({}).order.empty());
}

TEST_CASE("dominators: a chain of two million objects and a list of a million, without a call stack") {
  const uint32_t n = 2000000;
  std::vector<std::pair<uint32_t, uint32_t>> edges;
  for (uint32_t i = 0; i + 1 < n; ++i) edges.emplace_back(i, i + 1);
  edges.emplace_back(n - 1, 0);  // and back round to the start
  Graph chain(n, edges);
  auto t = chain.tree({0});
  bool ok = t.idom[0] == R;
  for (uint32_t i = 1; i < n && ok; ++i) ok = t.idom[i] == i - 1;
  CHECK(ok);
  auto rs = retained_sizes(t, std::vector<uint64_t>(n, 16));
  CHECK(rs.count[0] == n);
  CHECK(rs.bytes[0] == uint64_t{16} * n);
  CHECK(rs.count[n / 2] == n - n / 2);

  // One list holding a million items, each also referring to the next: the list dominates them all.
  const uint32_t items = 1000000;
  std::vector<std::pair<uint32_t, uint32_t>> list;
  for (uint32_t i = 1; i <= items; ++i) list.emplace_back(0, i);
  for (uint32_t i = 1; i < items; ++i) list.emplace_back(i, i + 1);
  auto lt = Graph(items + 1, list).tree({0});
  bool flat = true;
  for (uint32_t i = 1; i <= items && flat; ++i) flat = lt.idom[i] == 0;
  CHECK(flat);
}
