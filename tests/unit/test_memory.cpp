// The memory layers (src/proc/memory.hpp): FakeMemory itself, CachedMemory over it (compared
// byte for byte with the memory it caches), and read_cstring's bounds.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "proc/maps.hpp"
#include "proc/memory.hpp"

using namespace pyinspect;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

// Counts the reads that reach the memory below a cache.
class CountingMemory : public Memory {
 public:
  explicit CountingMemory(const Memory& inner) : inner_(inner) {}
  bool read(RemoteAddr addr, void* out, size_t len) const override {
    ++calls;
    bytes += len;
    last_len = len;
    return inner_.read(addr, out, len);
  }
  mutable size_t calls = 0, bytes = 0, last_len = 0;

 private:
  const Memory& inner_;
};

}  // namespace

TEST_CASE("memory: FakeMemory reads within, across and between regions") {
  FakeMemory m;
  m.add(RemoteAddr(0x1000), pattern(16, 1));
  m.add(RemoteAddr(0x1010), pattern(16, 100));  // adjacent to the first
  m.add(RemoteAddr(0x2000), pattern(16, 50));   // after a gap

  uint8_t buf[32];
  REQUIRE(m.read(RemoteAddr(0x1008), buf, 16));
  Bytes expect;
  for (int i = 8; i < 16; ++i) expect.push_back(pattern(16, 1)[i]);
  for (int i = 0; i < 8; ++i) expect.push_back(pattern(16, 100)[i]);
  CHECK(Bytes(buf, buf + 16) == expect);

  CHECK(m.read(RemoteAddr(0x1000), buf, 32));
  CHECK_FALSE(m.read(RemoteAddr(0x1000), buf, 33));  // one byte past the adjacent region
  CHECK_FALSE(m.read(RemoteAddr(0x0fff), buf, 2));   // starts before
  CHECK_FALSE(m.read(RemoteAddr(0x1800), buf, 1));   // in the gap
  CHECK_FALSE(m.read(RemoteAddr(0x1ff8), buf, 16));  // runs from the gap into a region
  CHECK(m.read(RemoteAddr(0x200f), buf, 1));
  CHECK(buf[0] == pattern(16, 50)[15]);  // NOLINT: one element of a temporary, copied
  CHECK_FALSE(m.read(RemoteAddr(0x2010), buf, 1));

  const Bytes third = pattern(16, 50);
  auto v = m.read_as<uint16_t>(RemoteAddr(0x2000));
  REQUIRE(v);
  CHECK(*v == (third[0] | third[1] << 8));
  CHECK_FALSE(m.read_as<uint64_t>(RemoteAddr(0x200c)).has_value());
  CHECK(m.read_bytes(RemoteAddr(0x2004), 4) == Bytes(third.begin() + 4, third.begin() + 8));
  CHECK_FALSE(m.read_bytes(RemoteAddr(0x200e), 4).has_value());
}

TEST_CASE("memory: FakeMemory put writes into an existing region") {
  FakeMemory m;
  m.add(RemoteAddr(0x1000), Bytes(32, 0));
  m.put<uint64_t>(RemoteAddr(0x1008), 0x1122334455667788ull);
  CHECK(*m.read_as<uint64_t>(RemoteAddr(0x1008)) == 0x1122334455667788ull);
  CHECK(*m.read_as<uint64_t>(RemoteAddr(0x1000)) == 0);  // the rest stays
  CHECK(*m.read_ptr(RemoteAddr(0x1008)) == RemoteAddr(0x1122334455667788ull));
}

TEST_CASE("memory: CachedMemory reads spanning blocks") {
  FakeMemory fake;
  Bytes data = pattern(1024, 3);
  fake.add(RemoteAddr(0x10000), data);
  CountingMemory inner(fake);
  CachedMemory cache(inner, nullptr, 64);

  uint8_t buf[200];
  REQUIRE(cache.read(RemoteAddr(0x10000 + 60), buf, 100));  // blocks 0..2 of the region
  CHECK(Bytes(buf, buf + 100) == Bytes(data.begin() + 60, data.begin() + 160));
  size_t after_first = inner.calls;
  CHECK(after_first == 3);  // one read per block
  REQUIRE(cache.read(RemoteAddr(0x10000 + 64), buf, 64));  // already cached
  CHECK(inner.calls == after_first);
  CHECK(Bytes(buf, buf + 64) == Bytes(data.begin() + 64, data.begin() + 128));
  cache.clear();
  REQUIRE(cache.read(RemoteAddr(0x10000 + 100), buf, 8));
  CHECK(inner.calls == after_first + 1);
}

TEST_CASE("memory: CachedMemory at the end of a region") {
  // The region ends inside a block: the block cannot be cached whole, the readable part of it
  // must still read, and the unreadable part must fail.
  FakeMemory fake;
  Bytes data = pattern(100, 9);  // 0x20000..0x20064: block 1 (0x20040..0x20080) is cut short
  fake.add(RemoteAddr(0x20000), data);
  CachedMemory cache(fake, nullptr, 64);
  uint8_t buf[64];
  REQUIRE(cache.read(RemoteAddr(0x20000 + 90), buf, 10));
  CHECK(Bytes(buf, buf + 10) == Bytes(data.begin() + 90, data.end()));
  REQUIRE(cache.read(RemoteAddr(0x20000 + 30), buf, 60));  // a whole block and part of a cut one
  CHECK(Bytes(buf, buf + 60) == Bytes(data.begin() + 30, data.begin() + 90));
  CHECK_FALSE(cache.read(RemoteAddr(0x20000 + 95), buf, 6));
  CHECK_FALSE(cache.read(RemoteAddr(0x20000 + 100), buf, 1));
  // The same through maps that say where the region ends.
  Maps maps({MapEntry{0x20000, 0x20064, true, true, false, false, 0, 0, ""}});
  CachedMemory mapped(fake, &maps, 64);
  REQUIRE(mapped.read(RemoteAddr(0x20000 + 90), buf, 10));
  CHECK(Bytes(buf, buf + 10) == Bytes(data.begin() + 90, data.end()));
  CHECK_FALSE(mapped.read(RemoteAddr(0x20000 + 99), buf, 2));
}

TEST_CASE("memory: CachedMemory passes big reads through") {
  FakeMemory fake;
  Bytes data = pattern(64 * 40, 1);
  fake.add(RemoteAddr(0x40000), data);
  CountingMemory inner(fake);
  CachedMemory cache(inner, nullptr, 64);
  Bytes buf(64 * 30);
  REQUIRE(cache.read(RemoteAddr(0x40000), buf.data(), buf.size()));
  CHECK(buf == Bytes(data.begin(), data.begin() + static_cast<ptrdiff_t>(buf.size())));
  CHECK(inner.calls == 1);  // one read, not one per block
  CHECK(inner.last_len == buf.size());
  CHECK_FALSE(cache.read(RemoteAddr(0x40000 + 64 * 20), buf.data(), buf.size()));  // past the end
}

TEST_CASE("memory: CachedMemory agrees with the memory below for random reads") {
  // Regions of random sizes with gaps, some adjacent; reads of random places and lengths,
  // small and big. Every answer and every byte must be what the inner memory gives.
  std::mt19937_64 rng(0x5eed);
  FakeMemory fake;
  uint64_t at = 0x100000;
  for (int i = 0; i < 40; ++i) {
    size_t n = 1 + rng() % 3000;
    Bytes b(n);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    fake.add(RemoteAddr(at), b);
    at += n + ((rng() % 3 == 0) ? 0 : rng() % 500);  // a third of them adjacent to the next
  }
  // The same regions as maps: one mapping each, adjacent ones included.
  std::vector<MapEntry> entries;
  for (uint64_t a = 0x100000; a < at;) {
    Bytes one(1);
    if (!fake.read(RemoteAddr(a), one.data(), 1)) {
      ++a;
      continue;
    }
    uint64_t e = a;
    while (e < at && fake.read(RemoteAddr(e), one.data(), 1)) ++e;
    entries.push_back(MapEntry{a, e, true, true, false, false, 0, 0, ""});
    a = e;
  }
  Maps maps(entries);
  for (auto [block, with_maps] : {std::pair{size_t{16}, false}, {size_t{64}, false}, {size_t{4096}, false},
                                  {size_t{64}, true}, {size_t{4096}, true}}) {
    CachedMemory cache(fake, with_maps ? &maps : nullptr, block);
    int ok = 0;
    for (int i = 0; i < 4000; ++i) {
      uint64_t a = 0x100000 - 64 + rng() % (at - 0x100000 + 128);
      size_t len = (rng() % 8 == 0) ? rng() % 20000 : rng() % 300;
      Bytes want(len, 0xaa), got(len, 0x55);
      bool want_ok = fake.read(RemoteAddr(a), want.data(), len);
      bool got_ok = cache.read(RemoteAddr(a), got.data(), len);
      INFO("block ", block, with_maps ? " with maps" : "", " read ", len, " at ", a);
      REQUIRE(got_ok == want_ok);
      if (want_ok) {
        ++ok;
        REQUIRE(got == want);
      }
    }
    CHECK(ok > 500);  // the mix does include reads that succeed
  }
}

TEST_CASE("memory: read_cstring") {
  FakeMemory m;
  std::string s = "hello, world";
  Bytes b(s.begin(), s.end());
  b.push_back(0);
  b.push_back('X');
  m.add(RemoteAddr(0x1000), b);
  CHECK(m.read_cstring(RemoteAddr(0x1000)) == std::optional<std::string>("hello, world"));
  CHECK(m.read_cstring(RemoteAddr(0x1000), 5) == std::optional<std::string>("hello"));  // bounded
  CHECK(m.read_cstring(RemoteAddr(0x1007)) == std::optional<std::string>("world"));
  CHECK(m.read_cstring(RemoteAddr(0x100c)) == std::optional<std::string>(""));
  CHECK_FALSE(m.read_cstring(RemoteAddr(0x5000)).has_value());  // unmapped

  // A long string whose NUL is the last byte before unmapped memory: chunked reads fail there,
  // the string must still be found.
  std::string longs(150, 'a');
  for (size_t i = 0; i < longs.size(); ++i) longs[i] = static_cast<char>('a' + i % 26);
  Bytes lb(longs.begin(), longs.end());
  lb.push_back(0);
  m.add(RemoteAddr(0x3000), lb);
  CHECK(m.read_cstring(RemoteAddr(0x3000)) == std::optional<std::string>(longs));
  CHECK(m.read_cstring(RemoteAddr(0x3000), 1000) == std::optional<std::string>(longs));
  CHECK(m.read_cstring(RemoteAddr(0x3000), 70) == std::optional<std::string>(longs.substr(0, 70)));
  CHECK(m.read_cstring(RemoteAddr(0x3000 + 149)) == std::optional<std::string>(longs.substr(149)));
  CHECK(m.read_cstring(RemoteAddr(0x3000 + 150)) == std::optional<std::string>(""));
}

TEST_CASE("memory: read_cstring into unmapped memory does not depend on the bound") {
  // `n` bytes without a NUL, then unmapped memory. With any bound above `n` the string is the
  // same unterminated run, so the answer must not change with the bound.
  for (size_t n : {size_t{64}, size_t{100}, size_t{128}}) {
    FakeMemory m;
    m.add(RemoteAddr(0x4000), Bytes(n, 'x'));
    auto reference = m.read_cstring(RemoteAddr(0x4000), n + 200);
    for (size_t bound = n + 1; bound < n + 140; ++bound) {
      INFO(n, " mapped bytes, bound ", bound);
      auto got = m.read_cstring(RemoteAddr(0x4000), bound);
      CHECK(got.has_value() == reference.has_value());
      if (got && reference) CHECK(*got == *reference);
    }
    // Never more than the mapped bytes; up to the bound, exactly them.
    if (reference) CHECK(reference->size() <= n);
    CHECK(m.read_cstring(RemoteAddr(0x4000), n) == std::optional<std::string>(std::string(n, 'x')));
  }
}
