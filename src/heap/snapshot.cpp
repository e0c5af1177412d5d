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
#include "proc/core_file.hpp"
#include "proc/process.hpp"
#include "base/log.hpp"

namespace pyinspect {

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kPresent = 1ull << 63;
constexpr uint64_t kSwapped = 1ull << 62;
constexpr size_t kPagemapBatch = size_t{1} << 16;  // entries per read: 256 MiB of address space

// What is left out of the copy (docs/architecture.md, "What is left out of the copy").
// glibc serves a request above its mmap threshold with a mapping of its own: a chunk header
// {prev_size, size | IS_MMAPPED} at the mapping's start, the one allocation at +16, nothing after
// it. Such a chunk, this size or more, is judged whole.
constexpr uint64_t kChunkMin = 1ull << 20;
// Of a chunk left out, its first pages stay in the copy: they hold the allocation's start, which
// is the whole header of an object that lives in the chunk (a big str or bytes).
constexpr uint64_t kChunkHead = 2 * kPage;
// Other anonymous memory (the brk heap, malloc's thread arenas, what follows the chunks of a
// mapping) is judged in aligned blocks of this size.
constexpr uint64_t kBlock = 2ull << 20;
// A hole must save at least this much resident memory.
constexpr uint64_t kHoleMin = 256ull << 10;
// Samples: windows of 64 words, spread evenly over the resident pages, never at a page's start
// (allocators put their headers there, and a header says nothing about the contents).
constexpr size_t kWindow = 512;
constexpr size_t kChunkWindows = 64, kBlockWindows = 16;
constexpr size_t kChunkProbes = 16, kBlockProbes = 4;  // read again while paused
// Data: fewer than one word in 256 looks like an address. A pointer array (a list's items, a
// dict's entries, a tuple) is nearly all addresses; a region of objects has at least its types'.
bool looks_like_data(size_t pointers, size_t words) { return pointers * 256 < words; }

// `count` windows over the resident pages of `runs` clipped to [lo, hi), evenly spread; `phase`
// moves the windows within their pages, so the pause's probes are not the plan's samples.
std::vector<uint64_t> windows(const std::vector<std::pair<uint64_t, uint64_t>>& runs, uint64_t lo, uint64_t hi,
                              size_t count, size_t phase) {
  std::vector<std::pair<uint64_t, uint64_t>> mine;
  uint64_t pages = 0;
  for (auto [a, b] : runs) {
    a = std::max(a, lo), b = std::min(b, hi);
    if (a >= b) continue;
    mine.emplace_back(a, b);
    pages += (b - a) / kPage;
  }
  std::vector<uint64_t> out;
  if (pages == 0) return out;
  count = std::min<uint64_t>(count, pages);
  size_t run = 0;
  uint64_t before = 0;  // pages in mine[0, run)
  for (size_t i = 0; i < count; ++i) {
    uint64_t want = (2 * i + 1) * pages / (2 * count);  // the page's index among the resident ones
    while (want >= before + (mine[run].second - mine[run].first) / kPage) before += (mine[run].second - mine[run].first) / kPage, ++run;
    uint64_t page = mine[run].first + (want - before) * kPage;
    out.push_back(page + ((i * 5 + phase) % 7 + 1) * kWindow);
  }
  return out;
}

// Mappings that can hold Python objects: private, writable, readable. Shared mappings and the
// vsyscall/vvar pages are left out.
bool worth_copying(const MapEntry& m) {
  if (!m.readable || !m.writable || m.shared) return false;
  if (m.path == "[vvar]" || m.path == "[vsyscall]" || m.path == "[vdso]") return false;
  return m.size() > 0;
}
}  // namespace

namespace {
// count_pointers with its bounds worked out once for many windows.
class PointerTest {
 public:
  explicit PointerTest(const Maps& maps) : maps_(maps) {
    // Most data words are far from any mapping (0, small integers, doubles, text): two compares
    // leave them out before the maps are searched. The vsyscall page, far above user space,
    // does not widen the bounds.
    for (const auto& m : maps.entries())
      if (m.readable && m.end <= (1ull << 56)) lo_ = std::min(lo_, m.start), hi_ = std::max(hi_, m.end);
  }
  size_t count(const uint64_t* words, size_t n) const {
    size_t found = 0;
    for (size_t i = 0; i < n; ++i) {
      uint64_t v = words[i];
      if (v < lo_ || v >= hi_ || (v & 7)) continue;
      const MapEntry* m = maps_.find(RemoteAddr(v));
      if (m && m->readable) ++found;
    }
    return found;
  }

 private:
  const Maps& maps_;
  uint64_t lo_ = UINT64_MAX, hi_ = 0;
};
}  // namespace

size_t count_pointers(const uint64_t* words, size_t n, const Maps& maps) { return PointerTest(maps).count(words, n); }

void HeapSnapshot::release(Region& r) {
  if (r.data && !r.borrowed) munmap(r.data, r.end - r.start);
  r.data = nullptr;
}

HeapSnapshot::~HeapSnapshot() {
  for (auto& r : regions_) release(r);
  if (pagemap_fd_ >= 0) close(pagemap_fd_);
}

HeapSnapshot::Runs HeapSnapshot::resident_runs(uint64_t start, uint64_t end) const {
  Runs runs;
  if (pagemap_fd_ < 0) {
    runs.emplace_back(start, end);  // no pagemap: copy everything
    return runs;
  }
  // Large batches: the pages of an 8 GiB heap are 2 million entries, a few dozen reads.
  if (pagemap_buf_.size() < std::min<uint64_t>(kPagemapBatch, (end - start) / kPage))
    pagemap_buf_.resize(std::min<uint64_t>(kPagemapBatch, (end - start) / kPage));
  std::vector<uint64_t>& entries = pagemap_buf_;
  for (uint64_t page = start; page < end;) {
    size_t n = std::min<uint64_t>(entries.size(), (end - page) / kPage);
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
    Region r;
    if (m.is_file()) {
      bytes = m.size();  // untouched pages of a file mapping hold the file's bytes, not zeros
      r.runs = {{m.start, m.end}};
    } else {
      r.runs = resident_runs(m.start, m.end);
      for (auto [a, b] : r.runs) bytes += b - a;
    }
    if (bytes == 0) continue;
    r.start = m.start;
    r.end = m.end;
    r.file_backed = m.is_file();
    if (!count_planned) r.runs.clear();  // the copy reads the pagemap again
    regions_.push_back(std::move(r));
    if (count_planned) planned_bytes_ += bytes;
  }
  for (auto& r : old) release(r);
  std::sort(regions_.begin(), regions_.end(), [](const Region& a, const Region& b) { return a.start < b.start; });
  // /proc/PID/maps lists disjoint mappings in order; keep the invariant even if it did not.
  std::vector<Region> disjoint;
  for (auto& r : regions_) {
    if (!disjoint.empty() && r.start < disjoint.back().end) {
      release(r);
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
  if (!live.live()) {
    // A core file is already a copy, which nothing changes: each region is the core's own
    // bytes where one segment holds it whole (nothing copied, nothing left out), else a
    // buffer filled from the core and the files it names.
    s->add_regions(live.maps(), true);
    for (auto& r : s->regions_)
      if (const uint8_t* p = live.core()->view(r.start, r.end - r.start)) {
        r.data = const_cast<uint8_t*>(p);  // never written: read() and view() only read
        r.borrowed = true;
        s->planned_bytes_ -= r.end - r.start;
      }
    s->allocate();
    return s;
  }
  s->pagemap_fd_ = open(("/proc/" + std::to_string(live.pid()) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  if (s->pagemap_fd_ < 0) LOG_INFO("no pagemap (" << std::strerror(errno) << "): copying whole mappings");
  s->add_regions(live.maps(), true);
  if (limits.leave_out_data) s->choose_holes();
  s->assign_holes();
  for (const auto& h : s->holes_) s->planned_bytes_ -= h.resident;
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
    // Not the holes: what is left out of the copy takes none of pyinspect's memory.
    for (auto [a, b] : outside_holes(r, r.runs)) {
      uint8_t* from = r.data + (a - r.start);
#ifdef MADV_POPULATE_WRITE
      if (madvise(from, b - a, MADV_POPULATE_WRITE) == 0) continue;
#endif
      for (uint64_t off = 0; off < b - a; off += kPage) from[off] = 0;
    }
    Runs().swap(r.runs);
  }
}

void HeapSnapshot::choose_holes() {
  // While the target runs: which large stretches of its anonymous memory hold data only. Each
  // candidate (a big mmapped chunk, or a block of other memory) is sampled; those that look like
  // data become holes, with a few windows to sample again while paused (check_holes).
  struct Candidate {
    uint64_t start, end;  // the hole it would be
    const Region* region;
    bool chunk;
    uint64_t chunk_start, chunk_word;
  };
  std::vector<Candidate> candidates;
  PointerTest pointers_in(live_.maps());
  for (const auto& r : regions_) {
    if (r.file_backed || r.end - r.start < kHoleMin) continue;
    auto resident = [&](uint64_t a, uint64_t b) {
      uint64_t n = 0;
      for (auto [x, y] : r.runs) n += std::max<int64_t>(0, static_cast<int64_t>(std::min(y, b)) - static_cast<int64_t>(std::max(x, a)));
      return n;
    };
    // The mmapped chunks the mapping starts with (the kernel merges adjacent anonymous mappings:
    // one mapping can be many chunks, followed by memory of another kind).
    uint64_t at = r.start;
    while (at + 16 <= r.end) {
      uint64_t head[2];
      if (!live_.read(RemoteAddr(at), head, sizeof head)) break;
      uint64_t size = head[1] & ~uint64_t{7};
      if (head[0] != 0 || (head[1] & 7) != 2 || size == 0 || size % kPage || size > r.end - at) break;
      if (size >= kChunkMin && resident(at + kChunkHead, at + size) >= kHoleMin)
        candidates.push_back({at + kChunkHead, at + size, &r, true, at, head[1]});
      at += size;
    }
    // The rest, block by block.
    for (uint64_t b = at; b < r.end;) {
      uint64_t next = std::min(r.end, (b / kBlock + 1) * kBlock);
      if (resident(b, next) >= kHoleMin) candidates.push_back({b, next, &r, false, 0, 0});
      b = next;
    }
  }
  // Sample them, a batch of windows at a time.
  std::vector<uint64_t> buf;
  std::vector<ReadRequest> requests;
  std::vector<Hole> chosen;
  size_t c = 0;
  while (c < candidates.size()) {
    std::vector<std::pair<size_t, size_t>> spans;  // per candidate: its first request and count
    size_t first_candidate = c;
    requests.clear();
    for (; c < candidates.size() && requests.size() < 4096; ++c) {
      const auto& k = candidates[c];
      auto w = windows(k.region->runs, k.start, k.end, k.chunk ? kChunkWindows : kBlockWindows, 0);
      spans.emplace_back(requests.size(), w.size());
      for (uint64_t a : w) requests.push_back({RemoteAddr(a), nullptr, kWindow});
    }
    buf.resize(requests.size() * kWindow / 8);
    for (size_t i = 0; i < requests.size(); ++i) requests[i].out = buf.data() + i * kWindow / 8;
    live_.read_batch(requests);
    for (size_t i = 0; i < spans.size(); ++i) {
      const auto& k = candidates[first_candidate + i];
      auto [from, n] = spans[i];
      size_t words = 0, pointers = 0;
      bool ok = n > 0;
      for (size_t q = from; q < from + n; ++q) {
        if (!requests[q].ok) {
          ok = false;  // changing under us: leave it in the copy
          break;
        }
        words += kWindow / 8;
        pointers += pointers_in.count(buf.data() + q * kWindow / 8, kWindow / 8);
      }
      if (!ok || !looks_like_data(pointers, words)) continue;
      Hole h;
      h.start = k.start, h.end = k.end;
      for (auto [x, y] : k.region->runs) h.resident += std::max<int64_t>(0, static_cast<int64_t>(std::min(y, k.end)) - static_cast<int64_t>(std::max(x, k.start)));
      h.chunk = k.chunk, h.chunk_start = k.chunk_start, h.chunk_word = k.chunk_word;
      h.probes = windows(k.region->runs, k.start, k.end, k.chunk ? kChunkProbes : kBlockProbes, 3);
      // Blocks of data next to each other are one hole.
      if (!h.chunk && !chosen.empty() && !chosen.back().chunk && chosen.back().end == h.start) {
        chosen.back().end = h.end;
        chosen.back().resident += h.resident;
        chosen.back().probes.insert(chosen.back().probes.end(), h.probes.begin(), h.probes.end());
        continue;
      }
      chosen.push_back(std::move(h));
    }
  }
  // A block of data is left out only where it lies inside a chunk glibc mapped on its own, found
  // by its header (the kernel puts such chunks after pymalloc's arenas in one mapping), less the
  // chunk's first pages, which hold the header of an object that lives there. The rest of a
  // block stays in the copy: a few sampled windows cannot tell that a block holds no object (a
  // chunk's tail and the arena after it share a block), and a live read would then be needed.
  std::vector<Hole> split;
  bool scanned = false;
  std::vector<std::pair<uint64_t, uint64_t>> chunks;  // every mmapped chunk: [data start, end)
  for (auto& h : chosen) {
    if (h.chunk) {
      split.push_back(std::move(h));
      continue;
    }
    const Region* r = nullptr;
    for (const auto& x : regions_)
      if (x.start <= h.start && h.end <= x.end) r = &x;
    if (!r) continue;
    if (!scanned) {
      // Once: the chunks of all anonymous memory. A chunk may span mappings that follow each
      // other (numpy asks for huge pages inside its buffers, which splits their mapping in three),
      // so a chunk's size is checked against the end of the memory that continues its mapping.
      scanned = true;
      uint64_t covered = 0;
      for (size_t i = 0; i < regions_.size(); ++i) {
        const Region& x = regions_[i];
        if (x.file_backed || x.end <= covered) continue;
        uint64_t limit = x.end;
        for (size_t j = i + 1; j < regions_.size() && regions_[j].start == limit && !regions_[j].file_backed; ++j)
          limit = regions_[j].end;
        for (auto [head, size] : chunk_heads(x, std::max(x.start, covered), x.end, limit)) {
          chunks.emplace_back(head + kChunkHead, head + size);
          covered = std::max(covered, head + size);
        }
      }
    }
    std::vector<std::pair<uint64_t, uint64_t>> pieces;
    for (auto [a, b] : chunks)
      if (std::max(a, h.start) < std::min(b, h.end)) pieces.emplace_back(std::max(a, h.start), std::min(b, h.end));
    for (auto [a, b] : pieces) {
      Hole piece;
      piece.start = a, piece.end = b;
      for (auto [x, y] : r->runs) piece.resident += std::max<int64_t>(0, static_cast<int64_t>(std::min(y, b)) - static_cast<int64_t>(std::max(x, a)));
      for (uint64_t p : h.probes)
        if (p >= a && p + kWindow <= b) piece.probes.push_back(p);
      if (piece.resident) split.push_back(std::move(piece));
    }
  }
  holes_.swap(split);
  if (!holes_.empty())
    LOG_INFO("leaving " << (left_out_bytes() >> 20) << " MiB of data (" << holes_.size() << " ranges) out of the copy");
}

std::vector<std::pair<uint64_t, uint64_t>> HeapSnapshot::chunk_heads(const Region& r, uint64_t lo, uint64_t hi,
                                                                      uint64_t limit) const {
  std::vector<std::pair<uint64_t, uint64_t>> heads;
  std::vector<uint64_t> pages;
  uint64_t words[2 * 512];
  std::vector<ReadRequest> requests;
  uint64_t at = lo;
  while (at < hi) {
    // The next resident page starts from `at`, up to 512 of them, in one batch.
    pages.clear();
    for (auto [a, b] : r.runs) {
      if (b <= at) continue;
      if (a >= hi || pages.size() == 512) break;
      for (uint64_t p = std::max(a, at); p < std::min(b, hi) && pages.size() < 512; p += kPage) pages.push_back(p);
    }
    if (pages.empty()) break;
    requests.clear();
    for (size_t i = 0; i < pages.size(); ++i) requests.push_back({RemoteAddr(pages[i]), words + 2 * i, 16});
    live_.read_batch(requests);
    at = pages.back() + kPage;
    for (size_t i = 0; i < pages.size(); ++i) {
      uint64_t size = words[2 * i + 1] & ~uint64_t{7};
      if (!requests[i].ok || words[2 * i] != 0 || (words[2 * i + 1] & 7) != 2 || size == 0 || size % kPage ||
          size > std::max(limit, r.end) - pages[i])
        continue;
      heads.emplace_back(pages[i], size);
      at = pages[i] + size;  // over the chunk: the next may start right after it
      break;
    }
  }
  return heads;
}

void HeapSnapshot::assign_holes() {
  // Each hole inside one region, or dropped (its mapping went away or changed shape).
  std::vector<Hole> kept;
  for (auto& r : regions_) r.hole_first = r.hole_count = 0;
  size_t ri = 0;
  for (auto& h : holes_) {
    while (ri < regions_.size() && regions_[ri].end <= h.start) ++ri;
    if (ri == regions_.size()) break;
    Region& r = regions_[ri];
    if (h.start < r.start || h.end > r.end || r.file_backed) continue;
    if (!r.hole_count) r.hole_first = static_cast<uint32_t>(kept.size());
    ++r.hole_count;
    kept.push_back(std::move(h));
  }
  holes_.swap(kept);
}

void HeapSnapshot::check_holes() {
  // While paused: the holes are sampled again (a buffer freed since the plan and its address
  // reused for a list's items must be copied), and a chunk's header must be the one the plan saw.
  std::vector<ReadRequest> requests;
  std::vector<uint64_t> buf;
  size_t words = 0;
  for (const auto& h : holes_) words += (h.chunk ? 2 : 0) + h.probes.size() * kWindow / 8;
  buf.resize(words);
  size_t at = 0;
  for (const auto& h : holes_) {
    if (h.chunk) {
      requests.push_back({RemoteAddr(h.chunk_start), buf.data() + at, 16});
      at += 2;
    }
    for (uint64_t p : h.probes) {
      requests.push_back({RemoteAddr(p), buf.data() + at, kWindow});
      at += kWindow / 8;
    }
  }
  live_.read_batch(requests);
  PointerTest pointers_in(live_.maps());
  std::vector<Hole> kept;
  size_t q = 0;
  at = 0;
  for (auto& h : holes_) {
    bool ok = true;
    if (h.chunk) {
      ok = requests[q].ok && buf[at] == 0 && buf[at + 1] == h.chunk_word;
      ++q, at += 2;
    }
    size_t pointers = 0;
    for (size_t i = 0; i < h.probes.size(); ++i, ++q, at += kWindow / 8) {
      if (!requests[q].ok) ok = false;
      else pointers += pointers_in.count(buf.data() + at, kWindow / 8);
    }
    if (ok && looks_like_data(pointers, h.probes.size() * kWindow / 8)) kept.push_back(std::move(h));
    else LOG_INFO("range " << std::hex << h.start << "-" << h.end << std::dec << " changed since the plan: copied");
  }
  holes_.swap(kept);
}

HeapSnapshot::Runs HeapSnapshot::outside_holes(const Region& r, const Runs& runs) const {
  if (!r.hole_count) return runs;
  Runs out;
  auto first = holes_.begin() + r.hole_first, last = first + r.hole_count;
  for (auto [a, b] : runs) {
    for (auto h = first; h != last && a < b; ++h) {
      if (h->end <= a) continue;
      if (h->start >= b) break;
      if (h->start > a) out.emplace_back(a, h->start);
      a = std::max(a, h->end);
    }
    if (a < b) out.emplace_back(a, b);
  }
  return out;
}

const HeapSnapshot::Hole* HeapSnapshot::hole_at(const Region& r, uint64_t addr) const {
  auto first = holes_.begin() + r.hole_first, last = first + r.hole_count;
  auto it = std::upper_bound(first, last, addr, [](uint64_t a, const Hole& h) { return a < h.start; });
  if (it == first) return nullptr;
  --it;
  return addr < it->end ? &*it : nullptr;
}

std::vector<LeftOutRange> HeapSnapshot::left_out() const {
  std::vector<LeftOutRange> out;
  for (const auto& h : holes_) out.push_back({h.start, h.end, h.resident, h.chunk});
  return out;
}

uint64_t HeapSnapshot::left_out_bytes() const {
  uint64_t n = 0;
  for (const auto& h : holes_) n += h.resident;
  return n;
}

size_t HeapSnapshot::live_read_ranges() const {
  size_t n = 0;
  for (const auto& h : holes_) n += h.read_live;
  return n;
}

void HeapSnapshot::copy() {
  // Mappings made since the plan (the target ran on while it was made): add them now.
  live_.refresh_maps();
  add_regions(live_.maps(), false);
  assign_holes();
  check_holes();
  assign_holes();
  for (auto& r : regions_) {
    if (r.data) continue;
    void* p = mmap(nullptr, r.end - r.start, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw Error(ErrorCode::Resources, "cannot reserve memory to copy the target's heap");
    r.data = static_cast<uint8_t*>(p);
  }
  std::vector<ReadRequest> requests;
  for (auto& r : regions_) {
    if (r.borrowed) continue;
    Runs runs;
    for (auto [a, b] : outside_holes(r, {{r.start, r.end}})) {
      if (r.file_backed) {
        runs.emplace_back(a, b);
        continue;
      }
      auto part = resident_runs(a, b);
      runs.insert(runs.end(), part.begin(), part.end());
    }
    for (auto [a, b] : runs) {
      // One request per run, split so no single range is unreasonably large.
      for (uint64_t at = a; at < b; at += (uint64_t{64} << 20)) {
        uint64_t to = std::min<uint64_t>(b, at + (64ull << 20));
        requests.push_back({RemoteAddr(at), r.data + (at - r.start), to - at});
      }
    }
  }
  live_.read_batch(requests);
  copied_.clear();
  for (const auto& q : requests)
    if (q.ok) {
      copied_bytes_ += q.len;
      copied_.emplace_back(q.addr.value(), q.addr.value() + q.len);
    }
  std::sort(copied_.begin(), copied_.end());
  LOG_INFO("copied " << (copied_bytes_ >> 10) << " KiB of " << regions_.size() << " writable mappings in "
                     << requests.size() << " ranges; " << (left_out_bytes() >> 10) << " KiB of data in "
                     << holes_.size() << " ranges left out");
}

bool HeapSnapshot::page_copied(uint64_t addr) const {
  auto it = std::upper_bound(copied_.begin(), copied_.end(), std::make_pair(addr, UINT64_MAX));
  return it != copied_.begin() && addr < std::prev(it)->second;
}

void HeapSnapshot::check_target(const char* doing) const {
  auto now = std::chrono::steady_clock::now();
  if (now - last_check_ < std::chrono::milliseconds(50)) return;
  last_check_ = now;
  if (live_.live() && !Process::is_alive(live_.pid()))
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
  if (r->hole_count) {
    // Any byte in a hole: no view (read() fetches that part from the live process). The last
    // hole starting before the range's end is the only one that can overlap it.
    auto first = holes_.begin() + r->hole_first, last = first + r->hole_count;
    auto it = std::upper_bound(first, last, a + len - 1, [](uint64_t x, const Hole& h) { return x < h.start; });
    if (it != first && std::prev(it)->end > a) return nullptr;
  }
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
  // start of its .bss), or into a range left out of the copy: piece by piece.
  if (find(addr.value())) {
    auto* dst = static_cast<uint8_t*>(out);
    uint64_t a = addr.value(), end = a + len;
    if (end < a) return false;
    while (a < end) {
      const Region* part = find(a);
      if (!part) return false;
      uint64_t stop = std::min(end, part->end);
      if (part->hole_count) {
        if (const Hole* h = hole_at(*part, a)) {
          // Left out as data, yet the walk reads it: from the live process, after the pause,
          // and counted (live_read_bytes), so the answer says so.
          uint64_t n = std::min(stop, h->end) - a;
          if (!live_.read(RemoteAddr(a), dst, n)) return false;
          if (!h->read_live) LOG_DEBUG("read live, left out as data: " << std::hex << a << " +" << std::dec << n);
          live_read_bytes_ += n;
          h->read_live = true;
          dst += n;
          a += n;
          continue;
        }
        auto first = holes_.begin() + part->hole_first, last = first + part->hole_count;
        auto next = std::upper_bound(first, last, a, [](uint64_t x, const Hole& hh) { return x < hh.start; });
        if (next != last) stop = std::min(stop, next->start);
      }
      std::memcpy(dst, part->data + (a - part->start), stop - a);
      dst += stop - a;
      a = stop;
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
