#pragma once
#include <nlohmann/json_fwd.hpp>
#include <cstdint>
#include <ostream>
#include <string>

#include "runtime/model.hpp"

namespace pyinspect {

struct TextStyle {
  bool color = false;
  bool show_addresses = false;
};

void print_stack_text(std::ostream& out, const StackSnapshot& snap, const TextStyle& style);
nlohmann::json stack_json(const StackSnapshot& snap);
nlohmann::json python_json(const PythonInfo& info);
// What every snapshot's JSON begins with: pid, command, python, paused, pause_us, elapsed_us.
nlohmann::json snapshot_json_header(int pid, const std::string& command, const PythonInfo& python, bool paused,
                                    int64_t pause_ns, int64_t elapsed_ns);

}  // namespace pyinspect
