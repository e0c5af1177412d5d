#include "heap/refs.hpp"

#include <algorithm>
#include <deque>
#include <future>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "base/error.hpp"
#include "base/log.hpp"
#include "heap/dominators.hpp"

namespace pyinspect {

namespace {

bool type_matches(const TypeInfo& ti, const std::string& want) {
  if (ti.name == want) return true;
  // A bare class name matches "module.Name" and "module.Outer.Name".
  return ti.name.size() > want.size() && ti.name.compare(ti.name.size() - want.size(), want.size(), want) == 0 &&
         ti.name[ti.name.size() - want.size() - 1] == '.';
}

class Builder {
 public:
  Builder(ObjectGraph& g, RefsResult& r) : g_(g), r_(r) {}

  uint32_t add(uint32_t n, int depth) {
    auto it = index_.find(n);
    if (it != index_.end()) return it->second;
    RefsNode node;
    node.id = n;
    node.address = g_.addr(n).value();
    node.kind = g_.kind(n);
    node.type = g_.type(n).name;
    node.repr = g_.repr(n);
    node.size = g_.size_of(n);
    node.depth = depth;
    node.finalizer = g_.type(n).has_finalizer;
    node.roots = g_.root_labels(n);
    r_.nodes.push_back(std::move(node));
    index_.emplace(n, n);
    return n;
  }
  uint32_t add_more(int64_t count, int depth) {
    RefsNode node;
    node.id = static_cast<uint32_t>(g_.size() + pseudo_++);
    node.kind = std::to_string(count) + " more references";
    node.more = count;
    node.depth = depth;
    r_.nodes.push_back(node);
    return node.id;
  }
  void edge(uint32_t from, uint32_t to, std::string label) {
    if (drawn_.insert(key(from, to)).second) r_.edges.push_back({from, to, std::move(label)});
  }
  bool drawn(uint32_t from, uint32_t to) const { return drawn_.count(key(from, to)) > 0; }

 private:
  static uint64_t key(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }
  std::unordered_set<uint64_t> drawn_;
  ObjectGraph& g_;
  RefsResult& r_;
  std::unordered_map<uint32_t, uint32_t> index_;
  uint32_t pseudo_ = 0;
};

std::vector<uint32_t> unique(std::pair<const uint32_t*, const uint32_t*> range) {
  std::vector<uint32_t> v;
  std::unordered_set<uint32_t> seen;
  for (const uint32_t* p = range.first; p != range.second; ++p)
    if (seen.insert(*p).second) v.push_back(*p);
  return v;
}

bool is_module_dict(ObjectGraph& g, uint32_t n) {
  uint32_t o = g.owner(n);
  return o != ObjectGraph::kNone && g.type(o).cat == Cat::Module;
}

void complete_edges(ObjectGraph& g, RefsResult& r, Builder& b, bool backwards);

// show_refs / show_backrefs: breadth first from the start objects, max_depth levels, at most
// too_many neighbours of any object (the rest become one "N more references" node).
// Forwards, classes and modules are shown but not entered (what an object holds, not what its
// class holds), and a dict's string keys are left out (they label the edges to the values).
// Backwards, the walk stops at modules and at roots: they are why things are alive.
void neighbourhood(ObjectGraph& g, const RefsOptions& o, RefsResult& r, bool backwards) {
  Builder b(g, r);
  std::deque<std::pair<uint32_t, int>> queue;
  std::unordered_set<uint32_t> seen;
  for (uint32_t s : r.starts) {
    b.add(s, 0);
    seen.insert(s);
    queue.emplace_back(s, 0);
  }
  for (auto& n : r.nodes) n.start = true;
  while (!queue.empty()) {
    auto [n, depth] = queue.front();
    queue.pop_front();
    if (depth >= o.max_depth) continue;
    const TypeInfo& ti = g.type(n);
    if (depth > 0) {
      if (ti.cat == Cat::Module || (backwards && !g.root_labels(n).empty())) continue;
      if (!backwards && (ti.cat == Cat::Type || ti.cat == Cat::Class27)) continue;
    }
    std::vector<GraphRef> next;
    if (backwards) {
      for (uint32_t m : unique(g.in(n))) next.push_back({m, g.edge_label(m, n), EdgeKind::Other});
    } else {
      // Labels for what is shown (string keys skipped are few: twice the limit is plenty).
      for (auto& ref : g.referents(n, 2 * static_cast<size_t>(o.too_many) + 1)) {
        const TypeInfo& rt = g.type(ref.node);
        if (ref.kind == EdgeKind::DictKey && (rt.cat == Cat::Str || rt.cat == Cat::Str27 || rt.cat == Cat::Unicode27))
          continue;
        next.push_back(std::move(ref));
      }
    }
    size_t shown = 0;
    for (auto& ref : next) {
      if (shown == static_cast<size_t>(o.too_many)) {
        uint32_t more = b.add_more(static_cast<int64_t>(next.size() - shown), depth + 1);
        if (backwards)
          b.edge(more, n, "");
        else
          b.edge(n, more, "");
        break;
      }
      ++shown;
      uint32_t m = ref.node;
      b.add(m, depth + 1);
      if (backwards)
        b.edge(m, n, ref.label);
      else
        b.edge(n, m, ref.label);
      if (seen.insert(m).second) queue.emplace_back(m, depth + 1);
    }
  }
  complete_edges(g, r, b, backwards);
}

// An edge between two drawn objects is always drawn: also from a node the walk did not expand (at
// the depth limit, a class, a module, a root) and one collapsed into "N more references", whose
// count then drops by one. Only a dict's str keys stay out, as everywhere (they label the edges
// to the values).
void complete_edges(ObjectGraph& g, RefsResult& r, Builder& b, bool backwards) {
  std::unordered_set<uint32_t> drawn;
  for (const auto& n : r.nodes)
    if (!n.more) drawn.insert(n.id);
  std::unordered_map<uint32_t, RefsNode*> more_of;  // the "more" node of each node, either way
  for (const auto& e : r.edges) {
    for (auto& n : r.nodes)
      if (n.more && (n.id == e.to || n.id == e.from)) more_of[n.id == e.to ? e.from : e.to] = &n;
  }
  for (uint32_t n : drawn) {
    for (uint32_t m : unique(g.out(n))) {
      if (!drawn.count(m) || b.drawn(n, m)) continue;
      GraphRef ref = g.reference(n, m);
      const TypeInfo& mt = g.type(m);
      if (ref.kind == EdgeKind::DictKey && (mt.cat == Cat::Str || mt.cat == Cat::Str27 || mt.cat == Cat::Unicode27))
        continue;
      b.edge(n, m, ref.label);
      // If the end that was expanded (n forwards, m backwards) collapsed neighbours into a
      // "more" node, this reference was among them.
      if (auto it = more_of.find(backwards ? m : n); it != more_of.end() && it->second->more > 0) {
        RefsNode& more = *it->second;
        if (--more.more > 0) more.kind = std::to_string(more.more) + " more references";
      }
    }
  }
  // A "more" node that no longer stands for anything goes, with its edge.
  std::unordered_set<uint32_t> gone;
  for (const auto& n : r.nodes)
    if (n.id >= g.size() && n.more == 0) gone.insert(n.id);
  if (gone.empty()) return;
  r.nodes.erase(std::remove_if(r.nodes.begin(), r.nodes.end(), [&](const RefsNode& n) { return gone.count(n.id) > 0; }),
                r.nodes.end());
  r.edges.erase(std::remove_if(r.edges.begin(), r.edges.end(),
                               [&](const RefsEdge& e) { return gone.count(e.from) || gone.count(e.to); }),
                r.edges.end());
}

bool identifier(const std::string& s) {
  return !s.empty() && !std::isdigit(static_cast<unsigned char>(s[0])) &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// A Python-looking expression for one step of a chain: "['key']", "[3]", ".attr", ": local".
std::string step_text(const GraphRef& ref, bool from_frame, bool after_instance_dict) {
  const std::string& label = ref.label;
  if (label.empty()) return ".?";
  if (ref.kind == EdgeKind::Local) return (from_frame ? ": " : ".") + label;
  if (label[0] == '[') {
    // dict['key'] right after an instance's __dict__ reads as an attribute: obj.key
    if (after_instance_dict && label.size() > 4 && label[1] == '\'' && label.back() == ']') {
      std::string key = label.substr(2, label.size() - 4);
      if (identifier(key)) return "." + key;
    }
    return label;
  }
  return "." + label;
}

void find_chain(ObjectGraph& g, RefsResult& r, const std::vector<bool>& wanted) {
  // The first wanted object the walk reaches has one of the shortest chains; the walk goes on to
  // the end to count how many wanted objects any root reaches at all.
  uint32_t target = ObjectGraph::kNone;
  uint64_t reached = 0;
  Chains chains(g, [&](uint32_t n) {
    if (!wanted[n]) return false;
    ++reached;
    if (target == ObjectGraph::kNone) target = n;
    return false;
  });
  r.chain_reachable = reached;
  if (target == ObjectGraph::kNone) return;
  r.starts = {target};  // the chain is this object's
  r.chain_found = true;
  r.chain = chains.path(target);
  std::vector<GraphRef> refs;
  r.chain_text = chains.text(g, target, &refs);
  Builder b(g, r);
  for (size_t i = 0; i < r.chain.size(); ++i) {
    b.add(r.chain[i], static_cast<int>(i));
    if (i > 0) b.edge(r.chain[i - 1], r.chain[i], refs[i - 1].label);
  }
  for (auto& node : r.nodes)
    if (node.id == target) node.start = true;
}

// Strongly connected components (Tarjan, iterative) of the part of the graph reachable from the
// start objects; the components that contain a start object are its cycles. References to
// classes, modules and modules' namespaces are left out: nearly every object refers to its class,
// and a class's methods refer to their module's namespace, so with them every object reachable
// from a module would share one cycle with it. A cycle through a class or a module does not keep
// anything alive that the module does not already keep; --backrefs and --chain show those.
bool cycle_edge(ObjectGraph& g, uint32_t to) {
  const TypeInfo& t = g.type(to);
  return t.cat != Cat::Type && t.cat != Cat::Class27 && t.cat != Cat::Module && !is_module_dict(g, to);
}

// Tarjan's strongly connected components (iterative) of the part of the graph reachable from
// `starts`, leaving out references to classes and modules (cycle_edge); the components that hold a
// start object and are cycles (more than one member, or one that refers to itself).
std::vector<std::vector<uint32_t>> cycles_of(ObjectGraph& g, const std::vector<uint32_t>& starts_list,
                                             const std::unordered_set<uint32_t>& starts) {
  constexpr uint32_t kUnseen = UINT32_MAX;
  std::vector<uint32_t> index(g.size(), kUnseen), low(g.size(), 0);
  std::vector<bool> on_stack(g.size(), false);
  std::vector<uint32_t> stack;
  uint32_t counter = 0;
  std::vector<std::vector<uint32_t>> comps;
  struct Frame {
    uint32_t n;
    const uint32_t* next;
    const uint32_t* end;
  };
  std::vector<Frame> call;
  auto enter = [&](uint32_t n) {
    index[n] = low[n] = counter++;
    stack.push_back(n);
    on_stack[n] = true;
    auto [b, e] = g.out(n);
    call.push_back({n, b, e});
  };
  for (uint32_t s : starts_list) {
    if (index[s] != kUnseen) continue;
    enter(s);
    while (!call.empty()) {
      Frame& f = call.back();
      if (f.next != f.end) {
        uint32_t m = *f.next++;
        if (!cycle_edge(g, m)) continue;
        if (index[m] == kUnseen)
          enter(m);
        else if (on_stack[m])
          low[f.n] = std::min(low[f.n], index[m]);
        continue;
      }
      uint32_t n = f.n;
      call.pop_back();
      if (!call.empty()) low[call.back().n] = std::min(low[call.back().n], low[n]);
      if (low[n] != index[n]) continue;
      std::vector<uint32_t> comp;
      uint32_t m;
      do {
        m = stack.back();
        stack.pop_back();
        on_stack[m] = false;
        comp.push_back(m);
      } while (m != n);
      bool has_start = std::any_of(comp.begin(), comp.end(), [&](uint32_t x) { return starts.count(x) > 0; });
      bool self_loop = comp.size() == 1 && [&] {
        auto out = g.out(comp[0]);
        return std::find(out.first, out.second, comp[0]) != out.second;
      }();
      if (has_start && (comp.size() > 1 || self_loop)) comps.push_back(std::move(comp));
    }
  }
  return comps;
}

// Which objects the roots keep alive: a cycle nothing reachable refers to is garbage. gc.garbage
// keeps what it holds alive, but only because the collector put it there: not followed.
std::vector<bool> reachable_from_roots(ObjectGraph& g) {
  std::vector<bool> reachable(g.size(), false);
  std::vector<uint32_t> work;
  for (const auto& root : g.roots())
    if (!reachable[root.node]) {
      reachable[root.node] = true;
      work.push_back(root.node);
    }
  while (!work.empty()) {
    uint32_t n = work.back();
    work.pop_back();
    if (n == g.garbage_list()) continue;
    auto [bb, e] = g.out(n);
    for (const uint32_t* p = bb; p != e; ++p)
      if (!reachable[*p]) {
        reachable[*p] = true;
        work.push_back(*p);
      }
  }
  return reachable;
}

// What one cycle is made of, as its members' kinds and the labelled references between them: two
// cycles with the same shape are the same leak, many times over. Components too large to label
// every reference are told apart by their kinds alone.
std::string cycle_shape(ObjectGraph& g, const std::vector<uint32_t>& comp) {
  std::vector<std::string> kinds, edges;
  std::unordered_set<uint32_t> members(comp.begin(), comp.end());
  for (uint32_t n : comp) kinds.push_back(g.kind(n));
  if (comp.size() <= 64)
    for (uint32_t n : comp)
      for (uint32_t m : unique(g.out(n)))
        if (members.count(m) && cycle_edge(g, m)) edges.push_back(g.kind(n) + " -" + g.edge_label(n, m) + "-> " + g.kind(m));
  std::sort(kinds.begin(), kinds.end());
  std::sort(edges.begin(), edges.end());
  std::string key;
  for (const auto& k : kinds) key += k + "\n";
  key += "\n";
  for (const auto& e : edges) key += e + "\n";
  return key;
}

// One cycle in full: members (the start objects first), kinds, size, its status from the
// referrers outside it and gc.garbage, and the references between the members shown.
RefsCycle describe_cycle(ObjectGraph& g, std::vector<uint32_t> comp, const std::unordered_set<uint32_t>& starts,
                         const std::vector<bool>& reachable) {
  RefsCycle c;
  std::map<std::string, uint64_t> kinds;
  std::unordered_set<uint32_t> members(comp.begin(), comp.end());
  std::sort(comp.begin(), comp.end(), [&](uint32_t x, uint32_t y) {
    return starts.count(x) != starts.count(y) ? starts.count(x) > starts.count(y) : x < y;
  });
  std::unordered_set<uint32_t> outside;
  for (uint32_t n : comp) {
    ++kinds[g.kind(n)];
    c.finalizer = c.finalizer || g.type(n).has_finalizer;
    c.size += g.size_of(n).value_or(0);
    c.reachable = c.reachable || reachable[n];
    for (uint32_t m : unique(g.in(n))) {
      if (members.count(m)) continue;
      outside.insert(m);
      if (m == g.garbage_list()) c.in_garbage = true;
    }
  }
  c.referrers = outside.size();
  c.count = comp.size();
  constexpr size_t kShown = 100;  // the start objects first, then the others
  if (comp.size() > kShown) comp.resize(kShown);
  c.members = std::move(comp);
  for (auto& [k, v] : kinds) c.kinds.emplace_back(k, v);
  std::sort(c.kinds.begin(), c.kinds.end(), [](auto& a, auto& x) { return a.second > x.second; });
  return c;
}

// A cycle that is a simple ring (each member refers to exactly one other), from its first
// member round to it again: "ObjectA -__dict__-> dict of ObjectA -['partner']-> ObjectB -...->
// ObjectA". Empty for any other shape.
std::string ring_text(ObjectGraph& g, const std::vector<uint32_t>& members) {
  if (members.size() < 2 || members.size() > 32) return "";
  std::unordered_set<uint32_t> in(members.begin(), members.end());
  std::unordered_map<uint32_t, uint32_t> next;
  for (uint32_t n : members) {
    for (uint32_t m : unique(g.out(n))) {
      if (!in.count(m) || !cycle_edge(g, m)) continue;
      if (next.count(n)) return "";  // two references inside the cycle: no ring
      next[n] = m;
    }
    if (!next.count(n)) return "";
  }
  std::string text = g.kind(members[0]);
  uint32_t n = members[0];
  for (size_t i = 0; i < members.size(); ++i) {
    uint32_t m = next[n];
    text += " -" + g.edge_label(n, m) + "-> " + g.kind(m);
    n = m;
  }
  return n == members[0] ? text : "";
}

// The cycles the start objects are in, grouped by shape: one example of each shape, with how many
// cycles have it, their bytes, and how many are alive, unreachable or in gc.garbage.
void find_cycles(ObjectGraph& g, RefsResult& r, const std::vector<uint32_t>& all_starts) {
  std::unordered_set<uint32_t> starts(all_starts.begin(), all_starts.end());
  auto comps = cycles_of(g, all_starts, starts);
  std::vector<bool> reachable = reachable_from_roots(g);
  struct Group {
    size_t example;
    RefsCycle::Similar similar;
  };
  std::vector<Group> groups;
  std::unordered_map<std::string, size_t> by_shape;
  std::vector<RefsCycle> described;
  for (size_t i = 0; i < comps.size(); ++i) {
    RefsCycle c = describe_cycle(g, comps[i], starts, reachable);
    auto [it, fresh] = by_shape.emplace(cycle_shape(g, comps[i]), groups.size());
    if (fresh) groups.push_back({described.size(), {}});
    RefsCycle::Similar& s = groups[it->second].similar;
    ++s.cycles;
    s.size += c.size;
    if (c.in_garbage)
      ++s.in_garbage;
    else if (!c.reachable)
      ++s.unreachable;
    else
      ++s.alive;
    if (fresh) described.push_back(std::move(c));
  }
  std::sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.similar.size > b.similar.size; });
  Builder b(g, r);
  r.starts.clear();
  for (const auto& grp : groups) {
    RefsCycle c = std::move(described[grp.example]);
    c.similar = grp.similar;
    std::unordered_set<uint32_t> shown(c.members.begin(), c.members.end());
    for (uint32_t n : c.members)
      for (uint32_t m : unique(g.out(n)))
        if (shown.count(m) && cycle_edge(g, m)) b.edge(n, m, g.edge_label(n, m));
    for (uint32_t n : c.members) {
      b.add(n, 0);
      if (starts.count(n)) r.starts.push_back(n);
    }
    c.ring = ring_text(g, c.members);
    r.cycles.push_back(std::move(c));
  }
  if (r.starts.empty() && !all_starts.empty()) r.starts.push_back(all_starts.front());  // in no cycle: shown alone
}

}  // namespace

// Breadth first from the roots. The best reasons to be alive are tried first (GraphRoot::Rank):
// the interpreter's roots (sys.modules, builtins, ...) hold for good; the threads' frames only
// for what those do not reach, then what thread states hold.
Chains::Chains(const ObjectGraph& g, const std::function<bool(uint32_t)>& visit)
    : parent_(g.size(), ObjectGraph::kNone), root_of_(g.size(), -1) {
  const auto& roots = g.roots();
  std::vector<uint32_t> queue;  // each object enters it once: the walk is queue[head..]
  queue.reserve(g.size());
  size_t head = 0;
  for (auto rank : {GraphRoot::Interpreter, GraphRoot::Frame, GraphRoot::Thread}) {
    for (size_t i = 0; i < roots.size(); ++i) {
      uint32_t n = roots[i].node;
      if (roots[i].rank != rank || root_of_[n] >= 0) continue;
      root_of_[n] = static_cast<int32_t>(i);
      queue.push_back(n);
      if (visit && visit(n)) return;
    }
    while (head < queue.size()) {
      uint32_t n = queue[head++];
      auto [b, e] = g.out(n);
      for (const uint32_t* p = b; p != e; ++p) {
        uint32_t m = *p;
        if (root_of_[m] >= 0) continue;
        root_of_[m] = root_of_[n];
        parent_[m] = n;
        if (visit && visit(m)) return;
        queue.push_back(m);
      }
    }
  }
}

std::vector<uint32_t> Chains::path(uint32_t target) const {
  std::vector<uint32_t> out;
  if (!reached(target)) return out;
  for (uint32_t n = target; n != ObjectGraph::kNone; n = parent_[n]) out.push_back(n);
  std::reverse(out.begin(), out.end());
  return out;
}

std::string Chains::text(ObjectGraph& g, uint32_t target, std::vector<GraphRef>* refs) const {
  std::vector<uint32_t> chain = path(target);
  if (chain.empty()) return "";
  std::string text = g.roots()[static_cast<size_t>(root_of_[target])].label;
  bool after_dict = false;
  for (size_t i = 1; i < chain.size(); ++i) {
    uint32_t n = chain[i], prev = chain[i - 1];
    GraphRef ref = g.reference(prev, n);
    if (refs) refs->push_back(ref);
    const TypeInfo& pt = g.type(prev);
    if (ref.kind == EdgeKind::InstanceDict && pt.cat != Cat::Module && pt.cat != Cat::Type && i + 1 < chain.size()) {
      after_dict = true;  // written as attribute access on the next step
      continue;
    }
    if (ref.kind == EdgeKind::DictKey) {
      text = "a key of " + text;  // no expression names a key; it ends the chain (keys hold nothing)
      after_dict = false;
      continue;
    }
    text += step_text(ref, pt.cat == Cat::Frame, after_dict);
    after_dict = false;
  }
  return text;
}

RefsResult compute_refs(ObjectGraph& g, const RefsOptions& o) {
  RefsResult r;
  std::vector<uint32_t> all_matches;  // --cycles looks at every matching object
  r.graph_objects = g.size();
  r.graph_references = g.edges();
  r.finalizers_block_collection = g.context().l.facts().finalizers_block_collection;
  if (o.address) {
    uint32_t n = g.find(RemoteAddr(*o.address));
    if (n == ObjectGraph::kNone) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(*o.address));
      throw Error(ErrorCode::NotFound, std::string("no live object at ") + buf + " (see pyinspect heap --largest for addresses)");
    }
    r.starts.push_back(n);
    all_matches.push_back(n);
    r.matched = 1;
  } else {
    // The largest first (a growing string, the biggest cache), then by address.
    std::vector<std::pair<uint64_t, uint32_t>> matches;
    for (uint32_t n = 0; n < g.size(); ++n)
      if (type_matches(g.type(n), o.type)) matches.emplace_back(g.size_of(n).value_or(0), n);
    r.matched = matches.size();
    size_t keep = std::min(matches.size(), static_cast<size_t>(o.max_objects));
    std::partial_sort(matches.begin(), matches.begin() + static_cast<long>(keep), matches.end(),
                      [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    for (size_t i = 0; i < keep; ++i) r.starts.push_back(matches[i].second);
    for (const auto& m : matches) all_matches.push_back(m.second);  // the largest first
    if (r.matched == 0)
      throw Error(ErrorCode::NotFound, "no object of type '" + o.type + "' in the heap (pyinspect heap --by type lists the types)");
  }
  // One object asked about (--address, --chain): its retained size needs the dominator tree of
  // the whole graph, built on another thread while the question is answered on this one.
  std::optional<std::future<DominatorTree>> building;
  if (o.address || o.chain) building = dominator_tree_async(g);
  if (o.chain) {
    r.mode = "chain";
    std::vector<bool> wanted(g.size(), false);
    if (o.address) {
      wanted[r.starts.front()] = true;
    } else {
      for (uint32_t n = 0; n < g.size(); ++n) wanted[n] = type_matches(g.type(n), o.type);
    }
    find_chain(g, r, wanted);
  } else if (o.cycles) {
    r.mode = "cycles";
    find_cycles(g, r, all_matches);
  } else {
    r.mode = o.backrefs ? "backrefs" : "refs";
    neighbourhood(g, o, r, o.backrefs);
  }
  // The start objects are always among the nodes (a chain not found, an object in no cycle).
  std::unordered_set<uint32_t> present;
  for (const auto& n : r.nodes) present.insert(n.id);
  Builder b(g, r);
  for (uint32_t s : r.starts)
    if (!present.count(s)) b.add(s, 0);
  std::unordered_set<uint32_t> starts(r.starts.begin(), r.starts.end());
  for (auto& n : r.nodes) n.start = starts.count(n.id) > 0 && !n.more;
  if (building) {
    DominatorTree tree = building->get();
    r.retained_asked = o.address || r.chain_found;
    uint32_t n = r.starts.front();
    if (auto ret = r.retained_asked ? retained_of(g, tree, n) : std::nullopt)
      for (auto& node : r.nodes)
        if (node.id == n && !node.more) {
          node.retained_size = ret->bytes;
          node.retained_count = ret->count;
        }
  }
  return r;
}

}  // namespace pyinspect
