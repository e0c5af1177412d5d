#include "runtime/stack.hpp"

#include <csignal>
#include <cstring>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <unordered_set>

#include "base/error.hpp"
#include "base/log.hpp"
#include "native/unwind.hpp"
#include "proc/core_file.hpp"
#include "proc/pause.hpp"
#include "runtime/frames.hpp"
#include "runtime/locks.hpp"
#include "runtime/threads.hpp"
#include "runtime/values.hpp"

namespace pyinspect {

namespace {
struct RawThread {
  RemoteAddr tstate;
  RemoteAddr interp;
  int64_t interp_id = 0;
  uint64_t thread_id = 0;
  int native_id = 0;
  bool holds_gil = false;
  FrameWalk walk;
  bool torn = false;  // seen to change while it was read
};

// The kernel's state letter as one word (the same in the text and the JSON).
std::string state_name(char s) {
  switch (s) {
    case 'R':
      return "running";
    case 'S':
      return "sleeping";
    case 'D':
      return "disk-sleep";
    case 'T':
    case 't':
      return "stopped";
    case 'Z':
    case 'X':
      return "zombie";
    case 'I':
      return "idle";
    default:
      return "unknown";
  }
}

// Whether a thread's stack changed while it was read: its innermost frame, or where that frame
// is, is no longer what the walk saw, or a frame of the chain now has another code object or
// links to another frame. Frames are reused at the same addresses (free lists, each code's
// spare frame, the data stack), so a stack can return to the same innermost frame with other
// frames beneath it; checking every link catches that. `live` reads the target as it is now.
bool changed_since(const ObjectReader& live, RemoteAddr tstate, const FrameWalk& walk) {
  const Layout& l = live.layout();
  auto top = current_frame(live, tstate);
  if (!top) return true;
  RemoteAddr seen = walk.frames.empty() ? RemoteAddr() : walk.frames.front().frame;
  if (*top != seen) return true;
  if (walk.frames.empty()) return false;
  bool objects = l.facts().frames == Facts::Frames::FrameObjects;
  int64_t back = l.require(objects ? F::fo_back : F::if_previous);
  int64_t code = l.require(objects ? F::fo_code : F::if_code);
  int64_t where = l.require(objects ? F::fo_lasti : F::if_instr);  // checked on the innermost frame
  int64_t need = std::max({back, code, where}) + 8;
  for (size_t i = 0; i < walk.frames.size(); ++i) {
    const RawFrame& fr = walk.frames[i];
    auto s = live.read_struct(fr.frame, need);
    if (!s) return true;
    auto c = s->get<uint64_t>(code);
    if (!c || (objects ? RemoteAddr(*c) : l.facts().untag(*c)) != fr.code) return true;
    if (i == 0) {
      bool same = objects ? s->get<int32_t>(where) == std::optional<int32_t>(fr.lasti)
                          : s->ptr(where) == std::optional<RemoteAddr>(fr.instr);
      if (!same) return true;
    }
    if (i + 1 == walk.frames.size() && walk.truncated) break;  // where the walk stopped is judged by its caller
    RemoteAddr expect = i + 1 < walk.frames.size() ? walk.frames[i + 1].frame : RemoteAddr();
    if (s->ptr(back) != std::optional<RemoteAddr>(expect)) return true;
  }
  return false;
}

// The thread states of every interpreter and each thread's frame chain, as raw addresses, read
// through `m`. With `recheck`, each thread's stack is read again through `live` afterwards to see
// whether it changed meanwhile (threads that were not stopped); `recheck(tid)` says which.
template <class Recheck>
std::vector<RawThread> read_raw_threads(PythonProcess& py, const Memory& m, const Memory& live,
                                        const StackOptions& opts, StackSnapshot& snap, Recheck&& recheck) {
  const Layout& l = py.layout();
  ObjectReader r(m, l, py.types());
  ObjectReader live_reader(live, l, py.types());
  std::vector<RawThread> raw;
  ThreadWalkLimits limits{opts.max_interpreters, opts.max_threads, opts.max_frames};
  NodeList interps = interpreters(py, m, limits);
  if (!interps.complete) snap.warnings.push_back(interps.problem);
  for (RemoteAddr interp : interps.nodes) {
    int64_t interp_id = l.has(F::is_id) ? m.read_as<int64_t>(interp + l.off(F::is_id)).value_or(0) : 0;
    RemoteAddr gil = py.gil_holder(m, interp);
    NodeList states = thread_states(l, m, interp, limits);
    if (!states.complete) {
      snap.warnings.push_back(states.problem);
      if (opts.nonblocking) snap.torn = true;
    }
    for (RemoteAddr ts : states.nodes) {
      auto s = r.read_struct(ts, l.require(S::sz_PyThreadState));
      if (!s) {
        snap.warnings.push_back("a thread state could not be read");
        if (opts.nonblocking) snap.torn = true;
        continue;
      }
      RawThread t;
      t.tstate = ts;
      t.interp = interp;
      t.interp_id = interp_id;
      t.thread_id = s->get<uint64_t>(l.require(F::ts_thread_id)).value_or(0);
      if (l.has(F::ts_native_thread_id)) t.native_id = s->get<int32_t>(l.off(F::ts_native_thread_id)).value_or(0);
      t.holds_gil = gil == ts;
      t.walk = walk_frames(r, ts, opts.max_frames);
      if (recheck(t)) t.torn = changed_since(live_reader, ts, t.walk) || (t.walk.truncated && !t.walk.at_limit);
      raw.push_back(std::move(t));
    }
  }
  snap.interpreters = static_cast<int>(interps.nodes.size());
  if (!l.has(F::is_id)) {
    // 2.7/3.6 have no interpreter ids: number them as later versions do, the main interpreter
    // (the oldest, last in the list) 0 and the newest highest.
    std::vector<RemoteAddr> order;
    for (const auto& t : raw)
      if (std::find(order.begin(), order.end(), t.interp) == order.end()) order.push_back(t.interp);
    for (auto& t : raw) {
      auto pos = std::find(order.begin(), order.end(), t.interp) - order.begin();
      t.interp_id = static_cast<int64_t>(order.size()) - 1 - pos;
    }
  }
  return raw;
}

// What the paused pass learns about the threads besides their stacks.
struct PausedRead {
  std::vector<RawThread> raw;
  std::map<uint64_t, int> tls_to_tid;  // pthread_t -> TID, from the stopped threads' registers
  std::set<int> unstopped;             // TIDs that had not stopped
  std::map<int, NativeCapture> native;  // with --native: each stopped thread's registers and stack
  std::vector<int> stopped_tids;        // every thread the pause stopped
  std::map<int, uint64_t> futex;        // the futex word each sleeping thread waits on
  std::set<int> futex_guessed;          // ... where that was restart_syscall (pause.hpp)
};

// Whether the kernel said, before the pause, that the thread was asleep (only those can be
// waiting on a futex word).
bool asleep(const std::map<int, TaskInfo>& tasks, int tid) {
  auto it = tasks.find(tid);
  return it != tasks.end() && it->second.state == 'S';
}

// Principles: pause briefly. The pause grows with bytes, not with reads. A first pass over the
// running target finds which memory blocks hold the thread states and frames; the paused pass
// fetches those blocks in one batch (a few system calls) and walks them locally, reading on its
// own only what moved meanwhile.
PausedRead read_paused(PythonProcess& py, const ProcessMemory& mem, const StackOptions& opts,
                       const std::map<int, TaskInfo>& tasks, StackSnapshot& snap) {
  // Page-sized blocks: frames and thread states are small and scattered, so fetching whole pages
  // around them copies little more than needed.
  constexpr size_t kPauseBlock = 4096;
  std::vector<CachedMemory::BlockRange> blocks;
  {
    CachedMemory warm(mem, &mem.maps(), kPauseBlock);
    StackSnapshot scratch;
    try {
      read_raw_threads(py, warm, mem, opts, scratch, [](const RawThread&) { return false; });
    } catch (const Error& e) {
      if (e.code() == ErrorCode::TargetExited) throw;
    }
    blocks = warm.blocks();
  }
  PausedRead out;
  ProcessPause pause(snap.pid);
  CachedMemory cached(mem, &mem.maps(), kPauseBlock);
  cached.prefetch(blocks);
  auto fetched = std::chrono::steady_clock::now();
  for (const auto& t : pause.threads())
    if (auto base = t->tls_base()) out.tls_to_tid[*base] = t->tid();
  out.unstopped.insert(pause.unstopped().begin(), pause.unstopped().end());
  // A thread that runs on may change its stack under the read: check it against the live memory.
  auto running = [&](const RawThread& t) {
    if (out.unstopped.empty()) return false;
    int tid = t.native_id;
    if (!tid)
      for (auto& [base, id] : out.tls_to_tid)
        if (base == t.thread_id) tid = id;
    return tid == 0 || out.unstopped.count(tid) > 0;
  };
  out.raw = read_raw_threads(py, cached, mem, opts, snap, running);
  auto walked = std::chrono::steady_clock::now();
  size_t native_bytes = 0;
  for (const auto& t : pause.threads()) {
    if (!t->stopped()) continue;
    out.stopped_tids.push_back(t->tid());
    if (opts.waits && asleep(tasks, t->tid()))
      if (auto regs = t->registers())
        if (bool restarted = false; auto word = futex_waited(regs->syscall, regs->syscall_args, &restarted)) {
          out.futex[t->tid()] = *word;
          if (restarted) out.futex_guessed.insert(t->tid());
        }
    if (!opts.native) continue;
    if (auto c = capture_native(*t, mem)) {
      native_bytes += c->stack.size();
      out.native.emplace(t->tid(), std::move(*c));
    }
  }
  auto before_resume = std::chrono::steady_clock::now();
  pause.resume();
  snap.pause_ns = pause.duration().count();
  auto us = [](auto d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); };
  LOG_DEBUG("pause: " << pause.stop_ns() / 1000 << " us stopping the threads, " << us(fetched - pause.stopped_at())
                      << " us fetching " << blocks.size() << " blocks, " << us(before_resume - fetched)
                      << " us walking (" << cached.misses() << " reads missed), "
                      << us(before_resume - walked) << " us copying " << native_bytes << " bytes of native stacks, "
                      << snap.pause_ns / 1000 << " us in all");
  return out;
}

// The signal that ended the process a core was written of: NT_SIGINFO, received by the thread
// the kernel lists first with it as its current signal.
// A stop signal cannot end a process with a core: gdb's gcore records the SIGSTOP of its attach
// (and `pyinspect dump` none), so a core that names one was taken of a running process.
bool ends_with_core(int signo) {
  return signo > 0 && signo != SIGSTOP && signo != SIGTSTP && signo != SIGTTIN && signo != SIGTTOU;
}

CoreInfo core_info(const CoreFile& core) {
  CoreInfo c;
  c.path = core.path();
  if (auto s = core.signal(); s && ends_with_core(s->signo)) {
    c.signal = s->signo;
    c.signal_code = s->code;
    // The faulting address, for the signals that have one (si_addr).
    if (s->signo == SIGSEGV || s->signo == SIGBUS || s->signo == SIGILL || s->signo == SIGFPE) c.address = s->addr;
  }
  for (const auto& t : core.threads())
    if (ends_with_core(t.signal) && (!c.signal || t.signal == c.signal)) {
      c.signal = t.signal;
      c.thread = t.tid;
      break;
    }
  if (c.signal) {
    const char* abbrev = sigabbrev_np(c.signal);
    c.signal_name = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(c.signal);
  }
  return c;
}

PythonInfo describe(PythonProcess& py, const Memory& mem) {
  const Layout& l = py.layout();
  PythonInfo p;
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

// threading's names, per interpreter: each has its own threading module (a thread running a
// subinterpreter has a name in each).
std::map<std::pair<RemoteAddr, uint64_t>, std::string> thread_names(const ObjectReader& r,
                                                                    const std::vector<RawThread>& raw) {
  std::map<std::pair<RemoteAddr, uint64_t>, std::string> names;
  std::set<RemoteAddr> interps;
  for (const auto& t : raw) interps.insert(t.interp);
  for (RemoteAddr interp : interps) {
    try {
      for (auto& [ident, name] : threading_names(r, interp)) names[{interp, ident}] = std::move(name);
    } catch (const Error& e) {
      LOG_DEBUG("thread names unavailable: " << e.what());
    }
  }
  return names;
}

FrameInfo native_frame_info(const NativeFrame& n) {
  FrameInfo f;
  f.kind = FrameInfo::Kind::Native;
  f.function = f.name = n.symbol;
  f.file = n.file;
  f.line = n.line > 0 ? n.line : -1;
  f.library = n.library;
  f.address = n.pc;
  f.offset = n.offset;
  f.inlined = n.inlined;
  return f;
}

// After the target runs again: unwind each stopped thread's copied stack and merge it with the
// thread's Python frames; threads with no Python thread state get their native frames alone.
void add_native(PythonProcess& py, const ProcessMemory& mem, const StackOptions& opts, const PausedRead& read,
                const std::map<int, TaskInfo>& tasks, StackSnapshot& snap) {
  snap.native = true;
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<NativeUnwinder> owned;
  NativeModules core_modules;  // a core's: its maps, its files where they are here
  if (const CoreFile* core = mem.core()) {
    core_modules.maps = &mem.maps();
    core_modules.host_path = [core](const std::string& p) { return core->host_path(p); };
    core_modules.root = core->search().sysroot;
    core_modules.arch_file = core->path();
  }
  try {
    owned = std::make_unique<NativeUnwinder>(snap.pid, mem, opts.native_cache, mem.core() ? &core_modules : nullptr);
  } catch (const Error& e) {
    for (auto& info : snap.threads) info.native_problem = e.what();
    snap.warnings.push_back(std::string("no native stacks: ") + e.what());
    return;
  }
  NativeUnwinder& unwinder = *owned;
  const std::string eval = py.layout().facts().eval_function;
  if (!opts.native_all) unwinder.name_only(eval);
  std::set<int> seen;
  size_t frames = 0, live_reads = 0;
  auto unwind = [&](ThreadInfo& info) {
    auto it = read.native.find(info.native_id);
    if (it == read.native.end()) {
      info.native_problem = info.stopped == false ? "the thread did not stop: its registers cannot be read"
                                                  : "its registers could not be read";
      return;
    }
    NativeStack ns = unwinder.unwind(it->second, opts.max_native_frames);
    frames += ns.frames.size();
    live_reads += ns.live_reads;
    info.native = true;
    if (ns.truncated) info.native_problem = ns.problem;
    if (ns.live_reads)
      info.warnings.push_back(std::to_string(ns.live_reads) +
                              " words of its native stack were read after the target resumed (beyond the copy)");
    info.frames = merge_native(info.frames, ns, eval, opts.native_all, &info.python_frames_unplaced);
    if (info.python_frames_unplaced)
      info.warnings.push_back(std::to_string(info.python_frames_unplaced) +
                              " Python frames not matched to an evaluation frame of the native stack: listed last");
  };
  for (auto& info : snap.threads) {
    if (!info.native_id) continue;
    seen.insert(info.native_id);
    unwind(info);
  }
  for (int tid : read.stopped_tids) {
    if (seen.count(tid)) continue;
    ThreadInfo info;
    info.python = false;
    info.native_id = tid;
    info.stopped = true;
    auto task = tasks.count(tid) ? std::optional<TaskInfo>(tasks.at(tid)) : py.process().task(tid);
    info.state = task ? state_name(task->state) : "unknown";
    if (task) info.name = task->comm;
    unwind(info);
    snap.threads.push_back(std::move(info));
  }
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  LOG_DEBUG("native stacks: " << read.native.size() << " threads, " << frames << " frames unwound and named in " << us
                              << " us (" << live_reads << " words read live)");
}

// What each thread asleep on a futex waits for, and who it waits for (runtime/locks.hpp).
void read_waits(PythonProcess& py, const ObjectReader& r, const PausedRead& read,
                std::map<uint64_t, std::vector<RawFrame>>& frames, const std::map<uint64_t, RemoteAddr>& interp_of,
                StackSnapshot& snap) {
  std::vector<WaitInput> in;
  std::map<RemoteAddr, std::optional<std::pair<RemoteAddr, RemoteAddr>>> gil;
  for (auto& info : snap.threads) {
    if (!info.python) continue;
    WaitInput w;
    w.info = &info;
    w.frames = std::move(frames[info.tstate_address]);
    if (auto it = read.futex.find(info.native_id); info.native_id && it != read.futex.end()) {
      w.futex = it->second;
      w.futex_guessed = read.futex_guessed.count(info.native_id) > 0;
    }
    if (auto it = interp_of.find(info.tstate_address); it != interp_of.end()) {
      if (!gil.count(it->second)) gil[it->second] = py.gil_wait_words(r.memory(), it->second);
      w.gil_words = gil[it->second];
    }
    in.push_back(std::move(w));
  }
  try {
    analyse_waits(r, in, snap);
  } catch (const Error& e) {  // what the threads wait for is extra: the stacks stand without it
    if (e.code() == ErrorCode::TargetExited) throw;
    snap.warnings.push_back(std::string("what threads wait for could not be read: ") + e.what());
  }
}

}  // namespace

std::vector<FrameInfo> merge_native(const std::vector<FrameInfo>& python, const NativeStack& native,
                                    const std::string& eval_function, bool keep_all, int* unplaced) {
  std::vector<int> calls;
  for (const auto& f : python) calls.push_back(f.eval_call);
  std::vector<FrameInfo> out;
  for (const MergedFrame& m : merge_order(calls, native, eval_function, keep_all, unplaced))
    out.push_back(m.python ? python[m.index] : native_frame_info(native.frames[m.index]));
  return out;
}

// glibc keeps the kernel TID inside struct pthread (pthread_t points to it). Without ptrace we
// learn its offset from the threads themselves: the one offset at which every Python thread's
// pthread block holds one of the process's TIDs.
std::map<uint64_t, int> tids_from_pthread_blocks(const Memory& mem, const std::vector<uint64_t>& pthreads,
                                                 const std::vector<int>& tids) {
  std::map<uint64_t, int> out;
  if (pthreads.empty()) return out;
  constexpr size_t kScan = 2048;
  std::unordered_set<int> tidset(tids.begin(), tids.end());
  std::map<size_t, int> votes;
  std::map<uint64_t, std::vector<uint8_t>> blocks;
  for (uint64_t p : pthreads) {
    std::vector<uint8_t> b(kScan);
    if (!mem.read(RemoteAddr(p), b.data(), b.size())) continue;
    for (size_t off = 0; off + 4 <= kScan; off += 4) {
      int32_t v;
      std::memcpy(&v, b.data() + off, 4);
      if (tidset.count(v)) ++votes[off];
    }
    blocks[p] = std::move(b);
  }
  size_t best = 0;
  int best_votes = 0;
  for (auto [off, n] : votes)
    if (n > best_votes) best = off, best_votes = n;
  if (best_votes < static_cast<int>(blocks.size())) return out;  // no offset fits every thread
  for (auto& [p, b] : blocks) {
    int32_t v;
    std::memcpy(&v, b.data() + best, 4);
    out[p] = v;
  }
  return out;
}

// threading._active of one interpreter: ident -> Thread.name.
std::map<uint64_t, std::string> threading_names(const ObjectReader& r, RemoteAddr interp) {
  const Layout& l = r.layout();
  const Memory& mem = r.memory();
  std::map<uint64_t, std::string> names;
  if (!l.has(F::is_modules)) return names;
  auto modules = mem.read_ptr(interp + l.off(F::is_modules));
  auto threading = modules ? r.dict_get(*modules, "threading") : std::nullopt;
  auto mdict = threading ? mem.read_ptr(*threading + l.require(F::md_dict)) : std::nullopt;
  auto active = mdict ? r.dict_get(*mdict, "_active") : std::nullopt;
  if (!active) return names;
  const char* attr = l.facts().thread_name_attr;
  r.dict_items(*active, [&](RemoteAddr k, RemoteAddr v) {
    auto ident = r.read_int(k);
    if (!ident) return true;
    if (auto name = r.instance_attr(v, attr))
      if (auto s = r.read_str(*name, 256)) names[static_cast<uint64_t>(*ident)] = *s;
    return names.size() < 100000;
  });
  return names;
}

PythonInfo python_info(PythonProcess& py, const Memory& mem) { return describe(py, mem); }

StackSnapshot read_stacks(PythonProcess& py, const ProcessMemory& mem, const StackOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  StackSnapshot snap;
  snap.pid = py.process().pid();
  snap.command = py.process().cmdline();
  const bool live = py.process().live();
  snap.paused = !opts.nonblocking && live;

  // The kernel's view of each thread, taken before we stop them (once stopped, all say "t").
  std::map<int, TaskInfo> tasks;
  for (auto& t : py.process().tasks()) tasks[t.tid] = t;

  if (opts.native && opts.nonblocking && live)
    throw Error(ErrorCode::Usage, "--native reads registers, which needs the pause: leave out --nonblocking");
  PausedRead read;
  if (!live) {
    // A core: nothing runs, nothing to pause. Its threads' registers say what a pause would.
    const CoreFile& core = *py.process().core();
    read.raw = read_raw_threads(py, mem, mem, opts, snap, [](const RawThread&) { return false; });
    for (const auto& t : core.threads()) {
      read.tls_to_tid[t.fs_base] = t.tid;
      read.stopped_tids.push_back(t.tid);
      // (The main thread's TLS block is not on its stack.)
      if (opts.native)
        read.native.emplace(t.tid, capture_native(t.tid, t.regs, t.tid == core.pid() ? std::nullopt
                                                                                       : std::optional<uint64_t>(t.fs_base),
                                                  mem));
      bool restarted = false;
      if (opts.waits)
        if (auto word = futex_waited(t.regs.syscall, t.regs.syscall_args, &restarted)) {
          read.futex[t.tid] = *word;
          if (restarted) read.futex_guessed.insert(t.tid);
        }
    }
    snap.core = core_info(core);
  } else if (opts.nonblocking) {
    read.raw = read_raw_threads(py, mem, mem, opts, snap, [](const RawThread&) { return true; });
    // Without the pause, the futex word each sleeping thread waits on comes from /proc.
    for (const auto& [tid, task] : tasks) {
      if (!opts.waits || task.state != 'S') continue;
      bool restarted = false;
      if (auto sc = blocked_syscall(snap.pid, tid))
        if (auto word = futex_waited(sc->number, sc->args, &restarted)) {
          read.futex[tid] = *word;
          if (restarted) read.futex_guessed.insert(tid);
        }
    }
  } else
    read = read_paused(py, mem, opts, tasks, snap);

  // Everything below reads memory that does not change while a thread waits: code objects,
  // names; and the kernel's view of each thread. Those objects cluster in memory, so a page
  // cache saves most system calls.
  CachedMemory after(mem, &mem.maps());
  ObjectReader r(after, py.layout(), py.types());
  FrameDecoder decoder(r);
  snap.python = describe(py, after);

  std::vector<int> tids;
  for (const auto& [tid, t] : tasks) tids.push_back(tid);
  std::vector<uint64_t> need_tid;
  for (const auto& t : read.raw)
    if (t.native_id == 0 && !read.tls_to_tid.count(t.thread_id)) need_tid.push_back(t.thread_id);
  auto from_blocks = tids_from_pthread_blocks(after, need_tid, tids);
  auto names = opts.thread_names ? thread_names(r, read.raw) : decltype(thread_names(r, read.raw)){};

  std::map<uint64_t, std::vector<RawFrame>> decoded_frames;  // by thread state: what analyse_waits reads
  std::map<uint64_t, RemoteAddr> interp_of;
  for (auto& t : read.raw) {
    ThreadInfo info;
    info.thread_id = t.thread_id;
    info.native_id = t.native_id;
    if (!info.native_id) {
      if (auto it = read.tls_to_tid.find(t.thread_id); it != read.tls_to_tid.end())
        info.native_id = it->second;
      else if (auto it2 = from_blocks.find(t.thread_id); it2 != from_blocks.end())
        info.native_id = it2->second;
    }
    info.holds_gil = t.holds_gil;
    info.interpreter_id = t.interp_id;
    info.tstate_address = t.tstate.value();
    if (!opts.nonblocking) info.stopped = info.native_id && !read.unstopped.count(info.native_id);
    std::optional<TaskInfo> task;
    if (auto it = tasks.find(info.native_id); it != tasks.end())
      task = it->second;
    else if (info.native_id)
      task = py.process().task(info.native_id);  // a thread born during the read
    info.state = task ? state_name(task->state) : "unknown";
    if (auto it = names.find({t.interp, t.thread_id}); it != names.end()) {
      info.name = it->second;
      info.name_from_threading = true;
    } else if (task) {
      info.name = task->comm;
    }
    bool undecodable = false;
    const Facts& facts = py.layout().facts();
    int call = 0;
    for (size_t i = 0; i < t.walk.frames.size(); ++i) {
      const RawFrame& f = t.walk.frames[i];
      if (is_shim(facts, f)) continue;
      if (auto fi = decoder.decode(f)) {
        undecodable = undecodable || fi->unreadable;
        fi->eval_call = call;
        if (opts.locals > 0 && !fi->unreadable) {
          try {
            fi->locals = frame_locals(r, f, ReprLimits::level(opts.locals));
            fi->locals_read = true;
          } catch (const Error& e) {  // a fact the layout lacks: the stack stands without its locals
            if (e.code() == ErrorCode::TargetExited) throw;
            fi->locals_problem = e.what();
          }
        }
        info.frames.push_back(std::move(*fi));
        if (opts.waits) decoded_frames[t.tstate.value()].push_back(f);
      }
      if (ends_eval_call(facts, t.walk.frames, i)) ++call;
    }
    interp_of[t.tstate.value()] = t.interp;
    info.truncated = t.walk.truncated;
    if (t.walk.truncated) info.warnings.push_back(t.walk.problem);
    // A thread that ran while it was read and has a frame whose code cannot be decoded: its code
    // object was most likely freed or replaced meanwhile, which is a change seen, not corruption.
    info.torn = t.torn || (undecodable && info.stopped != true);
    snap.torn = snap.torn || info.torn;
    snap.threads.push_back(std::move(info));
  }
  if (opts.native) add_native(py, mem, opts, read, tasks, snap);
  snap.threads_not_stopped = static_cast<int>(read.unstopped.size());
  std::stable_sort(snap.threads.begin(), snap.threads.end(), [&](const ThreadInfo& a, const ThreadInfo& b) {
    // The main thread first, then by TID; threads of subinterpreters after the main interpreter's.
    auto key = [&](const ThreadInfo& t) {
      return std::make_tuple(t.interpreter_id, t.native_id == snap.pid ? 0 : 1, t.native_id);
    };
    return key(a) < key(b);
  });
  if (opts.waits) read_waits(py, r, read, decoded_frames, interp_of, snap);
  snap.elapsed_ns = (std::chrono::steady_clock::now() - t0).count();
  return snap;
}

}  // namespace pyinspect
