#pragma once
#include <nlohmann/json_fwd.hpp>
#include <ostream>

#include "output/stack_output.hpp"
#include "runtime/model.hpp"

namespace pyinspect {

// Each event loop's tasks as trees (a task, then the tasks it awaits under it), await cycles
// after them; like CPython 3.14's `python -m asyncio pstree`.
void print_tasks_text(std::ostream& out, const TasksSnapshot& snap, const TextStyle& style);
nlohmann::json tasks_json(const TasksSnapshot& snap);

}  // namespace pyinspect
