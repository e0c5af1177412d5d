#pragma once
// The layout of one CPython build: member offsets and struct sizes (fields.def), plus the facts
// that follow from the version alone (abi/facts.hpp). Runtime code asks the layout; it never
// compares version numbers itself.
#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "abi/facts.hpp"
#include "abi/fields.hpp"
#include "abi/version.hpp"

namespace pyinspect {

enum class LayoutSource : uint8_t { None, Embedded, Dwarf, DebugOffsets, Fixed };
const char* layout_source_name(LayoutSource s);

class Layout {
 public:
  Layout() {
    off_.fill(-1);
    size_.fill(-1);
    src_.fill(LayoutSource::None);
  }

  PyVersion version;
  bool debug_build = false;
  std::string origin;  // human-readable: where the offsets came from

  bool has(F f) const { return off_[idx(f)] >= 0; }
  int64_t off(F f) const { return off_[idx(f)]; }
  // The offset, or Error(Unsupported) naming the missing member.
  int64_t require(F f) const;
  bool has(S s) const { return size_[idx(s)] >= 0; }
  int64_t size(S s) const { return size_[idx(s)]; }
  int64_t require(S s) const;
  LayoutSource source(F f) const { return src_[idx(f)]; }

  void set(F f, int64_t value, LayoutSource src) {
    off_[idx(f)] = value;
    src_[idx(f)] = src;
  }
  void set(S s, int64_t value) { size_[idx(s)] = value; }
  // Fills every member still unknown here from `other`.
  void fill_from(const Layout& other);
  size_t known_fields() const;

  const Facts& facts() const { return facts_; }
  void set_version(const PyVersion& v) {
    version = v;
    facts_ = Facts::for_version(v);
  }

  // pyabi/*.json form: {"format":1,"python":"3.11","fields":{id:off},"sizes":{id:size},...}
  nlohmann::json to_json() const;
  static Layout from_json(const nlohmann::json& j, LayoutSource src);

 private:
  template <class E>
  static size_t idx(E e) {
    return static_cast<size_t>(e);
  }
  std::array<int64_t, kFieldCount> off_{};
  std::array<int64_t, kSizeCount> size_{};
  std::array<LayoutSource, kFieldCount> src_{};
  Facts facts_;
};

// Offsets from DWARF for every member of fields.def that the binary's debug info describes.
// `all_types`: also search for types outside their VERSIONS range (slower; for abi dump/check).
class DwarfTypes;
Layout layout_from_dwarf(DwarfTypes& dwarf, const PyVersion& version, bool all_types = false);
// Whether fields.def expects `type` to exist in `version` (its VERSIONS line).
bool type_expected(const char* type, const PyVersion& version);
// Whether `type` lives in an extension module, not in libpython, in `version` (its OUTSIDE line):
// never searched in libpython's DWARF, never in the embedded tables; fixed_layout() has it.
bool outside_libpython(const char* type, const PyVersion& version);

// The structs of extension modules (array, _struct, _ctypes; 2.7's _collections and _io), which
// libpython's DWARF and the embedded tables do not describe: fixed x86-64 layouts per version
// (fixed_layouts.cpp), filled in where nothing better is known.
Layout fixed_layout(const PyVersion& version);

// The table embedded at build time for this minor version (pyabi/), if any.
std::optional<Layout> embedded_layout(const PyVersion& version);
// Minor versions with an embedded table ("2.7", "3.6", ...).
std::string embedded_versions();

}  // namespace pyinspect
