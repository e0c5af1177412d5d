#include "heap/dominators.hpp"

#include <numeric>
#include <system_error>

#include "heap/graph.hpp"

namespace pyinspect {

namespace {
constexpr uint32_t kNone = UINT32_MAX;
constexpr uint32_t kLeaf = UINT32_MAX - 1;  // reached, refers to nothing: left out of the walk (step 4)
}  // namespace

// Everything below works on depth-first preorder numbers: 0 is the virtual root, 1.. the nodes in
// the order the walk enters them. A number smaller than another's was entered earlier; a node's
// dominators are its ancestors in the depth-first tree, so they all have smaller numbers.
DominatorTree dominator_tree(size_t nodes, CsrView out, CsrView in, const std::vector<uint32_t>& roots) {
  std::vector<uint32_t> num(nodes, kNone);  // node -> its number
  std::vector<uint32_t> vertex{kNone};      // number -> node
  std::vector<uint32_t> parent{0};          // number -> its parent's number in the depth-first tree
  vertex.reserve(nodes + 1);
  parent.reserve(nodes + 1);
  std::vector<bool> is_root(nodes, false);
  for (uint32_t r : roots) is_root[r] = true;

  // 1. Depth first from the virtual root, whose referents are the roots in their order. A real
  // depth-first walk (a node is numbered when the walk enters it, not when it is first seen), as
  // the semidominator rule needs: each node's number and the references it has left, on an explicit
  // stack. A node that refers to nothing (most strings and numbers) is on no path to any other
  // node, so it changes no one's dominators: it is set aside, not walked (step 4).
  struct Step {
    uint32_t v, next, end;  // a node's number, and its references still to follow
  };
  std::vector<Step> stack;
  std::vector<uint32_t> leaves;
  auto enter = [&](uint32_t node, uint32_t from) {
    uint32_t v = static_cast<uint32_t>(vertex.size());
    num[node] = v;
    vertex.push_back(node);
    parent.push_back(from);
    stack.push_back({v, out.start[node], out.start[node + 1]});
  };
  for (uint32_t r : roots) {
    if (num[r] != kNone) continue;
    enter(r, 0);
    while (!stack.empty()) {
      Step& top = stack.back();
      if (top.next == top.end) {
        stack.pop_back();
        continue;
      }
      uint32_t m = out.edges[top.next++];
      if (num[m] != kNone) continue;
      if (out.start[m] == out.start[m + 1] && !is_root[m]) {
        num[m] = kLeaf;
        leaves.push_back(m);
      } else {
        enter(m, top.v);  // (invalidates `top`)
      }
    }
  }
  std::vector<Step>().swap(stack);
  const uint32_t count = static_cast<uint32_t>(vertex.size());

  // 2. Semidominators, in decreasing number. semi(w) is the smallest number from which a path
  // reaches w through nodes numbered above w only: a referrer numbered below w is itself a
  // candidate; one numbered above w offers the smallest semi on its way up the depth-first tree
  // through nodes above w, which eval() finds on a forest of the nodes already done, with path
  // compression (anc: each done node's ancestor in the compressed forest, label: the node of the
  // smallest semi between it and that ancestor). A node is "linked" into the forest once it is done,
  // i.e. when its number is above the one being worked on.
  std::vector<uint32_t> semi(count), label(count), anc(parent);
  std::iota(semi.begin(), semi.end(), 0u);
  std::iota(label.begin(), label.end(), 0u);
  std::vector<uint32_t> path;
  auto eval = [&](uint32_t v, uint32_t w) {  // v > w
    if (anc[v] <= w) return label[v];
    path.clear();
    uint32_t x = v;
    while (anc[x] > w) {
      path.push_back(x);
      x = anc[x];
    }
    // x is the topmost linked node; from just below it down to v, each node takes the smaller
    // label of its ancestor's and its own, and points past x.
    for (size_t i = path.size(); i-- > 0;) {
      uint32_t y = path[i], a = anc[y];
      if (semi[label[a]] < semi[label[y]]) label[y] = label[a];
      anc[y] = anc[a];
    }
    return label[v];
  };
  for (uint32_t w = count - 1; w >= 1; --w) {
    uint32_t node = vertex[w];
    uint32_t s = parent[w];  // the parent refers to w and is numbered below it
    if (is_root[node]) {
      s = 0;  // the virtual root refers to it
    } else {
      auto [b, e] = in.row(node);
      for (const uint32_t* p = b; p != e; ++p) {
        uint32_t v = num[*p];
        if (v >= kLeaf) continue;  // a referrer no root reaches is no path from the roots (and a
                                   // leaf refers to nothing)
        uint32_t c = v <= w ? v : semi[eval(v, w)];
        if (c < s) s = c;
      }
    }
    semi[w] = s;
  }
  std::vector<uint32_t>().swap(path);
  std::vector<uint32_t>().swap(label);

  // 3. Immediate dominators, in increasing number: idom(w) is the nearest common ancestor, in the
  // dominator tree built so far, of w's parent and its semidominator; since the semidominator is
  // an ancestor of the parent, that is the first dominator of the parent numbered at most semi(w).
  std::vector<uint32_t>& idom = anc;  // no longer needed as the forest
  idom[0] = 0;
  for (uint32_t w = 1; w < count; ++w) {
    uint32_t c = parent[w];
    while (c > semi[w]) c = idom[c];
    idom[w] = c;
  }

  // 4. The nodes set aside: each one's immediate dominator is the nearest common ancestor, in
  // the tree, of its referrers (all walked). Going up from the one numbered higher meets it.
  auto nca = [&](uint32_t a, uint32_t b) {
    while (a != b) {
      if (a > b)
        a = idom[a];
      else
        b = idom[b];
    }
    return a;
  };
  std::vector<uint32_t> leaf_idom(leaves.size(), kNone);
  for (size_t i = 0; i < leaves.size(); ++i) {
    auto [b, e] = in.row(leaves[i]);
    for (const uint32_t* p = b; p != e; ++p) {
      uint32_t v = num[*p];
      if (v >= kLeaf) continue;
      leaf_idom[i] = leaf_idom[i] == kNone ? v : nca(leaf_idom[i], v);
    }
  }

  DominatorTree t;
  auto node_of = [&](uint32_t d) { return d == 0 ? DominatorTree::kRoot : vertex[d]; };
  for (uint32_t& n : num)
    if (n < kLeaf) n = node_of(idom[n]);
    else if (n == kNone) n = DominatorTree::kUnreached;
  for (size_t i = 0; i < leaves.size(); ++i) num[leaves[i]] = node_of(leaf_idom[i]);
  t.idom = std::move(num);
  // Each node after its dominators: the walk's preorder, then the nodes set aside.
  vertex.erase(vertex.begin());
  vertex.insert(vertex.end(), leaves.begin(), leaves.end());
  t.order = std::move(vertex);
  return t;
}

RetainedSizes retained_sizes(const DominatorTree& t, std::vector<uint64_t> own) {
  RetainedSizes r;
  r.bytes = std::move(own);
  r.count.assign(t.idom.size(), 0);
  for (uint32_t n : t.order) r.count[n] = 1;
  // Each node after its dominator: backwards, every node is complete before it is added to its
  // dominator.
  for (size_t i = t.order.size(); i-- > 0;) {
    uint32_t n = t.order[i], d = t.idom[n];
    if (d == DominatorTree::kRoot) continue;
    r.bytes[d] += r.bytes[n];
    r.count[d] += r.count[n];
  }
  return r;
}

std::vector<uint32_t> dominated_by(const DominatorTree& t, uint32_t n) {
  if (!t.reached(n)) return {};
  std::vector<bool> in(t.idom.size(), false);
  std::vector<uint32_t> out{n};
  in[n] = true;
  size_t i = 0;
  while (t.order[i] != n) ++i;
  for (++i; i < t.order.size(); ++i) {
    uint32_t m = t.order[i], d = t.idom[m];
    if (d != DominatorTree::kRoot && in[d]) {
      in[m] = true;
      out.push_back(m);
    }
  }
  return out;
}

DominatorTree dominator_tree(const ObjectGraph& g) {
  std::vector<uint32_t> roots;
  roots.reserve(g.roots().size());
  for (const auto& r : g.roots()) roots.push_back(r.node);
  return dominator_tree(g.size(), g.forward(), g.backward(), roots);
}

std::future<DominatorTree> dominator_tree_async(const ObjectGraph& g) {
  auto work = [&g] { return dominator_tree(g); };
  try {
    return std::async(std::launch::async, work);
  } catch (const std::system_error&) {  // no thread to be had: it runs when asked for
    return std::async(std::launch::deferred, work);
  }
}

std::optional<Retained> retained_of(ObjectGraph& g, const DominatorTree& t, uint32_t n) {
  if (!t.reached(n)) return std::nullopt;
  Retained r;
  for (uint32_t m : dominated_by(t, n)) {
    r.bytes += g.size_of(m).value_or(0);
    ++r.count;
  }
  if (t.idom[n] != DominatorTree::kRoot) r.dominator = t.idom[n];
  return r;
}

}  // namespace pyinspect
