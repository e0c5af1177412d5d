#pragma once
// glibc's malloc, read from outside: its arenas (main_arena in libc's data, the others in their
// own 64 MiB-aligned heaps), every chunk of their heaps, which of them are free (in a bin, the
// top chunk, a fastbin, a thread's tcache) and which are handed out, and the chunks it mapped on
// their own (requests above the mmap threshold). docs/memory.md says which glibc versions were
// verified and how each fact is found:
//  - with libc's debug info (Debian: libc6-dbg): main_arena and mp_ from its symbol table, the
//    layouts of malloc_state, heap_info and malloc_par from its DWARF;
//  - without: main_arena found from the chunk headers themselves (the [heap] mapping's chunks
//    lead to its top chunk, which main_arena points to; the other arenas' heaps point to their
//    arena and the arenas form a ring), with the layouts of glibc 2.27 and later built in.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "proc/maps.hpp"
#include "proc/memory.hpp"

namespace pyinspect {

struct MallocChunk {
  uint64_t addr = 0;  // the chunk header; the caller's pointer is addr + 16
  uint64_t size = 0;  // the whole chunk, header included
  uint64_t user() const { return addr + 16; }
};

struct GlibcMalloc {
  bool found = false;
  std::string why_not;         // when not found (a static binary without glibc, a corrupt heap...)
  std::string source;          // "libc's debug info" or "chunk headers"
  std::string libc_path;
  std::string glibc_version;   // "2.36", when libc says
  struct Arena {
    uint64_t addr = 0;
    bool main = false;
    uint64_t system_mem = 0;                          // what it has from the system, as it counts it
    std::vector<std::pair<uint64_t, uint64_t>> heaps;  // [start, end) of the memory its chunks are in
  };
  std::vector<Arena> arenas;
  // Chunks handed out (not free in any way), sorted by address; not the mmapped ones.
  std::vector<MallocChunk> in_use;
  // Free chunks of each kind (bins: unsorted, small and large; the top chunks; fastbins; the
  // threads' tcaches), sorted by address.
  std::vector<MallocChunk> free_bins, free_top, free_fast, free_tcache;
  uint64_t tcaches = 0;  // thread caches found
  // Chunk headers that made no sense (a heap walk that had to stop), and where.
  uint64_t corrupt = 0;
  std::vector<std::string> problems;
  // From mp_ (debug info only): what glibc itself counts of its mmapped chunks.
  std::optional<uint64_t> mmapped_bytes, mmapped_count, mmap_threshold;
};

// Reads the allocator of the process from `mem` (the copy of its writable memory, or the live
// process). `root`: where the target's files are ("/proc/PID/root"; libc and its debug file are
// opened there, else on this machine's root). `use_debug_info`: look for libc's debug file
// (--no-dwarf turns it off).
// `root`: where else to look for libc's debug file; `host_path`: where libc's file is opened
// here, given the path the target names (default: that path).
GlibcMalloc read_glibc_malloc(const Memory& mem, const Maps& maps, const std::string& root, bool use_debug_info,
                              const std::function<std::string(const std::string&)>& host_path = {});

// The size of the chunk glibc mapped on its own at page-aligned `addr`, if a chunk header that
// says so is there and the chunk fits before `limit`.
std::optional<uint64_t> mmapped_chunk_at(const Memory& mem, uint64_t addr, uint64_t limit);

uint64_t chunk_bytes(const std::vector<MallocChunk>& chunks);

}  // namespace pyinspect
