#include "abi/layout.hpp"

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "elf/dwarf_types.hpp"

namespace pyinspect {

const char* layout_source_name(LayoutSource s) {
  switch (s) {
    case LayoutSource::None:
      return "none";
    case LayoutSource::Embedded:
      return "embedded table";
    case LayoutSource::Dwarf:
      return "DWARF";
    case LayoutSource::DebugOffsets:
      return "_Py_DebugOffsets";
    case LayoutSource::Fixed:
      return "fixed layout";
  }
  return "?";
}

int64_t Layout::require(F f) const {
  int64_t v = off(f);
  if (v < 0) {
    const auto& spec = kFieldSpecs[idx(f)];
    throw Error(ErrorCode::Unsupported, std::string("the layout of CPython ") + version.str() + " lacks " + spec.type +
                                            "." + spec.path + " (" + origin + ")");
  }
  return v;
}

int64_t Layout::require(S s) const {
  int64_t v = size(s);
  if (v < 0)
    throw Error(ErrorCode::Unsupported, std::string("the layout of CPython ") + version.str() + " lacks sizeof(" +
                                            kSizeSpecs[idx(s)].type + ") (" + origin + ")");
  return v;
}

void Layout::fill_from(const Layout& other) {
  for (size_t i = 0; i < kFieldCount; ++i)
    if (off_[i] < 0 && other.off_[i] >= 0) {
      off_[i] = other.off_[i];
      src_[i] = other.src_[i];
    }
  for (size_t i = 0; i < kSizeCount; ++i)
    if (size_[i] < 0) size_[i] = other.size_[i];
}

size_t Layout::known_fields() const {
  size_t n = 0;
  for (auto v : off_) n += v >= 0;
  return n;
}

nlohmann::json Layout::to_json() const {
  nlohmann::json j;
  j["format"] = 1;
  j["python"] = version.short_str();
  j["version"] = version.str();
  j["debug_build"] = debug_build;
  j["origin"] = origin;
  auto& fields = j["fields"] = nlohmann::json::object();
  for (size_t i = 0; i < kFieldCount; ++i)
    if (off_[i] >= 0) fields[kFieldSpecs[i].id] = off_[i];
  auto& sizes = j["sizes"] = nlohmann::json::object();
  for (size_t i = 0; i < kSizeCount; ++i)
    if (size_[i] >= 0) sizes[kSizeSpecs[i].id] = size_[i];
  return j;
}

Layout Layout::from_json(const nlohmann::json& j, LayoutSource src) {
  Layout l;
  auto v = PyVersion::parse(j.at("version").get<std::string>());
  if (!v) throw Error(ErrorCode::Internal, "layout table without a version");
  l.set_version(*v);
  l.debug_build = j.value("debug_build", false);
  l.origin = j.value("origin", "");
  const auto& fields = j.at("fields");
  for (size_t i = 0; i < kFieldCount; ++i)
    if (auto it = fields.find(kFieldSpecs[i].id); it != fields.end()) l.set(static_cast<F>(i), it->get<int64_t>(), src);
  const auto& sizes = j.at("sizes");
  for (size_t i = 0; i < kSizeCount; ++i)
    if (auto it = sizes.find(kSizeSpecs[i].id); it != sizes.end()) l.set(static_cast<S>(i), it->get<int64_t>());
  return l;
}

namespace {
bool in_range(const TypeVersions& tv, const PyVersion& v) {
  return v.at_least(tv.first_major, tv.first_minor) &&
         (v.major < tv.last_major || (v.major == tv.last_major && v.minor <= tv.last_minor));
}
}  // namespace

bool outside_libpython(const char* type, const PyVersion& v) {
  for (const auto& tv : kTypesOutside)
    if (std::string_view(tv.type) == type && in_range(tv, v)) return true;
  return false;
}

bool type_expected(const char* type, const PyVersion& v) {
  for (const auto& tv : kTypeVersions)
    if (std::string_view(tv.type) == type) return in_range(tv, v);
  return true;
}

Layout layout_from_dwarf(DwarfTypes& dwarf, const PyVersion& version, bool all_types) {
  Layout l;
  l.set_version(version);
  for (size_t i = 0; i < kFieldCount; ++i) {
    if (outside_libpython(kFieldSpecs[i].type, version)) continue;
    if (!all_types && !type_expected(kFieldSpecs[i].type, version)) continue;
    std::string paths = kFieldSpecs[i].path;
    size_t pos = 0;
    for (;;) {
      size_t bar = paths.find('|', pos);
      std::string path = paths.substr(pos, bar == std::string::npos ? std::string::npos : bar - pos);
      if (auto off = dwarf.offset_of(kFieldSpecs[i].type, path)) {
        l.set(static_cast<F>(i), *off, LayoutSource::Dwarf);
        break;
      }
      if (bar == std::string::npos) break;
      pos = bar + 1;
    }
  }
  for (size_t i = 0; i < kSizeCount; ++i) {
    if (outside_libpython(kSizeSpecs[i].type, version)) continue;
    if (!all_types && !type_expected(kSizeSpecs[i].type, version)) continue;
    if (auto sz = dwarf.size_of(kSizeSpecs[i].type)) l.set(static_cast<S>(i), *sz);
  }
  return l;
}

}  // namespace pyinspect
