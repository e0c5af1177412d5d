#include "runtime/locks.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "base/error.hpp"
#include "base/log.hpp"
#include "runtime/values.hpp"

namespace pyinspect {

int exception_depth(const std::vector<uint8_t>& table, int64_t offset) {
  // Entries of four varints (start, size, target, depth << 1 | lasti), 6 bits a byte, most
  // significant first, 0x40 meaning "more follows"; 0x80 marks the first byte of an entry.
  // Entries do not overlap: each range names its innermost handler.
  size_t i = 0;
  auto varint = [&](uint64_t& v) {
    if (i >= table.size()) return false;
    uint8_t b = table[i++];
    v = b & 63;
    while (b & 64) {
      if (i >= table.size() || v > (uint64_t(1) << 40)) return false;
      b = table[i++];
      v = (v << 6) | (b & 63);
    }
    return true;
  };
  while (i < table.size()) {
    if (!(table[i] & 0x80)) return 0;  // not the start of an entry: not a table we understand
    uint64_t start, size, target, dl;
    if (!varint(start) || !varint(size) || !varint(target) || !varint(dl)) return 0;
    if (offset >= static_cast<int64_t>(start) && offset < static_cast<int64_t>(start + size))
      return static_cast<int>(std::min<uint64_t>(dl >> 1, 1 << 16));
  }
  return 0;
}

std::vector<std::vector<int>> wait_cycles(const std::vector<std::pair<int, int>>& edges, const std::vector<int>& order) {
  std::map<int, int> next;
  for (auto [a, b] : edges) next.emplace(a, b);  // a thread waits for one thing at a time
  std::vector<std::vector<int>> cycles;
  std::set<int> done;
  for (int start : order) {
    if (done.count(start)) continue;
    // Follow the chain from `start`; a cycle is found when the walk meets a thread it passed.
    std::vector<int> path;
    std::map<int, size_t> at;
    int cur = start;
    while (next.count(cur) && !done.count(cur) && !at.count(cur)) {
      at[cur] = path.size();
      path.push_back(cur);
      cur = next[cur];
    }
    if (at.count(cur)) {
      std::vector<int> cycle(path.begin() + static_cast<long>(at[cur]), path.end());
      // From its member listed first.
      auto first = std::min_element(cycle.begin(), cycle.end(), [&](int a, int b) {
        return std::find(order.begin(), order.end(), a) < std::find(order.begin(), order.end(), b);
      });
      std::rotate(cycle.begin(), first, cycle.end());
      cycles.push_back(cycle);
    }
    done.insert(path.begin(), path.end());
  }
  return cycles;
}

namespace {

// The file name of a path, lowercased (2.7's Queue.py is 3.x's queue.py) unless !lower.
std::string base_name(const std::string& p, bool lower = true) {
  size_t s = p.rfind('/');
  std::string b = s == std::string::npos ? p : p.substr(s + 1);
  if (!lower) return b;
  std::transform(b.begin(), b.end(), b.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return b;
}

// threading's classes are _Condition, _Event... in 2.7 and Condition, Event... in 3.x.
std::string unprefixed(std::string s) {
  while (!s.empty() && s[0] == '_') s.erase(0, 1);
  return s;
}

constexpr size_t kMaxStack = 4096;     // value-stack slots read per frame
constexpr size_t kMaxAttrs = 64;       // attributes of an instance looked at
constexpr size_t kMaxGlobals = 4096;   // a module's globals looked at
constexpr size_t kSearchFrames = 4;    // frames of a waiter searched for the lock it waits on
constexpr size_t kHoldFrames = 256;    // frames of each thread searched for with-blocks

// One frame's variables and value stack, read once.
struct FrameView {
  std::vector<FrameSlot> slots;
  std::vector<RemoteAddr> stack;  // co_stacksize slots; only [0, live) are sure to be live
  size_t live = 0;
  RemoteAddr globals;
};

enum class LockKind { None, Lock, RLock };

class Analysis {
 public:
  Analysis(const ObjectReader& r, std::vector<WaitInput>& threads, StackSnapshot& snap)
      : r_(r), l_(r.layout()), t_(r.types()), m_(r.memory()), threads_(threads), snap_(snap) {}

  void run() {
    for (auto& w : threads_) {
      if (w.info->thread_id) ident_to_tid_[w.info->thread_id] = w.info->native_id;
    }
    for (size_t i = 0; i < threads_.size(); ++i) {
      try {
        find_holds(i);
      } catch (const Error& e) {  // a fact the layout lacks: this thread's holds stay unknown
        if (e.code() == ErrorCode::TargetExited) throw;
        LOG_DEBUG("what thread " << threads_[i].info->native_id << " holds: " << e.what());
      }
    }
    for (size_t i = 0; i < threads_.size(); ++i) {
      if (!threads_[i].futex) continue;
      try {
        threads_[i].info->waiting_for = what_it_waits_for(i);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::TargetExited) throw;
        LOG_DEBUG("what thread " << threads_[i].info->native_id << " waits for: " << e.what());
      }
    }
    std::vector<std::pair<int, int>> edges;
    std::vector<int> order;
    for (const auto& t : snap_.threads) order.push_back(t.native_id);
    for (const auto& w : threads_)
      if (w.info->waiting_for && w.info->waiting_for->held_by && w.info->native_id)
        edges.emplace_back(w.info->native_id, w.info->waiting_for->held_by);
    snap_.deadlocks = wait_cycles(edges, order);
    snap_.waits_read = true;
  }

 private:
  // --- objects ---
  std::string type_name_of(RemoteAddr obj) {
    auto type = r_.type_of(obj);
    if (!type) return "";
    auto it = type_names_.find(*type);
    if (it != type_names_.end()) return it->second;
    std::string name = r_.type_name(*type).value_or("");
    type_names_[*type] = name;
    return name;
  }

  LockKind lock_kind(RemoteAddr obj) {
    if (obj.null()) return LockKind::None;
    std::string n = type_name_of(obj);
    if (n == "_thread.lock" || n == "thread.lock") return LockKind::Lock;
    if (n == "_thread.RLock") return LockKind::RLock;
    return LockKind::None;
  }

  std::optional<uint64_t> lock_word(RemoteAddr obj, LockKind k) { return lock_key(m_, l_, obj, k == LockKind::RLock); }

  // The names of the classes of `obj`'s type's MRO, unprefixed ("Condition", "Thread", "object").
  std::vector<std::string> mro_names(RemoteAddr obj) {
    std::vector<std::string> out;
    auto type = r_.type_of(obj);
    if (!type) return out;
    if (!t_.instance27.null() && *type == t_.instance27) {  // 2.7 classic classes (Queue.Queue)
      auto cls = m_.read_ptr(obj + l_.require(F::inst_class));
      if (cls) classic_names(*cls, out, 0);
      return out;
    }
    auto mro = m_.read_ptr(*type + l_.require(F::tp_mro));
    int64_t n = mro && !mro->null() ? m_.read_as<int64_t>(*mro + l_.require(F::ob_size)).value_or(0) : 0;
    if (n <= 0 || n > 64) {
      out.push_back(unprefixed(type_name_of(obj)));
      return out;
    }
    for (int64_t i = 0; i < n; ++i)
      if (auto item = m_.read_ptr(*mro + l_.require(F::tuple_item) + i * 8))
        if (auto name = r_.type_name(*item)) out.push_back(unprefixed(*name));
    return out;
  }

  void classic_names(RemoteAddr cls, std::vector<std::string>& out, int depth) {
    std::set<RemoteAddr> seen;
    int budget = 256;  // classes visited in all, whatever the bases say
    classic_names(cls, out, depth, seen, budget);
  }
  void classic_names(RemoteAddr cls, std::vector<std::string>& out, int depth, std::set<RemoteAddr>& seen,
                     int& budget) {
    if (depth > 16 || out.size() > 64 || --budget < 0 || !seen.insert(cls).second) return;
    auto name = m_.read_ptr(cls + l_.require(F::class_name));
    if (auto s = name ? r_.read_str(*name, 80) : std::nullopt) out.push_back(unprefixed(*s));
    auto bases = m_.read_ptr(cls + l_.require(F::class_bases));
    int64_t n = bases ? m_.read_as<int64_t>(*bases + l_.require(F::ob_size)).value_or(0) : 0;
    for (int64_t i = 0; i < std::min<int64_t>(n, 16); ++i)
      if (auto b = m_.read_ptr(*bases + l_.require(F::tuple_item) + i * 8)) classic_names(*b, out, depth + 1, seen, budget);
  }

  std::optional<RemoteAddr> attr(RemoteAddr obj, std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (auto v = r_.instance_attr(obj, n); v && !v->null()) return v;
    return std::nullopt;
  }

  // Calls fn(name, value) for each instance attribute of `obj`, at most kMaxAttrs.
  void each_attr(RemoteAddr obj, const std::function<bool(const std::string&, RemoteAddr)>& fn) {
    auto type = r_.type_of(obj);
    if (!type) return;
    auto shape = r_.type_shape(*type);
    // Instances of classes written in Python (2.7's classic ones too).
    bool classic = !t_.instance27.null() && *type == t_.instance27;
    if (!shape || (!(shape->flags & tpflags::kHeapType) && !classic)) return;
    auto storage = r_.instance_storage(obj, *shape);
    if (!storage) return;
    size_t seen = 0;
    auto each = [&](RemoteAddr k, RemoteAddr v) {
      if (++seen > kMaxAttrs) return false;
      auto key = r_.read_str(k, 80);
      return key ? fn(*key, v) : true;
    };
    if (!storage->dict.null())
      r_.dict_items(storage->dict, each);
    else if (!storage->keys.null() && !storage->values.null())
      r_.keys_values_items(storage->keys, storage->values, each);
  }

  // The object a bound method is bound to, and the method's name; nullopt for anything else.
  std::optional<std::pair<RemoteAddr, std::string>> bound(RemoteAddr v) {
    auto type = r_.type_of(v);
    if (!type) return std::nullopt;
    if (*type == t_.cfunction || (!t_.cmethod.null() && *type == t_.cmethod)) {
      auto self = m_.read_ptr(v + l_.require(F::cfunc_self));
      auto ml = m_.read_ptr(v + l_.require(F::cfunc_ml));
      auto name = ml ? m_.read_ptr(*ml + l_.require(F::ml_name)) : std::nullopt;
      auto s = name ? m_.read_cstring(*name, 64) : std::nullopt;
      if (self && !self->null() && s) return std::make_pair(*self, *s);
    } else if (*type == t_.method) {
      auto self = m_.read_ptr(v + l_.require(F::meth_self));
      auto func = m_.read_ptr(v + l_.require(F::meth_func));
      auto name = func ? m_.read_ptr(*func + l_.require(F::func_name)) : std::nullopt;
      auto s = name ? r_.read_str(*name, 64) : std::nullopt;
      if (self && !self->null() && s) return std::make_pair(*self, *s);
    }
    return std::nullopt;
  }

  // --- frames ---
  FrameView& view(size_t thread, size_t frame) {
    auto key = std::make_pair(thread, frame);
    auto it = views_.find(key);
    if (it != views_.end()) return it->second;
    FrameView& v = views_[key];
    const RawFrame& f = threads_[thread].frames[frame];
    try {
      v.slots = frame_slots(r_, f);
      read_stack(f, v);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::TargetExited) throw;
      LOG_DEBUG("frame " << log::hex(f.frame.value()) << ": " << e.what());
    }
    return v;
  }

  void read_stack(const RawFrame& f, FrameView& v) {
    const Facts& facts = l_.facts();
    bool objects = facts.frames == Facts::Frames::FrameObjects;
    int64_t size = m_.read_as<int32_t>(f.code + l_.require(F::co_stacksize)).value_or(0);
    size = std::clamp<int64_t>(size, 0, kMaxStack);
    RemoteAddr base;
    if (objects) {
      auto vs = m_.read_ptr(f.frame + l_.require(F::fo_valuestack));
      if (!vs) return;
      base = *vs;
      if (l_.has(F::fo_globals)) v.globals = m_.read_ptr(f.frame + l_.off(F::fo_globals)).value_or(RemoteAddr());
      // Live: below the level of every block set up (a with-block's __exit__ sits just under it).
      int32_t iblock = std::clamp<int32_t>(m_.read_as<int32_t>(f.frame + l_.require(F::fo_iblock)).value_or(0), 0, 20);
      int64_t bsize = l_.require(S::sz_PyTryBlock);
      for (int32_t i = 0; i < iblock; ++i) {
        auto level = m_.read_as<int32_t>(f.frame + l_.require(F::fo_blockstack) + i * bsize + l_.require(F::tryblock_level));
        if (level && *level > 0) v.live = std::max<size_t>(v.live, static_cast<size_t>(*level));
      }
    } else {
      int64_t n = m_.read_as<int32_t>(f.code + l_.require(F::co_nlocalsplus)).value_or(-1);
      if (n < 0 || n > 100000) return;
      base = f.frame + l_.require(F::if_localsplus) + n * 8;
      if (l_.has(F::if_globals)) v.globals = m_.read_ptr(f.frame + l_.off(F::if_globals)).value_or(RemoteAddr());
      auto table = m_.read_ptr(f.code + l_.require(F::co_exceptiontable));
      auto bytes = table ? r_.read_bytes_object(*table, 1 << 16) : std::nullopt;
      int64_t offset = (f.instr - (f.code + l_.require(F::co_code_adaptive))) / 2;
      if (bytes) v.live = static_cast<size_t>(exception_depth(*bytes, offset));
    }
    // What is live is only as much as was read: nothing of a stack that could not be read.
    size_t live = v.live;
    v.live = 0;
    std::vector<uint64_t> raw(static_cast<size_t>(size));
    if (size > 0 && !m_.read(base, raw.data(), raw.size() * 8)) return;
    for (uint64_t x : raw) v.stack.push_back(facts.untag(x));
    v.live = std::min(live, v.stack.size());
  }

  // Where `obj` is referenced from, as a person would name it: a variable of the frame, an
  // attribute of one ("Worker._lock"), or a global of its module ("__main__.ledger_lock").
  std::string name_in(FrameView& v, RemoteAddr obj) {
    for (const auto& s : v.slots)
      if (s.value == obj) return s.name;
    std::string found;
    for (const auto& s : v.slots) {
      if (s.value.null() || !found.empty()) continue;
      each_attr(s.value, [&](const std::string& k, RemoteAddr val) {
        if (val != obj) return true;
        found = unprefixed_class(s.value) + "." + k;
        return false;
      });
    }
    if (!found.empty()) return found;
    return global_name(v.globals, obj);
  }

  std::string unprefixed_class(RemoteAddr obj) {
    std::string n = type_name_of(obj);
    size_t dot = n.rfind('.');
    return dot == std::string::npos ? n : n.substr(dot + 1);
  }

  std::string global_name(RemoteAddr globals, RemoteAddr obj) {
    if (globals.null()) return "";
    std::string found;
    size_t seen = 0;
    r_.dict_items(globals, [&](RemoteAddr k, RemoteAddr val) {
      if (++seen > kMaxGlobals) return false;
      if (val != obj) return true;
      found = r_.read_str(k, 80).value_or("?");
      return false;
    });
    if (found.empty()) return "";
    auto mod = r_.dict_get(globals, "__name__");
    auto modname = mod ? r_.read_str(*mod, 80) : std::nullopt;
    return (modname ? *modname + "." : std::string()) + found;
  }

  // The name of `obj` from the frames of thread `t`, starting at frame `from`.
  std::string name_from(size_t t, size_t from, RemoteAddr obj) {
    for (size_t i = from; i < threads_[t].frames.size() && i < from + kSearchFrames; ++i) {
      std::string n = name_in(view(t, i), obj);
      if (!n.empty() && n != "self") return n;
    }
    return "";
  }

  const FrameInfo* info_frame(size_t t, size_t i) {
    // info->frames holds the decoded Python frames in the same order (native ones merged in).
    size_t k = 0;
    for (const auto& f : threads_[t].info->frames) {
      if (f.is_native()) continue;
      if (k++ == i) return &f;
    }
    return nullptr;
  }

  // --- holders: with-blocks live in each thread's frames ---
  void find_holds(size_t t) {
    auto& w = threads_[t];
    // Condition.wait releases the condition's lock while it waits: the with-block around the
    // wait does not hold it then.
    std::set<RemoteAddr> waited;
    for (size_t i = 0; i < w.frames.size() && i < kSearchFrames; ++i) {
      const FrameInfo* fi = info_frame(t, i);
      if (!fi || base_name(fi->file) != "threading.py") break;
      if (fi->name != "wait" && fi->name != "wait_for") continue;
      for (const auto& slot : view(t, i).slots)
        if (slot.name == "self" && !slot.value.null()) {
          auto names = mro_names(slot.value);
          if (std::find(names.begin(), names.end(), "Condition") != names.end()) waited.insert(slot.value);
        }
    }
    for (size_t i = 0; i < w.frames.size() && i < kHoldFrames; ++i) {
      FrameView& v = view(t, i);
      for (size_t k = 0; k < v.live; ++k) {
        auto b = bound(v.stack[k]);
        if (!b || b->second != "__exit__") continue;
        RemoteAddr lock = b->first;
        LockKind kind = lock_kind(lock);
        if (kind == LockKind::None) {
          // A with-block on a Condition holds its lock.
          auto names = mro_names(lock);
          if (std::find(names.begin(), names.end(), "Condition") == names.end() || waited.count(lock)) continue;
          auto inner = attr(lock, {"_lock", "_Condition__lock"});
          if (!inner) continue;
          lock = *inner;
          kind = lock_kind(lock);
          if (kind == LockKind::None) continue;
        }
        HeldLock h;
        h.kind = kind == LockKind::RLock ? "RLock" : "Lock";
        h.address = lock.value();
        h.name = name_in(v, lock);
        if (const FrameInfo* fi = info_frame(t, i)) {
          h.file = fi->file;
          h.line = fi->line;
          h.function = fi->function;
        }
        bool dup = std::any_of(w.info->holds.begin(), w.info->holds.end(),
                               [&](const HeldLock& o) { return o.address == h.address; });
        if (!dup) w.info->holds.push_back(std::move(h));
      }
    }
  }

  int tid_of_ident(uint64_t ident) {
    auto it = ident_to_tid_.find(ident);
    return it == ident_to_tid_.end() ? 0 : it->second;
  }

  void set_holder(WaitInfo& wi, int tid) {
    wi.held_by = tid;
    for (const auto& t : snap_.threads)
      if (t.native_id == tid) wi.held_by_name = t.name;
  }

  // --- what one thread waits for ---
  std::optional<WaitInfo> what_it_waits_for(size_t t) {
    auto& w = threads_[t];
    uint64_t futex = *w.futex;
    WaitInfo wi;
    wi.futex = futex;
    if (w.gil_words && futex >= w.gil_words->first.value() && futex < w.gil_words->second.value()) {
      wi.kind = "GIL";
      // The holder of the same GIL (subinterpreters may share one: 3.7-3.11, and 3.12+ without
      // a GIL of their own).
      for (const auto& o : threads_)
        if (o.info->holds_gil && o.gil_words == w.gil_words) set_holder(wi, o.info->native_id);
      wi.certainty = wi.held_by ? "certain" : "unknown";
      wi.how = wi.held_by ? "the GIL's holder" : "no thread holds the GIL now (it is being handed over)";
      return wi;
    }
    // The lock it sleeps for: the word, or where its parking-lot entry says it parked.
    std::optional<uint64_t> key = parked_key(m_, l_, futex);
    if (w.futex_guessed) {  // restart_syscall: believed only if a lock of its frames owns the word
      WaitInfo probe;
      if (!key || !lock_by_futex(t, *key, probe)) return std::nullopt;
    }
    if (recognised_call(t, wi)) return wi;
    if (key && lock_by_futex(t, *key, wi)) return wi;
    wi.kind = "futex";
    wi.certainty = "unknown";
    wi.how = "no lock found from its frames sleeps on this futex word (a lock of C code?)";
    return wi;
  }

  // The threading or queue call the thread is in (the outermost of those its innermost frames
  // are in): Condition.wait, Event.wait, Semaphore.acquire, Barrier.wait, Thread.join, a Python
  // RLock's acquire, Queue.get/put/join.
  bool recognised_call(size_t t, WaitInfo& wi) {
    auto& w = threads_[t];
    struct Call {
      const char* cls;
      std::initializer_list<const char*> methods;
      const char* kind;
      const char* how;
    };
    static const Call calls[] = {
        {"Condition", {"wait", "wait_for"}, "Condition", "waits for notify(): no thread holds it"},
        {"Event", {"wait"}, "Event", "waits for set(): no thread holds it"},
        {"BoundedSemaphore", {"acquire", "__enter__"}, "BoundedSemaphore", "waits for release(): holders are not recorded"},
        {"Semaphore", {"acquire", "__enter__"}, "Semaphore", "waits for release(): holders are not recorded"},
        {"Barrier", {"wait", "_enter", "_wait"}, "Barrier", "waits for the other parties: no thread holds it"},
        {"Thread", {"join", "_wait_for_tstate_lock"}, "Thread", "waits for the thread to finish"},
        {"RLock", {"acquire", "__enter__"}, "RLock", "its owner"},
        {"Queue", {"get", "put", "join"}, "Queue", ""},
    };
    std::optional<size_t> found_frame;
    const Call* found = nullptr;
    RemoteAddr self;
    for (size_t i = 0; i < w.frames.size(); ++i) {
      const FrameInfo* fi = info_frame(t, i);
      if (!fi) break;
      std::string file = base_name(fi->file);
      if (file != "threading.py" && file != "queue.py") break;
      FrameView& v = view(t, i);
      RemoteAddr s;
      for (const auto& slot : v.slots)
        if (slot.name == "self") s = slot.value;
      if (s.null()) continue;
      auto mro = mro_names(s);
      for (const Call& c : calls) {
        if (std::find(mro.begin(), mro.end(), c.cls) == mro.end()) continue;
        if (std::none_of(c.methods.begin(), c.methods.end(), [&](const char* m) { return fi->name == m; })) continue;
        found = &c;
        found_frame = i;
        self = s;
        break;
      }
    }
    if (!found) return false;
    wi.kind = found->kind;
    wi.type = unprefixed_class(self);
    wi.address = self.value();
    wi.name = name_from(t, *found_frame + 1, self);
    wi.how = found->how;
    wi.certainty = "none";
    if (wi.kind == "Queue") {
      const std::string& m = info_frame(t, *found_frame)->name;
      wi.how = m == "get" ? "waits for an item: no thread holds it"
               : m == "put" ? "waits for a free slot: no thread holds it"
                            : "waits for task_done() of every item: no thread holds it";
    } else if (wi.kind == "Thread") {
      auto ident = attr(self, {"_ident", "_Thread__ident"});
      auto id = ident ? r_.read_int(*ident) : std::nullopt;
      int tid = id ? tid_of_ident(static_cast<uint64_t>(*id)) : 0;
      if (tid) set_holder(wi, tid);
      wi.certainty = tid ? "certain" : "unknown";
      wi.how = tid ? "the thread joined" : "the thread joined is not among the live threads";
    } else if (wi.kind == "RLock") {
      auto owner = attr(self, {"_owner", "_RLock__owner"});
      auto id = owner && RemoteAddr(*owner) != t_.none ? r_.read_int(*owner) : std::nullopt;
      int tid = id ? tid_of_ident(static_cast<uint64_t>(*id)) : 0;
      if (tid) set_holder(wi, tid);
      wi.certainty = tid ? "certain" : "unknown";
      wi.how = tid ? "its owner" : "it records no owner among the live threads";
      if (tid) add_owned(tid, "RLock", self, wi.name);
    }
    return true;
  }

  // A _thread lock referenced from the waiter's innermost frames (their variables, attributes of
  // those, the value stack, the module's globals) whose sem_t is the futex word it sleeps on.
  bool lock_by_futex(size_t t, uint64_t futex, WaitInfo& wi) {
    auto& w = threads_[t];
    std::optional<RemoteAddr> lock;
    LockKind kind = LockKind::None;
    std::set<RemoteAddr> tried;
    auto check = [&](RemoteAddr v) {
      if (v.null() || !tried.insert(v).second) return false;
      LockKind k = lock_kind(v);
      if (k == LockKind::None) return false;
      if (lock_word(v, k) != std::optional<uint64_t>(futex)) return false;
      lock = v;
      kind = k;
      return true;
    };
    size_t where = 0;
    for (size_t i = 0; i < w.frames.size() && i < kSearchFrames && !lock; ++i) {
      FrameView& v = view(t, i);
      where = i;
      for (const auto& s : v.slots)
        if (check(s.value)) break;
      for (size_t k = 0; k < v.stack.size() && !lock; ++k) {
        if (check(v.stack[k])) break;
        if (auto b = bound(v.stack[k]); b && check(b->first)) break;
      }
      for (const auto& s : v.slots) {
        if (lock || s.value.null()) continue;
        each_attr(s.value, [&](const std::string&, RemoteAddr val) { return !check(val); });
      }
      if (!lock && !v.globals.null()) {
        size_t seen = 0;
        r_.dict_items(v.globals, [&](RemoteAddr, RemoteAddr val) { return ++seen <= kMaxGlobals && !check(val); });
      }
    }
    if (!lock) return false;
    wi.kind = kind == LockKind::RLock ? "RLock" : "Lock";
    wi.type = type_name_of(*lock);
    wi.address = lock->value();
    wi.name = name_in(view(t, where), *lock);
    if (wi.name.empty() || wi.name == "self") wi.name = name_from(t, 0, *lock);
    if (kind == LockKind::RLock) {
      auto owner = m_.read_as<uint64_t>(*lock + l_.require(F::rlock_owner));
      auto count = m_.read_as<uint64_t>(*lock + l_.require(F::rlock_count));
      bool held = owner && *owner && (l_.facts().rlock_held_by_owner || (count && *count));
      int tid = held ? tid_of_ident(*owner) : 0;
      if (tid) {
        set_holder(wi, tid);
        add_owned(tid, "RLock", *lock, wi.name);
      }
      wi.certainty = tid ? "certain" : "unknown";
      wi.how = tid ? "its owner" : "it records no owner among the live threads";
      return true;
    }
    std::vector<std::pair<int, const HeldLock*>> holders;
    for (const auto& o : threads_)
      for (const auto& h : o.info->holds)
        if (h.address == wi.address) holders.emplace_back(o.info->native_id, &h);
    if (holders.size() == 1) {
      set_holder(wi, holders[0].first);
      const HeldLock& h = *holders[0].second;
      wi.certainty = "likely";
      wi.how = "inside a with-block on it at " + base_name(h.file, false) + ":" + std::to_string(h.line) + " (" + h.function + ")";
    } else if (holders.empty()) {
      wi.certainty = "unknown";
      wi.how = "no thread's frames hold it in a with-block (taken with acquire(), or by C code?)";
    } else {
      wi.certainty = "unknown";
      wi.how = "with-blocks on it in " + std::to_string(holders.size()) + " threads' frames";
    }
    return true;
  }

  void add_owned(int tid, const char* kind, RemoteAddr lock, const std::string& name) {
    for (auto& o : threads_) {
      if (o.info->native_id != tid) continue;
      for (auto& h : o.info->holds)
        if (h.address == lock.value()) return;
      HeldLock h;
      h.kind = kind;
      h.address = lock.value();
      h.name = name;
      o.info->holds.push_back(std::move(h));
    }
  }

  const ObjectReader& r_;
  const Layout& l_;
  const TypeAddrs& t_;
  const Memory& m_;
  std::vector<WaitInput>& threads_;
  StackSnapshot& snap_;
  std::map<std::pair<size_t, size_t>, FrameView> views_;
  std::map<RemoteAddr, std::string> type_names_;
  std::map<uint64_t, int> ident_to_tid_;
};

}  // namespace

std::optional<uint64_t> parked_key(const Memory& m, const Layout& l, uint64_t futex) {
  if (l.facts().lock_wait == Facts::LockWait::SemaphorePointer) return futex;
  if (!l.has(F::wait_entry_addr) || !l.has(F::wait_entry_sema)) return std::nullopt;
  // The word is the start of the entry's semaphore (a sem_t's futex word, glibc).
  auto addr = m.read_as<uint64_t>(RemoteAddr(futex - l.off(F::wait_entry_sema) + l.off(F::wait_entry_addr)));
  if (!addr || !*addr) return std::nullopt;
  return *addr;
}

std::optional<uint64_t> lock_key(const Memory& m, const Layout& l, RemoteAddr lock, bool rlock) {
  F f = rlock ? F::rlock_lock : F::lock_lock;
  if (!l.has(f)) return std::nullopt;
  if (l.facts().lock_wait == Facts::LockWait::ParkingLot) return (lock + l.off(f)).value();
  auto p = m.read_ptr(lock + l.off(f));
  if (!p) return std::nullopt;
  return p->value();
}

void analyse_waits(const ObjectReader& r, std::vector<WaitInput>& threads, StackSnapshot& snap) {
  Analysis(r, threads, snap).run();
}

}  // namespace pyinspect
