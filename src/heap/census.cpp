#include "heap/census.hpp"

#include "proc/core_file.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <array>
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
#include "heap/walker.hpp"
#include "runtime/threads.hpp"
#include "proc/pause.hpp"

namespace pyinspect {

namespace {

// The census's categories of how objects were reached (census.hpp, FoundThrough): what the
// collector tracks and reaches, each kind of hidden reference, each kind of other root.
enum class Origin : uint8_t {
  Gc,
  DictStrKey, CodeObject, TypeObject, Descriptor, OtherMember,
  Interpreter, Interned, Thread, Frame,
  Count
};
Origin origin_of(Hidden h) {
  switch (h) {
    case Hidden::DictStrKey: return Origin::DictStrKey;
    case Hidden::CodeObject: return Origin::CodeObject;
    case Hidden::TypeObject: return Origin::TypeObject;
    case Hidden::Descriptor: return Origin::Descriptor;
    default: return Origin::OtherMember;
  }
}
Origin origin_of(RootKind r) {
  switch (r) {
    case RootKind::Gc: return Origin::Gc;
    case RootKind::Interned: return Origin::Interned;
    case RootKind::Thread: return Origin::Thread;
    case RootKind::Frame: return Origin::Frame;
    default: return Origin::Interpreter;
  }
}
FoundThrough origin_info(Origin o) {
  switch (o) {
    case Origin::Gc:
      return {"gc", "tracked by the garbage collector, and what they refer to as gc.get_referents() reports it"};
    case Origin::DictStrKey: return {"dict-str-keys", "str keys of dicts, which dicts do not report to the collector"};
    case Origin::CodeObject: return {"code-objects", "constants, names and tables of code objects (no GC objects)"};
    case Origin::TypeObject:
      return {"type-objects", "types' names and slots, and what static types hold (no GC objects)"};
    case Origin::Descriptor: return {"descriptors", "descriptors' names"};
    case Origin::OtherMember: return {"other-members", "other references the collector is not told of"};
    case Origin::Interpreter:
      return {"interpreter", "the interpreter's own state: import and codec state, hooks, static types' dicts"};
    case Origin::Interned: return {"interned", "interned strings"};
    case Origin::Thread: return {"threads", "thread states: their dicts, exceptions and contexts"};
    case Origin::Frame: return {"frames", "locals of frames running on the threads' data stacks"};
    case Origin::Count: break;
  }
  return {"?", "?"};
}

class Census : public HeapWalk {
 public:
  Census(HeapContext& ctx, const HeapSnapshot& snap, AddressSet& seen, HeapCensus& out, const CensusOptions& opts,
         Progress& progress)
      : HeapWalk(ctx, snap, seen, &progress, "its heap was walked"), out_(out), opts_(opts), progress_(progress) {
    progress_.phase("walking the heap", "objects");
  }

  void set_origin(Origin o) { origin_ = o; }
  bool by_root = false;  // each fresh root sets the origin of what it reaches (the last phase)

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
    for (size_t o = 0; o < origins_.size(); ++o) {
      FoundThrough f = origin_info(static_cast<Origin>(o));
      f.objects = origins_[o].first, f.bytes = origins_[o].second;
      out_.found_through.push_back(f);
    }
    auto top_types = [&](const std::vector<std::pair<uint32_t, uint64_t>>& by_id) {
      std::vector<std::pair<std::string, uint64_t>> v;
      for (auto [id, n] : by_id) v.emplace_back(types[id].name, n);
      std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
      return v;
    };
    out_.unknown_size_types = top_types(unknown_types_);
    std::vector<std::pair<uint32_t, uint64_t>> unmirrored;
    for (size_t t = 0; t < type_agg_.size(); ++t)
      if (type_agg_[t].first && types[t].c_sizeof) unmirrored.emplace_back(static_cast<uint32_t>(t), type_agg_[t].first);
    out_.unmirrored_sizeof_types = top_types(unmirrored);
    out_.referents_unreadable = referents_unreadable();
    out_.referents_missing_member = referents_missing_member();
    out_.referents_problem_types = top_types(unreadable_by_type());
  }

  std::vector<std::tuple<uint64_t, uint64_t, uint32_t>> take_largest() {
    std::vector<std::tuple<uint64_t, uint64_t, uint32_t>> v;
    while (!largest_.empty()) {
      v.push_back(largest_.top());
      largest_.pop();
    }
    std::reverse(v.begin(), v.end());
    return v;
  }

 protected:
  void on_root(RemoteAddr, const Edge& edge, bool fresh) override {
    if (by_root && fresh) origin_ = origin_of(edge.root);
  }
  void on_reference(RemoteAddr, RemoteAddr to, const Edge& edge) override {
    if (edge.kind == EdgeKind::InstanceDict && current_kind_ != kNoKind) owners_.emplace_back(to.value(), current_kind_);
  }
  void on_expand(RemoteAddr obj, const TypeInfo& ti) override;

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

  void note_largest(RemoteAddr obj, const TypeInfo& ti, uint64_t size) {
    if (opts_.largest == 0) return;
    if (largest_.size() < opts_.largest) {
      largest_.emplace(size, obj.value(), ti.id);
    } else if (size > std::get<0>(largest_.top())) {
      largest_.pop();
      largest_.emplace(size, obj.value(), ti.id);
    }
  }

  void note_unknown_size(const TypeInfo& ti, const ObjectSize& size) {
    ++out_.unknown_size_objects;
    ++out_.unknown_size_reasons[size_problem_text(size.problem)];
    auto it = std::find_if(unknown_types_.begin(), unknown_types_.end(), [&](const auto& p) { return p.first == ti.id; });
    if (it == unknown_types_.end())
      unknown_types_.emplace_back(ti.id, 1);
    else
      ++it->second;
  }

  // 3.11+: attribute values kept without a dict object, and the bytes they take.
  void note_dictless(RemoteAddr obj, const TypeInfo& ti) {
    const Facts& facts = ctx_.l.facts();
    if (facts.instance_dict == Facts::InstanceDict::DictOffset || !(ti.flags & facts.flag_managed_dict)) return;
    auto st = ctx_.reader.instance_storage(obj, ti.shape());
    if (!st || !st->values) return;
    auto nentries = ctx_.mem.read_as<int64_t>(st->keys + ctx_.l.require(F::dk_nentries));
    auto usable = ctx_.mem.read_as<int64_t>(st->keys + ctx_.l.require(F::dk_usable));
    // Counts past 2**42 are misreads (the sizes' bound), and their sum could overflow.
    constexpr int64_t kMaxCount = int64_t{1} << 42;
    if (!nentries || !usable || *nentries < 0 || *usable < 0 || *nentries > kMaxCount || *usable > kMaxCount) return;
    uint64_t bytes = static_cast<uint64_t>(*nentries + *usable) * 8;
    if (st->inline_values) {
      auto capacity = ctx_.mem.read_as<uint8_t>(st->values + ctx_.l.require(F::dv_capacity));
      if (!capacity) return;
      bytes = ctx_.l.require(F::dv_values) + uint64_t{*capacity} * 8;  // header + slots, after the object
    }
    ++out_.memory.dictless_instances;
    out_.memory.dictless_values_bytes += bytes;
  }

  HeapCensus& out_;
  const CensusOptions& opts_;
  Progress& progress_;
  Origin origin_ = Origin::Gc;
  std::array<std::pair<uint64_t, uint64_t>, static_cast<size_t>(Origin::Count)> origins_{};
  std::vector<std::pair<uint64_t, std::optional<uint64_t>>> dicts_;
  std::vector<std::pair<uint64_t, uint32_t>> owners_;  // (dict, kind of its owner), sorted at the end
  std::unordered_map<std::string, uint32_t> kind_ids_;
  std::vector<std::string> kind_names_;
  std::unordered_map<uint64_t, uint32_t> classic_names_;  // classic class -> kind
  std::vector<std::pair<uint64_t, uint64_t>> kind_agg_, type_agg_;
  std::vector<uint32_t> type_kind_;
  std::unordered_map<uint64_t, uint64_t> size_agg_;
  std::vector<std::pair<uint32_t, uint64_t>> unknown_types_;  // (type id, objects)
  const TypeInfo* dict_type_ = nullptr;
  uint32_t current_kind_ = kNoKind;
  std::priority_queue<std::tuple<uint64_t, uint64_t, uint32_t>, std::vector<std::tuple<uint64_t, uint64_t, uint32_t>>,
                      std::greater<>>
      largest_;
};

void Census::on_expand(RemoteAddr obj, const TypeInfo& ti) {
  ObjectSize size = object_size(ctx_, obj, ti);
  if (size.bytes) {
    out_.memory.object_bytes += *size.bytes;
    note_largest(obj, ti, *size.bytes);
  } else {
    note_unknown_size(ti, size);
  }
  auto& o = origins_[static_cast<size_t>(origin_)];
  ++o.first, o.second += size.bytes.value_or(0);
  if (opts_.each_object) opts_.each_object({obj.value(), ti.name, size.bytes, ti});
  note_dictless(obj, ti);
  if (ti.cat == Cat::Dict && ti.addr == ctx_.t.dict) {
    dicts_.emplace_back(obj.value(), size.bytes);
    dict_type_ = &ti;
    current_kind_ = kNoKind;
  } else if (ti.cat == Cat::Instance27) {
    current_kind_ = classic_kind(obj);
    add(current_kind_, ti, size.bytes);
  } else {
    current_kind_ = kind_of_type(ti);
    add(current_kind_, ti, size.bytes);
  }
}

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

// gc.garbage: objects the collector found unreachable but could not free (2.7: cycles with
// __del__), looked up as the gc module's attribute.
std::optional<RemoteAddr> gc_garbage_list(HeapContext& ctx, const PythonProcess& py) {
  auto garbage = module_attr(ctx, py, "gc", "garbage");
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
                                            int64_t& pause_ns, std::vector<std::string>& warnings,
                                            double need_factor, bool progress, std::vector<uint64_t>* tls_bases) {
  Progress bar(progress);
  SnapshotLimits limits;
  limits.max_bytes = max_copy_bytes;
  limits.need_factor = need_factor;
  auto snap = HeapSnapshot::plan(mem, limits);
  bar.phase(nonblocking ? "copying the target's memory" : "copying the target's memory (the target is paused)");
  std::unique_ptr<ProcessPause> pause;
  if (!nonblocking && mem.live()) pause = std::make_unique<ProcessPause>(pid);
  snap->copy();
  snap->check_target("its memory was copied");
  if (!mem.live() && tls_bases)
    for (const auto& t : mem.core()->threads())
      if (t.tid != pid && t.fs_base) tls_bases->push_back(t.fs_base);
  if (pause && tls_bases)
    for (const auto& t : pause->threads())
      // (The main thread's TLS block is not on its stack: [stack] is known by name.)
      if (t->stopped() && t->tid() != pid)
        if (auto b = t->tls_base()) tls_bases->push_back(*b);
  if (pause) {
    if (size_t n = pause->unstopped().size())
      warnings.push_back(std::to_string(n) + (n == 1 ? " thread" : " threads") +
                         " did not stop (in uninterruptible sleep): what they changed meanwhile may be torn");
    pause->resume();
    pause_ns = pause->duration().count();
  }
  return snap;
}

namespace {
// What the copy left out, and whether the census had to read any of it from the live process:
// then those bytes are from after the pause, and the answer says so.
void note_left_out(const HeapSnapshot& snap, HeapCensus& out) {
  auto& m = out.memory;
  m.left_out_bytes = snap.left_out_bytes();
  m.left_out_ranges = snap.left_out().size();
  m.live_read_bytes = snap.live_read_bytes();
  m.live_read_ranges = snap.live_read_ranges();
  if (m.live_read_bytes)
    out.warnings.push_back(std::to_string(m.live_read_bytes) + " bytes read live after the pause from " +
                           std::to_string(m.live_read_ranges) + " of the " + std::to_string(m.left_out_ranges) +
                           " ranges left out of the copy as data: what lies there may have changed since");
}

// The census's walk, in the order that lets it say how each object was reached (FoundThrough):
// what the collector tracks and reaches as gc.get_referents() sees it, then each reference it does
// not see, then the other roots.
void walk_census(Census& census, HeapContext& ctx, const PythonProcess& py, HeapCensus& out) {
  index_types(ctx, py);
  census.defer_hidden(true);
  RootStats tracked = for_each_tracked(ctx, py, census);
  census.run();
  census.defer_hidden(false);
  for (const auto& d : census.take_deferred()) {
    census.set_origin(origin_of(d.why));
    census.visit(RemoteAddr(d.addr), {EdgeKind::Other, -1, {}, "hidden", Hidden::No, RootKind::None});
  }
  census.by_root = true;
  RootStats others = for_each_other_root(ctx, py, census);
  census.run();
  out.gc_tracked = tracked.gc_tracked;
  for (auto* stats : {&tracked, &others})
    for (auto& p : stats->problems) out.warnings.push_back(p);
  if (tracked.generations == 0) out.warnings.push_back("the garbage collector's lists were not found");
}
}  // namespace

HeapCensus take_census(PythonProcess& py, ProcessMemory& mem, const CensusOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  HeapCensus out;
  out.pid = py.process().pid();
  out.command = py.process().cmdline();
  out.paused = !opts.nonblocking && mem.live();
  out.core = mem.core_path();
  out.memory.rss_bytes = py.process().rss_bytes();

  std::vector<uint64_t> tls;
  auto snap = take_snapshot(out.pid, mem, opts.nonblocking, opts.max_copy_bytes, out.pause_ns, out.warnings, 1.5,
                            opts.progress, (opts.after_walk || opts.before_walk) ? &tls : nullptr);
  out.memory.copied_bytes = snap->copied_bytes();
  HeapContext ctx(*snap, py.layout(), py.types(), &snap->maps());
  out.python = python_info(py, *snap);

  read_pymalloc(ctx, py, out.memory);  // the copy's arenas: the same before the walk as after
  if (opts.before_walk) opts.before_walk(ctx, *snap, out, tls);
  AddressSet seen(snap->ranges());
  Progress progress(opts.progress);
  Census census(ctx, *snap, seen, out, opts, progress);
  walk_census(census, ctx, py, out);
  size_t unnamed = 0;
  for (const auto& ti : ctx.all_types()) unnamed += ti.name_unreadable;
  if (unnamed)
    out.warnings.push_back(std::to_string(unnamed) + (unnamed == 1 ? " type's name" : " types' names") +
                           " could not be read (in files that are not here: give them with --sysroot or "
                           "--lib-search-path): their objects are counted as \"<type 0x...>\", sized as object.__sizeof__ "
                           "would (what a __sizeof__ of their own adds is not known)");
  census.finish();
  census.publish();
  for (auto [size, addr, type_id] : census.take_largest()) {
    const TypeInfo& ti = ctx.all_types()[type_id];
    out.largest.push_back({addr, ti.name, size, short_repr(ctx, RemoteAddr(addr), ti)});
  }
  read_garbage(ctx, py, out.memory);
  note_left_out(*snap, out);
  if (opts.after_walk) opts.after_walk(ctx, *snap, out, tls);
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
