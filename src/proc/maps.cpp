#include "proc/maps.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>

#include "base/error.hpp"

namespace pyinspect {

Maps::Maps(std::vector<MapEntry> entries) : entries_(std::move(entries)) {
  std::sort(entries_.begin(), entries_.end(), [](const MapEntry& a, const MapEntry& b) { return a.start < b.start; });
}

namespace {
bool parse_hex(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

// Splits off the next space-separated field.
std::string_view next_field(std::string_view& line) {
  size_t b = line.find_first_not_of(' ');
  if (b == std::string_view::npos) {
    line = {};
    return {};
  }
  line.remove_prefix(b);
  size_t e = line.find(' ');
  std::string_view field = line.substr(0, e);
  line.remove_prefix(e == std::string_view::npos ? line.size() : e);
  return field;
}

std::optional<MapEntry> parse_line(std::string_view line) {
  MapEntry m;
  std::string_view range = next_field(line), perms = next_field(line), offset = next_field(line),
                   dev = next_field(line), inode = next_field(line);
  size_t dash = range.find('-');
  if (dash == std::string_view::npos || perms.size() < 4 || dev.empty() || inode.empty()) return std::nullopt;
  if (!parse_hex(range.substr(0, dash), m.start) || !parse_hex(range.substr(dash + 1), m.end) ||
      !parse_hex(offset, m.offset) || m.end < m.start)
    return std::nullopt;
  auto [p, ec] = std::from_chars(inode.data(), inode.data() + inode.size(), m.inode, 10);
  if (ec != std::errc()) return std::nullopt;
  m.readable = perms[0] == 'r';
  m.writable = perms[1] == 'w';
  m.executable = perms[2] == 'x';
  m.shared = perms[3] == 's';
  size_t b = line.find_first_not_of(' ');
  if (b != std::string_view::npos) m.path = std::string(line.substr(b));
  return m;
}
}  // namespace

Maps Maps::parse(std::string_view text) {
  std::vector<MapEntry> entries;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (auto m = parse_line(line)) entries.push_back(std::move(*m));
  }
  return Maps(std::move(entries));
}

Maps Maps::read(int pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/maps";
  std::ifstream in(path);
  if (!in) throw_errno(errno, "open " + path, pid);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str());
}

const MapEntry* Maps::find(RemoteAddr addr) const {
  uint64_t a = addr.value();
  auto it =
      std::upper_bound(entries_.begin(), entries_.end(), a, [](uint64_t v, const MapEntry& m) { return v < m.start; });
  if (it == entries_.begin()) return nullptr;
  --it;
  return it->contains(a) ? &*it : nullptr;
}

bool Maps::readable(RemoteAddr addr, uint64_t len) const {
  uint64_t a = addr.value();
  if (len == 0) return true;
  if (a + len < a) return false;
  uint64_t end = a + len;
  while (a < end) {
    const MapEntry* m = find(RemoteAddr(a));
    if (!m || !m->readable) return false;
    a = m->end;
  }
  return true;
}

}  // namespace pyinspect
