#pragma once
// glibc's malloc as its version shapes it: which release a libc is, and the facts that differ
// between releases, decided here as the CPython ones are in facts.hpp (docs/memory.md).
#include <cstdint>
#include <string>

#include "elf/elf_file.hpp"

namespace pyinspect {

// "2.36" from the banner glibc keeps in its read-only data ("... release version 2.36."); empty
// if the file has none.
std::string glibc_version_of(const ElfFile& libc);

struct GlibcFacts {
  bool version_known = false;
  // Free-list links are stored XORed with their own address >> 12 (2.32+). Unknown version:
  // assumed (every release since 2020); before 2.32 a tcache list is also tried that way.
  bool safe_linking = true;
  // The malloc_state offsets below hold (2.27+: have_fastchunks came before fastbinsY). Unknown
  // version: assumed, and checked against what the arenas hold.
  bool layout_built_in = true;
  // malloc_state on x86-64 (2.27 and later), for when libc's DWARF is not there.
  int64_t state_fastbins = 16, state_top = 96, state_next = 2160, state_system_mem = 2184, state_size = 2200;
  int nfastbins = 10;
  int64_t heap_info_size = 0;  // 32 before 2.35, 48 from it; 0: learnt from the heaps themselves
};

GlibcFacts glibc_facts(const std::string& version);

}  // namespace pyinspect
