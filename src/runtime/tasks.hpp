#pragma once
// `pyinspect tasks`: every pending asyncio Task of the target, its coroutine stack, what it
// awaits and who awaits it (docs/architecture.md, "asyncio tasks"). The tasks are those asyncio
// itself lists (asyncio.all_tasks()): the registries of asyncio.tasks (`_all_tasks` 3.7-3.11,
// `_scheduled_tasks` and `_eager_tasks` 3.12-3.13; 3.14+: each thread's linked list of tasks, which
// the target's `_AsyncioDebug` describes), read while the target is paused.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proc/memory.hpp"
#include "runtime/model.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

struct TasksOptions {
  bool nonblocking = false;
  size_t max_tasks = 1000000;
  size_t max_chain = 256;  // coroutines awaited within one task
};

TasksSnapshot read_tasks(PythonProcess& py, const ProcessMemory& mem, const TasksOptions& opts);

// 3.14+: where the target's `_AsyncioDebug` is: in a mapped _asyncio extension module (by its
// exported symbol, else its section), else in the interpreter's binary (_asyncio built in).
// `host_path` turns a path of the target's maps into one to open here.
std::optional<RemoteAddr> find_asyncio_debug(const Maps& maps,
                                             const std::function<std::string(const std::string&)>& host_path,
                                             const MappedBinary* interpreter);

// The cycles of an await graph (a task -> the tasks it awaits), each once, from its member that
// comes first in `order`.
std::vector<std::vector<uint64_t>> await_cycles(const std::map<uint64_t, std::vector<uint64_t>>& awaits,
                                                const std::vector<uint64_t>& order);

}  // namespace pyinspect
