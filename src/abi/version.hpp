#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace pyinspect {

struct PyVersion {
  int major = 0;
  int minor = 0;
  int micro = -1;    // -1: not known
  std::string tail;  // "", "a1", "rc2", "+" ...

  // From PY_VERSION_HEX (e.g. Py_Version on 3.11+).
  static PyVersion from_hex(uint32_t hex);
  // From "3.11.7 (main, ...)" or "3.11.7" or "3.11" (leading spaces allowed).
  static std::optional<PyVersion> parse(const std::string& text);
  // Major and minor from a file name like "libpython3.11.so.1.0", "libpython3.6m.so",
  // "python2.7" or "python3.11d" (the last "pythonX.Y" in the name).
  static std::optional<PyVersion> from_file_name(const std::string& name);

  bool at_least(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
  bool is(int ma, int mi) const { return major == ma && minor == mi; }
  bool known() const { return major != 0; }
  std::string short_str() const { return std::to_string(major) + "." + std::to_string(minor); }
  std::string str() const;
};

}  // namespace pyinspect
