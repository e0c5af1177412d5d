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
#include "runtime/frames.hpp"

namespace pyinspect {

namespace {

// Walks the heap from the roots, marking every object in an AddressSet and collecting the
// references between them by address (node numbers exist only once the set is complete).
class Builder : public ReferentVisitor {
 public:
  Builder(HeapContext& ctx, const HeapSnapshot& snap, AddressSet& set) : ctx_(ctx), snap_(snap), maps_(snap.maps()), set_(set) {}
  void visit(RemoteAddr child, const Edge& edge) override {
    if (child.null() || (child.value() & 7)) return;
    if (edge.kind == EdgeKind::Guess && !plausible_object(ctx_, maps_, child)) return;
    if (!node(child)) return;
    if (current_) {
      edges.emplace_back(current_.value(), child.value());
      if (edge.kind == EdgeKind::InstanceDict) owners.emplace_back(child.value(), current_.value());
    } else if (root_label_) {
      root_hits.push_back({child.value(), root_label_});
    }
    if (!running_) run();
  }
  void run() {
    running_ = true;
    RemoteAddr saved = current_;
    while (!stack.empty()) {
      auto [n, ti] = stack.back();
      stack.pop_back();
      current_ = n;
      if ((++expanded_ & 0xfff) == 0) {
        snap_.check_target("its object graph was built");
        if (progress) progress->update(expanded_);
      }
      for_each_referent(ctx_, n, *ti, *this);
    }
    current_ = saved;
    running_ = false;
  }
  // True if a is an object (queued to be walked when first seen).
  bool node(RemoteAddr a) {
    if (set_.contains(a.value())) return true;
    const TypeInfo* ti = ctx_.type_of(a);
    if (!ti) return false;
    if (!set_.insert(a.value())) return false;  // outside the copied memory
    stack.emplace_back(a, ti);
    return true;
  }

  std::vector<std::pair<uint64_t, uint64_t>> edges, owners;  // (from, to), (dict, owner)
  struct RootHit {
    uint64_t addr;
    const char* label;
  };
  std::vector<RootHit> root_hits;
  std::vector<std::pair<RemoteAddr, const TypeInfo*>> stack;
  const char* root_label_ = nullptr;
  Progress* progress = nullptr;

 private:
  HeapContext& ctx_;
  const HeapSnapshot& snap_;
  const Maps& maps_;
  AddressSet& set_;
  RemoteAddr current_;
  uint64_t expanded_ = 0;
  bool running_ = false;
};

// Root visitor: only the interpreter's named roots become chain roots (every tracked object is
// in a GC list; that is no reason for it to be alive).
class RootFilter : public ReferentVisitor {
 public:
  explicit RootFilter(Builder& b) : b_(b) {}
  void visit(RemoteAddr child, const Edge& edge) override {
    const char* label = nullptr;
    if (edge.kind == EdgeKind::Other && edge.name && std::string_view(edge.name) != "gc") label = edge.name;
    b_.root_label_ = label;
    b_.visit(child, edge);
    b_.root_label_ = nullptr;
  }

 private:
  Builder& b_;
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
}  // namespace

namespace {

// The name of local slot i of a frame running `code` (its variables, then cells and free
// variables); "stack" for the value stack above them.
std::string local_name(HeapContext& ctx, RemoteAddr code, int64_t i) {
  const Layout& l = ctx.l;
  std::vector<F> tuples;
  if (l.has(F::co_localsplusnames))
    tuples = {F::co_localsplusnames};
  else
    tuples = {F::co_varnames, F::co_cellvars, F::co_freevars};
  for (F f : tuples) {
    if (!l.has(f)) continue;
    auto t = ctx.mem.read_ptr(code + l.off(f));
    if (!t || t->null()) continue;
    auto n = ctx.mem.read_as<int64_t>(*t + l.off(F::ob_size));
    if (!n || *n < 0) return "local " + std::to_string(i);
    if (i < *n) {
      auto item = ctx.mem.read_ptr(*t + l.require(F::tuple_item) + i * 8);
      auto name = item ? ctx.reader.read_str(*item, 60) : std::nullopt;
      return name ? *name : "local " + std::to_string(i);
    }
    i -= *n;
  }
  return "stack";
}

// The code a frame-like object runs: a frame object, a 3.11+ generator (its embedded frame), or a
// 3.11+ _PyInterpreterFrame (is_iframe).
std::optional<RemoteAddr> frame_code(HeapContext& ctx, RemoteAddr obj, const TypeInfo* ti, bool is_iframe) {
  const Layout& l = ctx.l;
  auto iframe_code = [&](RemoteAddr f) -> std::optional<RemoteAddr> {
    auto c = ctx.mem.read_as<uint64_t>(f + l.require(F::if_code));
    if (!c) return std::nullopt;
    return RemoteAddr(l.traits().tagged_code_pointer ? (*c & ~uint64_t{7}) : *c);
  };
  if (is_iframe) return iframe_code(obj);
  if (!ti) return std::nullopt;
  if (ti->cat == Cat::Frame) {
    if (l.traits().frames == Traits::Frames::FrameObjects) return ctx.mem.read_ptr(obj + l.require(F::fo_code));
    auto f = ctx.mem.read_ptr(obj + l.require(F::fo_frame));
    return f ? iframe_code(*f) : std::nullopt;
  }
  if (ti->cat == Cat::Generator && l.has(F::gen_iframe)) return iframe_code(obj + l.off(F::gen_iframe));
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
      if (auto code = frame_code(ctx, from, from_type, is_iframe)) return local_name(ctx, *code, e.index);
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

ObjectGraph::ObjectGraph(HeapContext& ctx, const PythonProcess& py, bool progress) : ctx_(ctx) {
  const auto* snap = dynamic_cast<const HeapSnapshot*>(&ctx.mem);
  if (!snap) throw Error(ErrorCode::Internal, "the object graph needs a snapshot of the target's memory");
  auto t0 = std::chrono::steady_clock::now();
  auto ms = [&t0] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
  set_ = std::make_unique<AddressSet>(snap->ranges());
  Builder b(ctx, *snap, *set_);
  Progress bar(progress);
  bar.phase("walking the heap", "objects");
  b.progress = &bar;
  RootFilter filter(b);
  RootStats rs = for_each_root(ctx, py, filter);
  warnings_ = rs.problems;
  if (rs.generations == 0) warnings_.push_back("the garbage collector's lists were not found");

  // Threads: their frames are what keeps their locals alive. (<=3.10 frames are objects;
  // 3.11+ frames live on the thread's data stack and their locals are the roots.)
  struct PendingRoot {
    uint64_t addr;
    std::string label;
  };
  std::vector<PendingRoot> frame_roots;
  const Layout& l = ctx.l;
  auto interp = py.first_interpreter(ctx.mem);
  std::unordered_set<RemoteAddr> interps;
  while (interp && !interp->null() && interps.insert(*interp).second && interps.size() < 64) {
    auto ts = ctx.mem.read_ptr(*interp + l.require(F::is_tstate_head));
    std::unordered_set<RemoteAddr> seen;
    while (ts && !ts->null() && seen.insert(*ts).second && seen.size() < 10000) {
      int tid = 0;
      if (l.has(F::ts_native_thread_id)) tid = ctx.mem.read_as<int32_t>(*ts + l.off(F::ts_native_thread_id)).value_or(0);
      FrameWalk walk = walk_frames(ctx.reader, *ts, 1 << 16);
      FrameDecoder dec(ctx.reader);
      for (const auto& f : walk.frames) {
        auto fi = dec.decode(f);
        std::string where = (tid ? "[thread " + std::to_string(tid) + "] " : std::string()) +
                            (fi ? fi->function : std::string("?")) + "()";
        if (l.traits().frames == Traits::Frames::FrameObjects) {
          if (b.node(f.frame)) frame_roots.push_back({f.frame.value(), where});
        } else {
          struct LocalRoots : ReferentVisitor {
            Builder& b;
            HeapContext& ctx;
            RemoteAddr frame;
            std::vector<PendingRoot>& roots;
            std::string where;
            LocalRoots(Builder& bb, HeapContext& c, RemoteAddr f, std::vector<PendingRoot>& r, std::string w)
                : b(bb), ctx(c), frame(f), roots(r), where(std::move(w)) {}
            void visit(RemoteAddr child, const Edge& e) override {
              if (e.kind != EdgeKind::Local || child.null() || (child.value() & 7) || !b.node(child)) return;
              roots.push_back({child.value(), where + ": " + label_of(ctx, frame, nullptr, e, true)});
            }
          } lr(b, ctx, f.frame, frame_roots, where);
          for_each_frame_referent(ctx, f.frame, lr);
        }
      }
      ts = ctx.mem.read_ptr(*ts + l.require(F::ts_next));
    }
    auto next = ctx.mem.read_ptr(*interp + l.require(F::is_next));
    if (!next) break;
    interp = next;
  }
  b.run();  // what the frames hold
  bar.phase("indexing the references", "", 4);

  LOG_INFO("graph: walked in " << ms() << " ms");
  // Number the objects in address order.
  set_->build_rank();
  addrs_.reserve(set_->size());
  types_.reserve(set_->size());
  set_->for_each([&](uint64_t a) {
    addrs_.push_back(a);
    const TypeInfo* ti = ctx.type_of(RemoteAddr(a));
    types_.push_back(ti ? ti->id : 0);
  });
  LOG_INFO("graph: numbered at " << ms() << " ms");
  bar.update(1, true);
  if (b.edges.size() >= UINT32_MAX)
    throw Error(ErrorCode::Resources, "more than 4 billion references: too many for pyinspect refs");
  std::vector<std::pair<uint32_t, uint32_t>> edges;
  edges.reserve(b.edges.size());
  for (auto [from, to] : b.edges) {
    uint32_t f = set_->rank(from), t = set_->rank(to);
    if (f != kNone && t != kNone) edges.emplace_back(f, t);  // both are members: never otherwise
  }
  std::vector<std::pair<uint64_t, uint64_t>>().swap(b.edges);
  bar.update(2, true);
  compress(addrs_.size(), edges, true, out_start_, out_edges_);
  bar.update(3, true);
  compress(addrs_.size(), edges, false, in_start_, in_edges_);
  bar.clear();
  for (auto [dict, obj] : b.owners) owner_.emplace_back(set_->rank(dict), set_->rank(obj));
  std::sort(owner_.begin(), owner_.end());
  // The interpreter's roots first, then the threads' frames.
  for (const auto& h : b.root_hits) roots_.push_back({set_->rank(h.addr), h.label, false});
  for (const auto& r : frame_roots) roots_.push_back({set_->rank(r.addr), r.label, true});
  if (auto gl = gc_garbage_list(ctx, py)) garbage_ = find(*gl);
  LOG_INFO("graph: " << addrs_.size() << " objects, " << out_edges_.size() << " references, " << roots_.size()
                     << " roots, in " << ms() << " ms");
}

std::vector<std::string> ObjectGraph::root_labels(uint32_t n) const {
  std::vector<std::string> out;
  for (const auto& r : roots_)
    if (r.node == n && std::find(out.begin(), out.end(), r.label) == out.end()) out.push_back(r.label);
  return out;
}

std::optional<uint64_t> ObjectGraph::size_of(uint32_t n) { return object_size(ctx_, addr(n), type(n)); }

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
    case Cat::Bool:
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
