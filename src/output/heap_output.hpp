#pragma once
#include <nlohmann/json_fwd.hpp>
#include <ostream>

#include "heap/census.hpp"
#include "output/stack_output.hpp"

namespace pyinspect {

struct GrowthRow {
  std::string kind;
  uint64_t count_before = 0, count_after = 0, size_before = 0, size_after = 0;
  int64_t count_delta() const { return static_cast<int64_t>(count_after) - static_cast<int64_t>(count_before); }
  int64_t size_delta() const { return static_cast<int64_t>(size_after) - static_cast<int64_t>(size_before); }
};
// Kinds that changed between two censuses, the largest growth (in bytes) first.
std::vector<GrowthRow> growth_rows(const HeapCensus& before, const HeapCensus& after, GroupBy by);

void print_heap_text(std::ostream& out, const HeapCensus& c, GroupBy by, size_t top, const TextStyle& style);
// `span`: what separates the two ("over 5.0 s", "from A to B").
void print_growth_text(std::ostream& out, const HeapCensus& before, const HeapCensus& after, GroupBy by, size_t top,
                       const std::string& span, const TextStyle& style);
nlohmann::json heap_json(const HeapCensus& c, GroupBy by, size_t top);
nlohmann::json growth_json(const HeapCensus& before, const HeapCensus& after, GroupBy by, size_t top, double seconds);

// heap --diff: the objects of the second census at an address where the first had no object of
// their type, the largest first.
struct NewObjects {
  uint64_t count = 0, size = 0;
  std::vector<LargeObject> largest;
};
struct HeapDiff {
  std::string before_target, after_target;  // a core file's path, or "process PID"
  NewObjects fresh;
};
void print_diff_text(std::ostream& out, const HeapCensus& before, const HeapCensus& after, const HeapDiff& d, GroupBy by,
                     size_t top, const TextStyle& style);
nlohmann::json diff_json(const HeapCensus& before, const HeapCensus& after, const HeapDiff& d, GroupBy by, size_t top);

}  // namespace pyinspect
