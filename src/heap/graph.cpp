#include "heap/graph.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <unordered_set>

#include "base/error.hpp"
#include "base/log.hpp"
#include "base/progress.hpp"
#include "heap/address_set.hpp"
#include "heap/census.hpp"
#include "heap/roots.hpp"
#include "heap/walker.hpp"
#include "runtime/frames.hpp"

namespace pyinspect {

namespace graph_detail {

// Pairs kept in blocks of a fixed size: growing never moves what is stored (a vector of millions
// of references would copy them all each time it doubled, and fault in twice the pages), and the
// blocks can be freed one by one as they are read.
class PairBlocks {
 public:
  using Pair = std::pair<uint64_t, uint64_t>;
  void emplace_back(uint64_t a, uint64_t b) {
    if (blocks_.empty() || blocks_.back().size() == kBlock) {
      blocks_.emplace_back();
      blocks_.back().reserve(kBlock);
    }
    blocks_.back().emplace_back(a, b);
    ++size_;
  }
  size_t size() const { return size_; }
  // Calls f on each pair in the order they were added, freeing each block once it is done.
  template <class F>
  void consume(F&& f) {
    for (auto& block : blocks_) {
      for (const Pair& p : block) f(p.first, p.second);
      std::vector<Pair>().swap(block);
    }
    blocks_.clear();
    size_ = 0;
  }

 private:
  static constexpr size_t kBlock = size_t{1} << 16;  // 1 MiB of pairs
  std::vector<std::vector<Pair>> blocks_;
  size_t size_ = 0;
};

// Walks the heap from the roots, marking every object in an AddressSet and collecting the
// references between them by address (node numbers exist only once the set is complete).
class Builder : public HeapWalk {
 public:
  Builder(HeapContext& ctx, const HeapSnapshot& snap, AddressSet& set, Progress* progress)
      : HeapWalk(ctx, snap, set, progress, "its object graph was built") {}

  PairBlocks edges;                                  // (from, to)
  std::vector<std::pair<uint64_t, uint64_t>> owners;  // (dict, owner)
  struct RootHit {
    uint64_t addr;
    std::string label;
    GraphRoot::Rank rank;
  };
  std::vector<RootHit> roots;

 protected:
  void on_expand(RemoteAddr, const TypeInfo&) override {}
  void on_reference(RemoteAddr from, RemoteAddr to, const Edge& edge) override {
    edges.emplace_back(from.value(), to.value());
    if (edge.kind == EdgeKind::InstanceDict) owners.emplace_back(to.value(), from.value());
  }
  // Every tracked object is in a GC list; that is no reason for it to be alive: only the other
  // roots start chains.
  void on_root(RemoteAddr obj, const Edge& edge, bool) override {
    if (edge.root == RootKind::Gc || edge.root == RootKind::None) return;
    GraphRoot::Rank rank = edge.kind == EdgeKind::Guess  ? GraphRoot::Scanned
                           : edge.root == RootKind::Frame  ? GraphRoot::Frame
                           : edge.root == RootKind::Thread ? GraphRoot::Thread
                                                           : GraphRoot::Interpreter;
    roots.push_back({obj.value(), edge.name ? edge.name : "?", rank});
  }
};

// Sort (a, b) pairs into compressed rows by a: start[a]..start[a+1] index `out`.
void compress(size_t nodes, const std::vector<std::pair<uint32_t, uint32_t>>& pairs, bool by_first,
              std::vector<uint32_t>& start, std::vector<uint32_t>& out) {
  start.assign(nodes + 1, 0);
  for (auto [a, b] : pairs) ++start[(by_first ? a : b) + 1];
  for (size_t i = 0; i < nodes; ++i) start[i + 1] += start[i];
  out.assign(pairs.size(), 0);
  std::vector<uint32_t> fill(start.begin(), start.end() - 1);
  for (auto [a, b] : pairs) {
    uint32_t key = by_first ? a : b, val = by_first ? b : a;
    out[fill[key]++] = val;
  }
}
}  // namespace graph_detail
using graph_detail::Builder;
using graph_detail::compress;

namespace {

// The code a frame-like object runs: a frame object, a 3.11+ generator (its embedded frame), or a
// 3.11+ _PyInterpreterFrame (is_iframe).
std::optional<RemoteAddr> frame_code(HeapContext& ctx, RemoteAddr obj, const TypeInfo* ti, bool is_iframe) {
  const Layout& l = ctx.l;
  if (is_iframe) return interp_frame_code(ctx.reader, obj);
  if (!ti) return std::nullopt;
  if (ti->cat == Cat::Frame) {
    if (l.facts().frames == Facts::Frames::FrameObjects) return ctx.mem.read_ptr(obj + l.require(F::fo_code));
    auto f = ctx.mem.read_ptr(obj + l.require(F::fo_frame));
    return f ? interp_frame_code(ctx.reader, *f) : std::nullopt;
  }
  if (ti->cat == Cat::Generator && l.has(F::gen_iframe)) return interp_frame_code(ctx.reader, obj + l.off(F::gen_iframe));
  return std::nullopt;
}

// A dict key as a Python literal, in full up to kMaxKey characters ("..." after the quote says it
// was cut: the chain is then not valid Python, and says so).
constexpr size_t kMaxKey = 200;
std::string key_literal(std::string k) {
  bool cut = k.size() > kMaxKey;
  if (cut) k.resize(kMaxKey);
  std::string out = "'";
  for (char c : k) {
    if (c == '\n') out += "\\n";
    else if (c == '\'' || c == '\\') out += std::string("\\") + c;
    else out += c;
  }
  return out + (cut ? "'..." : "'");
}

// How `from` holds a reference, as a label.
std::string label_of(HeapContext& ctx, RemoteAddr from, const TypeInfo* from_type, const Edge& e, bool is_iframe = false) {
  switch (e.kind) {
    case EdgeKind::Item: return "[" + std::to_string(e.index) + "]";
    case EdgeKind::DictKey: return "key";
    case EdgeKind::DictValue: {
      bool is_dict = from_type && (from_type->cat == Cat::Dict || from_type->cat == Cat::OrderedDict ||
                                   from_type->cat == Cat::DefaultDict);
      // 3.11+ instances keep their attributes' values in themselves: obj.name, not obj['name'].
      if (auto k = ctx.reader.read_str(e.key, kMaxKey + 1)) return is_dict || !from_type ? "[" + key_literal(*k) + "]" : *k;
      if (auto i = ctx.reader.read_int(e.key)) return "[" + std::to_string(*i) + "]";
      return "[...]";
    }
    case EdgeKind::InstanceDict: return "__dict__";
    case EdgeKind::Type: return "__class__";
    case EdgeKind::Local: {
      if (e.name) return e.name;
      if (auto code = frame_code(ctx, from, from_type, is_iframe)) return local_name(ctx.reader, *code, e.index);
      return "local " + std::to_string(e.index);
    }
    case EdgeKind::Slot:
    case EdgeKind::Attr: return e.name ? e.name : "";
    case EdgeKind::Guess: return "+" + std::to_string(e.index * 8);
    case EdgeKind::Other: return e.name ? e.name : "";
  }
  return "";
}

}  // namespace

uint32_t ObjectGraph::find(RemoteAddr a) const { return set_ && !a.null() ? set_->rank(a.value()) : kNone; }

ObjectGraph::~ObjectGraph() = default;

ObjectGraph::ObjectGraph(HeapContext& ctx, const HeapSnapshot& snap, const PythonProcess& py, bool progress) : ctx_(ctx) {
  auto t0 = std::chrono::steady_clock::now();
  auto ms = [&t0] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
  set_ = std::make_unique<AddressSet>(snap.ranges());
  Progress bar(progress);
  bar.phase("walking the heap", "objects");
  Builder b(ctx, snap, *set_, &bar);
  walk(b, py);
  LOG_INFO("graph: walked in " << ms() << " ms");
  bar.phase("indexing the references", "", 4);
  index(b, bar);
  bar.clear();
  if (auto gl = gc_garbage_list(ctx, py)) garbage_ = find(*gl);
  LOG_INFO("graph: " << addrs_.size() << " objects, " << out_edges_.size() << " references, " << roots_.size()
                     << " roots, in " << ms() << " ms");
}

// Every object once, from the same roots as the census: what the collector tracks, then the
// interpreter's and the threads' roots (the frames' among them).
void ObjectGraph::walk(Builder& b, const PythonProcess& py) {
  index_types(ctx_, py);
  RootStats tracked = for_each_tracked(ctx_, py, b);
  b.run();
  RootStats others = for_each_other_root(ctx_, py, b);
  b.run();
  for (auto* stats : {&tracked, &others})
    for (auto& p : stats->problems) warnings_.push_back(p);
  if (tracked.generations == 0) warnings_.push_back("the garbage collector's lists were not found");
  if (uint64_t n = b.referents_unreadable() + b.referents_missing_member())
    warnings_.push_back(std::to_string(n) + " objects' references could not all be read: the graph may lack some");
}

// Numbers the objects in address order and turns the references into compressed adjacency
// arrays, forward and backward.
void ObjectGraph::index(Builder& b, Progress& bar) {
  set_->build_rank();
  addrs_.reserve(set_->size());
  types_.reserve(set_->size());
  set_->for_each([&](uint64_t a) {
    addrs_.push_back(a);
    const TypeInfo* ti = ctx_.type_of(RemoteAddr(a));
    types_.push_back(ti ? ti->id : 0);
  });
  bar.update(1, true);
  if (b.edges.size() >= UINT32_MAX)
    throw Error(ErrorCode::Resources, "more than 4 billion references: too many for pyinspect refs");
  std::vector<std::pair<uint32_t, uint32_t>> edges;
  edges.reserve(b.edges.size());
  uint64_t last = 0;  // an object's references are recorded one after another: its rank once
  uint32_t f = kNone;
  b.edges.consume([&](uint64_t from, uint64_t to) {
    if (from != last) f = set_->rank(last = from);
    uint32_t t = set_->rank(to);
    if (f != kNone && t != kNone) edges.emplace_back(f, t);  // both are members: never otherwise
  });
  bar.update(2, true);
  compress(addrs_.size(), edges, true, out_start_, out_edges_);
  bar.update(3, true);
  compress(addrs_.size(), edges, false, in_start_, in_edges_);
  for (auto [dict, obj] : b.owners) owner_.emplace_back(set_->rank(dict), set_->rank(obj));
  std::sort(owner_.begin(), owner_.end());
  // The best reasons first (GraphRoot::Rank), each in the order they were found. A word of the
  // runtime state that only looks like a reference (a cache, a stale slot) is no reason for
  // anything to be alive: its objects are in the graph, but start no chain and keep no cycle.
  std::stable_sort(b.roots.begin(), b.roots.end(), [](const auto& x, const auto& y) { return x.rank < y.rank; });
  for (const auto& h : b.roots)
    if (h.rank != GraphRoot::Scanned) roots_.push_back({set_->rank(h.addr), h.label, h.rank});
}

std::vector<std::string> ObjectGraph::root_labels(uint32_t n) const {
  std::vector<std::string> out;
  for (const auto& r : roots_)
    if (r.node == n && std::find(out.begin(), out.end(), r.label) == out.end()) out.push_back(r.label);
  return out;
}

std::optional<uint64_t> ObjectGraph::size_of(uint32_t n) { return object_size(ctx_, addr(n), type(n)).bytes; }

std::string ObjectGraph::kind(uint32_t n) {
  const TypeInfo& ti = type(n);
  if (ti.cat == Cat::Dict && ti.addr == ctx_.t.dict) {
    if (uint32_t o = owner(n); o != kNone) return "dict of " + type(o).name;
  }
  return ti.name;
}

uint32_t ObjectGraph::owner(uint32_t n) const {
  auto it = std::lower_bound(owner_.begin(), owner_.end(), std::make_pair(n, uint32_t{0}));
  return it != owner_.end() && it->first == n ? it->second : kNone;
}

GraphRef ObjectGraph::reference(uint32_t from, uint32_t to) {
  struct Finder : ReferentVisitor {
    HeapContext& ctx;
    RemoteAddr from, target;
    const TypeInfo* from_type;
    GraphRef ref;
    bool found = false;
    Finder(HeapContext& c, RemoteAddr f, RemoteAddr t, const TypeInfo* ft, uint32_t to)
        : ctx(c), from(f), target(t), from_type(ft), ref{to, "", EdgeKind::Other} {}
    void visit(RemoteAddr child, const Edge& e) override {
      if (found || child != target) return;
      found = true;
      ref.label = label_of(ctx, from, from_type, e);
      ref.kind = e.kind;
    }
  } f(ctx_, addr(from), addr(to), &type(from), to);
  for_each_referent(ctx_, addr(from), type(from), f);
  return f.ref;
}

std::string ObjectGraph::edge_label(uint32_t from, uint32_t to) { return reference(from, to).label; }

std::vector<GraphRef> ObjectGraph::referents(uint32_t n, size_t max_labels) {
  struct Collector : ReferentVisitor {
    ObjectGraph& g;
    uint32_t self;
    size_t max_labels;
    std::vector<GraphRef> out;
    std::unordered_set<uint32_t> seen;
    Collector(ObjectGraph& gg, uint32_t s, size_t m) : g(gg), self(s), max_labels(m) {}
    void visit(RemoteAddr child, const Edge& e) override {
      if (child.null() || (child.value() & 7)) return;
      uint32_t m = g.find(child);
      if (m == kNone || !seen.insert(m).second) return;
      out.push_back({m, out.size() < max_labels ? label_of(g.ctx_, g.addr(self), &g.type(self), e) : std::string(), e.kind});
    }
  } c(*this, n, max_labels);
  for_each_referent(ctx_, addr(n), type(n), c);
  return std::move(c.out);
}

std::string ObjectGraph::repr(uint32_t n) {
  const TypeInfo& ti = type(n);
  auto& r = ctx_.reader;
  RemoteAddr a = addr(n);
  const Layout& l = ctx_.l;
  auto quoted = [](std::string s) {
    bool cut = s.size() > 24;
    if (cut) s.resize(24);
    std::string out;
    for (char c : s) {
      if (c == '\n') out += "\\n";
      else if (c == '"' || c == '\\') out += std::string("\\") + c;
      else out += c;
    }
    return "'" + out + (cut ? "...'" : "'");
  };
  auto name_at = [&](F f) -> std::string {
    if (!l.has(f)) return "";
    auto p = ctx_.mem.read_ptr(a + l.off(f));
    return p ? r.read_str(*p, 60).value_or("") : "";
  };
  switch (ti.cat) {
    case Cat::Str:
    case Cat::Str27:
    case Cat::Unicode27:
      if (auto s = r.read_str(a, 40)) return quoted(*s);
      break;
    case Cat::Long:
    case Cat::Int27:
      if (auto v = r.read_int(a)) return std::to_string(*v);
      break;
    case Cat::Bytes: {
      std::string b = short_repr(ctx_, a, ti);  // b'...' cut at 40 bytes
      if (b.size() > 30) b = b.substr(0, 27) + "...'";
      return b;
    }
    case Cat::Tuple:
    case Cat::List:
    case Cat::Deque:
      if (auto v = ctx_.mem.read_as<int64_t>(a + l.off(F::ob_size))) return items_text(*v);
      break;
    case Cat::Dict:
    case Cat::OrderedDict:
    case Cat::DefaultDict:
      if (auto v = ctx_.mem.read_as<int64_t>(a + l.require(F::dict_used))) return items_text(*v);
      break;
    case Cat::Set:
    case Cat::FrozenSet:
      if (auto v = ctx_.mem.read_as<int64_t>(a + l.require(F::set_used))) return items_text(*v);
      break;
    case Cat::Function: return name_at(l.has(F::func_qualname) ? F::func_qualname : F::func_name);
    case Cat::Code: return name_at(F::co_name);
    case Cat::Module: {
      auto d = ctx_.mem.read_ptr(a + l.require(F::md_dict));
      if (d)
        if (auto nm = r.dict_get(*d, "__name__")) return r.read_str(*nm, 60).value_or("");
      break;
    }
    case Cat::Type: {
      const TypeInfo* t = ctx_.info(a);
      if (t) return t->name;
      break;
    }
    case Cat::Class27: return name_at(F::class_name);
    case Cat::Cell: return "cell";
    default: break;
  }
  return "";
}

}  // namespace pyinspect
