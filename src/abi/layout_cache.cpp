#include "abi/layout_cache.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/log.hpp"

namespace pyinspect {

namespace {
// FNV-1a over the member table: changes whenever fields.def does.
std::string spec_digest() {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const char* s) {
    for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (const auto& f : kFieldSpecs) mix(f.id), mix(f.type), mix(f.path);
  for (const auto& s : kSizeSpecs) mix(s.id), mix(s.type);
  for (const auto& t : kTypeVersions) mix(t.type);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

bool valid_build_id(const std::string& id) {
  return id.size() >= 8 && id.size() <= 128 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}
}  // namespace

std::string layout_cache_dir() {
  if (const char* d = std::getenv("PYINSPECT_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/pyinspect";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/pyinspect";
  return {};
}

std::optional<Layout> load_cached_layout(const std::string& build_id) {
  std::string dir = layout_cache_dir();
  if (dir.empty() || !valid_build_id(build_id)) return std::nullopt;
  std::ifstream in(dir + "/layout-" + build_id + ".json");
  if (!in) return std::nullopt;
  try {
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = nlohmann::json::parse(ss.str());
    if (j.value("spec", "") != spec_digest() || j.value("build_id", "") != build_id) return std::nullopt;
    Layout l = Layout::from_json(j, LayoutSource::Dwarf);
    LOG_DEBUG("layout for build-id " << build_id << " from the cache in " << dir);
    return l;
  } catch (const std::exception& e) {
    LOG_DEBUG("ignoring cached layout for " << build_id << ": " << e.what());
    return std::nullopt;
  }
}

void store_cached_layout(const std::string& build_id, const Layout& layout) {
  std::string dir = layout_cache_dir();
  if (dir.empty() || !valid_build_id(build_id)) return;
  // mkdir -p, quietly.
  for (size_t pos = 1; pos != std::string::npos; pos = dir.find('/', pos + 1)) mkdir(dir.substr(0, pos).c_str(), 0755);
  mkdir(dir.c_str(), 0755);
  nlohmann::json j = layout.to_json();
  j["spec"] = spec_digest();
  j["build_id"] = build_id;
  std::string path = dir + "/layout-" + build_id + ".json";
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp);
    if (!(out << j.dump(1))) {
      unlink(tmp.c_str());
      return;
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) unlink(tmp.c_str());
}

}  // namespace pyinspect
