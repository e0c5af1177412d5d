#include "elf/debug_file.hpp"

#include <unistd.h>

#include "base/error.hpp"
#include "base/log.hpp"

namespace pyinspect {

namespace {
std::unique_ptr<ElfFile> try_open(const std::string& path, const std::string& want_build_id) {
  if (access(path.c_str(), R_OK) != 0) return nullptr;
  try {
    auto f = std::make_unique<ElfFile>(path);
    if (!f->has_debug_info()) return nullptr;
    // A debug file for another build would give wrong offsets: demand the same build-id.
    if (!want_build_id.empty() && f->build_id() != want_build_id) {
      LOG_DEBUG(path << ": build-id differs, ignored");
      return nullptr;
    }
    return f;
  } catch (const Error&) {
    return nullptr;
  }
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}
}  // namespace

std::unique_ptr<ElfFile> find_debug_file(const ElfFile& binary, const std::string& target_path,
                                         const std::vector<std::string>& roots) {
  std::string id = binary.build_id();
  std::vector<std::string> candidates;
  if (id.size() > 2) {
    for (const auto& root : roots)
      candidates.push_back(root + "/usr/lib/debug/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug");
  }
  if (auto link = binary.debuglink()) {
    // The binary's own directory is already under the right root (it was opened through it).
    std::string dir = dir_of(binary.path());
    candidates.push_back(dir + "/" + *link);
    candidates.push_back(dir + "/.debug/" + *link);
    for (const auto& root : roots) candidates.push_back(root + "/usr/lib/debug" + dir_of(target_path) + "/" + *link);
  }
  for (const auto& c : candidates) {
    if (auto f = try_open(c, id)) {
      LOG_INFO("debug info for " << binary.path() << " found in " << c);
      return f;
    }
  }
  return nullptr;
}

}  // namespace pyinspect
