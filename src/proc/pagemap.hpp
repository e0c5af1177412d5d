#pragma once
// Which pages of the target are in memory: /proc/PID/pagemap (a word per page) and
// /proc/PID/smaps (each mapping's Rss and private dirty bytes). `pyinspect memory` uses them to
// count what is resident, not what is mapped: a 1 GiB calloc never touched takes no RSS.
// A core file has neither: its pages stand in for them (docs/memory.md, "Core files").
#include <cstdint>
#include <string>
#include <vector>

namespace pyinspect {

class CoreFile;

// One mapping's figures from /proc/PID/smaps, in bytes.
struct SmapsEntry {
  uint64_t start = 0, end = 0;
  uint64_t rss = 0, private_dirty = 0, swap = 0;
  std::string path;
};
// Parses the text of an smaps file (unit tests); malformed lines are skipped.
std::vector<SmapsEntry> parse_smaps(const std::string& text);
// Reads /proc/PID/smaps; empty if it cannot be read.
std::vector<SmapsEntry> read_smaps(int pid);
// A core's mappings as smaps would give them: each mapping's Rss is the bytes of the pages the
// core holds, less its holes (the kernel and `pyinspect dump` leave the pages that were not in
// memory as holes; gdb's gcore writes every page, touched or not), all of them private; the
// mapped files' pages the core leaves out (their code) count as not resident.
std::vector<SmapsEntry> core_smaps(const CoreFile& core);

class PageMap {
 public:
  explicit PageMap(int pid);
  // A core's pages, resident as core_smaps counts them.
  explicit PageMap(const CoreFile& core);
  ~PageMap();
  PageMap(const PageMap&) = delete;
  PageMap& operator=(const PageMap&) = delete;
  bool available() const { return fd_ >= 0 || core_; }

  // Resident bytes in [start, end), and of those, pages mapped by this process only (anonymous
  // memory not shared with a parent or child since a fork: what smaps calls private dirty).
  // Without a pagemap every page counts as resident and private.
  struct Count {
    uint64_t resident = 0, exclusive = 0;
  };
  Count count(uint64_t start, uint64_t end);
  // Reads the entries of [start, end) once, so that many count() calls inside it cost no
  // further system calls (a heap's free chunks, one by one).
  void load(uint64_t start, uint64_t end);

 private:
  int fd_ = -1;
  const CoreFile* core_ = nullptr;
  uint64_t loaded_start_ = 0, loaded_end_ = 0;  // page-aligned
  std::vector<uint64_t> entries_;               // of the loaded range
};

}  // namespace pyinspect
