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
  read_arena_table(ctx, *arenas, *maxarenas, m);
}

bool read_arena_table(HeapContext& ctx, RemoteAddr arenas, uint32_t maxarenas, MemorySummary& m) {
  const Layout& l = ctx.l;
  const Memory& mem = ctx.mem;
  const Facts& t = l.facts();
  int64_t asz = l.size(S::sz_arena_object);
  std::vector<uint8_t> table(static_cast<size_t>(maxarenas * asz));
  if (!mem.read(arenas, table.data(), table.size())) return false;
  StructBytes arena_table(std::move(table));
  const uint64_t pool = t.pool_size, arena = t.arena_size;
  m.pool_size = pool, m.arena_size = arena;
  for (uint32_t i = 0; i < maxarenas; ++i) {
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
  return m.pymalloc_known;
}

std::optional<std::pair<RemoteAddr, uint32_t>> find_arena_table(HeapContext& ctx,
                                                                const std::vector<std::pair<uint64_t, uint64_t>>& blocks,
                                                                uint64_t pool) {
  const Layout& l = ctx.l;
  const Facts& t = l.facts();
  if (!l.has(F::arena_address) || !l.has(S::sz_arena_object) || !l.has(F::pool_szidx)) return std::nullopt;
  // The pool's header: arenaindex is the unsigned int before szidx (pool_header in obmalloc.c,
  // the same since 2.5).
  auto index = ctx.mem.read_as<uint32_t>(RemoteAddr(pool + l.off(F::pool_szidx) - 4));
  if (!index || *index >= (1u << 20)) return std::nullopt;
  const uint64_t asz = static_cast<uint64_t>(l.size(S::sz_arena_object));
  const int64_t a_addr = l.off(F::arena_address), a_pool = l.require(F::arena_pool_address);
  const int64_t a_nfree = l.require(F::arena_nfreepools), a_total = l.require(F::arena_ntotalpools);
  const uint64_t max_pools = t.arena_size / t.pool_size;
  for (auto [start, size] : blocks) {
    // maxarenas starts at 16 and doubles: the table fills its block, give or take the rounding.
    if (size < (uint64_t{*index} + 1) * asz || size < 16 * asz) continue;
    uint64_t entry = start + *index * asz;
    auto address = ctx.mem.read_as<uint64_t>(RemoteAddr(entry + a_addr));
    if (!address || *address > pool || pool >= *address + t.arena_size) continue;
    uint32_t n = 16;
    while (uint64_t{n} * 2 * asz <= size) n *= 2;
    std::vector<uint8_t> bytes(n * asz);
    if (!ctx.mem.read(RemoteAddr(start), bytes.data(), bytes.size())) continue;
    StructBytes tb(std::move(bytes));
    bool ok = true;
    for (uint32_t i = 0; i < n && ok; ++i) {
      uint64_t a = tb.get<uint64_t>(i * asz + a_addr).value_or(0);
      if (!a) continue;
      uint64_t pa = tb.get<uint64_t>(i * asz + a_pool).value_or(0);
      uint32_t nfree = tb.get<uint32_t>(i * asz + a_nfree).value_or(~0u);
      uint32_t total = tb.get<uint32_t>(i * asz + a_total).value_or(~0u);
      ok = pa >= a && pa <= a + t.arena_size && total <= max_pools && nfree <= total && (a & 0xfff) == 0;
    }
    if (ok) return std::make_pair(RemoteAddr(start), n);
  }
  return std::nullopt;
}

}  // namespace pyinspect
