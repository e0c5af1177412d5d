#include "abi/version.hpp"

#include <string>

namespace pyinspect {

PyVersion PyVersion::from_hex(uint32_t hex) {
  PyVersion v;
  v.major = static_cast<int>((hex >> 24) & 0xff);
  v.minor = static_cast<int>((hex >> 16) & 0xff);
  v.micro = static_cast<int>((hex >> 8) & 0xff);
  int level = static_cast<int>((hex >> 4) & 0xf), serial = static_cast<int>(hex & 0xf);
  switch (level) {
    case 0xa:
      v.tail = "a" + std::to_string(serial);
      break;
    case 0xb:
      v.tail = "b" + std::to_string(serial);
      break;
    case 0xc:
      v.tail = "rc" + std::to_string(serial);
      break;
    default:
      break;
  }
  return v;
}

namespace {
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Reads 1..max_digits digits at `pos`; -1 if there are none.
int digits(const std::string& s, size_t& pos, int max_digits) {
  int v = 0, n = 0;
  while (pos < s.size() && is_digit(s[pos]) && n < max_digits) v = v * 10 + (s[pos++] - '0'), ++n;
  return n ? v : -1;
}
}  // namespace

std::optional<PyVersion> PyVersion::parse(const std::string& text) {
  size_t pos = text.find_first_not_of(" \t");
  if (pos == std::string::npos) return std::nullopt;
  PyVersion v;
  size_t start = pos;
  v.major = digits(text, pos, 1);
  if (v.major < 0 || pos >= text.size() || text[pos] != '.') return std::nullopt;
  ++pos;
  v.minor = digits(text, pos, 2);
  if (v.minor < 0) return std::nullopt;
  if (pos < text.size() && is_digit(text[pos])) return std::nullopt;  // three-digit minor: not a version
  if (pos + 1 < text.size() && text[pos] == '.' && is_digit(text[pos + 1])) {
    ++pos;
    v.micro = digits(text, pos, 2);
  }
  for (const char* level : {"rc", "a", "b"}) {
    size_t n = std::char_traits<char>::length(level);
    if (text.compare(pos, n, level) == 0 && pos + n < text.size() && is_digit(text[pos + n])) {
      size_t p = pos + n;
      digits(text, p, 3);
      v.tail = text.substr(pos, p - pos);
      pos = p;
      break;
    }
  }
  if (pos < text.size() && text[pos] == '+') v.tail += '+';
  (void)start;
  return v;
}

std::optional<PyVersion> PyVersion::from_file_name(const std::string& name) {
  std::optional<PyVersion> found;
  for (size_t at = name.find("python"); at != std::string::npos; at = name.find("python", at + 1)) {
    size_t pos = at + 6;
    PyVersion v;
    v.major = digits(name, pos, 1);
    if (v.major < 0 || pos >= name.size() || name[pos] != '.') continue;
    ++pos;
    v.minor = digits(name, pos, 2);
    if (v.minor < 0 || (pos < name.size() && is_digit(name[pos]))) continue;
    found = v;
  }
  return found;
}

std::string PyVersion::str() const {
  std::string s = short_str();
  if (micro >= 0) s += "." + std::to_string(micro);
  return s + tail;
}

}  // namespace pyinspect
