#include "abi/layout_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/log.hpp"

namespace pyinspect {

namespace {
// Bumped whenever the way layouts are read from DWARF changes, so that a cached layout made by
// an older reader is never used; the program's version is part of the key as well.
constexpr int kLayoutReaderVersion = 2;

// FNV-1a over the member table, the reader's version and the program's: changes whenever
// fields.def does, and with every release.
std::string spec_digest() {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const char* s) {
    for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (const auto& f : kFieldSpecs) mix(f.id), mix(f.type), mix(f.path);
  for (const auto& s : kSizeSpecs) mix(s.id), mix(s.type);
  for (const auto& t : kTypeVersions) mix(t.type);
  for (const auto& t : kTypesOutside) mix(t.type);
  mix(std::to_string(kLayoutReaderVersion).c_str());
  mix(PYINSPECT_VERSION);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

bool valid_build_id(const std::string& id) {
  return id.size() >= 8 && id.size() <= 128 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Only a directory, or file, that this user owns and nobody else may write is trusted: pyinspect
// often runs as root, and a layout planted by another user would steer what it reads.
bool trusted(const struct stat& st) { return st.st_uid == geteuid() && !(st.st_mode & (S_IWGRP | S_IWOTH)); }

// The cache directory, created (0700) if missing; empty if it cannot be trusted.
std::string usable_dir(bool create) {
  std::string dir = layout_cache_dir();
  if (dir.empty() || dir[0] != '/') return {};
  if (create)
    for (size_t pos = 1; pos != std::string::npos;) {
      pos = dir.find('/', pos + 1);
      mkdir(dir.substr(0, pos).c_str(), 0700);  // quietly: most parts exist
    }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return {};
  if (!trusted(st)) {
    LOG_DEBUG("not using the layout cache in " << dir << ": not owned by this user, or writable by others");
    return {};
  }
  return dir;
}
}  // namespace

std::string layout_cache_dir() {
  if (const char* d = std::getenv("PYINSPECT_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/pyinspect";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/pyinspect";
  return {};
}

std::optional<std::string> load_cache_file(const std::string& name) {
  std::string dir = usable_dir(false);
  if (dir.empty() || name.find('/') != std::string::npos) return std::nullopt;
  int fd = open((dir + "/" + name).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st;
  std::string text;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && trusted(st) && st.st_size < (16 << 20)) {
    text.resize(static_cast<size_t>(st.st_size));
    if (read(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) text.clear();
  }
  close(fd);
  if (text.empty()) return std::nullopt;
  return text;
}

void store_cache_file(const std::string& name, const std::string& text) {
  std::string dir = usable_dir(true);
  if (dir.empty() || name.find('/') != std::string::npos) return;
  std::string path = dir + "/" + name;
  std::string pattern = path + ".XXXXXX";
  std::vector<char> tmp(pattern.begin(), pattern.end());
  tmp.push_back('\0');
  int fd = mkstemp(tmp.data());  // 0600, a name nobody could have prepared
  if (fd < 0) return;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp.data(), path.c_str()) != 0) unlink(tmp.data());
}

std::optional<Layout> load_cached_layout(const std::string& build_id) {
  if (!valid_build_id(build_id)) return std::nullopt;
  std::string dir = usable_dir(false);
  if (dir.empty()) return std::nullopt;
  auto loaded = load_cache_file("layout-" + build_id + ".json");
  if (!loaded) return std::nullopt;
  const std::string& text = *loaded;
  try {
    auto j = nlohmann::json::parse(text);
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
  if (!valid_build_id(build_id)) return;
  std::string dir = usable_dir(true);
  if (dir.empty()) return;
  nlohmann::json j = layout.to_json();
  j["spec"] = spec_digest();
  j["build_id"] = build_id;
  store_cache_file("layout-" + build_id + ".json", j.dump(1));
}

}  // namespace pyinspect
