#include "elf/mapped_binary.hpp"

namespace pyinspect {

std::optional<RemoteAddr> MappedBinary::api_symbol(const std::string& name) const {
  if (exports_api) {
    if (auto s = elf->exported_symbol(name)) return at(s->value);
    return std::nullopt;
  }
  return symbol(name);
}

std::optional<RemoteAddr> MappedBinary::static_symbol(const std::string& name) const {
  if (auto s = elf->static_symbol(name)) return at(s->value);
  if (debug)
    if (auto s = debug->static_symbol(name)) return at(s->value);
  return std::nullopt;
}

std::optional<RemoteAddr> MappedBinary::symbol(const std::string& name) const {
  if (auto s = elf->symbol(name)) return at(s->value);
  if (debug)
    if (auto s = debug->symbol(name)) return at(s->value);
  return std::nullopt;
}

}  // namespace pyinspect
