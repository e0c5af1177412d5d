#pragma once
// `pyinspect stack`: every thread's Python stack, read while the target is briefly paused (or
// not at all, with nonblocking).
#include <map>
#include <string>
#include <vector>

#include "proc/memory.hpp"
#include "runtime/objects.hpp"
#include "runtime/model.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

struct StackOptions {
  bool nonblocking = false;
  size_t max_frames = 100000;   // per thread
  size_t max_threads = 100000;  // per interpreter
  size_t max_interpreters = 1024;
  bool thread_names = true;  // look up threading's names (a few reads after resuming)
  // Native frames: every thread's C stack, unwound from what was copied while it was stopped,
  // merged with its Python frames (each call of the evaluation loop replaced by the Python frames
  // it runs); `native_all` keeps the evaluation loop's own frames too. Needs the pause.
  bool native = false;
  bool native_all = false;
  size_t max_native_frames = 1024;
  bool native_cache = true;  // keep the names of native frames on disk by build-id (--no-cache: not)
  // --locals: each Python frame's arguments and locals, read after the threads are released
  // (0: not; 1, 2, 3...: longer reprs, runtime/values.hpp).
  int locals = 0;
  // What each blocked thread waits for (a lock, a condition, a queue, a join, the GIL), who
  // holds it, and deadlocks (runtime/locks.hpp).
  bool waits = true;
};

StackSnapshot read_stacks(PythonProcess& py, const ProcessMemory& mem, const StackOptions& opts);
// threading._active of one interpreter: threading.get_ident() -> Thread.name.
std::map<uint64_t, std::string> threading_names(const ObjectReader& r, RemoteAddr interp);
// Kernel TIDs of threads known only by pthread_t, read from glibc's struct pthread (the one
// offset at which every block holds one of `tids`); empty if no offset fits them all.
std::map<uint64_t, int> tids_from_pthread_blocks(const Memory& mem, const std::vector<uint64_t>& pthreads,
                                                 const std::vector<int>& tids);
// Which Python the target runs and how it is read, for the output of every command.
PythonInfo python_info(PythonProcess& py, const Memory& mem);
// One thread's Python frames (innermost first, each with its eval_call) merged into its native
// stack: each machine frame of `eval_function` gives way to the Python frames of its call (with
// `keep_all`, they go before it). Python frames no such frame ran are appended and counted.
struct NativeStack;
std::vector<FrameInfo> merge_native(const std::vector<FrameInfo>& python, const NativeStack& native,
                                    const std::string& eval_function, bool keep_all, int* unplaced);

}  // namespace pyinspect
