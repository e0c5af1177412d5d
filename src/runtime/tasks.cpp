#include "runtime/tasks.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "abi/asyncio_debug.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "elf/elf_file.hpp"
#include "proc/core_file.hpp"
#include "proc/pause.hpp"
#include "runtime/frames.hpp"
#include "runtime/objects.hpp"
#include "runtime/stack.hpp"
#include "runtime/threads.hpp"

namespace pyinspect {

std::vector<std::vector<uint64_t>> await_cycles(const std::map<uint64_t, std::vector<uint64_t>>& awaits,
                                                const std::vector<uint64_t>& order) {
  static const std::vector<uint64_t> kNone;
  auto succ = [&](uint64_t v) -> const std::vector<uint64_t>& {
    auto it = awaits.find(v);
    return it == awaits.end() ? kNone : it->second;
  };
  std::map<uint64_t, size_t> rank;
  for (size_t i = 0; i < order.size(); ++i) rank.emplace(order[i], i);
  auto rank_of = [&](uint64_t v) { return rank.count(v) ? rank[v] : order.size(); };
  // Tarjan's strongly connected components, without recursion (a chain of tasks can be as long
  // as there are tasks).
  std::map<uint64_t, size_t> index, low;
  std::set<uint64_t> on_stack;
  std::vector<uint64_t> stack;
  std::vector<std::vector<uint64_t>> components;
  size_t counter = 0;
  for (uint64_t root : order) {
    if (index.count(root)) continue;
    std::vector<std::pair<uint64_t, size_t>> work{{root, 0}};  // (task, next successor to look at)
    index[root] = low[root] = counter++;
    stack.push_back(root);
    on_stack.insert(root);
    while (!work.empty()) {
      auto& [v, next] = work.back();
      const auto& out = succ(v);
      if (next < out.size()) {
        uint64_t w = out[next++];
        if (!index.count(w)) {
          index[w] = low[w] = counter++;
          stack.push_back(w);
          on_stack.insert(w);
          work.emplace_back(w, 0);
        } else if (on_stack.count(w)) {
          low[v] = std::min(low[v], index[w]);
        }
        continue;
      }
      uint64_t done = v;
      work.pop_back();
      if (!work.empty()) low[work.back().first] = std::min(low[work.back().first], low[done]);
      if (low[done] == index[done]) {
        std::vector<uint64_t> c;
        uint64_t w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack.erase(w);
          c.push_back(w);
        } while (w != done);
        components.push_back(std::move(c));
      }
    }
  }
  // In each component of two or more tasks (or one that awaits itself): the shortest cycle
  // through its first task, found breadth-first among its members.
  std::vector<std::vector<uint64_t>> cycles;
  for (auto& c : components) {
    std::set<uint64_t> in(c.begin(), c.end());
    bool self = c.size() == 1 && std::count(succ(c[0]).begin(), succ(c[0]).end(), c[0]);
    if (c.size() < 2 && !self) continue;
    uint64_t start = *std::min_element(c.begin(), c.end(), [&](uint64_t a, uint64_t b) { return rank_of(a) < rank_of(b); });
    std::map<uint64_t, uint64_t> parent;
    std::vector<uint64_t> queue{start};
    bool closed = false;
    uint64_t last = start;
    for (size_t q = 0; q < queue.size() && !closed; ++q) {
      for (uint64_t w : succ(queue[q])) {
        if (!in.count(w)) continue;
        if (w == start) {
          closed = true;
          last = queue[q];
          break;
        }
        if (parent.emplace(w, queue[q]).second) queue.push_back(w);
      }
    }
    std::vector<uint64_t> path;
    for (uint64_t v = last; v != start; v = parent[v]) path.push_back(v);
    path.push_back(start);
    std::reverse(path.begin(), path.end());
    cycles.push_back(path);
  }
  std::sort(cycles.begin(), cycles.end(), [&](const auto& a, const auto& b) { return rank_of(a[0]) < rank_of(b[0]); });
  return cycles;
}

namespace {

// What the pause reads of one task: its fields and its chain of suspended coroutines.
struct RawTask {
  RemoteAddr addr;
  int32_t state = -1;
  RemoteAddr name, coro, waiter, loop;
  std::vector<RawFrame> frames;  // outermost (the task's coroutine) first
  std::string problem;
};

class TaskReader {
 public:
  TaskReader(const ObjectReader& r, const TasksOptions& opts) : r_(r), l_(r.layout()), m_(r.memory()), opts_(opts) {}

  // The tasks of every registry asyncio has, in order, each once: 3.14+, each thread's list and
  // the interpreter's; then the sets of the asyncio.tasks module.
  std::vector<RemoteAddr> registered(const std::vector<RemoteAddr>& interps, std::string& where, bool& imported,
                                     std::vector<std::string>& warnings) {
    std::vector<RemoteAddr> out;
    std::set<RemoteAddr> seen;
    if (l_.facts().task_registry == Facts::TaskRegistry::ThreadLists && l_.has(F::task_node) &&
        l_.has(F::ts_asyncio_tasks_head) && l_.has(F::llist_next)) {
      const int64_t node = l_.off(F::task_node);
      auto add = [&](RemoteAddr head, const std::string& whose) {
        NodeList nl = circular_list(m_, head, l_.off(F::llist_next), l_.off(F::llist_prev),
                                    opts_.max_tasks - std::min(opts_.max_tasks, out.size()), "tasks");
        if (!nl.complete) warnings.push_back("the task list of " + whose + ": " + nl.problem);
        for (RemoteAddr n : nl.nodes)
          if (RemoteAddr task(n.value() - node); seen.insert(task).second) out.push_back(task);
      };
      for (RemoteAddr interp : interps) {
        NodeList ts = thread_states(l_, m_, interp);
        if (!ts.complete) warnings.push_back(ts.problem);
        for (RemoteAddr t : ts.nodes) add(t + l_.off(F::ts_asyncio_tasks_head), "thread state " + log::hex(t.value()));
        if (l_.has(F::is_asyncio_tasks_head))
          add(interp + l_.off(F::is_asyncio_tasks_head), "the interpreter (tasks of threads that ended)");
      }
      where = "the task lists of the threads and the interpreter";
    }
    for (RemoteAddr interp : interps) {
      auto modules = m_.read_ptr(interp + l_.require(F::is_modules));
      auto mod = modules ? r_.dict_get(*modules, "asyncio.tasks") : std::nullopt;
      auto dict = mod ? m_.read_ptr(*mod + l_.require(F::md_dict)) : std::nullopt;
      if (!dict) continue;
      imported = true;
      // A WeakSet (its `data`: a set of weak references) or a set of tasks; whichever names this
      // version's asyncio has.
      for (const char* name : {"_all_tasks", "_scheduled_tasks", "_eager_tasks"}) {
        auto reg = r_.dict_get(*dict, name);
        if (!reg) continue;
        where += (where.empty() ? "" : ", ") + std::string("asyncio.tasks.") + name;
        auto data = r_.instance_attr(*reg, "data");
        bool weak = data.has_value();
        set_items(weak ? *data : *reg, [&](RemoteAddr item) {
          RemoteAddr task = item;
          if (weak) {
            if (!r_.has_type(item, r_.types().weakref)) return true;
            auto obj = m_.read_ptr(item + l_.require(F::wr_object));
            if (!obj || obj->null() || *obj == r_.types().none) return true;
            task = *obj;
          }
          if (seen.insert(task).second) out.push_back(task);
          return out.size() < opts_.max_tasks;
        });
      }
    }
    return out;
  }

  RawTask read(RemoteAddr task) {
    RawTask t;
    t.addr = task;
    auto state = m_.read_as<int32_t>(task + l_.require(F::task_state));
    auto coro = m_.read_ptr(task + l_.require(F::task_coro));
    auto waiter = m_.read_ptr(task + l_.require(F::task_fut_waiter));
    auto loop = m_.read_ptr(task + l_.require(F::task_loop));
    if (!state || !coro || !waiter || !loop) {
      t.problem = "its fields could not be read";
      return t;
    }
    t.state = *state;
    t.coro = *coro;
    t.waiter = *waiter;
    t.loop = *loop;
    if (l_.has(F::task_name)) t.name = m_.read_ptr(task + l_.off(F::task_name)).value_or(RemoteAddr());
    chain(t);
    return t;
  }

 private:
  // Each coroutine the task's coroutine awaits, through the top of its suspended frame's value
  // stack (what `await` sends to), until one that is not a coroutine (a future's iterator).
  void chain(RawTask& t) {
    const Facts& facts = l_.facts();
    const TypeAddrs& ty = r_.types();
    RemoteAddr obj = t.coro;
    std::set<RemoteAddr> seen;
    while (!obj.null() && t.frames.size() < opts_.max_chain && seen.insert(obj).second) {
      auto type = r_.type_of(obj);
      if (!type || (*type != ty.coro && *type != ty.gen)) return;
      std::optional<RemoteAddr> next;
      if (facts.frames == Facts::Frames::FrameObjects) {
        auto f = m_.read_ptr(obj + l_.require(F::gen_frame));
        if (!f || f->null()) return;  // finished
        auto raw = read_frame(r_, *f);
        if (!raw) return note(t, "a coroutine's frame could not be read");
        t.frames.push_back(*raw);
        auto vs = m_.read_ptr(*f + l_.require(F::fo_valuestack));
        if (!vs || vs->null() || !l_.has(F::fo_stacktop)) return;
        // While it runs, its stack top is not recorded (<=3.9: null; 3.10: -1).
        if (facts.value_stack == Facts::ValueStack::Depth) {
          auto depth = m_.read_as<int32_t>(*f + l_.off(F::fo_stacktop));
          if (depth && *depth > 0) next = m_.read_ptr(*vs + (*depth - 1) * 8);
        } else if (auto top = m_.read_ptr(*f + l_.off(F::fo_stacktop)); top && *top > *vs) {
          next = m_.read_ptr(RemoteAddr(top->value() - 8));
        }
      } else {
        auto state = m_.read_as<int8_t>(obj + l_.require(F::gen_frame_state));
        if (!state || *state >= facts.frame_completed) return;  // finished
        RemoteAddr f = obj + l_.require(F::gen_iframe);
        auto raw = read_frame(r_, f);
        if (!raw) return note(t, "a coroutine's frame could not be read");
        t.frames.push_back(*raw);
        if (*state >= 0) return;  // running now: its stack top is not recorded
        // Only a slot above the locals is the value stack (a coroutine not yet started has none).
        int64_t nlocals = m_.read_as<int32_t>(raw->code + l_.require(F::co_nlocalsplus)).value_or(-1);
        int64_t n = -1;
        if (l_.has(F::if_stacktop)) {
          n = m_.read_as<int32_t>(f + l_.off(F::if_stacktop)).value_or(-1);
        } else if (l_.has(F::if_stackpointer)) {  // 3.14: a pointer past the last live slot
          if (auto sp = m_.read_ptr(f + l_.off(F::if_stackpointer))) n = (*sp - (f + l_.require(F::if_localsplus))) / 8;
        }
        if (nlocals < 0 || n <= nlocals || n > nlocals + 100000) return;
        if (auto v = m_.read_as<uint64_t>(f + l_.require(F::if_localsplus) + (n - 1) * 8)) next = facts.untag(*v);
      }
      if (!next) return;
      obj = *next;
    }
  }

  void note(RawTask& t, const char* what) {
    if (t.problem.empty()) t.problem = what;
  }

  bool set_items(RemoteAddr set, const std::function<bool(RemoteAddr)>& fn) {
    auto table = m_.read_ptr(set + l_.require(F::set_table));
    auto mask = m_.read_as<int64_t>(set + l_.require(F::set_mask));
    if (!table || !mask || *mask < 0 || *mask > (int64_t(1) << 22)) return false;  // 4M entries: 64 MiB
    int64_t esize = l_.require(S::sz_setentry), key = l_.require(F::setentry_key);
    std::vector<uint8_t> bytes(static_cast<size_t>((*mask + 1) * esize));
    if (!m_.read(*table, bytes.data(), bytes.size())) return false;
    for (int64_t i = 0; i <= *mask; ++i) {
      uint64_t k;
      std::memcpy(&k, bytes.data() + i * esize + key, 8);
      if (!k) continue;
      RemoteAddr item(k);
      // A deleted slot holds the set's dummy key, an object of its own type.
      auto type = r_.type_of(item);
      if (!type || r_.type_name(*type).value_or("<").rfind("<dummy", 0) == 0) continue;
      if (!fn(item)) return true;
    }
    return true;
  }

  const ObjectReader& r_;
  const Layout& l_;
  const Memory& m_;
  const TasksOptions& opts_;
};

// The type's name and those of its bases (tp_base), innermost first.
std::vector<std::string> base_names(const ObjectReader& r, RemoteAddr obj) {
  std::vector<std::string> out;
  auto type = r.type_of(obj);
  for (int i = 0; type && !type->null() && i < 32; ++i) {
    out.push_back(r.type_name(*type).value_or("?"));
    type = r.memory().read_ptr(*type + r.layout().require(F::tp_base));
  }
  return out;
}

bool has_base(const std::vector<std::string>& names, const char* name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string state_name(int32_t s) {
  switch (s) {  // fut_state (Modules/_asynciomodule.c): STATE_PENDING, STATE_CANCELLED, STATE_FINISHED
    case 0:
      return "pending";
    case 1:
      return "cancelled";
    case 2:
      return "finished";
  }
  return "unknown";
}

}  // namespace

std::optional<RemoteAddr> find_asyncio_debug(const Maps& maps,
                                             const std::function<std::string(const std::string&)>& host_path,
                                             const MappedBinary* interpreter) {
  auto in = [](const ElfFile& elf) -> std::optional<uint64_t> {
    if (auto s = elf.exported_symbol(kAsyncioDebugSymbol)) return s->value;
    if (auto s = elf.section(kAsyncioDebugSection); s && s->size >= kAsyncioDebugSize) return s->addr;
    return std::nullopt;
  };
  std::set<std::string> tried;
  for (const auto& m : maps.entries()) {
    if (!m.is_file() || !tried.insert(m.path).second) continue;
    std::string name = m.path.substr(m.path.rfind('/') + 1);
    if (name.rfind("_asyncio.", 0) != 0) continue;
    try {
      ElfFile elf(host_path(m.path));
      auto at = in(elf);
      auto bias = load_bias(elf, maps, m.path);
      if (at && bias) return RemoteAddr(*at + *bias);
    } catch (const Error& e) {
      LOG_DEBUG("cannot open " << m.path << ": " << e.what());
    }
  }
  if (interpreter) {  // _asyncio built into the interpreter's binary
    if (auto at = in(*interpreter->elf)) return interpreter->at(*at);
  }
  return std::nullopt;
}

TasksSnapshot read_tasks(PythonProcess& py, const ProcessMemory& mem, const TasksOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  TasksSnapshot snap;
  // The target's own _AsyncioDebug, where it has one, over the fixed layouts.
  Layout l = py.layout();
  std::string offsets_note;  // said only if asyncio is imported
  if (l.facts().task_registry == Facts::TaskRegistry::ThreadLists) {
    auto at = find_asyncio_debug(
        mem.maps(), [&](const std::string& p) { return py.process().host_path(p); }, &py.binary());
    std::vector<uint8_t> bytes(kAsyncioDebugSize);
    if (!at) {
      offsets_note = "no _AsyncioDebug in the target (is _asyncio loaded?): its offsets are pyinspect's own";
    } else if (!mem.read(*at, bytes.data(), bytes.size())) {
      offsets_note = "_AsyncioDebug at " + log::hex(at->value()) + " could not be read: its offsets are pyinspect's own";
    } else {
      try {
        apply_asyncio_debug(bytes, l);
      } catch (const Error& e) {
        offsets_note = std::string(e.what()) + ": its offsets are pyinspect's own";
      }
    }
  }
  if (!l.has(F::task_state) || !l.has(F::task_coro))
    throw Error(ErrorCode::Unsupported, "asyncio's C tasks are not known for CPython " + l.version.str() +
                                            " (tasks reads 3.7 to 3.14)");
  snap.pid = py.process().pid();
  snap.command = py.process().cmdline();
  // A core file: nothing runs, nothing to pause or to warm up for a pause.
  const bool pause_it = !opts.nonblocking && mem.live();
  snap.paused = pause_it;
  snap.core = mem.core_path();
  std::vector<RawTask> raw;
  bool imported = false;
  auto collect = [&](const Memory& m, std::vector<RawTask>& out, std::string& registry, bool& found,
                     std::vector<std::string>& warnings) {
    ObjectReader r(m, l, py.types());
    TaskReader reader(r, opts);
    NodeList interps = interpreters(py, m);
    if (!interps.complete) warnings.push_back(interps.problem);
    for (RemoteAddr task : reader.registered(interps.nodes, registry, found, warnings)) out.push_back(reader.read(task));
  };
  {
    // As stack does: a first pass over the running target learns which pages hold the registries,
    // the tasks and their coroutines; the pause fetches those in one batch and reads them again.
    constexpr size_t kBlock = 4096;
    std::vector<CachedMemory::BlockRange> blocks;
    if (pause_it) {
      CachedMemory warm(mem, &mem.maps(), kBlock);
      std::vector<RawTask> scratch;
      std::string where;
      bool found = false;
      std::vector<std::string> ignored;
      try {
        collect(warm, scratch, where, found, ignored);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::TargetExited) throw;
      }
      blocks = warm.blocks();
    }
    std::optional<ProcessPause> pause;
    if (pause_it) pause.emplace(snap.pid);
    CachedMemory cached(mem, &mem.maps(), kBlock);
    cached.prefetch(blocks);
    collect(cached, raw, snap.registry, imported, snap.warnings);
    if (pause) {
      pause->resume();
      snap.pause_ns = pause->duration().count();
    }
  }
  if (!imported) snap.warnings.push_back("asyncio is not imported: no tasks");
  else if (!offsets_note.empty()) snap.warnings.insert(snap.warnings.begin(), offsets_note);
  else if (snap.registry.empty())
    throw Error(ErrorCode::Unsupported, "asyncio.tasks has no task registry pyinspect knows (_all_tasks, _scheduled_tasks)");

  // After the release: names, frames and what each task waits on (objects a waiting task keeps).
  CachedMemory after(mem, &mem.maps());
  ObjectReader r(after, l, py.types());
  FrameDecoder decoder(r);
  snap.python = python_info(py, after);
  std::map<uint64_t, size_t> index;
  for (const RawTask& t : raw) {
    auto bases = base_names(r, t.addr);
    if (!has_base(bases, "_asyncio.Task")) {
      snap.warnings.push_back("an object in the task registry at " + log::hex(t.addr.value()) +
                              " is not an _asyncio.Task (" + (bases.empty() ? "?" : bases[0]) + "): left out");
      continue;
    }
    AsyncTask a;
    a.address = t.addr.value();
    a.state = state_name(t.state);
    if (a.state != "pending") continue;  // as asyncio.all_tasks(): the tasks not done
    a.loop = t.loop.value();
    a.problem = t.problem;
    if (!t.name.null()) {
      if (auto s = r.read_str(t.name, 200))
        a.name = *s;
      else if (auto n = r.read_int(t.name))  // a number until the name is asked for (3.12+)
        a.name = "Task-" + std::to_string(*n);
    }
    for (auto it = t.frames.rbegin(); it != t.frames.rend(); ++it)
      if (auto fi = decoder.decode(*it)) a.frames.push_back(std::move(*fi));
    if (!t.waiter.null()) {
      a.awaiting = t.waiter.value();
      auto wb = base_names(r, t.waiter);
      if (has_base(wb, "_asyncio.Task")) {
        a.awaiting_kind = "Task";
        a.awaits.push_back(t.waiter.value());
      } else if (has_base(wb, "_GatheringFuture")) {
        a.awaiting_kind = "gather";
        // Its children, and theirs for a gather of gathers.
        std::vector<RemoteAddr> todo{t.waiter};
        std::set<RemoteAddr> seen{t.waiter};
        size_t budget = 100000;  // children looked at, in all
        while (!todo.empty() && budget > 0) {
          RemoteAddr g = todo.back();
          todo.pop_back();
          auto children = r.instance_attr(g, "_children");
          int64_t n = children ? after.read_as<int64_t>(*children + l.require(F::ob_size)).value_or(0) : 0;
          auto items = children ? after.read_ptr(*children + l.require(F::list_item)) : std::nullopt;
          for (int64_t i = 0; items && i < n && budget > 0; ++i, --budget) {
            auto c = after.read_ptr(*items + i * 8);
            if (!c || c->null() || !seen.insert(*c).second) continue;
            auto cb = base_names(r, *c);
            if (has_base(cb, "_asyncio.Task"))
              a.awaits.push_back(c->value());
            else if (has_base(cb, "_GatheringFuture"))
              todo.push_back(*c);
          }
        }
      } else {
        std::string n = wb.empty() ? "?" : wb[0];
        a.awaiting_kind = n.rfind("_asyncio.", 0) == 0 ? n.substr(9) : n;
      }
    }
    index[a.address] = snap.tasks.size();
    snap.tasks.push_back(std::move(a));
  }
  std::map<uint64_t, std::vector<uint64_t>> graph;
  std::vector<uint64_t> order;
  for (auto& a : snap.tasks) {
    order.push_back(a.address);
    for (uint64_t w : a.awaits)
      if (auto it = index.find(w); it != index.end()) {
        snap.tasks[it->second].awaited_by.push_back(a.address);
        graph[a.address].push_back(w);
      }
  }
  snap.cycles = await_cycles(graph, order);

  // The loops, and the thread running each (BaseEventLoop._thread_id, set while run_forever runs).
  std::map<uint64_t, std::pair<int, std::string>> threads;
  {
    StackOptions so;
    so.nonblocking = true;
    so.max_frames = 1;
    so.waits = false;
    StackSnapshot s = read_stacks(py, mem, so);
    for (const auto& t : s.threads) threads[t.thread_id] = {t.native_id, t.name};
  }
  for (const auto& a : snap.tasks) {
    auto it = std::find_if(snap.loops.begin(), snap.loops.end(), [&](const EventLoopInfo& e) { return e.address == a.loop; });
    if (it == snap.loops.end()) {
      EventLoopInfo e;
      e.address = a.loop;
      auto names = base_names(r, RemoteAddr(a.loop));
      e.type = names.empty() ? "?" : names[0];
      if (auto id = r.instance_attr(RemoteAddr(a.loop), "_thread_id"))
        if (auto ident = r.read_int(*id))
          if (auto th = threads.find(static_cast<uint64_t>(*ident)); th != threads.end()) {
            e.thread = th->second.first;
            e.thread_name = th->second.second;
          }
      snap.loops.push_back(e);
      it = snap.loops.end() - 1;
    }
    ++it->tasks;
  }
  snap.elapsed_ns = (std::chrono::steady_clock::now() - t0).count();
  return snap;
}

}  // namespace pyinspect
