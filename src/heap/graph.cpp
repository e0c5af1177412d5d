#include "heap/graph.hpp"

#include <algorithm>
#include <unordered_set>

#include "base/log.hpp"
#include "heap/census.hpp"
#include "heap/roots.hpp"
#include "runtime/frames.hpp"

namespace pyinspect {

namespace {
uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

// Collects the edges while the graph is walked.
class Builder : public ReferentVisitor {
 public:
  Builder(ObjectGraph& g, std::function<uint32_t(uint64_t, const TypeInfo*)> intern, HeapContext& ctx)
      : intern_(std::move(intern)), ctx_(ctx) {
    (void)g;
  }
  void visit(RemoteAddr child, const Edge& edge) override {
    if (child.null() || (child.value() & 7)) return;
    if (edge.kind == EdgeKind::Guess && !plausible(child)) return;
    uint32_t before = count_;
    uint32_t n = node(child);
    if (n == ObjectGraph::kNone) return;
    if (current_ != ObjectGraph::kNone) {
      edges.emplace_back(current_, n);
      if (edge.kind == EdgeKind::InstanceDict) owners.emplace_back(n, current_);
    } else if (root_label_) {
      root_hits.push_back({n, root_label_});
    }
    if (count_ != before) stack.push_back(n);
    if (!running_) run();
  }
  void run() {
    running_ = true;
    uint32_t saved = current_;
    while (!stack.empty()) {
      uint32_t n = stack.back();
      stack.pop_back();
      current_ = n;
      const TypeInfo& ti = ctx_.all_types()[types->at(n)];
      for_each_referent(ctx_, RemoteAddr((*addrs)[n]), ti, *this);
    }
    current_ = saved;
    running_ = false;
  }
  uint32_t node(RemoteAddr a) {
    uint32_t n = lookup(a.value());
    if (n != ObjectGraph::kNone) return n;
    const TypeInfo* ti = ctx_.type_of(a);
    if (!ti) return ObjectGraph::kNone;
    ++count_;
    return intern_(a.value(), ti);
  }
  bool plausible(RemoteAddr p) {
    auto refcnt = ctx_.mem.read_as<int64_t>(p);
    if (!refcnt) return false;
    bool immortal = ctx_.l.version.at_least(3, 12) && (*refcnt & 0xffffffff) == 0xffffffff;
    return (immortal || (*refcnt > 0 && *refcnt < (int64_t{1} << 40))) && !(p.value() & 15 && !in_file(p));
  }
  bool in_file(RemoteAddr p) {
    const MapEntry* m = maps ? maps->find(p) : nullptr;
    return m && m->is_file();
  }

  std::function<uint32_t(uint64_t)> lookup;
  std::vector<std::pair<uint32_t, uint32_t>> edges, owners;
  struct RootHit {
    uint32_t node;
    const char* label;
  };
  std::vector<RootHit> root_hits;
  std::vector<uint32_t> stack;
  const std::vector<uint64_t>* addrs = nullptr;
  const std::vector<uint32_t>* types = nullptr;
  const Maps* maps = nullptr;
  const char* root_label_ = nullptr;

 private:
  std::function<uint32_t(uint64_t, const TypeInfo*)> intern_;
  HeapContext& ctx_;
  uint32_t current_ = ObjectGraph::kNone;
  uint32_t count_ = 0;
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
              std::vector<uint64_t>& start, std::vector<uint32_t>& out) {
  start.assign(nodes + 1, 0);
  for (auto [a, b] : pairs) ++start[(by_first ? a : b) + 1];
  for (size_t i = 0; i < nodes; ++i) start[i + 1] += start[i];
  out.assign(pairs.size(), 0);
  std::vector<uint64_t> fill(start.begin(), start.end() - 1);
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

// How `from` holds a reference, as a label.
std::string label_of(HeapContext& ctx, RemoteAddr from, const TypeInfo* from_type, const Edge& e, bool is_iframe = false) {
  switch (e.kind) {
    case EdgeKind::Item: return "[" + std::to_string(e.index) + "]";
    case EdgeKind::DictKey: return "key";
    case EdgeKind::DictValue: {
      bool is_dict = from_type && (from_type->cat == Cat::Dict || from_type->cat == Cat::OrderedDict ||
                                   from_type->cat == Cat::DefaultDict);
      // 3.11+ instances keep their attributes' values in themselves: obj.name, not obj['name'].
      if (auto k = ctx.reader.read_str(e.key, 40)) return is_dict || !from_type ? "['" + *k + "']" : *k;
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

uint32_t ObjectGraph::find(RemoteAddr a) const {
  if (slot_keys_.empty() || a.null()) return kNone;
  size_t mask = slot_keys_.size() - 1;
  for (size_t i = mix(a.value()) & mask;; i = (i + 1) & mask) {
    if (slot_keys_[i] == 0) return kNone;
    if (slot_keys_[i] == a.value()) return slot_vals_[i];
  }
}

uint32_t ObjectGraph::intern(uint64_t addr, const TypeInfo* ti) {
  if ((addrs_.size() + 1) * 2 > slot_keys_.size()) {
    // Grow the table (load factor one half).
    std::vector<uint64_t> keys(std::max<size_t>(1 << 16, slot_keys_.size() * 2), 0);
    std::vector<uint32_t> vals(keys.size());
    size_t mask = keys.size() - 1;
    for (size_t j = 0; j < slot_keys_.size(); ++j) {
      if (!slot_keys_[j]) continue;
      size_t i = mix(slot_keys_[j]) & mask;
      while (keys[i]) i = (i + 1) & mask;
      keys[i] = slot_keys_[j];
      vals[i] = slot_vals_[j];
    }
    slot_keys_.swap(keys);
    slot_vals_.swap(vals);
  }
  uint32_t n = static_cast<uint32_t>(addrs_.size());
  addrs_.push_back(addr);
  types_.push_back(ti->id);
  size_t mask = slot_keys_.size() - 1;
  size_t i = mix(addr) & mask;
  while (slot_keys_[i]) i = (i + 1) & mask;
  slot_keys_[i] = addr;
  slot_vals_[i] = n;
  return n;
}

ObjectGraph::ObjectGraph(HeapContext& ctx, const PythonProcess& py) : ctx_(ctx) {
  Builder b(*this, [this](uint64_t a, const TypeInfo* ti) { return intern(a, ti); }, ctx);
  b.lookup = [this](uint64_t a) { return find(RemoteAddr(a)); };
  b.addrs = &addrs_;
  b.types = &types_;
  if (auto* snap = dynamic_cast<const HeapSnapshot*>(&ctx.mem)) b.maps = &snap->maps();
  RootFilter filter(b);
  for_each_root(ctx, py, filter);

  // Threads: their frames are what keeps their locals alive. (<=3.10 frames are objects;
  // 3.11+ frames live on the thread's data stack and their locals are the roots.)
  const Layout& l = ctx.l;
  auto interp = py.first_interpreter(ctx.mem);
  std::unordered_set<RemoteAddr> interps;
  std::vector<std::string> labels;  // storage for root labels of frames
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
          uint32_t n = b.node(f.frame);
          if (n != kNone) roots_.push_back({n, where, true});
        } else {
          struct LocalRoots : ReferentVisitor {
            Builder& b;
            HeapContext& ctx;
            RemoteAddr frame;
            std::vector<GraphRoot>& roots;
            std::string where;
            LocalRoots(Builder& bb, HeapContext& c, RemoteAddr f, std::vector<GraphRoot>& r, std::string w)
                : b(bb), ctx(c), frame(f), roots(r), where(std::move(w)) {}
            void visit(RemoteAddr child, const Edge& e) override {
              if (e.kind != EdgeKind::Local) return;
              uint32_t n = b.node(child);
              if (n == ObjectGraph::kNone) return;
              roots.push_back({n, where + ": " + label_of(ctx, frame, nullptr, e, true), true});
            }
          } lr(b, ctx, f.frame, roots_, where);
          for_each_frame_referent(ctx, f.frame, lr);
        }
      }
      ts = ctx.mem.read_ptr(*ts + l.require(F::ts_next));
    }
    auto next = ctx.mem.read_ptr(*interp + l.require(F::is_next));
    if (!next) break;
    interp = next;
  }
  // Objects named as roots above but not yet walked (3.11+ locals): walk them now.
  for (const auto& r : roots_) {
    b.stack.push_back(r.node);
  }
  b.run();
  // The interpreter's roots first, then the threads' frames.
  std::vector<GraphRoot> all;
  for (const auto& h : b.root_hits) all.push_back({h.node, h.label, false});
  all.insert(all.end(), roots_.begin(), roots_.end());
  roots_.swap(all);

  // (A referrer may appear more than once for one referent: readers dedupe what they show.)
  auto& e = b.edges;
  compress(addrs_.size(), e, true, out_start_, out_edges_);
  compress(addrs_.size(), e, false, in_start_, in_edges_);
  owner_ = std::move(b.owners);
  if (auto gl = gc_garbage_list(ctx, py)) garbage_ = find(*gl);
  std::sort(owner_.begin(), owner_.end());
  LOG_INFO("graph: " << addrs_.size() << " objects, " << out_edges_.size() << " references, " << roots_.size()
                     << " roots");
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

std::string ObjectGraph::edge_label(uint32_t from, uint32_t to) {
  for (auto& r : referents(from))
    if (r.node == to) return r.label;
  return "";
}

std::vector<GraphRef> ObjectGraph::referents(uint32_t n) {
  struct Collector : ReferentVisitor {
    ObjectGraph& g;
    uint32_t self;
    std::vector<GraphRef> out;
    std::unordered_set<uint32_t> seen;
    Collector(ObjectGraph& gg, uint32_t s) : g(gg), self(s) {}
    void visit(RemoteAddr child, const Edge& e) override {
      uint32_t m = g.find(child);
      if (m == kNone || !seen.insert(m).second) return;
      out.push_back({m, label_of(g.ctx_, g.addr(self), &g.type(self), e), e.kind});
    }
  } c(*this, n);
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
    case Cat::Tuple:
    case Cat::List:
    case Cat::Deque:
      if (auto v = ctx_.mem.read_as<int64_t>(a + l.off(F::ob_size))) return std::to_string(*v) + " items";
      break;
    case Cat::Dict:
    case Cat::OrderedDict:
    case Cat::DefaultDict:
      if (auto v = ctx_.mem.read_as<int64_t>(a + l.require(F::dict_used))) return std::to_string(*v) + " items";
      break;
    case Cat::Set:
    case Cat::FrozenSet:
      if (auto v = ctx_.mem.read_as<int64_t>(a + l.require(F::set_used))) return std::to_string(*v) + " items";
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
