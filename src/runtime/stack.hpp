#pragma once
// `pyinspect stack`: every thread's Python stack, read while the target is briefly paused (or
// not at all, with nonblocking).
#include "proc/memory.hpp"
#include "runtime/model.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

struct StackOptions {
  bool nonblocking = false;
  size_t max_frames = 100000;   // per thread
  size_t max_threads = 100000;  // per interpreter
  size_t max_interpreters = 1024;
  bool thread_names = true;  // look up threading's names (a few reads after resuming)
};

StackSnapshot read_stacks(PythonProcess& py, const ProcessMemory& mem, const StackOptions& opts);
// Which Python the target runs and how it is read, for the output of every command.
PythonInfo python_info(PythonProcess& py, const Memory& mem);

}  // namespace pyinspect
