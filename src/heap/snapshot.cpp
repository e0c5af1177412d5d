#include "heap/snapshot.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cinttypes>
#include <cstring>

#include "base/error.hpp"
#include "proc/process.hpp"
#include "base/log.hpp"

namespace pyinspect {

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kPresent = 1ull << 63;
constexpr uint64_t kSwapped = 1ull << 62;

// Mappings that can hold Python objects: private, writable, readable. Shared mappings and the
// vsyscall/vvar pages are left out.
bool worth_copying(const MapEntry& m) {
  if (!m.readable || !m.writable || m.shared) return false;
  if (m.path == "[vvar]" || m.path == "[vsyscall]" || m.path == "[vdso]") return false;
  return m.size() > 0;
}
}  // namespace

HeapSnapshot::~HeapSnapshot() {
  for (auto& r : regions_)
    if (r.data) munmap(r.data, r.end - r.start);
  if (pagemap_fd_ >= 0) close(pagemap_fd_);
}

std::vector<std::pair<uint64_t, uint64_t>> HeapSnapshot::resident_runs(uint64_t start, uint64_t end) const {
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  if (pagemap_fd_ < 0) {
    runs.emplace_back(start, end);  // no pagemap: copy everything
    return runs;
  }
  constexpr size_t kBatch = 8192;  // pagemap entries per read
  std::vector<uint64_t> entries(kBatch);
  for (uint64_t page = start; page < end;) {
    size_t n = std::min<uint64_t>(kBatch, (end - page) / kPage);
    ssize_t got = pread(pagemap_fd_, entries.data(), n * 8, static_cast<off_t>(page / kPage * 8));
    if (got <= 0) {
      runs.emplace_back(page, end);  // cannot tell: copy the rest
      break;
    }
    size_t count = static_cast<size_t>(got) / 8;
    for (size_t i = 0; i < count; ++i, page += kPage) {
      if (!(entries[i] & (kPresent | kSwapped))) continue;
      if (!runs.empty() && runs.back().second == page)
        runs.back().second = page + kPage;
      else
        runs.emplace_back(page, page + kPage);
    }
  }
  return runs;
}

void HeapSnapshot::add_regions(const Maps& maps, bool count_planned) {
  // The regions become exactly the mappings worth copying in `maps`: one whose bounds are
  // unchanged keeps its buffer; any other is dropped. Mappings change between the plan and the
  // copy (they grow, merge with a neighbour, split, go away), and regions must never overlap:
  // an address has to belong to one region only.
  std::vector<Region> old;
  old.swap(regions_);
  last_ = nullptr;
  for (const auto& m : maps.entries()) {
    if (!worth_copying(m)) continue;
    auto same = std::find_if(old.begin(), old.end(), [&](const Region& x) { return x.start == m.start && x.end == m.end; });
    if (same != old.end()) {
      regions_.push_back(*same);
      same->data = nullptr;  // moved
      continue;
    }
    uint64_t bytes = 0;
    if (m.is_file())
      bytes = m.size();  // untouched pages of a file mapping hold the file's bytes, not zeros
    else
      for (auto [a, b] : resident_runs(m.start, m.end)) bytes += b - a;
    if (bytes == 0) continue;
    Region r;
    r.start = m.start;
    r.end = m.end;
    r.file_backed = m.is_file();
    regions_.push_back(r);
    if (count_planned) planned_bytes_ += bytes;
  }
  for (auto& r : old)
    if (r.data) munmap(r.data, r.end - r.start);
  std::sort(regions_.begin(), regions_.end(), [](const Region& a, const Region& b) { return a.start < b.start; });
  // /proc/PID/maps lists disjoint mappings in order; keep the invariant even if it did not.
  std::vector<Region> disjoint;
  for (auto& r : regions_) {
    if (!disjoint.empty() && r.start < disjoint.back().end) {
      if (r.data) munmap(r.data, r.end - r.start);
      continue;
    }
    disjoint.push_back(r);
  }
  regions_.swap(disjoint);
}

uint64_t available_memory() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %" SCNu64 " kB", &kib) == 1) break;
  std::fclose(f);
  return kib << 10;
}

std::unique_ptr<HeapSnapshot> HeapSnapshot::plan(ProcessMemory& live, const SnapshotLimits& limits) {
  std::unique_ptr<HeapSnapshot> s(new HeapSnapshot(live));
  s->pagemap_fd_ = open(("/proc/" + std::to_string(live.pid()) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  if (s->pagemap_fd_ < 0) LOG_INFO("no pagemap (" << std::strerror(errno) << "): copying whole mappings");
  s->add_regions(live.maps(), true);
  if (limits.max_bytes && s->planned_bytes_ > limits.max_bytes)
    throw Error(ErrorCode::Resources, "the target has " + std::to_string(s->planned_bytes_ >> 20) +
                                          " MiB of writable memory, more than the limit of " +
                                          std::to_string(limits.max_bytes >> 20) +
                                          " MiB (--max-copy); raise it if this machine has the memory");
  if (!limits.max_bytes) {
    // Copying more than the machine can hold would push it into swap or wake the OOM killer,
    // which may pick the target: refuse before the target is stopped.
    uint64_t need = static_cast<uint64_t>(static_cast<double>(s->planned_bytes_) * limits.need_factor);
    uint64_t avail = available_memory();
    if (avail && need > avail / 10 * 9)
      throw Error(ErrorCode::Resources, "this needs about " + std::to_string(need >> 20) + " MiB (the target has " +
                                            std::to_string(s->planned_bytes_ >> 20) +
                                            " MiB of writable memory to copy) but only " + std::to_string(avail >> 20) +
                                            " MiB are available; free memory, or run it on a copy (gcore), or "
                                            "force it with --max-copy MIB");
  }
  s->allocate();
  return s;
}

// The buffers, and their pages where the target has pages, are made before the target is
// paused: faulting in hundreds of megabytes of zeroed pages would otherwise be half the pause.
void HeapSnapshot::allocate() {
  for (auto& r : regions_) {
    if (r.data) continue;
    size_t len = r.end - r.start;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw Error(ErrorCode::Resources, "cannot reserve memory to copy the target's heap");
    r.data = static_cast<uint8_t*>(p);
    auto runs = r.file_backed ? std::vector<std::pair<uint64_t, uint64_t>>{{r.start, r.end}}
                              : resident_runs(r.start, r.end);
    for (auto [a, b] : runs) {
      uint8_t* from = r.data + (a - r.start);
#ifdef MADV_POPULATE_WRITE
      if (madvise(from, b - a, MADV_POPULATE_WRITE) == 0) continue;
#endif
      for (uint64_t off = 0; off < b - a; off += kPage) from[off] = 0;
    }
  }
}

void HeapSnapshot::copy() {
  // Mappings made since the plan (the target ran on while it was made): add them now.
  live_.refresh_maps();
  add_regions(live_.maps(), false);
  for (auto& r : regions_) {
    if (r.data) continue;
    void* p = mmap(nullptr, r.end - r.start, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw Error(ErrorCode::Resources, "cannot reserve memory to copy the target's heap");
    r.data = static_cast<uint8_t*>(p);
  }
  std::vector<ReadRequest> requests;
  for (auto& r : regions_) {
    auto runs = r.file_backed ? std::vector<std::pair<uint64_t, uint64_t>>{{r.start, r.end}}
                              : resident_runs(r.start, r.end);
    for (auto [a, b] : runs) {
      // One request per run, split so no single range is unreasonably large.
      for (uint64_t at = a; at < b; at += (uint64_t{64} << 20)) {
        uint64_t to = std::min<uint64_t>(b, at + (64ull << 20));
        requests.push_back({RemoteAddr(at), r.data + (at - r.start), to - at});
      }
    }
  }
  live_.read_batch(requests);
  for (const auto& q : requests)
    if (q.ok) copied_bytes_ += q.len;
  LOG_INFO("copied " << (copied_bytes_ >> 10) << " KiB of " << regions_.size() << " writable mappings in "
                     << requests.size() << " ranges");
}

void HeapSnapshot::check_target(const char* doing) const {
  auto now = std::chrono::steady_clock::now();
  if (now - last_check_ < std::chrono::milliseconds(50)) return;
  last_check_ = now;
  if (!Process::is_alive(live_.pid()))
    throw Error(ErrorCode::TargetExited, "process " + std::to_string(live_.pid()) + " exited while " + doing);
}

const HeapSnapshot::Region* HeapSnapshot::find(uint64_t addr) const {
  if (last_ && addr >= last_->start && addr < last_->end) return last_;
  auto it = std::upper_bound(regions_.begin(), regions_.end(), addr,
                             [](uint64_t a, const Region& r) { return a < r.start; });
  if (it == regions_.begin()) return nullptr;
  --it;
  if (addr >= it->end || !it->data) return nullptr;
  last_ = &*it;
  return last_;
}

const uint8_t* HeapSnapshot::view(RemoteAddr addr, size_t len) const {
  uint64_t a = addr.value();
  const Region* r = find(a);
  if (!r || a + len > r->end || a + len < a) return nullptr;
  return r->data + (a - r->start);
}

bool HeapSnapshot::read(RemoteAddr addr, void* out, size_t len) const {
  if (len == 0) return true;
  if (const uint8_t* p = view(addr, len)) {
    // The census reads millions of single words: copy them without a call.
    switch (len) {
      case 8: std::memcpy(out, p, 8); break;
      case 4: std::memcpy(out, p, 4); break;
      case 1: std::memcpy(out, p, 1); break;
      default: std::memcpy(out, p, len);
    }
    return true;
  }
  // Across two adjacent copied mappings (a static object at the end of a binary's .data and the
  // start of its .bss): piece by piece.
  if (const Region* r = find(addr.value()); r && addr.value() + len > r->end) {
    auto* dst = static_cast<uint8_t*>(out);
    uint64_t a = addr.value(), end = a + len;
    if (end < a) return false;
    while (a < end) {
      const Region* part = find(a);
      if (!part) return false;
      uint64_t n = std::min(end, part->end) - a;
      std::memcpy(dst, part->data + (a - part->start), n);
      dst += n;
      a += n;
    }
    return true;
  }
  // Outside the copied mappings: read-only memory (code, read-only data of the binaries) does
  // not change, so it is read from the live process.
  const MapEntry* m = live_.maps().find(addr);
  if (!m || m->writable) return false;
  return live_.read(addr, out, len);
}

}  // namespace pyinspect
