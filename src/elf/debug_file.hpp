#pragma once
// Finding the DWARF for a binary: in the binary itself, or in a separate debug file found by
// build-id (/usr/lib/debug/.build-id/xx/yyyy.debug) or by .gnu_debuglink, looked up both on
// this machine and under the target's root (containers).
#include <memory>
#include <string>
#include <vector>

#include "elf/elf_file.hpp"

namespace pyinspect {

// `target_path` is the binary's path as the target names it; `roots` are prefixes to try ("" for
// our own root, "/proc/PID/root" for the target's). nullptr when no debug file with a matching
// build-id exists.
std::unique_ptr<ElfFile> find_debug_file(const ElfFile& binary, const std::string& target_path,
                                         const std::vector<std::string>& roots);

}  // namespace pyinspect
