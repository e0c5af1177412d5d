#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace pyinspect {
// Serialises with invalid UTF-8 (2.7 byte strings, torn reads) replaced, never throwing.
std::string dump_json(const nlohmann::json& j, int indent = -1);
}  // namespace pyinspect
