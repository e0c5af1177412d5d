#pragma once
#include <nlohmann/json_fwd.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "heap/refs.hpp"
#include "output/stack_output.hpp"

namespace pyinspect {

void print_refs_text(std::ostream& out, const RefsResult& r, const TextStyle& style);
// Graphviz DOT, objgraph's way: referrer -> referent, start objects highlighted, depth shading,
// objects with finalizers outlined in red, roots as double octagons.
std::string refs_dot(const RefsResult& r);
nlohmann::json refs_json(const RefsResult& r);
// What a cycle means for the objects in it (reachable, garbage, collectable), in sentences.
std::vector<std::string> cycle_status(const RefsResult& r, const RefsCycle& c);

}  // namespace pyinspect
