#pragma once
// A binary mapped into the target (the executable or libpython): its ELF file, a separate debug
// file if one was found, and the load bias that turns its link-time addresses into the target's.
#include <memory>
#include <optional>
#include <string>

#include "base/remote.hpp"
#include "elf/elf_file.hpp"

namespace pyinspect {

struct MappedBinary {
  std::string target_path;  // as named in the target's maps
  std::string host_path;    // where we opened it
  uint64_t bias = 0;        // runtime address = link-time address + bias
  std::unique_ptr<ElfFile> elf;
  std::unique_ptr<ElfFile> debug;  // separate debug file, if found
  bool exports_api = true;         // exports CPython's API (.dynsym); not an embedding program without -rdynamic

  // Any symbol: exported, then the binary's and its debug file's full symbol tables.
  std::optional<RemoteAddr> symbol(const std::string& name) const;
  // A static variable of CPython's (interp_head, arenas...), under its LTO name too.
  std::optional<RemoteAddr> static_symbol(const std::string& name) const;
  // Exported symbols only (cheap: a hash lookup); falls back to symbol() for a binary that does
  // not export CPython's API.
  std::optional<RemoteAddr> api_symbol(const std::string& name) const;
  RemoteAddr at(uint64_t link_addr) const { return RemoteAddr(link_addr + bias); }
  // The ELF file that holds the DWARF: the binary itself or its debug file; null if neither.
  const ElfFile* dwarf_file() const { return elf->has_debug_info() ? elf.get() : debug.get(); }
};

}  // namespace pyinspect
