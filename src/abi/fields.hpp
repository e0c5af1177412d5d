#pragma once
// Identifiers of the struct members and sizes listed in fields.def.
#include <cstddef>

namespace pyinspect {

enum class F : int {
#define FIELD(id, type, path) id,
#define SIZE(id, type)
#define VERSIONS(type, a, b, c, d)
#define OUTSIDE(type, a, b, c, d)
#include "abi/fields.def"
#undef VERSIONS
#undef OUTSIDE
#undef FIELD
#undef SIZE
};

enum class S : int {
#define FIELD(id, type, path)
#define SIZE(id, type) id,
#define VERSIONS(type, a, b, c, d)
#define OUTSIDE(type, a, b, c, d)
#include "abi/fields.def"
#undef VERSIONS
#undef OUTSIDE
#undef FIELD
#undef SIZE
};

struct FieldSpec {
  const char* id;
  const char* type;
  const char* path;  // "a.b|c": alternatives separated by '|'
};
struct SizeSpec {
  const char* id;
  const char* type;
};

inline constexpr FieldSpec kFieldSpecs[] = {
#define FIELD(id, type, path) {#id, type, path},
#define SIZE(id, type)
#define VERSIONS(type, a, b, c, d)
#define OUTSIDE(type, a, b, c, d)
#include "abi/fields.def"
#undef VERSIONS
#undef OUTSIDE
#undef FIELD
#undef SIZE
};
inline constexpr SizeSpec kSizeSpecs[] = {
#define FIELD(id, type, path)
#define SIZE(id, type) {#id, type},
#define VERSIONS(type, a, b, c, d)
#define OUTSIDE(type, a, b, c, d)
#include "abi/fields.def"
#undef VERSIONS
#undef OUTSIDE
#undef FIELD
#undef SIZE
};
struct TypeVersions {
  const char* type;
  int first_major, first_minor, last_major, last_minor;
};
inline constexpr TypeVersions kTypeVersions[] = {
#define FIELD(id, type, path)
#define SIZE(id, type)
#define VERSIONS(type, a, b, c, d) {type, a, b, c, d},
#define OUTSIDE(type, a, b, c, d)
#include "abi/fields.def"
#undef FIELD
#undef SIZE
#undef VERSIONS
#undef OUTSIDE
};

// Types that live in an extension module, not in libpython, in these versions.
inline constexpr TypeVersions kTypesOutside[] = {
#define FIELD(id, type, path)
#define SIZE(id, type)
#define VERSIONS(type, a, b, c, d)
#define OUTSIDE(type, a, b, c, d) {type, a, b, c, d},
#include "abi/fields.def"
#undef FIELD
#undef SIZE
#undef VERSIONS
#undef OUTSIDE
};

inline constexpr size_t kFieldCount = sizeof kFieldSpecs / sizeof kFieldSpecs[0];
inline constexpr size_t kSizeCount = sizeof kSizeSpecs / sizeof kSizeSpecs[0];

}  // namespace pyinspect
