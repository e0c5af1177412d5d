#include "abi/version.hpp"

#include <regex>

namespace pyinspect {

PyVersion PyVersion::from_hex(uint32_t hex) {
  PyVersion v;
  v.major = static_cast<int>((hex >> 24) & 0xff);
  v.minor = static_cast<int>((hex >> 16) & 0xff);
  v.micro = static_cast<int>((hex >> 8) & 0xff);
  int level = static_cast<int>((hex >> 4) & 0xf), serial = static_cast<int>(hex & 0xf);
  switch (level) {
    case 0xa: v.tail = "a" + std::to_string(serial); break;
    case 0xb: v.tail = "b" + std::to_string(serial); break;
    case 0xc: v.tail = "rc" + std::to_string(serial); break;
    default: break;
  }
  return v;
}

std::optional<PyVersion> PyVersion::parse(const std::string& text) {
  static const std::regex re(R"(^\s*(\d)\.(\d{1,2})(?:\.(\d{1,2}))?((?:a|b|rc)\d+)?(\+)?)");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return std::nullopt;
  PyVersion v;
  v.major = std::stoi(m[1]);
  v.minor = std::stoi(m[2]);
  if (m[3].matched) v.micro = std::stoi(m[3]);
  v.tail = m[4].str() + m[5].str();
  return v;
}

std::string PyVersion::str() const {
  std::string s = short_str();
  if (micro >= 0) s += "." + std::to_string(micro);
  return s + tail;
}

}  // namespace pyinspect
