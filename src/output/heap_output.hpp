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
void print_growth_text(std::ostream& out, const HeapCensus& before, const HeapCensus& after, GroupBy by, size_t top,
                       double seconds, const TextStyle& style);
nlohmann::json heap_json(const HeapCensus& c, GroupBy by, size_t top);
nlohmann::json growth_json(const HeapCensus& before, const HeapCensus& after, GroupBy by, size_t top, double seconds);

}  // namespace pyinspect
