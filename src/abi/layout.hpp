#pragma once
// The layout of one CPython build: member offsets and struct sizes (fields.def), plus the facts
// that follow from the version alone (traits). Runtime code asks the layout; it never compares
// version numbers itself.
#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "abi/fields.hpp"
#include "abi/version.hpp"

namespace pyinspect {

enum class LayoutSource : uint8_t { None, Embedded, Dwarf, DebugOffsets };
const char* layout_source_name(LayoutSource s);

// Facts of a CPython version that are not struct members.
struct Traits {
  enum class Frames { FrameObjects, InterpreterFramesViaCFrame, InterpreterFrames };
  enum class LineTable { Lnotab, Linetable310, Locations311 };
  Frames frames = Frames::FrameObjects;
  LineTable lines = LineTable::Lnotab;
  bool lnotab_signed = true;         // 3.6+: line increments in co_lnotab are signed bytes
  bool lasti_in_code_units = false;  // 3.10: f_lasti counts 2-byte code units
  // 3.12+: frames whose owner is this or higher are not Python frames of their own (3.12-3.13:
  // FRAME_OWNED_BY_CSTACK = 3; 3.14: FRAME_OWNED_BY_INTERPRETER = 3, FRAME_OWNED_BY_CSTACK = 4).
  int first_shim_owner = -1;
  bool tagged_code_pointer = false;  // 3.14+: f_executable is a tagged _PyStackRef
  bool python2 = false;              // 2.7: str is PyStringObject, names are bytes
  bool unicode_ready_bit = true;     // <=3.11: state has a `ready` bit
  // Where an instance keeps its attributes when its type manages the dict itself.
  enum class InstanceDict { DictOffset, Managed311, Managed312, Managed313 };
  InstanceDict instance_dict = InstanceDict::DictOffset;
  enum class Dict { Dict27, Dict36, Dict311 };
  Dict dict = Dict::Dict36;
  bool long_tag = false;  // 3.12+: PyLongObject has lv_tag instead of a signed ob_size
  // pymalloc: pools and arenas of 4 KiB / 256 KiB up to 3.9, 16 KiB / 1 MiB from 3.10; its state
  // is static up to 3.11, in the interpreter from 3.12, behind a pointer there from 3.13.
  uint64_t pool_size = 4096, arena_size = 256 << 10;
  enum class Obmalloc { Statics, InInterpreter, InterpreterPointer };
  Obmalloc obmalloc = Obmalloc::Statics;

  static Traits for_version(const PyVersion& v);
};

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

  const Traits& traits() const { return traits_; }
  void set_version(const PyVersion& v) {
    version = v;
    traits_ = Traits::for_version(v);
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
  Traits traits_;
};

// Offsets from DWARF for every member of fields.def that the binary's debug info describes.
// `all_types`: also search for types outside their VERSIONS range (slower; for abi dump/check).
class DwarfTypes;
Layout layout_from_dwarf(DwarfTypes& dwarf, const PyVersion& version, bool all_types = false);
// Whether fields.def expects `type` to exist in `version`.
bool type_expected(const char* type, const PyVersion& version);

// The table embedded at build time for this minor version (pyabi/), if any.
std::optional<Layout> embedded_layout(const PyVersion& version);
// Minor versions with an embedded table ("2.7", "3.6", ...).
std::string embedded_versions();

}  // namespace pyinspect
