#pragma once
// Reading the target's memory. Every read is bounds-checked against the maps and may fail; a
// failure is a value (false / nullopt), except the target disappearing, which ends the command.
#include <sys/types.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/remote.hpp"
#include "proc/maps.hpp"

namespace pyinspect {

struct ReadRequest {
  RemoteAddr addr;
  void* out = nullptr;
  size_t len = 0;
  bool ok = false;  // set by read_batch
};

class Memory {
 public:
  virtual ~Memory() = default;
  // Reads exactly `len` bytes at `addr` into `out`; false if any byte is unreadable.
  virtual bool read(RemoteAddr addr, void* out, size_t len) const = 0;
  // Many independent reads; sets each request's `ok`. ProcessMemory does them in few system
  // calls (process_vm_readv takes up to 1024 ranges at once).
  virtual void read_batch(std::vector<ReadRequest>& requests) const {
    for (auto& r : requests) r.ok = read(r.addr, r.out, r.len);
  }

  template <class T>
  std::optional<T> read_as(RemoteAddr addr) const {
    T value;
    if (!read(addr, &value, sizeof value)) return std::nullopt;
    return value;
  }
  std::optional<RemoteAddr> read_ptr(RemoteAddr addr) const {
    auto v = read_as<uint64_t>(addr);
    if (!v) return std::nullopt;
    return RemoteAddr(*v);
  }
  // Reads `len` bytes into a new buffer; nullopt if unreadable.
  std::optional<std::vector<uint8_t>> read_bytes(RemoteAddr addr, size_t len) const;
  // Reads a NUL-terminated string of at most `max` bytes (truncated, never unbounded).
  std::optional<std::string> read_cstring(RemoteAddr addr, size_t max = 256) const;
};

class CoreFile;

// The memory of the target: a live process (process_vm_readv, falling back to /proc/PID/mem
// where the syscall is not permitted; throws Error(TargetExited) when the process is gone), or
// the memory a core file of it holds (proc/core_file.hpp). The layers above read either alike;
// only live() tells them apart, for what only a live process has (a pause, /proc).
class ProcessMemory : public Memory {
 public:
  ProcessMemory(int pid, Maps maps);
  explicit ProcessMemory(std::shared_ptr<const CoreFile> core);
  bool live() const { return core_ == nullptr; }
  const CoreFile* core() const { return core_.get(); }
  // The core file's path; empty for a live process (what results record as "core").
  std::string core_path() const;
  ~ProcessMemory() override;
  ProcessMemory(const ProcessMemory&) = delete;
  ProcessMemory& operator=(const ProcessMemory&) = delete;

  bool read(RemoteAddr addr, void* out, size_t len) const override;
  void read_batch(std::vector<ReadRequest>& requests) const override;
  const Maps& maps() const { return maps_; }
  void refresh_maps();
  int pid() const { return pid_; }
  uint64_t reads() const { return reads_; }

 private:
  bool raw_read(uint64_t addr, void* out, size_t len) const;
  int pid_;
  Maps maps_;
  std::shared_ptr<const CoreFile> core_;
  mutable int mem_fd_ = -1;
  mutable bool use_vm_readv_ = true;
  mutable uint64_t reads_ = 0;
};

// A block cache over another Memory: while the target is paused, neighbouring reads (frames in
// one pymalloc pool, a thread's data stack) cost one system call per block.
class CachedMemory : public Memory {
 public:
  explicit CachedMemory(const Memory& inner, const Maps* maps = nullptr, size_t block = 16384)
      : inner_(inner), maps_(maps), block_(block) {}
  bool read(RemoteAddr addr, void* out, size_t len) const override;
  void clear() {
    blocks_.clear();
    storage_.clear();
  }
  // The blocks read so far: id and the address range cached for it (to prefetch the same ones
  // into another cache later).
  struct BlockRange {
    uint64_t id, start, end;
  };
  std::vector<BlockRange> blocks() const;
  // Only the blocks that served a read (a prefetched block nobody read is left out): what the
  // next read of the same structures will need again.
  std::vector<BlockRange> used_blocks() const;
  // Reads these blocks now, in as few system calls as the inner memory allows.
  void prefetch(const std::vector<BlockRange>& blocks);
  // Reads that were not served from the cache (for diagnostics).
  uint64_t misses() const { return misses_; }

 private:
  const Memory& inner_;
  const Maps* maps_;
  size_t block_;
  struct Block {
    const uint8_t* data = nullptr;  // into storage_; null: nothing readable
    uint64_t start = 0, end = 0;  // the part of the block that could be read
    mutable bool used = false;
  };
  // The readable part of block `b` around `addr` (clipped to its mapping).
  Block plan(uint64_t b, uint64_t addr) const;
  uint8_t* allocate(size_t n) const {
    storage_.push_back(std::make_unique_for_overwrite<uint8_t[]>(n));
    return storage_.back().get();
  }
  mutable std::unordered_map<uint64_t, Block> blocks_;
  mutable std::vector<std::unique_ptr<uint8_t[]>> storage_;  // the blocks' bytes, a buffer per read
  mutable uint64_t misses_ = 0;
};

// Memory made of byte ranges given by the caller: for unit tests and fuzzing of decoders.
class FakeMemory : public Memory {
 public:
  void add(RemoteAddr addr, std::vector<uint8_t> bytes);
  template <class T>
  void put(RemoteAddr addr, const T& value) {
    std::vector<uint8_t> b(sizeof value);
    std::memcpy(b.data(), &value, sizeof value);
    write(addr, b);
  }
  // Writes into existing ranges (creating one if needed).
  void write(RemoteAddr addr, const std::vector<uint8_t>& bytes);
  bool read(RemoteAddr addr, void* out, size_t len) const override;

 private:
  std::map<uint64_t, std::vector<uint8_t>> regions_;
};

}  // namespace pyinspect
