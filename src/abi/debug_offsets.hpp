#pragma once
// CPython 3.13+ publishes its own layout at the start of _PyRuntime: _Py_DebugOffsets, which
// begins with the cookie "xdebugpy" and PY_VERSION_HEX. This turns those bytes into a (partial)
// Layout; DWARF or the embedded tables fill the rest.
#include <cstdint>
#include <optional>
#include <span>

#include "abi/layout.hpp"

namespace pyinspect {

struct DebugOffsetsHeader {
  uint32_t version_hex = 0;
  bool free_threaded = false;
};

// Bytes to read from the start of _PyRuntime to decode any known version of the struct.
inline constexpr size_t kDebugOffsetsReadSize = 2048;

// nullopt if the cookie is absent. Throws Error(Unsupported) for a version whose struct this
// build of pyinspect does not know.
std::optional<DebugOffsetsHeader> debug_offsets_header(std::span<const uint8_t> bytes);
Layout layout_from_debug_offsets(std::span<const uint8_t> bytes);

}  // namespace pyinspect
