#pragma once
// Finding the CPython interpreter inside a process: which mapped binary holds it, its version,
// its layout (target's _Py_DebugOffsets > DWARF > embedded tables), its type objects and the head
// of its interpreter list.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "abi/layout.hpp"
#include "abi/identify.hpp"
#include "elf/mapped_binary.hpp"
#include "proc/memory.hpp"
#include "proc/process.hpp"
#include "runtime/types.hpp"

namespace pyinspect {

struct TargetOptions {
  bool use_dwarf = true;      // --no-dwarf: force the embedded tables
  bool use_cache = true;      // --no-cache: read DWARF even if its layout is cached
  std::string force_version;  // --python X.Y: when the binary does not say
  // How to find the interpreter list: "auto", or one method only (for tests and diagnosis):
  // "runtime" (_PyRuntime), "symbol" (interp_head), "code" (PyInterpreterState_Head's code),
  // "scan" (the binary's writable data).
  std::string head_method = "auto";
};

// Load bias of a mapped ELF file: runtime address = link-time address + bias; nullopt if none of
// its PT_LOAD segments is mapped.
std::optional<uint64_t> load_bias(const ElfFile& elf, const Maps& maps, const std::string& target_path);

class PythonProcess {
 public:
  // Locates the interpreter; throws Error (NotPython, Unsupported, Permission...) if it cannot.
  PythonProcess(const Process& proc, const ProcessMemory& mem, const TargetOptions& opts = {});

  const Process& process() const { return proc_; }
  const Layout& layout() const { return layout_; }
  const TypeAddrs& types() const { return types_; }
  const MappedBinary& binary() const { return *bin_; }
  const std::string& executable() const { return proc_.exe(); }
  bool shared_library() const { return shared_; }
  bool has_dwarf() const { return !dwarf_file_.empty(); }
  const std::string& dwarf_file() const { return dwarf_file_; }

  // The first PyInterpreterState, read now (call while paused for a consistent view).
  std::optional<RemoteAddr> first_interpreter(const Memory& mem) const;
  const std::string& interpreter_head_how() const { return head_how_; }
  // _PyRuntime (3.7+), null before.
  RemoteAddr runtime() const { return runtime_; }
  // The thread state holding the GIL in interpreter `interp`, null if none.
  RemoteAddr gil_holder(const Memory& mem, RemoteAddr interp) const;
  // Where threads that wait for the GIL of `interp` sleep: its condition variables and mutexes,
  // as [begin, end); <=3.6, static variables named by the binary's symbol table (nullopt where
  // it has none).
  std::optional<std::pair<RemoteAddr, RemoteAddr>> gil_wait_words(const Memory& mem, RemoteAddr interp) const;
  // Full version ("3.9.18") from Py_Version or from sys.version in the target.
  PyVersion full_version(const Memory& mem);

 private:
  void find_binary(const ProcessMemory& mem);
  std::optional<std::pair<RemoteAddr, RemoteAddr>> static_gil_wait_words(const Memory& mem) const;
  void resolve_types();
  void find_interpreter_head(const ProcessMemory& mem, const std::string& method);
  bool head_from_code(const ProcessMemory& mem);
  bool head_from_scan(const ProcessMemory& mem);
  size_t interpreter_chain_length(const Memory& mem, RemoteAddr first) const;
  bool valid_interpreter(const Memory& mem, RemoteAddr interp) const;

  const Process& proc_;
  std::unique_ptr<MappedBinary> bin_;
  bool shared_ = false;
  bool version_exact_ = false;
  Layout layout_;
  TypeAddrs types_;
  std::string dwarf_file_;
  RemoteAddr runtime_;
  RemoteAddr head_var_;     // address of a variable holding the first interpreter
  RemoteAddr head_interp_;  // or the interpreter itself, when found by scanning
  std::string head_how_;
  RemoteAddr tstate_current_var_;  // 2.7/3.6: _PyThreadState_Current
};

}  // namespace pyinspect
