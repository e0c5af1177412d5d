#include <algorithm>
#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>

#include "abi/layout.hpp"
#include "base/error.hpp"

namespace pyinspect {

struct EmbeddedTable {
  const char* name;  // "cpython-3.11"
  const char* json;
};
extern const EmbeddedTable kEmbeddedTables[];

std::optional<Layout> embedded_layout(const PyVersion& version) {
  std::string want = "cpython-" + version.short_str();
  for (const EmbeddedTable* t = kEmbeddedTables; t->name; ++t) {
    if (want != t->name) continue;
    Layout l = Layout::from_json(nlohmann::json::parse(t->json), LayoutSource::Embedded);
    // The table was made from one micro release; the target's own version is what counts.
    Layout out = l;
    out.set_version(version);
    out.origin = "embedded table " + want + " (made from " + l.version.str() + ")";
    return out;
  }
  return std::nullopt;
}

std::string embedded_versions() {
  // In version order (2.7, 3.6, ..., 3.10, ...), not the tables' name order.
  std::vector<std::pair<std::pair<int, int>, std::string>> versions;
  for (const EmbeddedTable* t = kEmbeddedTables; t->name; ++t) {
    std::string v = std::string(t->name).substr(8);
    int major = 0, minor = 0;
    std::sscanf(v.c_str(), "%d.%d", &major, &minor);
    versions.push_back({{major, minor}, v});
  }
  std::sort(versions.begin(), versions.end());
  std::string out;
  for (const auto& [key, v] : versions) out += (out.empty() ? "" : ", ") + v;
  return out;
}

}  // namespace pyinspect
