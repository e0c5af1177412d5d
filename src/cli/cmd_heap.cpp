#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <queue>
#include <tuple>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "heap/census.hpp"
#include "heap/graph.hpp"
#include "heap/retained.hpp"
#include "heap/snapshot.hpp"
#include "output/heap_output.hpp"
#include "output/atomic_file.hpp"
#include "output/json_util.hpp"
#include "output/retained_output.hpp"

namespace pyinspect {

GroupBy parse_group(const std::string& by) {
  if (by == "kind") return GroupBy::Kind;
  if (by == "type") return GroupBy::Type;
  if (by == "module") return GroupBy::Module;
  if (by == "size") return GroupBy::Size;
  throw Error(ErrorCode::Usage, "--by wants kind, type, module or size, not '" + by + "'");
}

namespace {
std::string seconds_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f s", s);
  return b;
}

std::string target_name(const OpenedTarget& t) {
  return t.live() ? "process " + std::to_string(t.proc->pid()) : t.mem->core()->path();
}

// The hash of each type's name, by the census's type id: computed once per type, not once per
// object (the walks call each_object millions of times).
struct TypeHashes {
  std::vector<uint64_t> by_id;  // 0: not yet
  uint64_t operator()(const ListedObject& o) {
    if (o.info.id >= by_id.size()) by_id.resize(o.info.id + 1, 0);
    uint64_t& h = by_id[o.info.id];
    if (!h) h = std::hash<std::string>()(o.type) | 1;
    return h;
  }
};

// heap --diff A B: two censuses (each of a core or a live process), what grew, and the largest
// objects of the second that the first did not have.
int heap_diff(const std::string& a_text, const std::string& b_text, const CoreSearch& search, const TargetOptions& topts,
              CensusOptions opts, GroupBy group, size_t top, size_t largest, bool json, const TextStyle& style) {
  HeapDiff d;
  // The first census's objects, by address and type: the second's found elsewhere are new.
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  HeapCensus before, after;
  {
    OpenedTarget a = open_target(a_text, search);
    PythonProcess py(*a.proc, *a.mem, topts);
    d.before_target = target_name(a);
    TypeHashes hash;
    opts.each_object = [&seen, &hash](const ListedObject& o) { seen.emplace_back(o.address, hash(o)); };
    before = take_census(py, *a.mem, opts);
  }
  std::sort(seen.begin(), seen.end());
  OpenedTarget b = open_target(b_text, search);
  PythonProcess py(*b.proc, *b.mem, topts);
  d.after_target = target_name(b);
  if (d.after_target == d.before_target && !b.live())
    throw Error(ErrorCode::Usage, "--diff of " + d.after_target + " with itself: give two snapshots");
  // The largest new ones, kept in a min-heap of `largest`.
  using Entry = std::tuple<uint64_t, uint64_t, uint32_t>;  // size, address, type id
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  TypeHashes hash;
  opts.each_object = [&](const ListedObject& o) {
    auto it = std::lower_bound(seen.begin(), seen.end(), std::make_pair(o.address, uint64_t{0}));
    const uint64_t h = hash(o);
    bool old = false;
    for (; it != seen.end() && it->first == o.address; ++it) old |= it->second == h;
    if (old) return;
    uint64_t size = o.size.value_or(0);
    ++d.fresh.count;
    d.fresh.size += size;
    if (largest == 0) return;
    if (heap.size() < largest) {
      heap.emplace(size, o.address, o.info.id);
    } else if (size > std::get<0>(heap.top())) {
      heap.pop();
      heap.emplace(size, o.address, o.info.id);
    }
  };
  // Their reprs while the second census's copy still exists.
  opts.after_walk = [&](HeapContext& ctx, const HeapSnapshot&, const HeapCensus&, const std::vector<uint64_t>&) {
    while (!heap.empty()) {
      auto [size, addr, type_id] = heap.top();
      heap.pop();
      const TypeInfo& ti = ctx.all_types()[type_id];
      d.fresh.largest.push_back({addr, ti.name, size, short_repr(ctx, RemoteAddr(addr), ti)});
    }
    std::reverse(d.fresh.largest.begin(), d.fresh.largest.end());
  };
  after = take_census(py, *b.mem, opts);
  if (json)
    std::cout << dump_json(diff_json(before, after, d, group, top)) << "\n";
  else
    print_diff_text(std::cout, before, after, d, group, top, style);
  return 0;
}

// heap --retained: the object graph of one copy (as refs builds it) and its dominator tree.
int heap_retained(Process& proc, ProcessMemory& mem, PythonProcess& py, const CensusOptions& opts, size_t top, bool json,
                  const TextStyle& style) {
  auto t0 = std::chrono::steady_clock::now();
  int64_t pause_ns = 0;
  std::vector<std::string> warnings;
  // The graph needs about as much again as the copy (docs/performance.md).
  auto snap = take_snapshot(proc.pid(), mem, opts.nonblocking, opts.max_copy_bytes, pause_ns, warnings, 2.0, opts.progress);
  HeapContext ctx(*snap, py.layout(), py.types(), &snap->maps());
  ObjectGraph graph(ctx, *snap, py, opts.progress);
  RetainedResult r = compute_retained(graph, top, opts.progress);
  r.pid = proc.pid();
  r.python = python_info(py, *snap);
  r.pause_ns = pause_ns;
  r.paused = !opts.nonblocking && mem.live();
  r.core = mem.core_path();
  r.warnings = warnings;
  r.warnings.insert(r.warnings.end(), graph.warnings().begin(), graph.warnings().end());
  r.elapsed_ns = (std::chrono::steady_clock::now() - t0).count();
  if (json)
    std::cout << dump_json(retained_json(r)) << "\n";
  else
    print_retained_text(std::cout, r, style);
  return 0;
}
}  // namespace

int cmd_heap(const std::vector<std::string>& args, const GlobalOptions& g) {
  po::options_description desc("Options");
  std::string pid_text, other_text, by = "kind", list_path;
  size_t top = 10;
  double growth = 0;
  uint64_t max_copy_mib = 0;
  bool json = false, no_progress = false, no_dwarf = false, no_cache = false, retained = false, diff = false;
  CensusOptions opts;
  TargetOptions topts;
  CoreSearch search;
  std::string lib_path;
  desc.add_options()("pid", po::value(&pid_text)->required(), "process to inspect, or a core file of one")
      ("top", po::value(&top)->default_value(top), "show the N largest rows (0: all)")
      ("by", po::value(&by)->default_value(by), "group by kind, type, module or size")
      ("largest", po::value(&opts.largest)->default_value(0), "also list the N largest single objects")
      ("growth", po::value(&growth), "take two censuses SECONDS apart and show what grew")
      ("diff", po::bool_switch(&diff),
       "heap --diff BEFORE AFTER: what grew from one to the other (core files or PIDs), and the largest new objects")
      ("other", po::value(&other_text), "the second target of --diff")
      ("retained", po::bool_switch(&retained),
       "the --top objects that retain the most (the dominator tree from the roots), and the leak suspects")
      ("list-objects", po::value(&list_path),
       "also write every object to FILE, one line each: address (hex), size (- if unknown), type")
      ("json", po::bool_switch(&json), "print one JSON document (docs/json.md)")
      ("nonblocking", po::bool_switch(&opts.nonblocking),
       "copy the memory without pausing the target (the census may be inconsistent)")
      ("max-copy", po::value(&max_copy_mib), "refuse to copy more than this many MiB of the target's memory (default: what the available memory allows)")
      ("no-progress", po::bool_switch(&no_progress), "no progress line on stderr")
      ("no-dwarf", po::bool_switch(&no_dwarf), "ignore debug info; use the embedded layout tables")
      ("no-cache", po::bool_switch(&no_cache), "read the DWARF even if its layout is cached")
      ("python", po::value(&topts.force_version), "CPython version X.Y, when the binary does not tell");
  add_core_options(desc, search, lib_path);
  po::positional_options_description pos;
  pos.add("pid", 1);
  pos.add("other", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect heap PID|CORE [options]; pyinspect heap --diff BEFORE AFTER", args, desc, pos, vm))
    return 0;
  finish_core_options(search, lib_path);
  GroupBy group = parse_group(by);
  if (vm.count("growth") && !(growth > 0 && growth <= 86400))
    throw Error(ErrorCode::Usage, "--growth wants a number of seconds more than 0, at most 86400");
  topts.use_dwarf = !no_dwarf;
  topts.use_cache = !no_cache;
  opts.max_copy_bytes = max_copy_mib << 20;
  opts.progress = !no_progress && isatty(STDERR_FILENO);

  if (diff != !other_text.empty())
    throw Error(ErrorCode::Usage, diff ? "--diff wants two targets: heap --diff BEFORE AFTER (core files or PIDs)"
                                       : "one target, or --diff BEFORE AFTER: '" + other_text + "' is one too many");
  if (diff) {
    for (const char* other : {"growth", "retained", "list-objects"})
      if (vm.count(other) && !vm[other].defaulted())
        throw Error(ErrorCode::Usage, std::string("--diff and --") + other + ": give one");
    return heap_diff(pid_text, other_text, search, topts, opts, group, top, opts.largest ? opts.largest : 10, json,
                     TextStyle{g.color, false});
  }
  if (retained) {
    for (const char* other : {"by", "largest", "growth", "list-objects"})
      if (vm.count(other) && !vm[other].defaulted())
        throw Error(ErrorCode::Usage, std::string("--retained and --") + other + " are different questions: give one");
    if (top < 1 || top > kMaxRetainedRows)
      throw Error(ErrorCode::Usage, "--top with --retained wants 1 to " + std::to_string(kMaxRetainedRows) +
                                        " (each row has its chain)");
  }
  if (!list_path.empty()) {
    if (growth > 0) throw Error(ErrorCode::Usage, "--list-objects and --growth: give one");
    check_output_path("--list-objects", list_path);
  }

  OpenedTarget target = open_target(pid_text, search);
  Process& proc = *target.proc;
  ProcessMemory& mem = *target.mem;
  if (growth > 0 && !target.live())
    throw Error(ErrorCode::Usage, "--growth watches a live process: a core file does not change (compare two with --diff)");
  PythonProcess py(proc, mem, topts);
  TextStyle style{g.color, false};
  std::unique_ptr<AtomicFile> listing;
  if (!list_path.empty()) {
    listing = std::make_unique<AtomicFile>(list_path);
    opts.each_object = [&listing](const ListedObject& o) {
      char line[64];
      if (o.size)
        std::snprintf(line, sizeof line, "0x%llx %llu ", static_cast<unsigned long long>(o.address),
                      static_cast<unsigned long long>(*o.size));
      else
        std::snprintf(line, sizeof line, "0x%llx - ", static_cast<unsigned long long>(o.address));
      listing->out << line << o.type << '\n';
    };
  }
  if (retained) return heap_retained(proc, mem, py, opts, top, json, style);
  if (growth > 0) {
    HeapCensus before = take_census(py, mem, opts);
    std::this_thread::sleep_for(std::chrono::duration<double>(growth));
    HeapCensus after;
    try {
      ProcessMemory mem2(proc.pid(), Maps::read(proc.pid()));
      after = take_census(py, mem2, opts);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::NoSuchProcess) throw;
      throw Error(ErrorCode::TargetExited, "process " + std::to_string(proc.pid()) + " exited during --growth");
    }
    if (json)
      std::cout << dump_json(growth_json(before, after, group, top, growth)) << "\n";
    else
      print_growth_text(std::cout, before, after, group, top, "over " + seconds_text(growth), style);
    return 0;
  }
  HeapCensus census = take_census(py, mem, opts);
  if (listing) listing->commit();
  if (json)
    std::cout << dump_json(heap_json(census, group, top)) << "\n";
  else
    print_heap_text(std::cout, census, group, top, style);
  return 0;
}

}  // namespace pyinspect
