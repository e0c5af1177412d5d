// /proc/PID/maps parsing and lookups (src/proc/maps.hpp), on text in the kernel's format
// (proc(5): "address perms offset dev inode pathname", the path padded with spaces).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "proc/maps.hpp"

using namespace pyinspect;

namespace {
// Lines as the kernel prints them (the path column is padded to a fixed width).
const char* kTypical =
    "55d0c4a00000-55d0c4a01000 r--p 00000000 08:01 1311790                    /usr/bin/python3.11\n"
    "55d0c4a01000-55d0c4c9c000 r-xp 00001000 08:01 1311790                    /usr/bin/python3.11\n"
    "55d0c4f3a000-55d0c4f3b000 rw-p 0053a000 08:01 1311790                    /usr/bin/python3.11\n"
    "55d0c4f3b000-55d0c4f7d000 rw-p 00000000 00:00 0 \n"
    "55d0c5e4e000-55d0c5f6f000 rw-p 00000000 00:00 0                          [heap]\n"
    "7f2b1c000000-7f2b1c021000 rw-s 00000000 00:05 3                          /dev/zero (deleted)\n"
    "7f2b1d400000-7f2b1d600000 r--p 00000000 08:01 2228275                    /opt/my app/lib python.so\n"
    "7f2b1d600000-7f2b1d7ff000 ---p 00200000 08:01 2228275                    /opt/my app/lib python.so\n"
    "7f2b1e000000-7f2b1e001000 r-xp 00000000 08:01 42                         /tmp/libgone.so (deleted)\n"
    "7ffc6b0e5000-7ffc6b106000 rw-p 00000000 00:00 0                          [stack]\n"
    "7ffc6b1d0000-7ffc6b1d4000 r--p 00000000 00:00 0                          [vvar]\n"
    "7ffc6b1d4000-7ffc6b1d6000 r-xp 00000000 00:00 0                          [vdso]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

const MapEntry* entry_at(const Maps& m, uint64_t a) { return m.find(RemoteAddr(a)); }
}  // namespace

TEST_CASE("maps: typical lines") {
  Maps m = Maps::parse(kTypical);
  REQUIRE(m.entries().size() == 13);
  const MapEntry& e = m.entries()[1];
  CHECK(e.start == 0x55d0c4a01000);
  CHECK(e.end == 0x55d0c4c9c000);
  CHECK(e.readable);
  CHECK_FALSE(e.writable);
  CHECK(e.executable);
  CHECK_FALSE(e.shared);
  CHECK(e.offset == 0x1000);
  CHECK(e.inode == 1311790);
  CHECK(e.path == "/usr/bin/python3.11");
  CHECK(e.is_file());
  CHECK(e.size() == 0x55d0c4c9c000 - 0x55d0c4a01000);

  const MapEntry& data = m.entries()[2];
  CHECK(data.writable);
  CHECK(data.offset == 0x53a000);
}

TEST_CASE("maps: anonymous and special mappings") {
  Maps m = Maps::parse(kTypical);
  const MapEntry* anon = entry_at(m, 0x55d0c4f3b000);
  REQUIRE(anon);
  CHECK(anon->path.empty());
  CHECK(anon->inode == 0);
  CHECK_FALSE(anon->is_file());
  for (auto [addr, name] : {std::pair<uint64_t, const char*>{0x55d0c5e4e000, "[heap]"},
                            {0x7ffc6b0e5000, "[stack]"},
                            {0x7ffc6b1d4000, "[vdso]"},
                            {0x7ffc6b1d0000, "[vvar]"},
                            {0xffffffffff600000, "[vsyscall]"}}) {
    const MapEntry* e = entry_at(m, addr);
    REQUIRE_MESSAGE(e, name);
    CHECK(e->path == name);
    CHECK_FALSE(e->is_file());
  }
  const MapEntry* vsys = entry_at(m, 0xffffffffff600000);
  CHECK_FALSE(vsys->readable);
  CHECK(vsys->executable);
}

TEST_CASE("maps: paths with spaces and deleted files") {
  Maps m = Maps::parse(kTypical);
  const MapEntry* lib = entry_at(m, 0x7f2b1d400000);
  REQUIRE(lib);
  CHECK(lib->path == "/opt/my app/lib python.so");
  CHECK(lib->is_file());
  const MapEntry* gone = entry_at(m, 0x7f2b1e000000);
  REQUIRE(gone);
  CHECK(gone->path == "/tmp/libgone.so (deleted)");
  const MapEntry* shm = entry_at(m, 0x7f2b1c000000);
  REQUIRE(shm);
  CHECK(shm->shared);
  CHECK(shm->path == "/dev/zero (deleted)");
}

TEST_CASE("maps: malformed lines are skipped") {
  const char* text =
      "\n"
      "garbage\n"
      "00400000-00401000 r-xp 00000000 08:01 12 /bin/ok\n"
      "00402000 r-xp 00000000 08:01 12 /bin/no-dash\n"
      "00403000-00402000 r-xp 00000000 08:01 12 /bin/end-before-start\n"
      "zz403000-00404000 r-xp 00000000 08:01 12 /bin/bad-hex\n"
      "00405000-00406000 r- 00000000 08:01 12 /bin/short-perms\n"
      "00407000-00408000 r-xp 0000000g 08:01 12 /bin/bad-offset\n"
      "00409000-0040a000 r-xp 00000000 08:01 /bin/no-inode\n"
      "0040b000-0040c000 r-xp 00000000\n"
      "0040d000-0040e000 rw-p 00000000 00:00 0";  // last line without a newline: still a line
  Maps m = Maps::parse(text);
  REQUIRE(m.entries().size() == 2);
  CHECK(m.entries()[0].path == "/bin/ok");
  CHECK(m.entries()[1].start == 0x40d000);
  CHECK(m.entries()[1].path.empty());
  CHECK(Maps::parse("").empty());
}

TEST_CASE("maps: entries are sorted whatever the input order") {
  Maps m = Maps::parse(
      "7000-8000 r--p 00000000 00:00 0\n"
      "1000-2000 r--p 00000000 00:00 0\n"
      "4000-5000 r--p 00000000 00:00 0\n");
  REQUIRE(m.entries().size() == 3);
  CHECK(m.entries()[0].start == 0x1000);
  CHECK(m.entries()[1].start == 0x4000);
  CHECK(m.entries()[2].start == 0x7000);
  CHECK(m.find(RemoteAddr(0x4800))->start == 0x4000);
}

TEST_CASE("maps: find at the boundaries") {
  Maps m = Maps::parse(
      "1000-2000 r--p 00000000 00:00 0\n"
      "2000-3000 rw-p 00000000 00:00 0\n"
      "5000-6000 r--p 00000000 00:00 0\n");
  CHECK(m.find(RemoteAddr(0)) == nullptr);
  CHECK(m.find(RemoteAddr(0xfff)) == nullptr);
  REQUIRE(m.find(RemoteAddr(0x1000)));
  CHECK(m.find(RemoteAddr(0x1000))->start == 0x1000);
  CHECK(m.find(RemoteAddr(0x1fff))->start == 0x1000);
  CHECK(m.find(RemoteAddr(0x2000))->start == 0x2000);  // end is exclusive: the next mapping
  CHECK(m.find(RemoteAddr(0x2fff))->start == 0x2000);
  CHECK(m.find(RemoteAddr(0x3000)) == nullptr);
  CHECK(m.find(RemoteAddr(0x4fff)) == nullptr);
  CHECK(m.find(RemoteAddr(0x5fff))->start == 0x5000);
  CHECK(m.find(RemoteAddr(0x6000)) == nullptr);
  CHECK(m.find(RemoteAddr(~0ull)) == nullptr);
  CHECK(Maps().find(RemoteAddr(0x1000)) == nullptr);
}

TEST_CASE("maps: readable across adjacent mappings and gaps") {
  Maps m = Maps::parse(
      "1000-2000 r--p 00000000 00:00 0\n"
      "2000-3000 rw-p 00000000 00:00 0\n"
      "3000-4000 ---p 00000000 00:00 0\n"
      "4000-5000 r--p 00000000 00:00 0\n"
      "6000-7000 r--p 00000000 00:00 0\n");
  CHECK(m.readable(RemoteAddr(0x1000), 0x1000));
  CHECK(m.readable(RemoteAddr(0x1ff8), 16));          // crosses into the adjacent mapping
  CHECK(m.readable(RemoteAddr(0x1000), 0x2000));      // both of them, exactly
  CHECK_FALSE(m.readable(RemoteAddr(0x1000), 0x2001));  // one byte into the ---p mapping
  CHECK_FALSE(m.readable(RemoteAddr(0x3800), 8));      // not readable
  CHECK_FALSE(m.readable(RemoteAddr(0x4ff8), 16));     // runs into the gap at 0x5000
  CHECK(m.readable(RemoteAddr(0x4ff8), 8));            // ends exactly at the gap
  CHECK_FALSE(m.readable(RemoteAddr(0x5000), 1));
  CHECK_FALSE(m.readable(RemoteAddr(0x800), 0x1000));  // starts before the first mapping
  CHECK(m.readable(RemoteAddr(0x6fff), 1));
  CHECK_FALSE(m.readable(RemoteAddr(0x6fff), 2));
  CHECK(m.readable(RemoteAddr(0x5000), 0));            // nothing to read
}

TEST_CASE("maps: readable rejects ranges that wrap around") {
  Maps m = Maps::parse(
      "1000-2000 r--p 00000000 00:00 0\n"
      "ffffffffff600000-ffffffffff601000 r--p 00000000 00:00 0\n");
  CHECK_FALSE(m.readable(RemoteAddr(0x1000), ~0ull));
  CHECK_FALSE(m.readable(RemoteAddr(0xffffffffff600000), 0x1000000000000000ull));
  CHECK_FALSE(m.readable(RemoteAddr(~0ull), 2));
  CHECK(m.readable(RemoteAddr(0xffffffffff600000), 0x1000));
}
