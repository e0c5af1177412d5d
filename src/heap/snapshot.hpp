#pragma once
// A copy of the target's writable memory, taken while it is paused (docs/architecture.md, principles: pause briefly):
// the pause grows with the bytes copied, not with the number of objects; the census then runs on the copy while the
// target runs on.
//
// Only pages the target actually has are copied: /proc/PID/pagemap says which pages of each
// writable mapping are resident or swapped out; the others read as zeros (untouched anonymous
// memory is zero), so pyinspect's memory use follows the target's resident memory, not its
// address space (thread stacks reserve megabytes they never touch).
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proc/memory.hpp"

namespace pyinspect {

struct SnapshotLimits {
  // Refuse (Error Resources) to copy more than this. 0: as much as the machine's available
  // memory allows, given that the whole job needs `need_factor` times the copy.
  uint64_t max_bytes = 0;
  double need_factor = 1.5;
};

// MemAvailable of /proc/meminfo, in bytes (0 if unknown).
uint64_t available_memory();

class HeapSnapshot : public Memory {
 public:
  // Plans the copy (which pages) from the maps and pagemap, while the target still runs: cheap,
  // and it lets a too-large copy be refused before the target is stopped.
  static std::unique_ptr<HeapSnapshot> plan(ProcessMemory& live, const SnapshotLimits& limits);
  // Copies the planned pages (call while the target is paused). Re-reads the maps and the
  // pagemap first, so mappings and pages that appeared since the plan are copied too (a growing
  // string is reallocated into a new mapping at any moment).
  void copy();

  bool read(RemoteAddr addr, void* out, size_t len) const override;

  // Throws Error(TargetExited) if the target has exited: a census or graph of a process that
  // is gone is not what was asked for, and a walk over a copy can take seconds. Cheap enough to
  // call every few thousand objects (it reads /proc/PID/stat at most every 50 ms).
  void check_target(const char* doing) const;
  // A pointer into the copy for [addr, addr+len) when the range lies in one copied mapping;
  // nullptr otherwise. Valid as long as the snapshot lives.
  const uint8_t* view(RemoteAddr addr, size_t len) const;

  uint64_t planned_bytes() const { return planned_bytes_; }
  uint64_t copied_bytes() const { return copied_bytes_; }
  size_t regions() const { return regions_.size(); }
  // Whether addr lies in a copied (writable) mapping.
  bool contains(RemoteAddr addr) const { return find(addr.value()) != nullptr; }
  const Maps& maps() const { return live_.maps(); }
  // The copied mappings, [start, end) each, sorted.
  std::vector<std::pair<uint64_t, uint64_t>> ranges() const {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    for (const auto& r : regions_)
      if (r.data) out.emplace_back(r.start, r.end);
    return out;
  }

  ~HeapSnapshot() override;

 private:
  struct Region {
    uint64_t start = 0, end = 0;
    uint8_t* data = nullptr;  // mmap'd, end - start bytes; pages never written stay unallocated
    bool file_backed = false;
  };
  explicit HeapSnapshot(ProcessMemory& live) : live_(live) {}
  void add_regions(const Maps& maps, bool count_planned);
  const Region* find(uint64_t addr) const;
  void allocate();
  // Runs of pages present or swapped in [start, end), by /proc/PID/pagemap.
  std::vector<std::pair<uint64_t, uint64_t>> resident_runs(uint64_t start, uint64_t end) const;

  ProcessMemory& live_;
  std::vector<Region> regions_;  // sorted by start
  uint64_t planned_bytes_ = 0, copied_bytes_ = 0;
  mutable const Region* last_ = nullptr;
  int pagemap_fd_ = -1;
  mutable std::chrono::steady_clock::time_point last_check_{};
};

}  // namespace pyinspect
