#pragma once
// Native (C) stacks from outside (docs/architecture.md, "Native frames"): while a thread is
// stopped we copy its registers and the part of its stack in use; once the target runs again,
// elfutils' libdwfl unwinds that copy with the call-frame information of the binaries
// (.eh_frame, .debug_frame) and we name each frame from the symbol tables (.symtab, .dynsym) and
// the DWARF (inlined calls, file:line).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proc/memory.hpp"
#include "proc/pause.hpp"

namespace pyinspect {

struct NativeCapture {
  int tid = 0;
  ThreadRegisters regs;
  uint64_t stack_start = 0;    // the target address of stack[0]
  std::vector<uint8_t> stack;  // from just below the stack pointer to the top of the thread's stack
  bool stack_cut = false;      // the stack went on beyond what was copied
};

// What the unwinder needs of a thread that is stopped now; nullopt if its registers cannot be read.
std::optional<NativeCapture> capture_native(const StoppedThread& t, const ProcessMemory& mem);
// The same of a thread whose registers and TLS base are known (a core file's).
NativeCapture capture_native(int tid, const ThreadRegisters& regs, std::optional<uint64_t> tls_base,
                             const ProcessMemory& mem);

// Where the modules of a target that is not a live process come from (a core file): its
// address space, and where each file it names is on this machine.
struct NativeModules {
  const Maps* maps = nullptr;
  std::function<std::string(const std::string&)> host_path;
  std::string root;       // where else to look for debug files (a sysroot); empty: here only
  std::string arch_file;  // an ELF file of the target's architecture (the core itself)
};

struct NativeFrame {
  uint64_t pc = 0;          // the instruction (innermost frame) or the return address
  std::string symbol;       // the function, demangled; empty when nothing names it
  uint64_t symbol_offset = 0;
  std::string library;      // the file the code is in, as the target names it; empty if none
  uint64_t offset = 0;      // pc as an address in that file (what addr2line -e LIBRARY takes)
  std::string file;         // source file, where the DWARF says
  int line = 0;             // 0: unknown
  bool inlined = false;     // a call inlined into the frame that follows it in the list
  std::string elf_symbol;   // the symbol table's name for the machine frame (shared by its inlined calls)
};

struct NativeStack {
  std::vector<NativeFrame> frames;  // innermost first; a machine frame's inlined calls before it
  bool truncated = false;           // stopped before the outermost frame
  std::string problem;              // why, when it did
  size_t live_reads = 0;            // words read from the running target, outside the copied stack
};

class NativeUnwinder {
 public:
  // `live` reads the target for what the copy of a stack does not hold. With `use_cache`, the
  // names found for each address are kept on disk by the binary's build-id (docs/usage.md,
  // "Native frames"), so that a later run need not open the DWARF again.
  // With `modules`, the modules are those of its maps, opened where host_path says (a core
  // file); without, the live process's, from /proc/PID.
  NativeUnwinder(int pid, const Memory& live, bool use_cache = true, const NativeModules* modules = nullptr);
  ~NativeUnwinder();
  NativeUnwinder(const NativeUnwinder&) = delete;
  NativeUnwinder& operator=(const NativeUnwinder&) = delete;

  NativeStack unwind(const NativeCapture& c, size_t max_frames);
  // Machine frames of this function are named by their symbol only, without the DWARF's lines and
  // inlined calls (the evaluation loop, whose frames the Python frames replace: its DWARF is the
  // largest there is to walk).
  void name_only(const std::string& symbol) { name_only_ = symbol; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string name_only_;
};

// The order of a thread's merged stack, innermost first: each entry a Python frame (an index into
// the thread's Python frames, innermost first, whose C-level evaluation calls are `eval_calls`,
// counted from the innermost) or a native frame (an index into `native.frames`). Each machine
// frame of `eval_function` (with its inlined calls) gives way to the Python frames of its call; with
// `keep_all` they go before it, and it stays. A call whose Python frames were not read keeps its
// native frame. Python frames no such frame ran go last, and `*unplaced` counts them.
struct MergedFrame {
  bool python;
  size_t index;
};
std::vector<MergedFrame> merge_order(const std::vector<int>& eval_calls, const NativeStack& native,
                                     const std::string& eval_function, bool keep_all, int* unplaced);

// `name` without what the compiler appends to parts of a function it split or specialised
// ("_PyEval_EvalFrameDefault.cold", "foo.part.0", "bar.constprop.0", "baz.lto_priv.0") and
// without its symbol version ("clock_nanosleep@@GLIBC_2.17").
std::string base_symbol(const std::string& name);

}  // namespace pyinspect
