#include "heap/pymalloc.hpp"

#include "base/log.hpp"
#include "runtime/threads.hpp"

namespace pyinspect {

void read_pymalloc(HeapContext& ctx, const PythonProcess& py, MemorySummary& m) {
  const Layout& l = ctx.l;
  const Memory& mem = ctx.mem;
  const Facts& t = l.facts();
  if (!l.has(F::arena_address) || !l.has(S::sz_arena_object) || !l.has(F::pool_count)) {
    m.pymalloc_unknown = "this build's layout does not describe pymalloc's arenas";
    return;
  }

  std::optional<RemoteAddr> arenas;
  std::optional<uint32_t> maxarenas;
  if (t.obmalloc == Facts::Obmalloc::Statics) {
    // obmalloc.c's statics: in the symbol table only.
    auto a = py.binary().static_symbol("arenas");
    auto n = py.binary().static_symbol("maxarenas");
    if (!a || !n) {
      m.pymalloc_unknown = "its arenas are static variables of " + py.binary().target_path +
                           ", which has no symbol table (a stripped build; its debug symbols would tell)";
      return;
    }
    arenas = mem.read_ptr(*a);
    maxarenas = mem.read_as<uint32_t>(*n);
  } else {
    if (!l.has(F::is_obmalloc) || !l.has(F::obm_arenas) || !l.has(F::obm_maxarenas)) return;
    // The main interpreter (the last): its state is the one the process mostly uses.
    NodeList interps = interpreters(py, mem);
    if (interps.nodes.empty()) return;
    auto interp = std::optional<RemoteAddr>(interps.nodes.back());
    RemoteAddr state = *interp + l.off(F::is_obmalloc);
    if (t.obmalloc == Facts::Obmalloc::InterpreterPointer) {
      auto p = mem.read_ptr(state);
      if (!p || p->null()) return;
      state = *p;
    }
    arenas = mem.read_ptr(state + l.off(F::obm_arenas));
    maxarenas = mem.read_as<uint32_t>(state + l.off(F::obm_maxarenas));
  }
  if (!arenas || !maxarenas || arenas->null() || *maxarenas == 0 || *maxarenas > (1u << 24)) {
    m.pymalloc_unknown = "no arena in use (PYTHONMALLOC=malloc, or nothing allocated yet)";
    return;
  }

  int64_t asz = l.size(S::sz_arena_object);
  std::vector<uint8_t> table(static_cast<size_t>(*maxarenas * asz));
  if (!mem.read(*arenas, table.data(), table.size())) return;
  StructBytes arena_table(std::move(table));
  const uint64_t pool = t.pool_size, arena = t.arena_size;
  m.pool_size = pool, m.arena_size = arena;
  for (uint32_t i = 0; i < *maxarenas; ++i) {
    auto address = arena_table.get<uint64_t>(i * asz + l.off(F::arena_address)).value_or(0);
    if (!address) continue;  // slot not in use
    auto pool_address = arena_table.get<uint64_t>(i * asz + l.require(F::arena_pool_address)).value_or(0);
    auto nfree = arena_table.get<uint32_t>(i * asz + l.require(F::arena_nfreepools)).value_or(0);
    ++m.arenas;
    m.arena_list.push_back(address);
    m.arena_bytes += arena;
    m.arena_bytes_free += uint64_t{nfree} * pool;
    // Pools carved so far; those with blocks handed out hold count * block size in use.
    uint64_t first = (address + pool - 1) & ~(pool - 1);
    for (uint64_t p = first; p < pool_address && p + pool <= address + arena; p += pool) {
      auto count = mem.read_as<uint32_t>(RemoteAddr(p) + l.off(F::pool_count));
      auto maxnext = mem.read_as<uint32_t>(RemoteAddr(p) + l.require(F::pool_maxnextoffset));
      if (!count || !maxnext || *count == 0 || *maxnext >= pool) continue;
      uint64_t block = pool - *maxnext;  // exact block size of the pool's class
      uint64_t header = l.require(S::sz_pool_header);
      uint64_t capacity = (pool - header) / block;
      m.pool_bytes_used += uint64_t{*count} * block;
      ++m.pools_used;
      if (capacity > *count) m.pool_bytes_free += (capacity - *count) * block;
    }
  }
  m.pymalloc_known = m.arenas > 0;
  if (!m.pymalloc_known) m.pymalloc_unknown = "no arena in use (PYTHONMALLOC=malloc, or nothing allocated yet)";
}

}  // namespace pyinspect
