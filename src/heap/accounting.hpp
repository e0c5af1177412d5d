#pragma once
// `pyinspect memory`: the process's resident memory, accounted byte by byte (docs/memory.md).
// Every resident page is counted once, by where it is: in the allocators' memory (glibc's heaps
// and mmapped chunks, pymalloc's arenas), split into Python objects, the buffers they own, free
// memory each allocator keeps, and memory handed out that no object points to; or in a thread's
// stack, a file mapped from disk (code, libraries), or another mapping.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "heap/census.hpp"
#include "runtime/model.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

struct MemoryCategory {
  const char* name;         // JSON id: python_objects, object_buffers, ...
  const char* title;        // text label
  uint64_t bytes = 0;       // resident
  uint64_t private_bytes = 0;
  uint64_t count = 0;       // objects, buffers, chunks, arenas, threads, files: see `what`
  std::string what;         // what count counts ("objects", "chunks", ...)
  std::string explanation;  // one plain line
  // Named figures (JSON "detail"): nominal sizes, kinds of free chunks, the largest buffer...
  std::vector<std::pair<std::string, uint64_t>> figures;
  std::vector<std::pair<std::string, std::string>> notes;
};

struct MemoryAccount {
  int pid = 0;
  std::string core;  // the core file read, for one; its figures are the core's (docs/memory.md)
  bool core_sparse = false;  // its holes say which pages were not in memory
  std::string command;
  PythonInfo python;
  uint64_t rss_bytes = 0, private_bytes = 0;
  std::vector<MemoryCategory> categories;
  std::string allocator;  // the object allocator: "pymalloc", "malloc (PYTHONMALLOC=malloc)", ...
  std::string malloc_source, glibc_version, malloc_unknown;
  uint64_t objects = 0;
  // C types that are sized as object.__sizeof__ sizes them though they define their own.
  std::vector<std::pair<std::string, uint64_t>> unmirrored_sizeof;
  uint64_t unknown_size_objects = 0;
  int64_t pause_ns = 0, elapsed_ns = 0;
  bool paused = true;
  std::vector<std::string> warnings;
};

struct MemoryOptions {
  bool nonblocking = false;
  bool progress = false;
  bool use_debug_info = true;  // libc's debug info, when it exists
  uint64_t max_copy_bytes = 0;
};

MemoryAccount account_memory(PythonProcess& py, ProcessMemory& mem, const MemoryOptions& opts);

}  // namespace pyinspect
