#include "profile/sampler.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>
#include <unordered_map>

#include "base/error.hpp"
#include "base/log.hpp"
#include "native/unwind.hpp"
#include "proc/pause.hpp"
#include "proc/process.hpp"
#include "runtime/frames.hpp"
#include "runtime/stack.hpp"
#include "runtime/target.hpp"
#include "runtime/threads.hpp"

namespace pyinspect {

namespace {

using Clock = std::chrono::steady_clock;

// A Memory that forwards to another chosen at each instant: the reader and the code cache are
// built once over it, each instant points it at that instant's page cache.
class MemoryView : public Memory {
 public:
  explicit MemoryView(const Memory& m) : m_(&m) {}
  void set(const Memory& m) { m_ = &m; }
  bool read(RemoteAddr addr, void* out, size_t len) const override { return m_->read(addr, out, len); }
  void read_batch(std::vector<ReadRequest>& r) const override { m_->read_batch(r); }

 private:
  const Memory* m_;
};

// /proc/PID/task/TID/stat kept open: a seq file regenerated at each pread from offset 0, so the
// kernel's view of a thread costs one system call per instant.
class StatFile {
 public:
  StatFile(int pid, int tid) {
    std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat";
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  ~StatFile() {
    if (fd_ >= 0) close(fd_);
  }
  StatFile(const StatFile&) = delete;
  StatFile& operator=(const StatFile&) = delete;
  // The state letter (R, S, D...); '?' if the thread is gone.
  char state() const {
    if (fd_ < 0) return '?';
    char buf[512];
    ssize_t n = pread(fd_, buf, sizeof buf - 1, 0);
    if (n <= 0) return '?';
    buf[n] = '\0';
    const char* close_paren = std::strrchr(buf, ')');  // comm may hold spaces and parentheses
    if (!close_paren || close_paren + 2 >= buf + n) return '?';
    return close_paren[2];
  }

 private:
  int fd_ = -1;
};

// Whether the kernel's state says the thread is not using the CPU: asleep (S), in
// uninterruptible wait (D), idle (I), stopped (T, t: by a signal or a debugger other than us),
// gone (Z, X). Running or runnable (R) is active; so is a state that could not be read.
bool idle_state(char s) { return s != 'R' && s != '?'; }

struct RawThread {
  RemoteAddr interp;
  uint64_t thread_id = 0;
  int native_id = 0;
  bool holds_gil = false;
  FrameWalk walk;
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::string short_command(const std::string& cmd) {
  constexpr size_t kMax = 100;
  return cmd.size() <= kMax ? cmd : cmd.substr(0, kMax - 3) + "...";
}

}  // namespace

// One process being sampled.
class TargetSampler {
 public:
  TargetSampler(int pid, const SamplerOptions& opts, Profile& profile)
      : opts_(opts),
        proc_(pid),
        mem_(pid, Maps::read(pid)),
        py_(proc_, mem_, target_options(opts)),
        view_(mem_),
        reader_(view_, py_.layout(), py_.types()),
        decoder_(reader_) {
    if (opts.subprocesses)
      root_ = profile.intern({ProfileFrame::Kind::Process, Sampler::process_label(pid, proc_.cmdline()), "", -1});
    maps_at_ = Clock::now();
    names_at_ = Clock::time_point::min();  // the first thread met looks the names up at once
    limits_.frames = opts.max_frames;
    version_ = py_.full_version(mem_).str();
  }

  int pid() const { return proc_.pid(); }
  const std::string& version() const { return version_; }

  // One instant: each thread's stack into `profile`. False once the process has exited.
  bool sample(Profile& profile, SamplerStats& st);
  // Whether the interpreter is set up far enough to be read as it will be from now on: some
  // thread runs a Python frame whose code object reads as one.
  bool ready() {
    try {
      mem_.refresh_maps();
      SamplerStats scratch;
      CachedMemory cache(mem_, &mem_.maps(), 1024);
      view_.set(cache);
      decoder_.next_generation();
      bool ok = false;
      for (const auto& t : walk(cache, scratch))
        for (const auto& f : t.walk.frames)
          if (auto where = decoder_.locate(f)) ok = ok || where->code->valid;
      view_.set(mem_);
      return ok;
    } catch (const Error&) {
      view_.set(mem_);
      return false;
    }
  }

 private:
  static TargetOptions target_options(const SamplerOptions& o) {
    TargetOptions t;
    t.use_dwarf = o.use_dwarf;
    return t;
  }
  std::vector<RawThread> walk(const Memory& m, SamplerStats& st);
  int tid_of(const RawThread& t);
  char state_of(int tid, const std::unordered_map<int, char>& before);
  uint32_t thread_root(Profile& profile, const RawThread& t, int tid);
  void record(Profile& profile, SamplerStats& st, const RawThread& t, int tid);
  uint32_t native_id(Profile& profile, const NativeFrame& f);

  SamplerOptions opts_;
  Process proc_;
  ProcessMemory mem_;
  PythonProcess py_;
  MemoryView view_;
  ObjectReader reader_;
  FrameDecoder decoder_;
  ThreadWalkLimits limits_;
  std::optional<uint32_t> root_;
  std::vector<CachedMemory::BlockRange> warm_;         // the blocks the last instant read
  std::unordered_map<uint64_t, uint32_t> frame_ids_;   // (code serial, line) -> profile frame
  std::map<int, std::unique_ptr<StatFile>> stats_;     // tid -> its stat file
  std::map<uint64_t, int> pthread_tids_;               // pthread_t -> tid, where no field holds it
  std::map<std::pair<RemoteAddr, uint64_t>, std::string> names_;
  std::map<std::pair<int, std::string>, uint32_t> thread_roots_;
  Clock::time_point maps_at_, names_at_;
  bool unreadable_ = false;  // a walk met unreadable memory: the maps may be out of date
  bool maps_fresh_ = false;  // the maps were read during this instant
  std::vector<uint32_t> stack_;  // scratch
  std::vector<uint32_t> python_ids_;  // scratch: one thread's Python frames, innermost first
  std::vector<int> eval_calls_;       // scratch: their C-level evaluation calls
  std::string version_;
  // --native: the stopped threads' registers and stacks of this instant, unwound after the pause.
  std::unique_ptr<NativeUnwinder> unwinder_;
  std::map<int, NativeCapture> captures_;
  std::unordered_map<std::string, uint32_t> native_ids_;  // name, file and line -> profile frame
};

std::vector<RawThread> TargetSampler::walk(const Memory& m, SamplerStats& st) {
  const Layout& l = py_.layout();
  std::vector<RawThread> out;
  NodeList interps = interpreters(py_, m, limits_);
  for (RemoteAddr interp : interps.nodes) {
    RemoteAddr gil = py_.gil_holder(m, interp);
    NodeList states = thread_states(l, m, interp, limits_);
    for (RemoteAddr ts : states.nodes) {
      auto s = reader_.read_struct(ts, l.require(S::sz_PyThreadState));
      if (!s) continue;
      RawThread t;
      t.interp = interp;
      t.thread_id = s->get<uint64_t>(l.require(F::ts_thread_id)).value_or(0);
      if (l.has(F::ts_native_thread_id)) t.native_id = s->get<int32_t>(l.off(F::ts_native_thread_id)).value_or(0);
      t.holds_gil = gil == ts;
      if (opts_.gil_only && !t.holds_gil) continue;
      t.walk = walk_frames(reader_, ts, opts_.max_frames);
      if (t.walk.truncated && !t.walk.at_limit) {
        // Memory outside the maps read last: a new thread's stack, a new data-stack chunk or
        // arena (the maps are read again, once an instant); or, read while it ran, a chain whose
        // parts came from the copy made at the start of the instant and from later reads, and
        // had changed meanwhile. Read it again at once, all of it now.
        if (!maps_fresh_) {
          mem_.refresh_maps();
          maps_at_ = Clock::now();
          maps_fresh_ = true;
        }
        if (!opts_.blocking) ++st.torn;
        CachedMemory again(mem_, &mem_.maps(), 1024);
        view_.set(again);
        t.walk = walk_frames(reader_, ts, opts_.max_frames);
        view_.set(m);
      }
      out.push_back(std::move(t));
    }
  }
  return out;
}

int TargetSampler::tid_of(const RawThread& t) {
  if (t.native_id) return t.native_id;
  auto it = pthread_tids_.find(t.thread_id);
  if (it != pthread_tids_.end()) return it->second;
  // Before 3.8 no field holds the TID: glibc's struct pthread does (learned once per thread).
  auto found = tids_from_pthread_blocks(mem_, {t.thread_id}, Process::list_tids(pid()));
  int tid = found.count(t.thread_id) ? found[t.thread_id] : 0;
  pthread_tids_[t.thread_id] = tid;
  return tid;
}

char TargetSampler::state_of(int tid, const std::unordered_map<int, char>& before) {
  if (auto it = before.find(tid); it != before.end()) return it->second;
  if (!tid) return '?';
  // A thread not seen before: its state from now on (read after a pause it would say 't').
  auto& f = stats_[tid];
  if (!f) f = std::make_unique<StatFile>(pid(), tid);
  return opts_.blocking ? '?' : f->state();
}

uint32_t TargetSampler::thread_root(Profile& profile, const RawThread& t, int tid) {
  auto it = names_.find({t.interp, t.thread_id});
  if (it == names_.end() && (names_at_ == Clock::time_point::min() || Clock::now() - names_at_ > std::chrono::milliseconds(500))) {
    // A thread not named yet: look threading's names up again (at most twice a second).
    names_at_ = Clock::now();
    CachedMemory cache(mem_, &mem_.maps());
    ObjectReader r(cache, py_.layout(), py_.types());
    try {
      for (auto& [ident, name] : threading_names(r, t.interp)) names_[{t.interp, ident}] = name;
    } catch (const Error& e) {
      if (e.code() == ErrorCode::TargetExited) throw;
    }
    it = names_.find({t.interp, t.thread_id});
  }
  std::string label = "Thread " + std::to_string(tid);
  if (it != names_.end()) label += " \"" + it->second + "\"";
  auto key = std::make_pair(tid, label);
  auto r = thread_roots_.find(key);
  if (r != thread_roots_.end()) return r->second;
  uint32_t id = profile.intern({ProfileFrame::Kind::Thread, label, "", -1});
  thread_roots_.emplace(key, id);
  return id;
}

uint32_t TargetSampler::native_id(Profile& profile, const NativeFrame& f) {
  ProfileFrame pf;
  pf.kind = ProfileFrame::Kind::Native;
  pf.function = f.symbol.empty() ? "??" : f.symbol;
  if (!f.file.empty()) {
    pf.file = f.file;
    pf.line = opts_.by_function || f.line <= 0 ? -1 : f.line;
  } else if (!f.library.empty()) {
    pf.file = f.library.substr(f.library.rfind('/') + 1);
  }
  std::string key = pf.function + '\0' + pf.file + '\0' + std::to_string(pf.line);
  auto [it, added] = native_ids_.try_emplace(key, 0);
  if (added) it->second = profile.intern(pf);
  return it->second;
}

void TargetSampler::record(Profile& profile, SamplerStats& st, const RawThread& t, int tid) {
  stack_.clear();
  if (root_) stack_.push_back(*root_);
  if (opts_.threads) stack_.push_back(thread_root(profile, t, tid));
  size_t base = stack_.size();
  if (t.walk.at_limit) stack_.push_back(profile.intern({ProfileFrame::Kind::Python, "(deeper frames not read)", "", -1}));
  // The Python frames, innermost first, with the C-level evaluation call each belongs to.
  python_ids_.clear();
  eval_calls_.clear();
  const Facts& facts = py_.layout().facts();
  int call = 0;
  for (size_t i = 0; i < t.walk.frames.size(); ++i) {
    const RawFrame* f = &t.walk.frames[i];
    if (is_shim(facts, *f)) continue;
    // Which C-level call runs each frame matters only to place them among C frames.
    bool ends = opts_.native && ends_eval_call(facts, t.walk.frames, i);
    auto where = decoder_.locate(*f);
    if (where && !where->code->complete && !maps_fresh_) {
      // A code object, or its name, file or line table, outside the maps read last (a new
      // arena): read them again, once an instant, and the code object with them.
      mem_.refresh_maps();
      maps_at_ = Clock::now();
      maps_fresh_ = true;
      decoder_.forget(f->code);
      where = decoder_.locate(*f);
    }
    if (ends) ++call;
    if (!where) continue;
    const CodeInfo& c = *where->code;
    int line = opts_.by_function ? -1 : where->line;
    uint64_t key = c.serial << 32 | static_cast<uint32_t>(line + 1);
    auto [it, added] = frame_ids_.try_emplace(key, 0);
    if (added) {
      ProfileFrame pf;
      if (c.valid) {
        pf.function = c.qualname.empty() ? c.name : c.qualname;
        pf.file = c.file;
      } else {
        pf.function = pf.file = "???";
      }
      // By function, a function is named with its first line: two functions of one name in one
      // file stay apart.
      pf.line = opts_.by_function ? (c.valid ? c.first_line : -1) : line;
      it->second = profile.intern(pf);
    }
    python_ids_.push_back(it->second);
    if (opts_.native) eval_calls_.push_back(call - (ends ? 1 : 0));
  }
  auto cap = opts_.native ? captures_.find(tid) : captures_.end();
  if (cap != captures_.end()) {
    if (!unwinder_) {
      unwinder_ = std::make_unique<NativeUnwinder>(pid(), mem_);
      if (!opts_.native_all) unwinder_->name_only(facts.eval_function);
    }
    NativeStack ns = unwinder_->unwind(cap->second, std::min<size_t>(opts_.max_frames, 4096));  // deeper: a loop
    int unplaced = 0;
    auto order = merge_order(eval_calls_, ns, facts.eval_function, opts_.native_all, &unplaced);
    for (auto m = order.rbegin(); m != order.rend(); ++m)
      stack_.push_back(m->python ? python_ids_[m->index] : native_id(profile, ns.frames[m->index]));
    if (python_ids_.empty() && order.empty()) return;
  } else {
    if (python_ids_.empty()) return;  // no Python frame (a thread starting or ending)
    stack_.insert(stack_.end(), python_ids_.rbegin(), python_ids_.rend());
  }
  if (stack_.size() == base) return;
  profile.add(stack_);
  ++st.thread_samples;
}

bool TargetSampler::sample(Profile& profile, SamplerStats& st) {
  try {
    auto now = Clock::now();
    maps_fresh_ = false;
    if (now - maps_at_ > std::chrono::seconds(1) || (unreadable_ && now - maps_at_ > std::chrono::milliseconds(100))) {
      // New thread stacks, arenas and data-stack chunks are new mappings; reads check the maps.
      mem_.refresh_maps();
      maps_at_ = now;
      maps_fresh_ = true;
      unreadable_ = false;
    }
    // The kernel's view first: once stopped by a pause every thread says 't'.
    std::unordered_map<int, char> before;
    if (!opts_.idle)
      for (auto& [tid, f] : stats_) before[tid] = f->state();

    // Blocks of 1 KiB: frames, thread states and code objects are small and scattered; whole
    // pages would copy four times the bytes at each instant.
    constexpr size_t kBlock = 1024;
    CachedMemory cache(mem_, &mem_.maps(), kBlock);
    view_.set(cache);
    std::vector<RawThread> raw;
    {
      std::optional<ProcessPause> pause;
      if (opts_.blocking) pause.emplace(pid());
      cache.prefetch(warm_);
      raw = walk(cache, st);
      captures_.clear();
      if (pause && opts_.native)
        for (const auto& th : pause->threads())
          if (th->stopped())
            if (auto c = capture_native(*th, mem_)) captures_.emplace(th->tid(), std::move(*c));
      if (pause) {
        pause->resume();
        st.pause_s += std::chrono::duration<double>(pause->duration()).count();
      }
    }
    // Code objects, names and line tables do not change while the threads run on.
    decoder_.next_generation();
    bool any = false, gil = false;
    std::set<int> alive;
    for (const auto& t : raw) {
      int tid = tid_of(t);
      alive.insert(tid);
      gil = gil || t.holds_gil;
      if (t.walk.truncated && !t.walk.at_limit) {
        // Unreadable memory or a chain that changed under the read: counted, not recorded.
        ++st.failed;
        unreadable_ = true;
        continue;
      }
      if (t.holds_gil) ++st.gil_samples;
      if (!opts_.idle && idle_state(state_of(tid, before))) {
        if (!t.walk.frames.empty()) ++st.idle_samples;
        continue;
      }
      size_t n = st.thread_samples;
      record(profile, st, t, tid);
      any = any || st.thread_samples > n;
    }
    if (gil) ++st.gil_instants;
    if (!any) {
      ++st.empty;
      // Nothing read at all: a process that ended (a zombie's memory may read as empty lists).
      if (raw.empty() && !Process::is_alive(pid())) return false;
    }
    // Forget threads that ended.
    for (auto it = stats_.begin(); it != stats_.end();)
      it = alive.count(it->first) ? std::next(it) : stats_.erase(it);
    warm_ = cache.used_blocks();
    view_.set(mem_);
    return true;
  } catch (const Error& e) {
    view_.set(mem_);
    if (e.code() == ErrorCode::TargetExited || !Process::is_alive(pid())) return false;
    LOG_DEBUG("sample of " << pid() << " failed: " << e.what());
    ++st.failed;
    unreadable_ = true;
    return true;
  }
}

std::string Sampler::process_label(int pid, const std::string& cmdline) {
  return "Process " + std::to_string(pid) + ": " + short_command(cmdline);
}

Sampler::Sampler(const SamplerOptions& opts, Profile& profile) : opts_(opts), profile_(profile) {
  stats_.rate_hz = opts.rate_hz;
}

Sampler::~Sampler() = default;

bool Sampler::add_target(int pid, bool when_ready) {
  auto t = std::make_unique<TargetSampler>(pid, opts_, profile_);
  if (when_ready && !t->ready()) return false;
  targets_.push_back(std::move(t));
  seen_.insert(pid);
  if (profile_.python.empty()) profile_.python = "CPython " + targets_.back()->version();
  return true;
}

bool Sampler::child_exited() {
  if (!opts_.child || child_status_) return child_status_.has_value();
  int status = 0;
  pid_t r = waitpid(opts_.child, &status, WNOHANG);
  if (r == opts_.child) {
    child_status_ = status;
  } else if (r < 0 && errno == ECHILD) {
    // A pause reaped it (the main thread of a traced child reports its exit to the tracer).
    if (auto s = reaped_exit_status(opts_.child)) child_status_ = *s;
    else child_status_ = 0;
  }
  return child_status_.has_value();
}

namespace {
// The children of every thread of `pid` (/proc/PID/task/TID/children).
std::vector<int> children_of(int pid) {
  std::vector<int> out;
  for (int tid : Process::list_tids(pid)) {
    auto text = read_proc_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/children");
    if (!text) continue;
    std::istringstream in(*text);
    int c;
    while (in >> c) out.push_back(c);
  }
  return out;
}
}  // namespace

void Sampler::find_descendants() {
  std::vector<int> todo;
  for (const auto& t : targets_) todo.push_back(t->pid());
  std::set<int> visited;
  while (!todo.empty()) {
    int p = todo.back();
    todo.pop_back();
    if (!visited.insert(p).second) continue;
    for (int c : children_of(p)) {
      todo.push_back(c);
      bool sampled = false;
      for (const auto& t : targets_) sampled = sampled || t->pid() == c;
      if (sampled) continue;
      // A child that is not Python yet may be about to exec it: a few tries, then left alone.
      int& tries = tries_[c];
      if (tries >= 10) continue;
      ++tries;
      try {
        if (add_target(c, true)) LOG_INFO("sampling subprocess " << c);
      } catch (const Error& e) {
        LOG_DEBUG("subprocess " << c << " not sampled: " << e.what());
      }
    }
  }
}

void Sampler::sample_all() {
  for (size_t i = 0; i < targets_.size();) {
    if (targets_[i]->sample(profile_, stats_)) {
      ++i;
      continue;
    }
    LOG_INFO("process " << targets_[i]->pid() << " exited");
    targets_.erase(targets_.begin() + static_cast<long>(i));
  }
}

void Sampler::run(const volatile std::sig_atomic_t& stop, std::chrono::milliseconds interval,
                  const std::function<bool(bool last)>& report) {
  const auto period = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / opts_.rate_hz));
  const auto start = Clock::now();
  const double cpu0 = cpu_seconds();
  auto next_report = start + interval;
  auto next_scan = start;
  auto deadline = opts_.duration_s > 0
                      ? start + std::chrono::nanoseconds(static_cast<int64_t>(opts_.duration_s * 1e9))
                      : Clock::time_point::max();
  uint64_t n = 0;  // instants since start: the n-th is due at start + n * period (no drift)
  auto update = [&](Clock::time_point now) {
    stats_.duration_s = std::chrono::duration<double>(now - start).count();
    stats_.cpu_s = cpu_seconds() - cpu0;
  };
  bool go_on = true;
  while (go_on && !stop) {
    auto due = start + n * period;
    if (due >= deadline) break;
    auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(due.time_since_epoch()).count();
    timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
    // steady_clock is CLOCK_MONOTONIC on Linux. A signal ends the sleep early (stop is then set).
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR)
      if (stop) break;
    if (opts_.realtime && Clock::now() > due + period / 2) {
      // Behind under the real-time scheduler: sleep a little anyway, so that pyinspect never
      // keeps a CPU from everything else.
      timespec pause_ts{0, 50000};
      nanosleep(&pause_ts, nullptr);
    }
    if (stop) break;
    if (opts_.subprocesses && Clock::now() >= next_scan) {
      find_descendants();
      next_scan = Clock::now() + std::chrono::milliseconds(200);
    }
    ++stats_.ticks;
    ++stats_.taken;
    sample_all();
    ++n;
    auto now = Clock::now();
    if (now > start + n * period) {
      // Behind: an instant due less than a period ago is taken now, late; those further in the
      // past are missed (counted), not taken in a burst.
      auto late = static_cast<uint64_t>((now - (start + n * period)) / period);
      stats_.missed += late;
      stats_.ticks += late;
      n += late;
    }
    if (targets_.empty() || child_exited()) break;
    if (now >= next_report) {
      update(now);
      go_on = report(false);
      next_report = now + interval;
    }
  }
  update(Clock::now());
  // A child that is done: its status, waiting a little for it if it was just ending.
  if (opts_.child && targets_.empty())
    for (int i = 0; i < 200 && !child_exited(); ++i) usleep(5000);
  report(true);
}

}  // namespace pyinspect
