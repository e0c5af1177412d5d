#pragma once
// Writes an ELF core file (x86-64) of a process, as `pyinspect dump` makes it: the notes a core
// reader needs (NT_PRPSINFO, every thread's NT_PRSTATUS with the main thread first, NT_AUXV,
// NT_FILE) and one PT_LOAD per mapping. A mapping whose bytes are given is written whole, its
// pages of zeros that were not in memory left as holes of a sparse file; the others (read-only file mappings, which
// hold their file's bytes) get no bytes, and a reader takes them from the file NT_FILE names,
// as gdb and pyinspect do. docs/architecture.md, "Core files".
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "proc/maps.hpp"

namespace pyinspect {

struct CoreThreadState {
  int tid = 0;
  std::vector<uint64_t> user_regs;  // a user_regs_struct (ptrace's PTRACE_GETREGS), 27 words
};

struct CoreImage {
  int pid = 0, ppid = 0;
  uint32_t uid = 0, gid = 0;
  std::string command_name;  // comm: NT_PRPSINFO's pr_fname
  std::string arguments;     // the command line, spaces between the arguments (pr_psargs)
  std::vector<CoreThreadState> threads;
  std::vector<uint8_t> auxv;  // /proc/PID/auxv
  const Maps* maps = nullptr;
  // The bytes of [start, end) of the mapping `m` to write, or nullptr to write none, or
  // all_zeros() for a mapping that holds only zeros (none of its pages were ever touched).
  std::function<const uint8_t*(const MapEntry& m)> contents;
  // How many of those bytes to write, if not the whole mapping (the ELF header page of a
  // mapped file, which names its build-id, as the kernel keeps it). Unset: all of them.
  std::function<uint64_t(const MapEntry& m)> length;
  // Whether the page at `addr` was in memory: a page of zeros that was is written (as the
  // kernel writes it), one that was not is left a hole. Unset: every page of zeros is a hole.
  std::function<bool(uint64_t addr)> resident;
  static const uint8_t* all_zeros();
};

struct CoreWritten {
  uint64_t file_bytes = 0;     // the file's size
  uint64_t written_bytes = 0;  // what was written of it (the rest are holes)
  size_t segments = 0;
};

// Writes `image` to `path` atomically (a temporary file renamed into place). Throws Error(Output).
CoreWritten write_core(const std::string& path, const CoreImage& image);

}  // namespace pyinspect
