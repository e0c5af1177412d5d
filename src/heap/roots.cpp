#include "heap/roots.hpp"

#include <unordered_set>

#include "base/error.hpp"
#include "base/log.hpp"
#include "runtime/frames.hpp"

namespace pyinspect {

namespace {
constexpr uint64_t kMaxTracked = uint64_t{1} << 32;  // bound on one GC list walk
constexpr int kGenerations = 3;

// The gc_generation structs of one GC state: three generations, then (3.7+) the permanent one.
std::vector<RemoteAddr> generations_at(const Layout& l, RemoteAddr gcstate) {
  std::vector<RemoteAddr> out;
  int64_t sz = l.require(S::sz_gc_generation);
  for (int i = 0; i < kGenerations; ++i) out.push_back(gcstate + l.require(F::gcs_generations) + i * sz);
  if (l.has(F::gcs_permanent)) out.push_back(gcstate + l.off(F::gcs_permanent));
  return out;
}
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
  Edge tracked{EdgeKind::Other, -1, {}, "gc"};
  GcListWalk out;
  auto next = ctx.mem.read_ptr(head + next_off);
  // A list copied while the target ran (--nonblocking) may loop without coming back to its
  // head: Brent's cycle detection stops the walk after at most twice the loop's length.
  uint64_t tortoise = head.value(), power = 1, lam = 0;
  bool looped = false;
  // 3.8+ keep flags in the low bits of the links during a collection: mask them.
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

RootStats for_each_root(HeapContext& ctx, const PythonProcess& py, ReferentVisitor& visitor) {
  const Layout& l = ctx.l;
  const Memory& mem = ctx.mem;
  RootStats stats;

  std::unordered_set<RemoteAddr> interps;
  auto interp = py.first_interpreter(mem);
  std::vector<RemoteAddr> heads_done;
  while (interp && !interp->null() && interps.size() < 1024 && interps.insert(*interp).second) {
    ++stats.interpreters;
    // The GC lists (shared by all interpreters before 3.9: walked once).
    for (RemoteAddr gen : gc_generation_heads(ctx, py, *interp)) {
      if (std::find(heads_done.begin(), heads_done.end(), gen) != heads_done.end()) continue;
      heads_done.push_back(gen);
      ++stats.generations;
      GcListWalk walk = for_each_gc_object(ctx, gen + l.require(F::gcgen_head), visitor);
      if (!walk.complete) stats.problems.push_back("a GC list could not be walked to its end");
      stats.gc_tracked += walk.objects;
    }
    // Interpreter roots.
    for (auto [f, name] : std::initializer_list<std::pair<F, const char*>>{
             {F::is_modules, "sys.modules"}, {F::is_sysdict, "sys"}, {F::is_builtins, "builtins"},
             {F::is_dict, "interpreter dict"}})
      if (l.has(f))
        if (auto p = mem.read_ptr(*interp + l.off(f)); p && !p->null()) visitor.visit(*p, {EdgeKind::Other, -1, {}, name});
    if (l.has(F::is_interned))
      if (auto p = mem.read_ptr(*interp + l.off(F::is_interned)); p && ctx.reader.has_type(*p, ctx.t.dict))
        visitor.visit(*p, {EdgeKind::Other, -1, {}, "interned strings"});
    // Frames on the threads' data stacks (3.11+): their locals are held by no object.
    if (l.traits().frames != Traits::Frames::FrameObjects) {
      auto ts = mem.read_ptr(*interp + l.require(F::is_tstate_head));
      std::unordered_set<RemoteAddr> seen;
      while (ts && !ts->null() && seen.size() < 100000 && seen.insert(*ts).second) {
        FrameWalk walk = walk_frames(ctx.reader, *ts, 1 << 20);
        for (const auto& f : walk.frames) {
          for_each_frame_referent(ctx, f.frame, visitor);
          ++stats.frames;
        }
        for (F f : {F::ts_dict, F::ts_async_exc, F::ts_curexc_value})
          if (l.has(f))
            if (auto p = mem.read_ptr(*ts + l.off(f)); p && !p->null()) visitor.visit(*p, {EdgeKind::Other, -1, {}, "thread"});
        ts = mem.read_ptr(*ts + l.require(F::ts_next));
      }
    }
    auto next = mem.read_ptr(*interp + l.require(F::is_next));
    if (!next) break;
    interp = next;
  }
  // Interned strings before 3.12: a static dict in unicodeobject.c (only in the symbol table).
  if (auto p = py.binary().static_symbol("interned"))
    if (auto d = mem.read_ptr(*p); d && ctx.reader.has_type(*d, ctx.t.dict))
      visitor.visit(*d, {EdgeKind::Other, -1, {}, "interned strings"});
  if (py.runtime() && l.has(F::rt_interned))
    if (auto d = mem.read_ptr(py.runtime() + l.off(F::rt_interned)); d && ctx.reader.has_type(*d, ctx.t.dict))
      visitor.visit(*d, {EdgeKind::Other, -1, {}, "interned strings"});
  return stats;
}

}  // namespace pyinspect
