#include "heap/census.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <queue>
#include <unordered_map>

#include "base/error.hpp"
#include "base/log.hpp"
#include "base/progress.hpp"
#include "heap/address_set.hpp"
#include "heap/heap_types.hpp"
#include "heap/pymalloc.hpp"
#include "heap/roots.hpp"
#include "heap/snapshot.hpp"
#include "proc/pause.hpp"

namespace pyinspect {

namespace {

class Walk : public ReferentVisitor {
 public:
  Walk(HeapContext& ctx, const HeapSnapshot& snap, HeapCensus& out, const CensusOptions& opts)
      : ctx_(ctx), snap_(snap), maps_(snap.maps()), visited_(snap.ranges()), out_(out), opts_(opts), progress_(opts.progress) {
    progress_.phase("walking the heap", "objects");
    // Diagnosis only: every object found, one "address type" line each.
    if (const char* path = std::getenv("PYINSPECT_DEBUG_OBJECTS"); path && *path) debug_ = std::fopen(path, "w");
  }
  ~Walk() override {
    if (debug_) std::fclose(debug_);
  }

  // Roots and referents arrive here: queue every new object.
  void visit(RemoteAddr child, const Edge& edge) override {
    if (child.null() || (child.value() & 7)) return;
    if (edge.kind == EdgeKind::InstanceDict && current_kind_ != kNoKind) owners_.emplace_back(child.value(), current_kind_);
    if (edge.kind == EdgeKind::Guess && !plausible_object(ctx_, maps_, child)) return;
    if (!visited_.insert(child.value())) return;
    if (!ctx_.type_of(child)) return;  // not an object after all (torn or stale pointer)
    if (debug_) parents_[child.value()] = current_.value();
    stack_.push_back(child);
    // A root: follow it to the end now, so the stack never holds all the roots at once (the
    // GC lists alone can be millions of objects).
    if (!running_) run();
  }

  void run() {
    running_ = true;
    while (!stack_.empty()) {
      RemoteAddr obj = stack_.back();
      stack_.pop_back();
      expand(obj);
      if ((++seen_ & 0xfff) == 0) {
        snap_.check_target("its heap was walked");
        progress_.update(seen_);
      }
    }
    running_ = false;
  }

  // Dicts are classified last, when every owner ("dict of X") is known.
  void finish() {
    std::sort(owners_.begin(), owners_.end());
    std::unordered_map<uint32_t, uint32_t> dict_kind;  // owner kind -> "dict of" kind
    uint32_t no_owner = kind_id("dict (no owner)");
    for (auto [addr, size] : dicts_) {
      auto it = std::lower_bound(owners_.begin(), owners_.end(), std::make_pair(addr, uint32_t{0}));
      uint32_t kind = no_owner;
      if (it != owners_.end() && it->first == addr) {
        auto d = dict_kind.find(it->second);
        if (d == dict_kind.end()) d = dict_kind.emplace(it->second, kind_id("dict of " + kind_names_[it->second])).first;
        kind = d->second;
      }
      add(kind, *dict_type_, size);
    }
    progress_.clear();
  }

 private:
  static constexpr uint32_t kNoKind = UINT32_MAX;

  uint32_t kind_id(const std::string& name) {
    auto [it, inserted] = kind_ids_.emplace(name, static_cast<uint32_t>(kind_names_.size()));
    if (inserted) kind_names_.push_back(name);
    return it->second;
  }

  // A 2.7 classic instance is of kind "module.ClassName" (its class), as guppy shows it.
  uint32_t classic_kind(RemoteAddr obj) {
    auto cls = ctx_.mem.read_ptr(obj + ctx_.l.require(F::inst_class));
    if (!cls) return kind_id("instance");
    auto it = classic_names_.find(cls->value());
    if (it != classic_names_.end()) return it->second;
    std::string name = "?", module;
    if (auto n = ctx_.mem.read_ptr(*cls + ctx_.l.require(F::class_name))) name = ctx_.reader.read_str(*n, 256).value_or("?");
    if (auto d = ctx_.mem.read_ptr(*cls + ctx_.l.require(F::class_dict)))
      if (auto m = ctx_.reader.dict_get(*d, "__module__")) module = ctx_.reader.read_str(*m, 256).value_or("");
    uint32_t kind = kind_id(module.empty() ? name : module + "." + name);
    classic_names_[cls->value()] = kind;
    return kind;
  }

  // Aggregates by number (type id, kind id): strings only once per type and kind, at the end.
  void add(uint32_t kind, const TypeInfo& type, std::optional<uint64_t> size) {
    uint64_t s = size.value_or(0);
    if (!size) ++out_.unknown_size_objects;
    ++out_.total_objects;
    out_.total_size += s;
    if (kind >= kind_agg_.size()) kind_agg_.resize(kind + 1);
    ++kind_agg_[kind].first, kind_agg_[kind].second += s;
    if (type.id >= type_agg_.size()) type_agg_.resize(type.id + 1);
    ++type_agg_[type.id].first, type_agg_[type.id].second += s;
    ++size_agg_[s];
  }

  uint32_t kind_of_type(const TypeInfo& ti) {
    if (ti.id >= type_kind_.size()) type_kind_.resize(ti.id + 1, kNoKind);
    uint32_t& k = type_kind_[ti.id];
    if (k == kNoKind) k = kind_id(ti.name);
    return k;
  }

 public:
  // The string-keyed tables of the result, from the numeric aggregates.
  void publish() {
    for (size_t k = 0; k < kind_agg_.size(); ++k)
      if (kind_agg_[k].first) out_.by_kind[kind_names_[k]] = kind_agg_[k];
    const auto& types = ctx_.all_types();
    for (size_t t = 0; t < type_agg_.size(); ++t) {
      if (!type_agg_[t].first) continue;
      auto& ty = out_.by_type[types[t].name];
      ty.first += type_agg_[t].first, ty.second += type_agg_[t].second;
      auto& m = out_.by_module[types[t].module];
      m.first += type_agg_[t].first, m.second += type_agg_[t].second;
    }
    for (auto [size, count] : size_agg_) out_.by_size[size] = count;
  }

 private:
  void note_largest(RemoteAddr obj, const TypeInfo& ti, uint64_t size) {
    if (opts_.largest == 0) return;
    if (largest_.size() < opts_.largest) {
      largest_.emplace(size, obj.value(), ti.id);
    } else if (size > std::get<0>(largest_.top())) {
      largest_.pop();
      largest_.emplace(size, obj.value(), ti.id);
    }
  }

  // 3.11+: attribute values kept without a dict object, and the bytes they take.
  void note_dictless(RemoteAddr obj, const TypeInfo& ti) {
    using ID = Traits::InstanceDict;
    ID model = ctx_.l.traits().instance_dict;
    if (model == ID::DictOffset || !(ti.flags & tpflags::kManagedDict)) return;
    if (ctx_.reader.instance_dict(obj)) return;
    auto keys = ctx_.mem.read_ptr(ti.addr + ctx_.l.require(F::ht_cached_keys));
    if (!keys || keys->null()) return;
    auto nentries = ctx_.mem.read_as<int64_t>(*keys + ctx_.l.require(F::dk_nentries));
    auto usable = ctx_.mem.read_as<int64_t>(*keys + ctx_.l.require(F::dk_usable));
    // Counts past 2**42 are misreads (the sizes' bound), and their sum could overflow.
    constexpr int64_t kMaxCount = int64_t{1} << 42;
    if (!nentries || !usable || *nentries < 0 || *usable < 0 || *nentries > kMaxCount || *usable > kMaxCount) return;
    uint64_t bytes = static_cast<uint64_t>(*nentries + *usable) * 8;
    if (model == ID::Managed313) {
      if (!(ti.flags & tpflags::kInlineValues)) return;
      auto capacity = ctx_.mem.read_as<uint8_t>(obj + ti.basicsize + ctx_.l.require(F::dv_capacity));
      if (!capacity) return;
      bytes = ctx_.l.require(F::dv_values) + uint64_t{*capacity} * 8;  // header + slots, after the object
    }
    ++out_.memory.dictless_instances;
    out_.memory.dictless_values_bytes += bytes;
  }

  void expand(RemoteAddr obj) {
    const TypeInfo* ti = ctx_.type_of(obj);
    if (!ti) return;
    if (debug_) {
      uint64_t parent = parents_[obj.value()];
      const TypeInfo* pt = parent ? ctx_.type_of(RemoteAddr(parent)) : nullptr;
      std::fprintf(debug_, "%llu %s <- %s %llx\n", static_cast<unsigned long long>(obj.value()), ti->name.c_str(),
                   pt ? pt->name.c_str() : "root", static_cast<unsigned long long>(parent));
    }
    current_ = obj;
    std::optional<uint64_t> size = object_size(ctx_, obj, *ti);
    if (size) {
      out_.memory.object_bytes += *size;
      note_largest(obj, *ti, *size);
    }
    note_dictless(obj, *ti);
    if (ti->cat == Cat::Dict && ti->addr == ctx_.t.dict) {
      dicts_.emplace_back(obj.value(), size);
      dict_type_ = ti;
      current_kind_ = kNoKind;
    } else if (ti->cat == Cat::Instance27) {
      current_kind_ = classic_kind(obj);
      add(current_kind_, *ti, size);
    } else {
      current_kind_ = kind_of_type(*ti);
      add(current_kind_, *ti, size);
    }
    for_each_referent(ctx_, obj, *ti, *this);
    current_kind_ = kNoKind;
  }

 public:
  std::vector<std::tuple<uint64_t, uint64_t, uint32_t>> take_largest() {
    std::vector<std::tuple<uint64_t, uint64_t, uint32_t>> v;
    while (!largest_.empty()) {
      v.push_back(largest_.top());
      largest_.pop();
    }
    std::reverse(v.begin(), v.end());
    return v;
  }

 private:
  HeapContext& ctx_;
  const HeapSnapshot& snap_;
  const Maps& maps_;
  AddressSet visited_;
  HeapCensus& out_;
  const CensusOptions& opts_;
  Progress progress_;
  std::vector<RemoteAddr> stack_;
  std::vector<std::pair<uint64_t, std::optional<uint64_t>>> dicts_;
  std::vector<std::pair<uint64_t, uint32_t>> owners_;  // (dict, kind of its owner), sorted at the end
  std::unordered_map<std::string, uint32_t> kind_ids_;
  std::vector<std::string> kind_names_;
  std::unordered_map<uint64_t, uint32_t> classic_names_;  // classic class -> kind
  std::vector<std::pair<uint64_t, uint64_t>> kind_agg_, type_agg_;
  std::vector<uint32_t> type_kind_;
  std::unordered_map<uint64_t, uint64_t> size_agg_;
  const TypeInfo* dict_type_ = nullptr;
  uint32_t current_kind_ = kNoKind;
  uint64_t seen_ = 0;
  bool running_ = false;
  FILE* debug_ = nullptr;
  RemoteAddr current_;
  std::unordered_map<uint64_t, uint64_t> parents_;
  std::priority_queue<std::tuple<uint64_t, uint64_t, uint32_t>, std::vector<std::tuple<uint64_t, uint64_t, uint32_t>>,
                      std::greater<>>
      largest_;
};

}  // namespace

std::string short_repr(HeapContext& ctx, RemoteAddr obj, const TypeInfo& ti) {
  auto quote = [](std::string s, size_t max) {
    bool cut = s.size() > max;
    if (cut) s.resize(max);
    std::string out = "'";
    for (char c : s) out += (c == '\n') ? std::string("\\n") : std::string(1, c);
    return out + (cut ? "'..." : "'");
  };
  switch (ti.cat) {
    case Cat::Str:
    case Cat::Str27:
    case Cat::Unicode27:
      if (auto s = ctx.reader.read_str(obj, 60)) return quote(*s, 50);
      break;
    case Cat::Bytes:
      // A negative size read (a torn or foreign object) would become a huge read_bytes length.
      if (auto n = ctx.mem.read_as<int64_t>(obj + ctx.l.off(F::ob_size)); n && *n >= 0)
        if (auto b = ctx.mem.read_bytes(obj + ctx.l.require(F::bytes_sval), std::min<int64_t>(*n, 41)))
          return "b" + quote(std::string(b->begin(), b->end()), 40);
      break;
    case Cat::Tuple:
    case Cat::List:
    case Cat::Set:
    case Cat::FrozenSet:
    case Cat::Deque:
      if (auto n = ctx.mem.read_as<int64_t>(obj + ctx.l.off(F::ob_size)); n && ti.cat != Cat::Set && ti.cat != Cat::FrozenSet)
        return items_text(*n);
      if (auto n = ctx.mem.read_as<int64_t>(obj + ctx.l.require(F::set_used))) return items_text(*n);
      break;
    case Cat::Dict:
      if (auto n = ctx.mem.read_as<int64_t>(obj + ctx.l.require(F::dict_used))) return items_text(*n);
      break;
    case Cat::Long:
    case Cat::Int27:
      if (auto v = ctx.reader.read_int(obj)) return std::to_string(*v);
      break;
    default: break;
  }
  return ti.name;
}

namespace {

// gc.garbage: objects the collector found unreachable but could not free (2.7: cycles with
// __del__), looked up as the gc module's attribute.
}  // namespace

std::optional<RemoteAddr> gc_garbage_list(HeapContext& ctx, const PythonProcess& py) {
  auto interp = py.first_interpreter(ctx.mem);
  if (!interp || !ctx.l.has(F::is_modules)) return std::nullopt;
  auto modules = ctx.mem.read_ptr(*interp + ctx.l.off(F::is_modules));
  auto gc = modules ? ctx.reader.dict_get(*modules, "gc") : std::nullopt;
  auto gcdict = gc ? ctx.mem.read_ptr(*gc + ctx.l.require(F::md_dict)) : std::nullopt;
  auto garbage = gcdict ? ctx.reader.dict_get(*gcdict, "garbage") : std::nullopt;
  if (!garbage || !ctx.reader.has_type(*garbage, ctx.t.list)) return std::nullopt;
  return garbage;
}

namespace {

void read_garbage(HeapContext& ctx, const PythonProcess& py, MemorySummary& m) {
  auto garbage = gc_garbage_list(ctx, py);
  if (!garbage) return;
  auto n = ctx.mem.read_as<int64_t>(*garbage + ctx.l.off(F::ob_size));
  auto items = ctx.mem.read_ptr(*garbage + ctx.l.require(F::list_item));
  if (!n || !items || *n <= 0) return;
  m.garbage_count = static_cast<uint64_t>(*n);
  std::map<std::string, uint64_t> kinds;
  for (int64_t i = 0; i < std::min<int64_t>(*n, 100000); ++i) {
    auto p = ctx.mem.read_ptr(*items + 8 * i);
    const TypeInfo* ti = p ? ctx.type_of(*p) : nullptr;
    if (!ti) continue;
    std::string kind = ti->name;
    if (ti->cat == Cat::Instance27)
      if (auto cls = ctx.mem.read_ptr(*p + ctx.l.require(F::inst_class)))
        if (auto nm = ctx.mem.read_ptr(*cls + ctx.l.require(F::class_name)))
          kind = ctx.reader.read_str(*nm, 200).value_or(kind);
    ++kinds[kind];
  }
  for (auto& [k, c] : kinds) m.garbage_kinds.push_back({k, c, 0});
  std::sort(m.garbage_kinds.begin(), m.garbage_kinds.end(), [](auto& a, auto& b) { return a.count > b.count; });
}

}  // namespace

std::unique_ptr<HeapSnapshot> take_snapshot(int pid, ProcessMemory& mem, bool nonblocking, uint64_t max_copy_bytes,
                                            int64_t& pause_ns, double need_factor, bool progress) {
  Progress bar(progress);
  SnapshotLimits limits;
  limits.max_bytes = max_copy_bytes;
  limits.need_factor = need_factor;
  auto snap = HeapSnapshot::plan(mem, limits);
  bar.phase(nonblocking ? "copying the target's memory" : "copying the target's memory (the target is paused)");
  std::unique_ptr<ProcessPause> pause;
  if (!nonblocking) {
    pause = std::make_unique<ProcessPause>(pid);
    ProcessPause::test_hold(pid);
  }
  snap->copy();
  snap->check_target("its memory was copied");
  if (pause) {
    pause->resume();
    pause_ns = pause->duration().count();
  }
  return snap;
}

PythonInfo python_info(PythonProcess& py, const Memory& mem) {
  PythonInfo p;
  const Layout& l = py.layout();
  p.version = py.full_version(mem).str();
  p.binary = py.binary().target_path;
  p.shared_library = py.shared_library();
  p.executable = py.executable();
  p.layout_source = l.origin;
  p.debug_file = py.dwarf_file();
  p.interpreter_head = py.interpreter_head_how();
  p.debug_build = l.debug_build;
  return p;
}

HeapCensus take_census(PythonProcess& py, ProcessMemory& mem, const CensusOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  HeapCensus out;
  out.pid = py.process().pid();
  out.command = py.process().cmdline();
  out.paused = !opts.nonblocking;
  out.memory.rss_bytes = py.process().rss_bytes();

  auto snap = take_snapshot(out.pid, mem, opts.nonblocking, opts.max_copy_bytes, out.pause_ns, 1.5, opts.progress);
  out.memory.copied_bytes = snap->copied_bytes();
  const Layout& l = py.layout();
  HeapContext ctx(*snap, l, py.types());
  out.python = python_info(py, *snap);

  Walk walk(ctx, *snap, out, opts);
  RootStats roots = for_each_root(ctx, py, walk);
  out.gc_tracked = roots.gc_tracked;
  for (auto& p : roots.problems) out.warnings.push_back(p);
  if (roots.generations == 0) out.warnings.push_back("the garbage collector's lists were not found");
  walk.run();
  walk.finish();
  walk.publish();
  for (auto [size, addr, type_id] : walk.take_largest()) {
    const TypeInfo& ti = ctx.all_types()[type_id];
    out.largest.push_back({addr, ti.name, size, short_repr(ctx, RemoteAddr(addr), ti)});
  }
  read_garbage(ctx, py, out.memory);
  read_pymalloc(ctx, py, out.memory);
  out.elapsed_ns = (std::chrono::steady_clock::now() - t0).count();
  LOG_INFO("census: " << out.total_objects << " objects (" << out.gc_tracked << " tracked by the GC), "
                      << ctx.all_types().size() << " types");
  return out;
}

std::vector<HeapRow> group_rows(const HeapCensus& c, GroupBy by) {
  std::vector<HeapRow> rows;
  auto from = [&](const std::map<std::string, std::pair<uint64_t, uint64_t>>& m) {
    for (const auto& [k, v] : m) rows.push_back({k, v.first, v.second});
  };
  switch (by) {
    case GroupBy::Kind: from(c.by_kind); break;
    case GroupBy::Type: from(c.by_type); break;
    case GroupBy::Module: from(c.by_module); break;
    case GroupBy::Size:
      for (const auto& [size, count] : c.by_size) rows.push_back({std::to_string(size), count, size * count});
      break;
  }
  std::sort(rows.begin(), rows.end(), [](const HeapRow& a, const HeapRow& b) {
    if (a.size != b.size) return a.size > b.size;
    if (a.count != b.count) return a.count > b.count;
    return a.kind < b.kind;
  });
  return rows;
}

const char* group_title(GroupBy by) {
  switch (by) {
    case GroupBy::Kind: return "Kind (class / dict of class)";
    case GroupBy::Type: return "Type";
    case GroupBy::Module: return "Module (that defines the type)";
    case GroupBy::Size: return "Size (bytes, each object)";
  }
  return "";
}

}  // namespace pyinspect
