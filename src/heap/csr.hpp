#pragma once
// A graph's adjacency as compressed rows, as ObjectGraph keeps it and the algorithms over the
// whole graph (heap/dominators.hpp) read it.
#include <cstdint>
#include <utility>

namespace pyinspect {

// Node n's neighbours are edges[start[n]] .. edges[start[n + 1] - 1].
struct CsrView {
  const uint32_t* start = nullptr;
  const uint32_t* edges = nullptr;
  std::pair<const uint32_t*, const uint32_t*> row(uint32_t n) const { return {edges + start[n], edges + start[n + 1]}; }
};

}  // namespace pyinspect
