#include "abi/glibc.hpp"

#include <unistd.h>

#include <cctype>
#include <cstdio>

namespace pyinspect {

std::string glibc_version_of(const ElfFile& libc) {
  auto sec = libc.section(".rodata");
  if (!sec || sec->nobits || sec->size == 0 || sec->size > (64u << 20)) return "";
  std::string data(sec->size, '\0');
  if (pread(libc.fd(), data.data(), data.size(), static_cast<off_t>(sec->offset)) != static_cast<ssize_t>(data.size()))
    return "";
  const std::string key = "release version ";
  size_t at = data.find(key);
  if (at == std::string::npos) return "";
  size_t s = at + key.size(), e = s;
  while (e < data.size() && (std::isdigit(static_cast<unsigned char>(data[e])) || data[e] == '.')) ++e;
  std::string v = data.substr(s, e - s);
  while (!v.empty() && v.back() == '.') v.pop_back();
  return v;
}

GlibcFacts glibc_facts(const std::string& version) {
  GlibcFacts f;
  int major = 0, minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) return f;
  auto at_least = [&](int a, int b) { return major > a || (major == a && minor >= b); };
  f.version_known = true;
  f.safe_linking = at_least(2, 32);
  f.layout_built_in = at_least(2, 27);
  f.heap_info_size = at_least(2, 35) ? 48 : 32;
  return f;
}

}  // namespace pyinspect
