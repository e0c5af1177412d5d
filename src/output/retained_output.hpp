#pragma once
#include <nlohmann/json_fwd.hpp>
#include <ostream>
#include <string>

#include "heap/retained.hpp"
#include "output/stack_output.hpp"

namespace pyinspect {

void print_retained_text(std::ostream& out, const RetainedResult& r, const TextStyle& style);
nlohmann::json retained_json(const RetainedResult& r);
// "Leak suspect: sys.modules['app'].__dict__['CACHE'] (dict, 40,000 items) retains 1.1 GiB (62%)"
std::string leak_suspect_line(const RetainedRow& row);
// 1.1 GiB, 12 MiB, 640 KiB, 56 bytes
std::string size_text(uint64_t bytes);

}  // namespace pyinspect
