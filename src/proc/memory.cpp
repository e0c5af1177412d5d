#include "proc/memory.hpp"

#include "proc/core_file.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/error.hpp"

namespace pyinspect {

std::optional<std::vector<uint8_t>> Memory::read_bytes(RemoteAddr addr, size_t len) const {
  std::vector<uint8_t> buf(len);
  if (len && !read(addr, buf.data(), len)) return std::nullopt;
  return buf;
}

std::optional<std::string> Memory::read_cstring(RemoteAddr addr, size_t max) const {
  // A string without its NUL before unreadable memory is no string: nullopt, whatever `max`.
  // Reaching `max` first gives the truncated string.
  std::string out;
  char chunk[64];
  while (out.size() < max) {
    size_t want = std::min(sizeof chunk, max - out.size());
    RemoteAddr at = addr + static_cast<int64_t>(out.size());
    if (!read(at, chunk, want)) {
      // The chunk runs into unreadable memory: go byte by byte up to the NUL or the gap.
      for (size_t i = 0; i < want; ++i) {
        char c;
        if (!read(at + static_cast<int64_t>(i), &c, 1)) return std::nullopt;
        if (c == '\0') return out;
        out.push_back(c);
      }
      continue;
    }
    for (size_t i = 0; i < want; ++i) {
      if (chunk[i] == '\0') return out;
      out.push_back(chunk[i]);
    }
  }
  return out;
}

ProcessMemory::ProcessMemory(int pid, Maps maps) : pid_(pid), maps_(std::move(maps)) {}

ProcessMemory::ProcessMemory(std::shared_ptr<const CoreFile> core)
    : pid_(core->pid()), maps_(core->maps()), core_(std::move(core)) {}

std::string ProcessMemory::core_path() const { return core_ ? core_->path() : std::string(); }

ProcessMemory::~ProcessMemory() {
  if (mem_fd_ >= 0) close(mem_fd_);
}

void ProcessMemory::refresh_maps() {
  if (core_) return;  // a core does not change
  maps_ = Maps::read(pid_);
}

bool ProcessMemory::raw_read(uint64_t addr, void* out, size_t len) const {
  ++reads_;
  if (use_vm_readv_) {
    iovec local{out, len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    ssize_t n = process_vm_readv(pid_, &local, 1, &remote, 1, 0);
    if (n == static_cast<ssize_t>(len)) return true;
    if (n >= 0) return false;  // partial: the range crosses an unmapped page
    int err = errno;
    if (err == EFAULT || err == EINVAL) return false;
    if (err == ESRCH)
      throw Error(ErrorCode::TargetExited, "process " + std::to_string(pid_) + " exited while being read");
    if (err != ENOSYS && err != EPERM) throw_errno(err, "read memory of process " + std::to_string(pid_), pid_);
    use_vm_readv_ = false;  // not permitted here (seccomp, old kernel): use /proc/PID/mem
  }
  if (mem_fd_ < 0) {
    mem_fd_ = open(("/proc/" + std::to_string(pid_) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    if (mem_fd_ < 0) {
      int err = errno;
      if (err == ENOENT)
        throw Error(ErrorCode::TargetExited, "process " + std::to_string(pid_) + " exited while being read");
      throw_errno(err, "open memory of process " + std::to_string(pid_), pid_);
    }
  }
  ssize_t n = pread(mem_fd_, out, len, static_cast<off_t>(addr));
  if (n == static_cast<ssize_t>(len)) return true;
  if (n == 0 && access(("/proc/" + std::to_string(pid_)).c_str(), F_OK) != 0)
    throw Error(ErrorCode::TargetExited, "process " + std::to_string(pid_) + " exited while being read");
  return false;
}

bool ProcessMemory::read(RemoteAddr addr, void* out, size_t len) const {
  if (len == 0) return true;
  // Principles: trust nothing read. Never hand the kernel an address the maps do not vouch for.
  if (!maps_.readable(addr, len)) return false;
  if (core_) return core_->read(addr.value(), out, len);
  return raw_read(addr.value(), out, len);
}

void ProcessMemory::read_batch(std::vector<ReadRequest>& requests) const {
  if (core_) return Memory::read_batch(requests);
  // process_vm_readv stops at the first range it cannot read and reports how many bytes it
  // did: the ranges before that one are good; that one is read alone; batching goes on after.
  constexpr size_t kMaxIov = 1024;
  size_t i = 0;
  while (i < requests.size()) {
    std::vector<iovec> local, remote;
    size_t first = i;
    for (; i < requests.size() && local.size() < kMaxIov; ++i) {
      auto& r = requests[i];
      r.ok = r.len == 0;
      if (r.len == 0) continue;
      if (!use_vm_readv_ || !maps_.readable(r.addr, r.len)) break;
      local.push_back({r.out, r.len});
      remote.push_back({reinterpret_cast<void*>(r.addr.value()), r.len});
    }
    ssize_t n = 0;
    if (!local.empty()) {
      ++reads_;
      n = process_vm_readv(pid_, local.data(), local.size(), remote.data(), remote.size(), 0);
      if (n < 0 && errno == ESRCH)
        throw Error(ErrorCode::TargetExited, "process " + std::to_string(pid_) + " exited while being read");
    }
    uint64_t done = n > 0 ? static_cast<uint64_t>(n) : 0;
    size_t j = first;
    for (; j < i; ++j) {
      auto& r = requests[j];
      if (r.len == 0) continue;
      if (done < r.len) break;
      done -= r.len;
      r.ok = true;
    }
    if (j < i || (i < requests.size() && !requests[i].ok)) {
      // The range that stopped the batch: alone, through the checked path.
      size_t k = j < i ? j : i;
      requests[k].ok = read(requests[k].addr, requests[k].out, requests[k].len);
      i = k + 1;
    }
  }
}

CachedMemory::Block CachedMemory::plan(uint64_t b, uint64_t addr) const {
  Block blk;
  blk.start = b * block_;
  blk.end = blk.start + block_;
  if (maps_) {
    const MapEntry* m = maps_->find(RemoteAddr(std::max(addr, blk.start)));
    if (m && m->readable) {
      blk.start = std::max(blk.start, m->start);
      blk.end = std::min(blk.end, m->end);
    } else {
      blk.end = blk.start;
    }
  }
  return blk;
}

std::vector<CachedMemory::BlockRange> CachedMemory::blocks() const {
  std::vector<BlockRange> out;
  out.reserve(blocks_.size());
  for (const auto& [b, blk] : blocks_)
    if (blk.data) out.push_back({b, blk.start, blk.end});
  return out;
}

std::vector<CachedMemory::BlockRange> CachedMemory::used_blocks() const {
  std::vector<BlockRange> out;
  for (const auto& [b, blk] : blocks_)
    if (blk.data && blk.used) out.push_back({b, blk.start, blk.end});
  return out;
}

void CachedMemory::prefetch(const std::vector<BlockRange>& ranges) {
  // Neighbouring blocks are read as one range: the kernel pins each page of each range it is
  // given, so a page cut into blocks would be pinned once per block.
  std::vector<BlockRange> todo;
  for (const auto& r : ranges)
    if (!blocks_.count(r.id) && r.end > r.start && r.end - r.start <= block_) todo.push_back(r);
  std::sort(todo.begin(), todo.end(), [](const BlockRange& x, const BlockRange& y) { return x.start < y.start; });
  struct Run {
    size_t first, last;  // indexes into todo
    uint8_t* data;
  };
  std::vector<Run> runs;
  std::vector<ReadRequest> requests;
  for (size_t i = 0; i < todo.size();) {
    size_t j = i;
    while (j + 1 < todo.size() && todo[j + 1].start == todo[j].end) ++j;
    uint64_t len = todo[j].end - todo[i].start;
    runs.push_back({i, j, allocate(len)});
    requests.push_back({RemoteAddr(todo[i].start), runs.back().data, len});
    i = j + 1;
  }
  inner_.read_batch(requests);
  for (size_t k = 0; k < runs.size(); ++k) {
    if (!requests[k].ok) continue;  // left to be read on demand
    for (size_t i = runs[k].first; i <= runs[k].last; ++i) {
      Block blk;
      blk.start = todo[i].start;
      blk.end = todo[i].end;
      blk.data = runs[k].data + (todo[i].start - todo[runs[k].first].start);
      blocks_.emplace(todo[i].id, blk);
    }
  }
}

bool CachedMemory::read(RemoteAddr addr, void* out, size_t len) const {
  uint64_t a = addr.value();
  if (len == 0) return true;
  if (a + len < a) return false;
  uint64_t first = a / block_, last = (a + len - 1) / block_;
  if (last - first > 4) {  // big reads bypass the cache
    ++misses_;
    return inner_.read(addr, out, len);
  }
  auto* dst = static_cast<uint8_t*>(out);
  for (uint64_t b = first; b <= last; ++b) {
    auto it = blocks_.find(b);
    if (it == blocks_.end()) {
      // Read the block, clipped to the mapping that holds the address asked for, so a block
      // that straddles the end of a mapping still caches its readable part.
      Block blk = plan(b, a);
      ++misses_;
      if (blk.end > blk.start) {
        uint8_t* data = allocate(blk.end - blk.start);
        blk.data = data;
        if (!inner_.read(RemoteAddr(blk.start), data, blk.end - blk.start)) {
          blk.data = nullptr;
          blk.end = blk.start;
        }
      }
      it = blocks_.emplace(b, std::move(blk)).first;
    }
    const Block& blk = it->second;
    blk.used = true;
    uint64_t from = std::max(a, b * block_), to = std::min(a + len, (b + 1) * block_);
    if (from < blk.start || to > blk.end) {
      // Not (wholly) in the cached part: read this piece directly.
      ++misses_;
      if (!inner_.read(RemoteAddr(from), dst + (from - a), to - from)) return false;
      continue;
    }
    std::memcpy(dst + (from - a), blk.data + (from - blk.start), to - from);
  }
  return true;
}

void FakeMemory::add(RemoteAddr addr, std::vector<uint8_t> bytes) {
  regions_[addr.value()] = std::move(bytes);
}

void FakeMemory::write(RemoteAddr addr, const std::vector<uint8_t>& bytes) {
  uint64_t a = addr.value();
  auto it = regions_.upper_bound(a);
  if (it != regions_.begin()) {
    --it;
    if (a >= it->first && a + bytes.size() <= it->first + it->second.size()) {
      std::copy(bytes.begin(), bytes.end(), it->second.begin() + static_cast<ptrdiff_t>(a - it->first));
      return;
    }
  }
  regions_[a] = bytes;
}

bool FakeMemory::read(RemoteAddr addr, void* out, size_t len) const {
  uint64_t a = addr.value();
  auto* dst = static_cast<uint8_t*>(out);
  while (len > 0) {
    auto it = regions_.upper_bound(a);
    if (it == regions_.begin()) return false;
    --it;
    uint64_t rstart = it->first, rend = rstart + it->second.size();
    if (a < rstart || a >= rend) return false;
    size_t n = std::min<uint64_t>(len, rend - a);
    std::memcpy(dst, it->second.data() + (a - rstart), n);
    dst += n;
    a += n;
    len -= n;
  }
  return true;
}

}  // namespace pyinspect
