#pragma once
#include <nlohmann/json_fwd.hpp>
#include <ostream>

#include "runtime/model.hpp"

namespace pyinspect {

struct TextStyle {
  bool color = false;
  bool show_addresses = false;
};

void print_stack_text(std::ostream& out, const StackSnapshot& snap, const TextStyle& style);
nlohmann::json stack_json(const StackSnapshot& snap);
nlohmann::json python_json(const PythonInfo& info);

}  // namespace pyinspect
