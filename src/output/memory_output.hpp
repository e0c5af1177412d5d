#pragma once
#include <nlohmann/json_fwd.hpp>
#include <ostream>

#include "heap/accounting.hpp"
#include "output/stack_output.hpp"

namespace pyinspect {

void print_memory_text(std::ostream& out, const MemoryAccount& a, const TextStyle& style);
nlohmann::json memory_json(const MemoryAccount& a);

}  // namespace pyinspect
