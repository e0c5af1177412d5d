#pragma once
// /proc/PID/maps: which address ranges exist in the target and what backs them.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/remote.hpp"

namespace pyinspect {

struct MapEntry {
  uint64_t start = 0;
  uint64_t end = 0;
  bool readable = false;
  bool writable = false;
  bool executable = false;
  bool shared = false;
  uint64_t offset = 0;
  uint64_t inode = 0;
  std::string path;  // as the target sees it; may be "[heap]", "", or end in " (deleted)"

  uint64_t size() const { return end - start; }
  bool contains(uint64_t addr) const { return addr >= start && addr < end; }
  bool is_file() const { return inode != 0 && !path.empty() && path[0] == '/'; }
};

class Maps {
 public:
  Maps() = default;
  explicit Maps(std::vector<MapEntry> entries);

  // Parses the text of a maps file; malformed lines are skipped.
  static Maps parse(std::string_view text);
  // Reads /proc/PID/maps; throws Error (no such process, permission).
  static Maps read(int pid);

  const std::vector<MapEntry>& entries() const { return entries_; }
  const MapEntry* find(RemoteAddr addr) const;
  // True if [addr, addr+len) lies in readable mappings (contiguous ones may be crossed).
  bool readable(RemoteAddr addr, uint64_t len) const;
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<MapEntry> entries_;  // sorted by start
};

}  // namespace pyinspect
