#include "heap/glibc_malloc.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "abi/glibc.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "elf/debug_file.hpp"
#include "elf/dwarf_types.hpp"
#include "elf/elf_file.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

namespace {

constexpr uint64_t kPrevInuse = 1, kIsMmapped = 2, kNonMainArena = 4, kFlags = 7;
constexpr uint64_t kHeapMax = 64ull << 20;  // HEAP_MAX_SIZE on 64-bit: 2 * DEFAULT_MMAP_THRESHOLD_MAX
constexpr uint64_t kPage = 4096;
constexpr uint64_t kTcacheChunk = 0x290;    // request2size(sizeof(tcache_perthread_struct)): 64 counts, 64 entries
constexpr int kTcacheBins = 64;
constexpr int kMaxFastbins = 10;
constexpr uint64_t kMaxList = 1u << 22;     // a free list longer than this is a misread

// Where malloc's structures keep what is read here: glibc's facts for its version
// (abi/glibc.hpp), replaced by libc's DWARF where it is there.
struct MallocLayout {
  explicit MallocLayout(const GlibcFacts& f)
      : fastbins(f.state_fastbins), top(f.state_top), next(f.state_next), system_mem(f.state_system_mem),
        state_size(f.state_size), nfastbins(f.nfastbins), heap_info_size(f.heap_info_size) {}
  int64_t fastbins, top, next, system_mem, state_size;
  int nfastbins;
  int64_t heap_info_size;  // 0: learnt from the heaps
  // malloc_par (mp_): debug info only, its shape changed often.
  std::optional<int64_t> mp_mmap_threshold, mp_n_mmaps, mp_mmapped_mem, mp_sbrk_base;
};

bool is_libc(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return name.rfind("libc.so", 0) == 0 || (name.rfind("libc-2.", 0) == 0 && name.find(".so") != std::string::npos);
}

// A mapping of libc's, or the anonymous one after it that holds its bss.
bool libc_data(const MapEntry& m, const MapEntry& libc) {
  return m.path == libc.path || (m.path.empty() && m.start >= libc.start && m.start - libc.start < (64u << 20));
}

bool plausible_ptr(uint64_t p) { return p >= 0x10000 && p < (1ull << 47) && (p & 15) == 0; }

class Reader {
 public:
  Reader(const Memory& mem, GlibcMalloc& out) : mem_(mem), out_(out) {}

  std::optional<uint64_t> word(uint64_t addr) const { return mem_.read_as<uint64_t>(RemoteAddr(addr)); }

  // Walks the chunks of one heap, [start, end), whose arena's top chunk is `top` (0 if this heap
  // does not hold it). Chunks are contiguous: each header gives the next, and the next one's
  // PREV_INUSE bit says whether this one is handed out.
  void walk_heap(uint64_t start, uint64_t end, uint64_t top) {
    uint64_t c = start;
    uint64_t steps = 0;
    while (c + 16 <= end) {
      auto raw = word(c + 8);
      if (!raw) {
        problem(c, "unreadable chunk header");
        return;
      }
      uint64_t size = *raw & ~kFlags;
      if (c == top) {
        // The top chunk: free, up to the end of the memory the arena has.
        out_.free_top.push_back({c, std::min(size, end - c)});
        return;
      }
      if (size == 0 && end - c <= 64) return;  // the fencepost that ends an older heap
      if (size < 16 || (size & 15) || size > end - c) {
        problem(c, "chunk header with an impossible size");
        return;
      }
      if (size == 16) {  // a fencepost chunk (heap boundaries): neither free nor handed out
        c += size;
        continue;
      }
      uint64_t next = c + size;
      bool in_use = true;
      if (next + 16 <= end) {
        auto nraw = word(next + 8);
        if (!nraw) {
          problem(next, "unreadable chunk header");
          return;
        }
        in_use = (*nraw & kPrevInuse) != 0;
      }
      (in_use ? out_.in_use : out_.free_bins).push_back({c, size});
      c = next;
      if (++steps > (end - start) / 16) return;  // cannot happen with sizes >= 16; a bound anyway
    }
  }

  void problem(uint64_t addr, const char* what) {
    ++out_.corrupt;
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s at 0x%llx: the rest of that heap was not walked", what,
                  static_cast<unsigned long long>(addr));
    if (out_.problems.size() < 10) out_.problems.push_back(buf);
  }

 private:
  const Memory& mem_;
  GlibcMalloc& out_;
};

// The index of the in-use chunk at `addr`, or -1.
int64_t find_chunk(const std::vector<MallocChunk>& v, uint64_t addr) {
  auto it = std::lower_bound(v.begin(), v.end(), addr, [](const MallocChunk& c, uint64_t a) { return c.addr < a; });
  if (it == v.end() || it->addr != addr) return -1;
  return it - v.begin();
}

// A singly linked free list (tcache entries link their user pointers, fastbins their chunks;
// from glibc 2.32 each link is stored XORed with its own address >> 12, "safe-linking"). Follows
// it for at most `limit` links, each to an in-use-looking chunk of `want_size`; returns the chunks'
// indexes, or nullopt if the list does not hold together that way.
std::optional<std::vector<int64_t>> follow(const Memory& mem, const std::vector<MallocChunk>& in_use, uint64_t head,
                                           uint64_t user_offset, uint64_t want_size, uint64_t limit, bool safe) {
  std::vector<int64_t> found;
  uint64_t p = head;  // a user pointer (tcache) or a chunk (fastbin)
  while (p) {
    if (found.size() >= limit || (p & 15)) return std::nullopt;
    uint64_t chunk = p - user_offset;
    int64_t i = find_chunk(in_use, chunk);
    if (i < 0 || in_use[i].size != want_size) return std::nullopt;
    found.push_back(i);
    uint64_t link_at = chunk + 16;
    auto raw = mem.read_as<uint64_t>(RemoteAddr(link_at));
    if (!raw) return std::nullopt;
    p = safe ? (*raw ^ (link_at >> 12)) : *raw;
  }
  return found;
}

class Walker {
 public:
  Walker(const std::string& root, const std::function<std::string(const std::string&)>& host_path, const Memory& mem,
         const Maps& maps, GlibcMalloc& out)
      : root_(root), host_path_(host_path), mem_(mem), maps_(maps), out_(out), r_(mem, out) {}

  void run(bool use_debug_info) {
    const MapEntry* libc = nullptr;
    for (const auto& m : maps_.entries())
      if (m.is_file() && is_libc(m.path)) {
        libc = &m;
        break;
      }
    if (!libc) {
      out_.why_not = "the process has no glibc mapped (a static binary, or another C library)";
      return;
    }
    out_.libc_path = libc->path;
    try {
      // (Process::host_path: under /proc/PID/root, or where a core's search finds it.)
      elf_ = std::make_unique<ElfFile>(host_path_ ? host_path_(libc->path) : libc->path);
    } catch (const Error& e) {
      LOG_INFO("cannot open " << libc->path << ": " << e.what());
    }
    if (elf_) {
      out_.glibc_version = glibc_version_of(*elf_);
      bias_ = load_bias(*elf_, maps_, libc->path);
    }
    const GlibcFacts facts = glibc_facts(out_.glibc_version);
    lay_ = MallocLayout(facts);
    safe_ = facts.safe_linking;
    if (!facts.layout_built_in)
      LOG_INFO("glibc " << out_.glibc_version << " is older than the layouts built in (2.27+)");
    if (elf_ && use_debug_info) from_debug_info();

    find_arenas(*libc);
    if (out_.arenas.empty()) {
      if (out_.why_not.empty()) out_.why_not = "no malloc arena was found in libc's data or in the heaps";
      return;
    }
    for (const auto& a : out_.arenas)
      for (auto [s, e] : a.heaps) r_.walk_heap(s, e, top_of(a.addr));
    for (auto* v : {&out_.in_use, &out_.free_bins, &out_.free_top})
      std::sort(v->begin(), v->end(), [](const MallocChunk& a, const MallocChunk& b) { return a.addr < b.addr; });
    std::vector<bool> cached(out_.in_use.size(), false);
    find_tcaches(cached);
    find_fastbins(cached);
    std::vector<MallocChunk> still;
    still.reserve(out_.in_use.size());
    for (size_t i = 0; i < out_.in_use.size(); ++i)
      if (!cached[i]) still.push_back(out_.in_use[i]);
    out_.in_use.swap(still);
    out_.found = true;
  }

 private:
  void from_debug_info() {
    std::vector<std::string> roots = {"", root_};
    const ElfFile* dwarf = elf_->has_debug_info() ? elf_.get() : nullptr;
    if (!dwarf) {
      debug_ = find_debug_file(*elf_, out_.libc_path, roots);
      dwarf = debug_.get();
    }
    if (!dwarf || !bias_) return;
    auto arena = dwarf->static_symbol("main_arena");
    auto mp = dwarf->static_symbol("mp_");
    if (!arena) return;
    main_arena_ = arena->value + *bias_;
    if (mp) mp_ = mp->value + *bias_;
    out_.source = "libc's debug info";
    try {
      DwarfTypes types(*dwarf);
      auto off = [&](const char* type, const char* member, int64_t& into) {
        if (auto v = types.offset_of(type, member)) into = *v;
      };
      off("malloc_state", "fastbinsY", lay_.fastbins);
      off("malloc_state", "top", lay_.top);
      off("malloc_state", "next", lay_.next);
      off("malloc_state", "system_mem", lay_.system_mem);
      if (auto v = types.size_of("malloc_state")) lay_.state_size = *v;
      if (auto v = types.member_size("malloc_state", "fastbinsY")) lay_.nfastbins = static_cast<int>(*v / 8);
      if (auto v = types.size_of("heap_info")) lay_.heap_info_size = *v;
      lay_.mp_mmap_threshold = types.offset_of("malloc_par", "mmap_threshold");
      lay_.mp_n_mmaps = types.offset_of("malloc_par", "n_mmaps");
      lay_.mp_mmapped_mem = types.offset_of("malloc_par", "mmapped_mem");
      lay_.mp_sbrk_base = types.offset_of("malloc_par", "sbrk_base");
    } catch (const Error& e) {
      LOG_INFO("libc's DWARF: " << e.what() << "; using the built-in layout");
    }
    lay_.nfastbins = std::clamp(lay_.nfastbins, 1, kMaxFastbins);
  }

  uint64_t top_of(uint64_t arena) const { return r_.word(arena + lay_.top).value_or(0); }

  // An arena as its heaps and figures. For the main arena, its memory is the [heap] mapping
  // (glibc's sbrk area); another arena's is its chain of heaps, the newest holding its top chunk.
  bool add_arena(uint64_t arena, bool main) {
    GlibcMalloc::Arena a;
    a.addr = arena;
    a.main = main;
    a.system_mem = r_.word(arena + lay_.system_mem).value_or(0);
    uint64_t top = top_of(arena);
    if (main) {
      uint64_t base = sbrk_base_;
      const MapEntry* heap = nullptr;
      for (const auto& m : maps_.entries())
        if (m.path == "[heap]" && (!base || m.contains(base))) {
          heap = &m;
          break;
        }
      if (heap) a.heaps.emplace_back(base ? base : heap->start, heap->end);
      // A main arena whose sbrk area ran out continues in mmapped memory, not walked here.
      if (top && heap && !heap->contains(top)) LOG_INFO("main arena's top chunk is outside [heap]");
    } else {
      if (!plausible_ptr(top)) return false;
      uint64_t h = top & ~(kHeapMax - 1);
      for (int n = 0; h && n < 1024; ++n) {
        auto ar = r_.word(h), prev = r_.word(h + 8), size = r_.word(h + 16);
        if (!ar || *ar != arena || !size || *size > kHeapMax) break;
        uint64_t info = lay_.heap_info_size ? static_cast<uint64_t>(lay_.heap_info_size) : 48;
        // The arena's first heap holds the arena itself right after the header; chunks follow it,
        // aligned so that user pointers are.
        uint64_t first = h + info;
        if (arena > h && arena < h + 256) first = arena + lay_.state_size;
        if ((first + 16) & 15) first += 16 - ((first + 16) & 15);
        a.heaps.emplace_back(first, h + *size);
        h = prev.value_or(0);
      }
      if (a.heaps.empty()) return false;
      std::reverse(a.heaps.begin(), a.heaps.end());
    }
    out_.arenas.push_back(std::move(a));
    return true;
  }

  // main_arena without symbols: the word in libc's data that points to [heap]'s top chunk, at the
  // offset of malloc_state's top.
  std::optional<uint64_t> find_main_arena(const MapEntry& libc) {
    const MapEntry* heap = nullptr;
    for (const auto& m : maps_.entries())
      if (m.path == "[heap]") heap = &m;
    std::optional<uint64_t> top;
    if (heap) {
      // The last chunk of the sbrk area, found by walking it (what the walk says of its chunks is
      // not kept: the arena is not known yet).
      GlibcMalloc scratch;
      Reader(mem_, scratch).walk_heap(heap->start, heap->end, 0);
      const MallocChunk* last = nullptr;
      for (const auto* v : {&scratch.in_use, &scratch.free_bins})
        if (!v->empty() && (!last || v->back().addr > last->addr)) last = &v->back();
      if (last && last->addr + last->size + kPage > heap->end) top = last->addr;
    }
    // libc's writable mappings: its file-backed data, and the anonymous bss after it.
    for (const auto& m : maps_.entries()) {
      if (!m.writable || !libc_data(m, libc)) continue;
      std::optional<uint64_t> loose;
      for (uint64_t w = m.start + lay_.top; w + 8 <= m.end; w += 8) {
        auto v = r_.word(w);
        if (!v) break;
        uint64_t arena = w - lay_.top;
        bool into_heap = heap && *v >= heap->start && *v < heap->end && (*v & 15) == 0;
        if (!(top ? *v == *top : into_heap)) continue;
        auto next = r_.word(arena + lay_.next);
        auto system_mem = r_.word(arena + lay_.system_mem);
        if (!next || !(*next == arena || plausible_ptr(*next))) continue;
        if (top) return arena;
        // A walk of [heap] that did not reach its end (a chunk header that makes no sense): the
        // arena is the one whose top lies in [heap] and whose memory fits in it.
        if (system_mem && *system_mem > 0 && *system_mem <= heap->end - heap->start + kPage && !loose) loose = arena;
      }
      if (loose) return loose;
    }
    // No [heap] (or it did not lead anywhere): an arena of another thread points to the ring,
    // which passes through main_arena (the one arena in libc's data).
    for (uint64_t arena : other_arena_candidates()) {
      uint64_t a = arena;
      for (int n = 0; n < 1024; ++n) {
        auto next = r_.word(a + lay_.next);
        if (!next || !plausible_ptr(*next & ~15ull)) break;
        a = *next;
        if (a == arena) break;
        const MapEntry* m = maps_.find(RemoteAddr(a));
        if (m && libc_data(*m, libc)) return a;
      }
    }
    return std::nullopt;
  }

  // Arenas found from their heaps: a 64 MiB-aligned anonymous mapping whose header points just
  // past itself (an arena's first heap holds the arena after the header).
  std::vector<uint64_t> other_arena_candidates() {
    std::vector<uint64_t> out;
    for (const auto& m : maps_.entries()) {
      if (!m.writable || m.is_file() || (m.start & (kHeapMax - 1))) continue;
      auto ar = r_.word(m.start);
      if (ar && *ar > m.start && *ar - m.start <= 64 && (*ar & 15) == 0) {
        if (!lay_.heap_info_size) lay_.heap_info_size = static_cast<int64_t>(*ar - m.start);
        out.push_back(*ar);
      }
    }
    return out;
  }

  void find_arenas(const MapEntry& libc) {
    if (mp_ && lay_.mp_sbrk_base) sbrk_base_ = r_.word(*mp_ + *lay_.mp_sbrk_base).value_or(0);
    if (mp_) {
      auto rd32 = [&](std::optional<int64_t> off) -> std::optional<uint64_t> {
        if (!off) return std::nullopt;
        auto v = mem_.read_as<int32_t>(RemoteAddr(*mp_ + *off));
        if (!v || *v < 0) return std::nullopt;
        return static_cast<uint64_t>(*v);
      };
      auto rd64 = [&](std::optional<int64_t> off) -> std::optional<uint64_t> {
        if (!off) return std::nullopt;
        return r_.word(*mp_ + *off);
      };
      out_.mmapped_count = rd32(lay_.mp_n_mmaps);
      out_.mmapped_bytes = rd64(lay_.mp_mmapped_mem);
      out_.mmap_threshold = rd64(lay_.mp_mmap_threshold);
    }
    other_arena_candidates();  // learns heap_info's size from the heaps themselves
    if (!main_arena_) {
      main_arena_ = find_main_arena(libc);
      if (main_arena_) out_.source = "chunk headers";
    }
    if (!main_arena_) return;
    if (!add_arena(*main_arena_, true)) return;
    uint64_t a = *main_arena_;
    for (int n = 0; n < 4096; ++n) {
      auto next = r_.word(a + lay_.next);
      if (!next || *next == *main_arena_ || !plausible_ptr(*next)) break;
      a = *next;
      if (!add_arena(a, false)) {
        r_.problem(a, "arena that could not be read");
        break;
      }
    }
  }

  // Each thread's tcache is a chunk of its own (0x290 bytes: 64 counts, 64 list heads) that the
  // chunk walk sees as handed out; its lists' chunks look handed out too. A chunk of that size is
  // a tcache only if every list it claims holds together with exactly its count.
  void find_tcaches(std::vector<bool>& cached) {
    auto& in_use = out_.in_use;
    for (size_t i = 0; i < in_use.size(); ++i) {
      if (in_use[i].size != kTcacheChunk) continue;
      uint8_t raw[kTcacheBins * 2 + kTcacheBins * 8];
      if (!mem_.read(RemoteAddr(in_use[i].user()), raw, sizeof raw)) continue;
      uint16_t counts[kTcacheBins];
      uint64_t heads[kTcacheBins];
      std::memcpy(counts, raw, sizeof counts);
      std::memcpy(heads, raw + sizeof counts, sizeof heads);
      std::vector<int64_t> members;
      bool ok = true;
      for (int b = 0; b < kTcacheBins && ok; ++b) {
        if ((counts[b] == 0) != (heads[b] == 0)) ok = false;
        if (!ok || !counts[b]) continue;
        uint64_t want = 32 + 16 * static_cast<uint64_t>(b);
        auto list = follow(mem_, in_use, heads[b], 16, want, counts[b], safe_);
        if (!list && !safe_) list = follow(mem_, in_use, heads[b], 16, want, counts[b], true);
        if (!list || list->size() != counts[b]) ok = false;
        else members.insert(members.end(), list->begin(), list->end());
      }
      if (!ok) continue;
      ++out_.tcaches;
      for (int64_t m : members)
        if (!cached[m]) {
          cached[m] = true;
          out_.free_tcache.push_back(in_use[m]);
        }
    }
  }

  void find_fastbins(std::vector<bool>& cached) {
    for (const auto& a : out_.arenas) {
      for (int b = 0; b < lay_.nfastbins; ++b) {
        auto head = r_.word(a.addr + lay_.fastbins + 8 * b);
        if (!head || !*head) continue;
        uint64_t want = 32 + 16 * static_cast<uint64_t>(b);
        auto list = follow(mem_, out_.in_use, *head, 0, want, kMaxList, safe_);
        if (!list) {
          r_.problem(a.addr, "fastbin list that does not hold together");
          continue;
        }
        for (int64_t m : *list)
          if (!cached[m]) {
            cached[m] = true;
            out_.free_fast.push_back(out_.in_use[m]);
          }
      }
    }
    auto by_addr = [](const MallocChunk& x, const MallocChunk& y) { return x.addr < y.addr; };
    std::sort(out_.free_tcache.begin(), out_.free_tcache.end(), by_addr);
    std::sort(out_.free_fast.begin(), out_.free_fast.end(), by_addr);
  }

  std::string root_;
  const std::function<std::string(const std::string&)>& host_path_;
  const Memory& mem_;
  const Maps& maps_;
  GlibcMalloc& out_;
  Reader r_;
  MallocLayout lay_{GlibcFacts{}};
  std::unique_ptr<ElfFile> elf_, debug_;
  std::optional<uint64_t> bias_, main_arena_, mp_;
  uint64_t sbrk_base_ = 0;
  bool safe_ = true;
};

}  // namespace

GlibcMalloc read_glibc_malloc(const Memory& mem, const Maps& maps, const std::string& root, bool use_debug_info,
                              const std::function<std::string(const std::string&)>& host_path) {
  GlibcMalloc out;
  Walker(root, host_path, mem, maps, out).run(use_debug_info);
  return out;
}

std::optional<uint64_t> mmapped_chunk_at(const Memory& mem, uint64_t addr, uint64_t limit) {
  uint64_t head[2];
  if ((addr & (kPage - 1)) || !mem.read(RemoteAddr(addr), head, sizeof head)) return std::nullopt;
  // {prev_size 0, size | IS_MMAPPED}
  // (prev_size holds padding only for chunks aligned beyond 16 bytes, whose header is not at the
  // mapping's start.)
  uint64_t size = head[1] & ~kFlags;
  if (head[0] != 0 || !(head[1] & kIsMmapped) || (head[1] & kNonMainArena)) return std::nullopt;
  uint64_t total = size;
  if (size < kPage || (total & (kPage - 1)) || addr + total > limit || addr + total < addr) return std::nullopt;
  return total;
}

uint64_t chunk_bytes(const std::vector<MallocChunk>& chunks) {
  uint64_t n = 0;
  for (const auto& c : chunks) n += c.size;
  return n;
}

}  // namespace pyinspect
