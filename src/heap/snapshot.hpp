#pragma once
// A copy of the target's writable memory, taken while it is paused (docs/architecture.md, principles: pause briefly):
// the pause grows with the bytes copied, not with the number of objects; the census then runs on the copy while the
// target runs on.
//
// Only pages the target actually has are copied: /proc/PID/pagemap says which pages of each
// writable mapping are resident or swapped out; the others read as zeros (untouched anonymous
// memory is zero), so pyinspect's memory use follows the target's resident memory, not its
// address space (thread stacks reserve megabytes they never touch).
//
// Nor is memory copied that holds no objects: large data buffers (bytearrays' and arrays'
// contents, big strings' characters) are found before the pause by sampling their contents and
// left out of the copy, all but the pages that hold a header (docs/architecture.md, "What is
// left out of the copy"). Whatever the walk still reads there is read from the live process and
// counted: a range left out by mistake costs a read after the pause, never a silent wrong answer.
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
  // Leave large data buffers out of the copy (the census needs none of their bytes); a core
  // file wants every byte.
  bool leave_out_data = true;
};

// MemAvailable of /proc/meminfo, in bytes (0 if unknown).
uint64_t available_memory();

// How many of the `n` words look like addresses of the target's readable memory: the measure
// that tells a buffer of data (floats, bytes, small integers, zeros: none) from an array of
// pointers (every word) or a region of objects (each has its type's address).
size_t count_pointers(const uint64_t* words, size_t n, const Maps& maps);

// A range of the target's memory left out of the copy: a data buffer, not worth copying.
struct LeftOutRange {
  uint64_t start = 0, end = 0;
  uint64_t resident_bytes = 0;  // what copying it would have cost
  bool chunk = false;           // one of malloc's mmapped chunks (else a block of a larger mapping)
};

class HeapSnapshot : public Memory {
 public:
  // Plans the copy (which pages) from the maps and pagemap, while the target still runs: cheap,
  // and it lets a too-large copy be refused before the target is stopped. Of a core file, the
  // snapshot is the core's own bytes (docs/architecture.md, "Core files").
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
  // Whether copy() read the page at `addr` from the target: it was resident (or swapped out),
  // or in a file mapping. A page it did not read holds zeros in the copy.
  bool page_copied(uint64_t addr) const;
  // What was left out of the copy (after the checks made while paused), sorted by address.
  std::vector<LeftOutRange> left_out() const;
  uint64_t left_out_bytes() const;
  // Bytes read from the live process because they lay in a range left out of the copy, and in
  // how many of those ranges. Not zero only if the walk needed what was taken for data.
  uint64_t live_read_bytes() const { return live_read_bytes_; }
  size_t live_read_ranges() const;
  // Whether addr lies in a range left out of the copy.
  bool left_out_at(RemoteAddr addr) const {
    const Region* r = find(addr.value());
    return r && r->hole_count && hole_at(*r, addr.value());
  }
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
  using Runs = std::vector<std::pair<uint64_t, uint64_t>>;
  struct Region {
    uint64_t start = 0, end = 0;
    uint8_t* data = nullptr;  // mmap'd, end - start bytes; pages never written stay unallocated
    bool file_backed = false;
    bool borrowed = false;    // data is a core file's own bytes (not ours to unmap)
    Runs runs;                // resident pages found by the plan (until the buffers are made)
    // The holes (ranges left out) inside this region: holes_[hole_first, hole_first + hole_count).
    uint32_t hole_first = 0, hole_count = 0;
  };
  struct Hole {
    uint64_t start = 0, end = 0;
    uint64_t resident = 0;
    bool chunk = false;
    uint64_t chunk_start = 0, chunk_word = 0;  // a chunk's header: where, and its size word
    std::vector<uint64_t> probes;              // resident windows sampled again while paused
    mutable bool read_live = false;
  };
  explicit HeapSnapshot(ProcessMemory& live) : live_(live) {}
  void add_regions(const Maps& maps, bool count_planned);
  void release(Region& r);  // its buffer, if it is ours
  const Region* find(uint64_t addr) const;
  void allocate();
  // Runs of pages present or swapped in [start, end), by /proc/PID/pagemap.
  Runs resident_runs(uint64_t start, uint64_t end) const;
  // The plan's choice of what to leave out (target running), and its check while paused.
  void choose_holes();
  // The chunks glibc mapped on its own in [lo, hi) of region r, by their headers, page by page
  // (jumping over each chunk found: a chunk can follow memory of another kind in one mapping):
  // (header, size) each. A chunk may end past r, up to `limit` (memory that continues r).
  std::vector<std::pair<uint64_t, uint64_t>> chunk_heads(const Region& r, uint64_t lo, uint64_t hi,
                                                         uint64_t limit = 0) const;
  void check_holes();
  void assign_holes();
  // The parts of region r outside its holes.
  Runs outside_holes(const Region& r, const Runs& runs) const;
  const Hole* hole_at(const Region& r, uint64_t addr) const;

  ProcessMemory& live_;
  std::vector<Region> regions_;  // sorted by start
  std::vector<Hole> holes_;      // sorted by start, disjoint
  uint64_t planned_bytes_ = 0, copied_bytes_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> copied_;  // the ranges copy() read, by address
  mutable uint64_t live_read_bytes_ = 0;
  mutable std::vector<uint64_t> pagemap_buf_;
  mutable const Region* last_ = nullptr;
  int pagemap_fd_ = -1;
  mutable std::chrono::steady_clock::time_point last_check_{};
};

}  // namespace pyinspect
