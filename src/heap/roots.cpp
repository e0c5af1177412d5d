#include "heap/roots.hpp"

#include "heap/buffers.hpp"

#include <algorithm>

#include "base/error.hpp"
#include "base/log.hpp"
#include "runtime/frames.hpp"
#include "runtime/threads.hpp"

namespace pyinspect {

namespace {
constexpr uint64_t kMaxTracked = uint64_t{1} << 32;  // bound on one GC list walk
constexpr int kGenerations = 3;

// The gc_generation structs of one GC state: three generations (3.14's incremental collector: the
// young one and the two old spaces), then (3.7+) the permanent one.
std::vector<RemoteAddr> generations_at(const Layout& l, RemoteAddr gcstate) {
  std::vector<RemoteAddr> out;
  int64_t sz = l.require(S::sz_gc_generation);
  if (l.has(F::gcs_generations)) {
    for (int i = 0; i < kGenerations; ++i) out.push_back(gcstate + l.off(F::gcs_generations) + i * sz);
  } else {
    out.push_back(gcstate + l.require(F::gcs_young));
    for (int i = 0; i < 2; ++i) out.push_back(gcstate + l.require(F::gcs_old) + i * sz);
  }
  if (l.has(F::gcs_permanent)) out.push_back(gcstate + l.off(F::gcs_permanent));
  return out;
}

// A PyObject* member of a runtime struct as a root, if this build has it and it is set.
void member_root(HeapContext& ctx, RemoteAddr base, F f, RootKind kind, const char* label, ReferentVisitor& visitor) {
  if (!ctx.l.has(f)) return;
  if (auto p = ctx.mem.read_ptr(base + ctx.l.off(f)); p && !p->null())
    visitor.visit(*p, {EdgeKind::Other, -1, {}, label, Hidden::No, kind});
}

void interned_root(HeapContext& ctx, std::optional<RemoteAddr> dict, ReferentVisitor& visitor) {
  if (dict && ctx.reader.has_type(*dict, ctx.t.dict))
    visitor.visit(*dict, {EdgeKind::Other, -1, {}, "interned strings", Hidden::No, RootKind::Interned});
}

// 3.12+: the interpreter's array of static builtin types' state: (type, dict, subclasses) each.
template <class Fn>
void static_types_of(HeapContext& ctx, RemoteAddr interp, Fn&& fn) {
  const Layout& l = ctx.l;
  F type_f = l.has(F::msts_type) ? F::msts_type : F::sbs_type;
  F dict_f = l.has(F::msts_tp_dict) ? F::msts_tp_dict : F::sbs_tp_dict;
  F subs_f = l.has(F::msts_tp_subclasses) ? F::msts_tp_subclasses : F::sbs_tp_subclasses;
  S size_s = l.has(S::sz_managed_static_type_state) ? S::sz_managed_static_type_state : S::sz_static_builtin_state;
  if (!l.has(type_f) || !l.has(dict_f) || !l.has(subs_f) || !l.has(size_s)) return;
  for (auto [array_f, count_f] : {std::pair{F::is_static_types, F::is_static_types_count},
                                  std::pair{F::is_ext_static_types, F::is_ext_static_types_count}}) {
    if (!l.has(array_f) || !l.has(count_f)) continue;
    auto n = ctx.mem.read_as<uint64_t>(interp + l.off(count_f));  // a size_t or an int: small either way
    if (!n) continue;
    uint64_t count = *n & 0xffffffff;
    for (uint64_t i = 0; i < std::min<uint64_t>(count, 1024); ++i) {
      RemoteAddr entry = interp + l.off(array_f) + static_cast<int64_t>(i) * l.size(size_s);
      auto type = ctx.mem.read_ptr(entry + l.off(type_f));
      auto dict = ctx.mem.read_ptr(entry + l.off(dict_f));
      auto subs = ctx.mem.read_ptr(entry + l.off(subs_f));
      if (type && dict && subs) fn(*type, *dict, *subs);
    }
  }
}

// Every aligned word of a runtime struct (the interpreter state, a thread state) that looks like a
// live object, beyond the members named: caches, hooks and state pyinspect has no names for.
void scan_struct(HeapContext& ctx, RemoteAddr base, int64_t size, RootKind kind, const char* label,
                 ReferentVisitor& visitor) {
  if (size <= 0 || size > (int64_t{16} << 20)) return;
  std::vector<uint64_t> words(static_cast<size_t>(size / 8));
  constexpr size_t kBatch = 8192;
  for (size_t first = 0; first < words.size(); first += kBatch) {
    size_t n = std::min(kBatch, words.size() - first);
    if (!ctx.mem.read(base + static_cast<int64_t>(first * 8), words.data() + first, n * 8)) continue;
    for (size_t i = first; i < first + n; ++i)
      visitor.visit(RemoteAddr(words[i]), {EdgeKind::Guess, static_cast<int64_t>(i), {}, label, Hidden::No, kind});
  }
}

void interpreter_roots(HeapContext& ctx, RemoteAddr interp, ReferentVisitor& visitor) {
  static const std::pair<F, const char*> kMembers[] = {
      {F::is_modules, "sys.modules"},
      {F::is_sysdict, "sys"},
      {F::is_builtins, "builtins"},
      {F::is_dict, "interpreter dict"},
      {F::is_modules_by_index, "modules by index"},
      {F::is_importlib, "importlib"},
      {F::is_import_func, "__import__"},
      {F::is_builtins_copy, "builtins copy"},
      {F::is_codec_search_path, "codec search path"},
      {F::is_codec_search_cache, "codec search cache"},
      {F::is_codec_error_registry, "codec error registry"},
      {F::is_before_forkers, "os.register_at_fork"},
      {F::is_after_forkers_parent, "os.register_at_fork"},
      {F::is_after_forkers_child, "os.register_at_fork"},
      {F::is_audit_hooks, "audit hooks"},
  };
  for (auto [f, label] : kMembers) member_root(ctx, interp, f, RootKind::Interpreter, label, visitor);
  // 3.12+: the interned strings belong to the interpreter, and so do static types' dicts.
  if (ctx.l.has(F::is_interned)) interned_root(ctx, ctx.mem.read_ptr(interp + ctx.l.off(F::is_interned)), visitor);
  static_types_of(ctx, interp, [&](RemoteAddr, RemoteAddr dict, RemoteAddr subclasses) {
    for (RemoteAddr p : {dict, subclasses})
      if (!p.null()) visitor.visit(p, {EdgeKind::Other, -1, {}, "static types' dicts", Hidden::No, RootKind::Interpreter});
  });
  if (ctx.l.has(S::sz_PyInterpreterState))
    scan_struct(ctx, interp, ctx.l.size(S::sz_PyInterpreterState), RootKind::Interpreter, "interpreter state", visitor);
}

void thread_roots(HeapContext& ctx, RemoteAddr ts, ReferentVisitor& visitor) {
  static const std::pair<F, const char*> kMembers[] = {
      {F::ts_dict, "thread dict"},
      {F::ts_async_exc, "thread's pending async exception"},
      {F::ts_curexc_type, "thread's current exception"},
      {F::ts_curexc_value, "thread's current exception"},
      {F::ts_curexc_traceback, "thread's current exception"},
      {F::ts_exc_type, "thread's handled exception"},
      {F::ts_exc_value, "thread's handled exception"},
      {F::ts_exc_traceback, "thread's handled exception"},
      {F::ts_context, "thread's context"},
      {F::ts_c_profileobj, "thread's profile function"},
      {F::ts_c_traceobj, "thread's trace function"},
      {F::ts_async_gen_firstiter, "thread's async generator hooks"},
      {F::ts_async_gen_finalizer, "thread's async generator hooks"},
      {F::ts_threading_local_key, "thread's threading.local key"},
      {F::ts_threading_local_sentinel, "thread's threading.local key"},
  };
  for (auto [f, label] : kMembers) member_root(ctx, ts, f, RootKind::Thread, label, visitor);
  if (ctx.l.has(S::sz_PyThreadState))
    scan_struct(ctx, ts, ctx.l.size(S::sz_PyThreadState), RootKind::Thread, "thread state", visitor);
}

// What a thread's running frames hold: <=3.10 the frame objects, 3.11+ (frames on the data stack,
// held by no object) what each frame refers to. Labelled "[thread TID] function(): local".
class FrameRoots : public ReferentVisitor {
 public:
  FrameRoots(HeapContext& ctx, ReferentVisitor& inner) : ctx_(ctx), inner_(inner) {}

  void thread(RemoteAddr ts, RootStats& stats) {
    const Layout& l = ctx_.l;
    int tid = l.has(F::ts_native_thread_id) ? ctx_.mem.read_as<int32_t>(ts + l.off(F::ts_native_thread_id)).value_or(0) : 0;
    FrameWalk walk = walk_frames(ctx_.reader, ts, ThreadWalkLimits{}.frames);
    if (walk.truncated) stats.problems.push_back("a thread's frames could not be walked to the end: " + walk.problem);
    FrameDecoder decoder(ctx_.reader);
    for (const auto& f : walk.frames) {
      auto fi = decoder.decode(f);
      where_ = (tid ? "[thread " + std::to_string(tid) + "] " : std::string()) + (fi ? fi->function : std::string("?")) + "()";
      if (l.facts().frames == Facts::Frames::FrameObjects) {
        inner_.visit(f.frame, {EdgeKind::Other, -1, {}, where_.c_str(), Hidden::No, RootKind::Frame});
      } else {
        code_ = f.code;
        for_each_frame_referent(ctx_, f.frame, *this);
      }
      ++stats.frames;
    }
  }

  void visit(RemoteAddr child, const Edge& e) override {
    label_ = where_ + ": " +
             (e.kind == EdgeKind::Local ? local_name(ctx_.reader, code_, e.index) : std::string(e.name ? e.name : "?"));
    Edge root = e;
    root.name = label_.c_str();
    root.root = RootKind::Frame;
    inner_.visit(child, root);
  }

 private:
  HeapContext& ctx_;
  ReferentVisitor& inner_;
  std::string where_, label_;
  RemoteAddr code_;
};
}  // namespace

std::vector<RemoteAddr> gc_generation_heads(HeapContext& ctx, const PythonProcess& py, RemoteAddr interp) {
  const Layout& l = ctx.l;
  if (l.has(F::is_gc)) return generations_at(l, interp + l.off(F::is_gc));  // 3.9+: per interpreter
  if (py.runtime() && l.has(F::rt_gc)) return generations_at(l, py.runtime() + l.off(F::rt_gc));  // 3.7-3.8
  // 2.7/3.6: the static `generations` array; _PyGC_generation0 (exported) points at its first.
  std::vector<RemoteAddr> out;
  std::optional<RemoteAddr> gen0;
  if (auto g = py.binary().static_symbol("generations")) gen0 = g;
  if (!gen0)
    if (auto p = py.binary().api_symbol("_PyGC_generation0")) gen0 = ctx.mem.read_ptr(*p);
  if (!gen0 || gen0->null()) return out;
  for (int i = 0; i < kGenerations; ++i) out.push_back(*gen0 + i * l.require(S::sz_gc_generation));
  return out;
}

GcListWalk for_each_gc_object(HeapContext& ctx, RemoteAddr head, ReferentVisitor& visitor) {
  const int64_t head_size = ctx.gc_head_size();
  const int64_t next_off = ctx.l.require(F::gc_next);
  const Edge tracked{EdgeKind::Other, -1, {}, "gc", Hidden::No, RootKind::Gc};
  GcListWalk out;
  auto next = ctx.mem.read_ptr(head + next_off);
  // A list copied while the target ran (--nonblocking) may loop without coming back to its
  // head: Brent's cycle detection stops the walk after at most twice the loop's length.
  uint64_t tortoise = head.value(), power = 1, lam = 0;
  bool looped = false;
  // The links point at 16-aligned GC headers; the low bits may carry a collection's flags (3.8+).
  while (next && (next->value() & ~uint64_t{7}) != head.value() && out.objects < kMaxTracked) {
    RemoteAddr node(next->value() & ~uint64_t{7});
    if (node.null()) break;
    if (node.value() == tortoise) {
      looped = true;
      break;
    }
    if (++lam == power) {
      tortoise = node.value();
      power <<= 1;
      lam = 0;
    }
    visitor.visit(node + head_size, tracked);
    ++out.objects;
    next = ctx.mem.read_ptr(node + next_off);
  }
  out.complete = next && !looped && out.objects < kMaxTracked;
  return out;
}

RootStats for_each_tracked(HeapContext& ctx, const PythonProcess& py, ReferentVisitor& visitor) {
  RootStats stats;
  NodeList interps = interpreters(py, ctx.mem);
  if (!interps.complete) stats.problems.push_back(interps.problem);
  std::vector<RemoteAddr> heads_done;
  for (RemoteAddr interp : interps.nodes) {
    ++stats.interpreters;
    // The GC lists (shared by all interpreters before 3.9: walked once).
    for (RemoteAddr gen : gc_generation_heads(ctx, py, interp)) {
      if (std::find(heads_done.begin(), heads_done.end(), gen) != heads_done.end()) continue;
      heads_done.push_back(gen);
      ++stats.generations;
      GcListWalk walk = for_each_gc_object(ctx, gen + ctx.l.require(F::gcgen_head), visitor);
      if (!walk.complete) stats.problems.push_back("a GC list could not be walked to its end");
      stats.gc_tracked += walk.objects;
    }
  }
  return stats;
}

RootStats for_each_other_root(HeapContext& ctx, const PythonProcess& py, ReferentVisitor& visitor) {
  const Layout& l = ctx.l;
  RootStats stats;
  NodeList interps = interpreters(py, ctx.mem);
  if (!interps.complete) stats.problems.push_back(interps.problem);
  FrameRoots frames(ctx, visitor);
  for (RemoteAddr interp : interps.nodes) {
    ++stats.interpreters;
    interpreter_roots(ctx, interp, visitor);
    NodeList states = thread_states(l, ctx.mem, interp);
    if (!states.complete) stats.problems.push_back(states.problem);
    for (RemoteAddr ts : states.nodes) {
      ++stats.threads;
      thread_roots(ctx, ts, visitor);
      frames.thread(ts, stats);
    }
  }
  // Interned strings before 3.12: a static dict in unicodeobject.c (only in the symbol table);
  // 3.12's are in the runtime state.
  if (auto p = py.binary().static_symbol("interned")) interned_root(ctx, ctx.mem.read_ptr(*p), visitor);
  if (py.runtime() && l.has(F::rt_interned)) interned_root(ctx, ctx.mem.read_ptr(py.runtime() + l.off(F::rt_interned)), visitor);
  // 3.7+: the runtime state (3.7-3.8 hold the collector's and warnings' state there).
  if (py.runtime() && l.has(S::sz_PyRuntimeState))
    scan_struct(ctx, py.runtime(), l.size(S::sz_PyRuntimeState), RootKind::Interpreter, "runtime state", visitor);
  return stats;
}

std::optional<RemoteAddr> module_attr(HeapContext& ctx, const PythonProcess& py, const char* module, const char* attr) {
  NodeList interps = interpreters(py, ctx.mem);
  if (interps.nodes.empty() || !ctx.l.has(F::is_modules)) return std::nullopt;
  auto modules = ctx.mem.read_ptr(RemoteAddr(interps.nodes.back()) + ctx.l.off(F::is_modules));
  auto mod = modules ? ctx.reader.dict_get(*modules, module) : std::nullopt;
  auto mdict = mod ? ctx.mem.read_ptr(*mod + ctx.l.require(F::md_dict)) : std::nullopt;
  return mdict ? ctx.reader.dict_get(*mdict, attr) : std::nullopt;
}

void index_types(HeapContext& ctx, const PythonProcess& py) {
  NodeList interps = interpreters(py, ctx.mem);
  if (interps.nodes.empty()) return;
  RemoteAddr main = interps.nodes.back();
  static_types_of(ctx, main, [&](RemoteAddr type, RemoteAddr dict, RemoteAddr subclasses) {
    if (!type.null()) ctx.note_static_type(type, {dict, subclasses});
  });
  static const struct {
    const char* module;
    const char* attr;
    Cat cat;
  } kByModule[] = {{"_struct", "Struct", Cat::Struct}};
  const Layout& l = ctx.l;
  auto modules = l.has(F::is_modules) ? ctx.mem.read_ptr(main + l.off(F::is_modules)) : std::nullopt;
  if (!modules) return;
  ctx.numpy_major = numpy_major_version(ctx, py);
  for (const auto& m : kByModule) {
    auto mod = ctx.reader.dict_get(*modules, m.module);
    auto mdict = mod ? ctx.mem.read_ptr(*mod + l.require(F::md_dict)) : std::nullopt;
    auto type = mdict ? ctx.reader.dict_get(*mdict, m.attr) : std::nullopt;
    auto flags = type ? ctx.reader.type_flags(*type) : std::nullopt;
    if (flags && !(*flags & tpflags::kHeapType)) ctx.note_builtin_cat(*type, m.cat);  // 3.10+: a heap type, known by name
  }
}

}  // namespace pyinspect
