#include "proc/pagemap.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "proc/core_file.hpp"

namespace pyinspect {

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62, kExclusive = 1ull << 56;

bool parse_range(const std::string& line, uint64_t& start, uint64_t& end) {
  unsigned long long s = 0, e = 0;
  if (std::sscanf(line.c_str(), "%llx-%llx ", &s, &e) != 2 || e <= s) return false;
  start = s, end = e;
  return true;
}

}  // namespace

std::vector<SmapsEntry> parse_smaps(const std::string& text) {
  std::vector<SmapsEntry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    uint64_t s, e;
    // A mapping's first line: "start-end perms offset dev inode [path]"; field lines start with
    // a capitalised name and a colon ("Rss:      12 kB").
    size_t colon = line.find(':');
    size_t dash = line.find('-');
    if (dash != std::string::npos && (colon == std::string::npos || dash < colon) && parse_range(line, s, e)) {
      SmapsEntry m;
      m.start = s, m.end = e;
      // The path is the sixth field, if any (it may contain spaces).
      size_t pos = 0;
      for (int field = 0; field < 5 && pos != std::string::npos; ++field) {
        pos = line.find(' ', pos);
        if (pos != std::string::npos) pos = line.find_first_not_of(' ', pos);
      }
      if (pos != std::string::npos) m.path = line.substr(pos);
      out.push_back(std::move(m));
      continue;
    }
    if (out.empty() || colon == std::string::npos) continue;
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str() + colon + 1, " %llu kB", &kb) != 1) continue;
    std::string name = line.substr(0, colon);
    if (name == "Rss") out.back().rss = kb * 1024;
    else if (name == "Private_Dirty") out.back().private_dirty = kb * 1024;
    else if (name == "Swap") out.back().swap = kb * 1024;
  }
  return out;
}

std::vector<SmapsEntry> read_smaps(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/smaps");
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_smaps(ss.str());
}

std::vector<SmapsEntry> core_smaps(const CoreFile& core) {
  std::vector<SmapsEntry> out;
  const Maps maps = core.maps();
  for (const auto& m : maps.entries()) {
    SmapsEntry e;
    e.start = m.start, e.end = m.end, e.path = m.path;
    for (uint64_t p = m.start & ~(kPage - 1); p < m.end; p += kPage)
      if (core.page_stored(p)) e.rss += kPage;
    e.private_dirty = e.rss;
    out.push_back(std::move(e));
  }
  return out;
}

PageMap::PageMap(const CoreFile& core) : core_(&core) {}

PageMap::PageMap(int pid) {
  fd_ = open(("/proc/" + std::to_string(pid) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
}

PageMap::~PageMap() {
  if (fd_ >= 0) close(fd_);
}

void PageMap::load(uint64_t start, uint64_t end) {
  start &= ~(kPage - 1);
  end = (end + kPage - 1) & ~(kPage - 1);
  loaded_start_ = loaded_end_ = 0;
  entries_.clear();
  if (end <= start) return;
  size_t n = (end - start) / kPage;
  if (core_) {
    entries_.resize(n);
    for (size_t i = 0; i < n; ++i)
      entries_[i] = core_->page_stored(start + i * kPage) ? kPresent | kExclusive : 0;
    loaded_start_ = start, loaded_end_ = end;
    return;
  }
  if (fd_ < 0) return;
  entries_.assign(n, 0);
  size_t done = 0;
  while (done < n) {
    size_t batch = std::min<size_t>(n - done, 1 << 16);  // 512 KiB of entries per read
    ssize_t got = pread(fd_, entries_.data() + done, batch * 8, static_cast<off_t>((start / kPage + done) * 8));
    if (got <= 0) break;
    done += static_cast<size_t>(got) / 8;
  }
  entries_.resize(done);
  loaded_start_ = start;
  loaded_end_ = start + done * kPage;
}

PageMap::Count PageMap::count(uint64_t start, uint64_t end) {
  Count c;
  if (end <= start) return c;
  if (fd_ < 0 && !core_) {
    c.resident = c.exclusive = end - start;
    return c;
  }
  uint64_t first = start & ~(kPage - 1), last = (end + kPage - 1) & ~(kPage - 1);
  if (first < loaded_start_ || last > loaded_end_) load(first, last);
  for (uint64_t p = first; p < last && p < loaded_end_; p += kPage) {
    uint64_t e = entries_[(p - loaded_start_) / kPage];
    if (!(e & (kPresent | kSwapped)) || (e & kSwapped)) continue;
    // The part of this page inside [start, end).
    uint64_t lo = std::max(p, start), hi = std::min(p + kPage, end);
    c.resident += hi - lo;
    if (e & kExclusive) c.exclusive += hi - lo;
  }
  return c;
}

}  // namespace pyinspect
