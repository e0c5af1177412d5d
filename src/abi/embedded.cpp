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
  std::string out;
  for (const EmbeddedTable* t = kEmbeddedTables; t->name; ++t) {
    if (!out.empty()) out += ", ";
    out += std::string(t->name).substr(8);
  }
  return out;
}

}  // namespace pyinspect
