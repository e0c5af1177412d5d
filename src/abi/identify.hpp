#pragma once
// Which CPython a mapped binary is, and how to read it: the version (the user's --python,
// Py_Version, the target's _Py_DebugOffsets, the file name) and the layout from the best sources
// the binary offers (docs/architecture.md, principles: facts from the target first):
// _Py_DebugOffsets (3.13+), then its DWARF (cached by build-id), then the embedded table of its
// minor version, and the fixed layouts of extension modules for what is still unknown.
#include <optional>
#include <string>

#include "abi/layout.hpp"
#include "elf/mapped_binary.hpp"
#include "proc/memory.hpp"

namespace pyinspect {

struct IdentifyOptions {
  bool use_dwarf = true;      // --no-dwarf: the embedded tables only
  bool use_cache = true;      // --no-cache: read the DWARF even if its layout is cached
  std::string force_version;  // --python X.Y
};

struct Identified {
  Layout layout;               // its version, facts, offsets, origin, debug_build
  bool version_exact = false;  // micro version known (Py_Version, _Py_DebugOffsets, --python X.Y.Z)
  RemoteAddr runtime;          // _PyRuntime, null where the version has none
  std::string dwarf_file;      // where the DWARF came from, as the user would find it; empty if none
};

// Throws Error: Usage (bad --python), Unsupported (a version or build pyinspect cannot read, with
// the versions it knows), Corrupt (the target's _Py_DebugOffsets contradict the binary).
// `exe_name`: the executable's file name, for a version in its name (python3.11).
// `proc_root`: /proc/PID/root, stripped from the DWARF file's name as shown.
Identified identify(const MappedBinary& bin, const Memory& mem, const std::string& exe_name,
                    const std::string& proc_root, const IdentifyOptions& opts);

// The full version from the target's sys.version text, if it agrees with the minor version
// already known; nullopt otherwise.
std::optional<PyVersion> refine_version(const PyVersion& known, const std::string& sys_version);

}  // namespace pyinspect
