// glibc malloc read from outside (src/heap/glibc_malloc.hpp), on heaps built by hand in a fake
// memory the way glibc 2.36 lays them out (malloc/malloc.c, malloc/arena.c): chunk headers
// {prev_size, size | PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA}, main_arena in libc's data
// (top at +96, fastbinsY at +16, next at +2160), tcache lists and fastbins safe-linked
// (a link is stored XORed with its own address >> 12). There is no libc file behind the fake
// maps, so main_arena is found from the chunk headers, as without debug info.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "abi/glibc.hpp"
#include "heap/glibc_malloc.hpp"
#include "proc/memory.hpp"
#include "proc/pagemap.hpp"

using namespace pyinspect;

namespace {

constexpr uint64_t kLibcCode = 0x7f0000000000, kLibcData = 0x7f0000200000, kArena = kLibcData + 0x1000;
constexpr uint64_t kHeap = 0x555500000000, kHeapEnd = kHeap + 0x10000;
constexpr uint64_t kOtherHeap = 0x7f1004000000, kOtherHeapSize = 0x21000;

uint64_t protect(uint64_t at, uint64_t ptr) { return (at >> 12) ^ ptr; }

struct FakeHeap {
  FakeMemory mem;
  std::string maps_text;
  // Chunks by address (header), as the test expects them classified.
  uint64_t tcache_struct = kHeap, in_use1 = kHeap + 0x290, t1 = kHeap + 0x2c0, t2 = kHeap + 0x2e0,
           fast = kHeap + 0x300, bin = kHeap + 0x330, in_use2 = kHeap + 0x1330, top = kHeap + 0x1430;

  FakeHeap() {
    mem.add(RemoteAddr(kLibcData), std::vector<uint8_t>(0x4000, 0));
    mem.add(RemoteAddr(kHeap), std::vector<uint8_t>(kHeapEnd - kHeap, 0));
    auto head = [&](uint64_t c, uint64_t size_and_flags) { mem.put<uint64_t>(RemoteAddr(c + 8), size_and_flags); };
    head(tcache_struct, 0x290 | 1);
    // The tcache: bin 0 (0x20-byte chunks) holds t1 then t2.
    mem.put<uint16_t>(RemoteAddr(tcache_struct + 16), 2);
    mem.put<uint64_t>(RemoteAddr(tcache_struct + 16 + 128), t1 + 16);
    head(in_use1, 0x30 | 1);
    head(t1, 0x20 | 1);
    mem.put<uint64_t>(RemoteAddr(t1 + 16), protect(t1 + 16, t2 + 16));
    head(t2, 0x20 | 1);
    mem.put<uint64_t>(RemoteAddr(t2 + 16), protect(t2 + 16, 0));
    head(fast, 0x30 | 1);
    mem.put<uint64_t>(RemoteAddr(fast + 16), protect(fast + 16, 0));
    head(bin, 0x1000 | 1);
    head(in_use2, 0x100);  // PREV_INUSE clear: the chunk before it is free
    mem.put<uint64_t>(RemoteAddr(in_use2), 0x1000);
    head(top, (kHeapEnd - top) | 1);
    mem.put<uint64_t>(RemoteAddr(kArena + 96), top);            // top
    mem.put<uint64_t>(RemoteAddr(kArena + 16 + 8 * 1), fast);   // fastbinsY[1]: 0x30-byte chunks
    mem.put<uint64_t>(RemoteAddr(kArena + 2160), kArena);       // next: itself (one arena)
    mem.put<uint64_t>(RemoteAddr(kArena + 2184), kHeapEnd - kHeap);
    maps_text = hex(kLibcCode) + "-" + hex(kLibcCode + 0x100000) + " r-xp 00000000 08:01 42 /fake/libc.so.6\n" +
                hex(kLibcData) + "-" + hex(kLibcData + 0x4000) + " rw-p 00100000 08:01 42 /fake/libc.so.6\n" +
                hex(kHeap) + "-" + hex(kHeapEnd) + " rw-p 00000000 00:00 0 [heap]\n";
  }

  // A second arena in a heap of its own, linked into the ring.
  uint64_t add_other_arena() {
    mem.add(RemoteAddr(kOtherHeap), std::vector<uint8_t>(kOtherHeapSize, 0));
    uint64_t arena = kOtherHeap + 48;  // right after heap_info (glibc 2.35+: 48 bytes)
    mem.put<uint64_t>(RemoteAddr(kOtherHeap), arena);               // ar_ptr
    mem.put<uint64_t>(RemoteAddr(kOtherHeap + 16), kOtherHeapSize);  // size
    uint64_t first = kOtherHeap + 0x8d0;  // arena + sizeof(malloc_state), aligned for user pointers
    mem.put<uint64_t>(RemoteAddr(first + 8), 0x40 | 4 | 1);
    uint64_t top2 = first + 0x40;
    mem.put<uint64_t>(RemoteAddr(top2 + 8), (kOtherHeap + kOtherHeapSize - top2) | 1);
    mem.put<uint64_t>(RemoteAddr(arena + 96), top2);
    mem.put<uint64_t>(RemoteAddr(arena + 2160), kArena);
    mem.put<uint64_t>(RemoteAddr(kArena + 2160), arena);
    maps_text += hex(kOtherHeap) + "-" + hex(kOtherHeap + kOtherHeapSize) + " rw-p 00000000 00:00 0 \n";
    return first;
  }

  static std::string hex(uint64_t v) {
    char b[32];
    std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
    return b;
  }
  GlibcMalloc read() const { return read_glibc_malloc(mem, Maps::parse(maps_text), "", false); }
};

std::vector<uint64_t> addrs(const std::vector<MallocChunk>& v) {
  std::vector<uint64_t> out;
  for (const auto& c : v) out.push_back(c.addr);
  return out;
}

}  // namespace

TEST_CASE("glibc malloc: main arena found from the chunk headers, every chunk classified") {
  FakeHeap h;
  GlibcMalloc m = h.read();
  REQUIRE(m.found);
  CHECK(m.source == "chunk headers");
  REQUIRE(m.arenas.size() == 1);
  CHECK(m.arenas[0].addr == kArena);
  CHECK(m.arenas[0].main);
  CHECK(addrs(m.in_use) == std::vector<uint64_t>{h.tcache_struct, h.in_use1, h.in_use2});
  CHECK(addrs(m.free_tcache) == std::vector<uint64_t>{h.t1, h.t2});
  CHECK(m.tcaches == 1);
  CHECK(addrs(m.free_fast) == std::vector<uint64_t>{h.fast});
  CHECK(addrs(m.free_bins) == std::vector<uint64_t>{h.bin});
  REQUIRE(m.free_top.size() == 1);
  CHECK(m.free_top[0].addr == h.top);
  CHECK(m.free_top[0].size == kHeapEnd - h.top);
  CHECK(chunk_bytes(m.free_bins) == 0x1000);
  CHECK(m.corrupt == 0);
}

TEST_CASE("glibc malloc: a tcache whose list does not hold together is user data, not a tcache") {
  FakeHeap h;
  // The count says 3, the list has 2.
  h.mem.put<uint16_t>(RemoteAddr(h.tcache_struct + 16), 3);
  GlibcMalloc m = h.read();
  REQUIRE(m.found);
  CHECK(m.tcaches == 0);
  CHECK(m.free_tcache.empty());
  CHECK(addrs(m.in_use) == std::vector<uint64_t>{h.tcache_struct, h.in_use1, h.t1, h.t2, h.in_use2});
}

TEST_CASE("glibc malloc: an impossible chunk header is reported, and ends that heap's walk") {
  FakeHeap h;
  // A header whose size runs past the end of the heap: main_arena is still found (its top
  // pointer leads to it) but the walk cannot go on past this chunk.
  h.mem.put<uint64_t>(RemoteAddr(h.in_use2 + 8), 0x7ffff0);
  GlibcMalloc m = h.read();
  CHECK(m.corrupt == 1);
  REQUIRE(!m.problems.empty());
  CHECK(m.problems[0].find("impossible size") != std::string::npos);
  CHECK(m.problems[0].find(FakeHeap::hex(h.in_use2)) != std::string::npos);
  CHECK(m.free_top.empty());
}

TEST_CASE("glibc malloc: the other arenas, through the ring, with their heaps") {
  FakeHeap h;
  uint64_t first = h.add_other_arena();
  GlibcMalloc m = h.read();
  REQUIRE(m.found);
  REQUIRE(m.arenas.size() == 2);
  CHECK(m.arenas[1].addr == kOtherHeap + 48);
  CHECK(!m.arenas[1].main);
  REQUIRE(m.arenas[1].heaps.size() == 1);
  CHECK(m.arenas[1].heaps[0].first == first);
  CHECK(m.arenas[1].heaps[0].second == kOtherHeap + kOtherHeapSize);
  auto in_use = addrs(m.in_use);
  CHECK(std::find(in_use.begin(), in_use.end(), first) != in_use.end());
  CHECK(m.free_top.size() == 2);
}

TEST_CASE("glibc malloc: no libc mapped, said so") {
  FakeMemory mem;
  GlibcMalloc m = read_glibc_malloc(mem, Maps::parse("555500000000-555500010000 rw-p 00000000 00:00 0 [heap]\n"), "", false);
  CHECK(!m.found);
  CHECK(m.why_not.find("no glibc") != std::string::npos);
}

TEST_CASE("glibc malloc: a chunk mapped on its own is known by its header") {
  FakeMemory mem;
  const uint64_t a = 0x7f2000000000;
  mem.add(RemoteAddr(a), std::vector<uint8_t>(0x6000, 0));
  mem.put<uint64_t>(RemoteAddr(a + 8), 0x5000 | 2);
  CHECK(mmapped_chunk_at(mem, a, a + 0x6000) == std::optional<uint64_t>(0x5000));
  CHECK(!mmapped_chunk_at(mem, a, a + 0x4000));       // does not fit in the mapping
  CHECK(!mmapped_chunk_at(mem, a + 0x1000, a + 0x6000));  // no header there
  mem.put<uint64_t>(RemoteAddr(a + 8), 0x5000 | 2 | 4);
  CHECK(!mmapped_chunk_at(mem, a, a + 0x6000));       // NON_MAIN_ARENA: not a chunk of its own
  mem.put<uint64_t>(RemoteAddr(a + 8), 0x5000);
  CHECK(!mmapped_chunk_at(mem, a, a + 0x6000));       // IS_MMAPPED clear
}

TEST_CASE("smaps: each mapping's Rss, Private_Dirty and path") {
  const char* text =
      "55d0c4a00000-55d0c4a01000 r--p 00000000 08:01 1311790                    /usr/bin/python3.11\n"
      "Size:                  4 kB\n"
      "Rss:                   4 kB\n"
      "Private_Dirty:         0 kB\n"
      "VmFlags: rd mr mw me dw sd\n"
      "7f2b1d400000-7f2b1d600000 rw-p 00000000 00:00 0 \n"
      "Rss:                 512 kB\n"
      "Private_Dirty:       508 kB\n"
      "Swap:                  8 kB\n"
      "7f2b1e000000-7f2b1e001000 r-xp 00000000 08:01 42                         /opt/my app/lib x.so (deleted)\n"
      "Rss:                   4 kB\n";
  auto v = parse_smaps(text);
  REQUIRE(v.size() == 3);
  CHECK(v[0].path == "/usr/bin/python3.11");
  CHECK(v[0].rss == 4096);
  CHECK(v[1].path.empty());
  CHECK(v[1].rss == 512 * 1024);
  CHECK(v[1].private_dirty == 508 * 1024);
  CHECK(v[1].swap == 8 * 1024);
  CHECK(v[2].path == "/opt/my app/lib x.so (deleted)");
  CHECK(v[2].start == 0x7f2b1e000000);
}

TEST_CASE("glibc facts by release: safe-linking from 2.32, heap_info's pagesize from 2.35") {
  // From glibc's release notes: safe-linking came in 2.32, heap_info.pagesize in 2.35,
  // malloc_state.have_fastchunks in 2.27.
  CHECK(!glibc_facts("2.31").safe_linking);
  CHECK(glibc_facts("2.32").safe_linking);
  CHECK(glibc_facts("2.34").heap_info_size == 32);
  CHECK(glibc_facts("2.35").heap_info_size == 48);
  CHECK(!glibc_facts("2.26").layout_built_in);
  CHECK(glibc_facts("2.27").layout_built_in);
  CHECK(glibc_facts("3.0").safe_linking);
  GlibcFacts unknown = glibc_facts("");
  CHECK(!unknown.version_known);
  CHECK(unknown.safe_linking);
  CHECK(unknown.heap_info_size == 0);
}
