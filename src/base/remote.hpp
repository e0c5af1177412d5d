#pragma once
// An address in the target's address space. It is never dereferenced locally; arithmetic on it
// stays remote, so a remote pointer cannot be mistaken for a local one.
#include <compare>
#include <cstdint>
#include <functional>

namespace pyinspect {

class RemoteAddr {
 public:
  constexpr RemoteAddr() = default;
  constexpr explicit RemoteAddr(uint64_t value) : value_(value) {}
  constexpr uint64_t value() const { return value_; }
  constexpr bool null() const { return value_ == 0; }
  constexpr explicit operator bool() const { return value_ != 0; }
  constexpr RemoteAddr operator+(int64_t delta) const { return RemoteAddr(value_ + static_cast<uint64_t>(delta)); }
  constexpr int64_t operator-(RemoteAddr other) const { return static_cast<int64_t>(value_ - other.value_); }
  constexpr auto operator<=>(const RemoteAddr&) const = default;

 private:
  uint64_t value_ = 0;
};

}  // namespace pyinspect

template <>
struct std::hash<pyinspect::RemoteAddr> {
  size_t operator()(pyinspect::RemoteAddr a) const noexcept { return std::hash<uint64_t>{}(a.value()); }
};
