#pragma once
// pymalloc's arenas: how much memory the small-object allocator holds, how much of it is in
// use and how much sits in free pools (memory Python keeps and does not return to the OS).
#include "heap/census.hpp"
#include "heap/heap_types.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

// Fills the pymalloc fields of `m` from the (copied) memory; leaves pymalloc_known false, and
// says why in pymalloc_unknown, when the allocator's state cannot be found (stripped builds
// before 3.12, whose arenas are static variables; PYTHONMALLOC=malloc; no arena yet).
void read_pymalloc(HeapContext& ctx, const PythonProcess& py, MemorySummary& m);

// Fills the pymalloc fields of `m` from the arena table at `arenas` (maxarenas entries); false if
// no arena is in use.
bool read_arena_table(HeapContext& ctx, RemoteAddr arenas, uint32_t maxarenas, MemorySummary& m);

// pymalloc's arena table when no symbol names it (a stripped build before 3.12, whose table is
// a static variable): the memory block, among `blocks` (start, usable size: the chunks malloc
// handed out), whose entry for the arena of `pool` (a pool some object lies in) holds that pool,
// and whose every entry in use looks like an arena. Its address and maxarenas.
std::optional<std::pair<RemoteAddr, uint32_t>> find_arena_table(HeapContext& ctx,
                                                                const std::vector<std::pair<uint64_t, uint64_t>>& blocks,
                                                                uint64_t pool);

}  // namespace pyinspect
