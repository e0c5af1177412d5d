// Line-number decoders (src/runtime/linetable.hpp) on hand-built tables that follow CPython's
// documented formats (Objects/lnotab_notes.txt of 2.7, 3.6 and 3.10; Objects/locations.md of
// 3.11+), and on real tables compiled by every interpreter on the machine that made
// tests/unit/data/linetables.json (scripts/gen-linetable-fixtures.py), where the expected line of
// each instruction is what CPython itself computed.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "fake_python.hpp"
#include "runtime/linetable.hpp"

using namespace pyinspect;
using pyinspect::test::loc_head;
using pyinspect::test::put_svarint;
using pyinspect::test::put_varint;
using Bytes = std::vector<uint8_t>;

namespace {

// Holds a table at the very end of a readable page that is followed by an inaccessible one: a
// decoder that reads past the table's end faults here instead of passing by luck.
class GuardedTable {
 public:
  GuardedTable() {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    len_ = 4 * page_;
    void* p = mmap(nullptr, len_ + page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    base_ = static_cast<uint8_t*>(p);
    REQUIRE(mprotect(base_ + len_, page_, PROT_NONE) == 0);
  }
  ~GuardedTable() { munmap(base_, len_ + page_); }
  GuardedTable(const GuardedTable&) = delete;
  GuardedTable& operator=(const GuardedTable&) = delete;

  std::span<const uint8_t> place(const Bytes& b) {
    REQUIRE(b.size() <= len_);
    uint8_t* at = base_ + len_ - b.size();
    if (!b.empty()) std::memcpy(at, b.data(), b.size());
    return {at, b.size()};
  }

 private:
  uint8_t* base_ = nullptr;
  size_t page_ = 0, len_ = 0;
};

int lnotab27(const Bytes& t, int first, int addr) { return lnotab_line(t, first, addr, false); }
int lnotab36(const Bytes& t, int first, int addr) { return lnotab_line(t, first, addr, true); }
int lt310(const Bytes& t, int first, int addr) { return linetable310_line(t, first, addr); }
int loc311(const Bytes& t, int first, int addr) { return locations311_line(t, first, addr); }

Bytes unhex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

const nlohmann::json& fixtures() {
  static const nlohmann::json j = [] {
    std::ifstream in(std::string(PYINSPECT_TEST_DATA_DIR) + "/linetables.json");
    REQUIRE_MESSAGE(in.good(), "cannot open " PYINSPECT_TEST_DATA_DIR "/linetables.json");
    return nlohmann::json::parse(in);
  }();
  return j;
}

using Decoder = int (*)(std::span<const uint8_t>, int, int);
int dec_lnotab27(std::span<const uint8_t> t, int f, int a) { return lnotab_line(t, f, a, false); }
int dec_lnotab36(std::span<const uint8_t> t, int f, int a) { return lnotab_line(t, f, a, true); }
Decoder decoder_for(const std::string& format) {
  if (format == "lnotab27") return dec_lnotab27;
  if (format == "lnotab36") return dec_lnotab36;
  if (format == "linetable310") return linetable310_line;
  if (format == "locations311") return locations311_line;
  return nullptr;
}

// Checks every instruction offset of every table of `format` against the line CPython computed.
void check_fixtures(const std::string& format) {
  Decoder dec = decoder_for(format);
  REQUIRE((dec != nullptr));
  GuardedTable guard;
  size_t versions = 0, tables = 0, offsets = 0;
  for (const auto& v : fixtures().at("versions")) {
    if (v.at("format") != format) continue;
    ++versions;
    std::string who = v.at("python").get<std::string>() + " (" + v.at("source").get<std::string>() + ", " +
                      v.at("variant").get<std::string>() + ")";
    int step = v.at("step").get<int>();
    for (const auto& c : v.at("codes")) {
      ++tables;
      Bytes table = unhex(c.at("table").get<std::string>());
      auto span = guard.place(table);
      int first = c.at("firstlineno").get<int>();
      int code_len = c.at("code_len").get<int>();
      std::ostringstream bad;
      int mismatches = 0, covered_to = 0;
      for (const auto& r : c.at("ranges")) {
        int start = r.at(0).get<int>(), end = r.at(1).get<int>(), line = r.at(2).get<int>();
        CHECK(start == covered_to);  // the ranges cover the code without gaps
        covered_to = end;
        for (int o = start; o < end; o += step) {
          ++offsets;
          int got = dec(span, first, o);
          if (got != line && mismatches++ < 5) bad << " offset " << o << ": expected " << line << ", got " << got << ";";
        }
      }
      CHECK(covered_to == code_len);
      CHECK_MESSAGE(mismatches == 0, who, " ", c.at("name").get<std::string>(), ": ", mismatches,
                    " offsets wrong:", bad.str());
      if (c.contains("line_at_minus1")) {
        // An instruction pointer before the first instruction (a frame not started yet).
        CHECK_MESSAGE(dec(span, first, -1) == c.at("line_at_minus1").get<int>(), who, " ",
                      c.at("name").get<std::string>(), ": address -1");
      }
    }
  }
  INFO(format, ": ", versions, " interpreter runs, ", tables, " tables, ", offsets, " offsets");
  CHECK(versions >= 1);
  CHECK(tables >= 20 * versions);
  CHECK(offsets >= 1000);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// co_lnotab of 2.7: (address increment, line increment) byte pairs, both unsigned. A line jump of
// more than 255 is (addr, 255), (0, 255)..., (0, rest); an address jump of more than 255 is
// (255, 0)..., (rest, line).

TEST_CASE("linetable: lnotab 2.7 basic pairs") {
  const Bytes t = {6, 1, 8, 2};  // offsets 0-5: 10, 6-13: 11, 14-: 13
  for (int a = 0; a < 6; ++a) CHECK(lnotab27(t, 10, a) == 10);
  for (int a = 6; a < 14; ++a) CHECK(lnotab27(t, 10, a) == 11);
  CHECK(lnotab27(t, 10, 14) == 13);
  CHECK(lnotab27(t, 10, 1000) == 13);  // past the end: the last line
  CHECK(lnotab27(t, 10, -1) == 10);    // before the first instruction: co_firstlineno
}

TEST_CASE("linetable: lnotab 2.7 increments are unsigned") {
  const Bytes t = {3, 200, 3, 0x80};
  CHECK(lnotab27(t, 1, 2) == 1);
  CHECK(lnotab27(t, 1, 3) == 201);
  CHECK(lnotab27(t, 1, 6) == 329);
}

TEST_CASE("linetable: lnotab 2.7 multi-pair jumps") {
  // Line +300 at offset 4: (4, 255), (0, 45). Offset +300 for line +1: (255, 0), (45, 1).
  const Bytes t = {4, 255, 0, 45, 255, 0, 45, 1};
  CHECK(lnotab27(t, 5, 3) == 5);
  CHECK(lnotab27(t, 5, 4) == 305);
  CHECK(lnotab27(t, 5, 258) == 305);
  CHECK(lnotab27(t, 5, 303) == 305);
  CHECK(lnotab27(t, 5, 304) == 306);
}

TEST_CASE("linetable: lnotab empty and odd-length tables") {
  CHECK(lnotab27({}, 42, 0) == 42);
  CHECK(lnotab27({}, 42, 100) == 42);
  CHECK(lnotab36({}, 42, -1) == 42);
  // A trailing half pair is not a pair.
  CHECK(lnotab36({2, 1, 4}, 7, 100) == 8);
}

// co_lnotab of 3.6-3.9: the line increment is a signed byte; -200 is (addr, -128), (0, -72).

TEST_CASE("linetable: lnotab 3.6 signed increments") {
  const Bytes t = {2, 5, 2, 0xfe, 2, 0x80, 0, 0xb8};  // +5, -2, then -128 and -72
  CHECK(lnotab36(t, 300, 0) == 300);
  CHECK(lnotab36(t, 300, 2) == 305);
  CHECK(lnotab36(t, 300, 3) == 305);
  CHECK(lnotab36(t, 300, 4) == 303);
  CHECK(lnotab36(t, 300, 6) == 103);
  CHECK(lnotab36(t, 300, 100) == 103);
  CHECK(lnotab36(t, 300, -1) == 300);
  // The same bytes read as 2.7's unsigned increments.
  CHECK(lnotab27(t, 300, 4) == 300 + 5 + 254);
}

TEST_CASE("linetable: lnotab 3.6 first pair at offset zero") {
  // 3.8+ decorated functions: co_firstlineno is the decorator's line, the body starts below.
  const Bytes t = {0, 2, 4, 1};
  CHECK(lnotab36(t, 10, -1) == 10);
  CHECK(lnotab36(t, 10, 0) == 12);
  CHECK(lnotab36(t, 10, 4) == 13);
}

// co_linetable of 3.10: (end delta in bytes, unsigned; line delta, signed, -128 = no line).
// Line deltas beyond +-127 are (0, +-127)... before the real pair; address deltas beyond 254 are
// (254, delta), (rest, 0).

TEST_CASE("linetable: 3.10 linetable basic ranges") {
  const Bytes t = {4, 1, 6, 2, 2, 0x80, 4, 0xff};  // [0,4): 11, [4,10): 13, [10,12): none, [12,16): 12
  CHECK(lt310(t, 10, 0) == 11);
  CHECK(lt310(t, 10, 2) == 11);
  CHECK(lt310(t, 10, 4) == 13);
  CHECK(lt310(t, 10, 8) == 13);
  CHECK(lt310(t, 10, 10) == -1);
  CHECK(lt310(t, 10, 12) == 12);
  CHECK(lt310(t, 10, 14) == 12);
  CHECK(lt310(t, 10, 16) == -1);  // past the end
  CHECK(lt310(t, 10, -1) == 10);  // before the start: co_firstlineno
}

TEST_CASE("linetable: 3.10 linetable long jumps") {
  // Line +300 over 6 bytes: (0, 127), (0, 127), (6, 46). Then 300 bytes on line -200:
  // (0, -127), (254, -73), (46, 0).
  const Bytes t = {0, 127, 0, 127, 6, 46, 0, 0x81, 254, 0xb7, 46, 0};
  CHECK(lt310(t, 1, 0) == 301);
  CHECK(lt310(t, 1, 4) == 301);
  CHECK(lt310(t, 1, 6) == 101);
  CHECK(lt310(t, 1, 258) == 101);
  CHECK(lt310(t, 1, 259) == 101);
  CHECK(lt310(t, 1, 305) == 101);
  CHECK(lt310(t, 1, 306) == -1);
}

TEST_CASE("linetable: 3.10 no-line entries do not move the line") {
  // -128 means "no line" and leaves the computed line where it was.
  const Bytes t = {2, 3, 2, 0x80, 2, 1};
  CHECK(lt310(t, 20, 0) == 23);
  CHECK(lt310(t, 20, 2) == -1);
  CHECK(lt310(t, 20, 4) == 24);
  CHECK(lt310({}, 20, 0) == -1);
}

// Location table of 3.11+.

TEST_CASE("linetable: 3.11 location entries of every kind") {
  Bytes t;
  t.push_back(loc_head(14, 1));  // long form, line +0: unit 0 -> 20
  put_svarint(t, 0);
  put_varint(t, 0);   // end line delta
  put_varint(t, 5);   // column + 1
  put_varint(t, 9);   // end column + 1
  t.push_back(loc_head(5, 2));   // short form 5: same line, units 1-2 -> 20
  t.push_back(0x23);
  t.push_back(loc_head(11, 3));  // one-line form, line +1: units 3-5 -> 21
  t.push_back(4);
  t.push_back(17);
  t.push_back(loc_head(12, 1));  // one-line form, line +2: unit 6 -> 23
  t.push_back(0);
  t.push_back(3);
  t.push_back(loc_head(10, 1));  // one-line form, line +0: unit 7 -> 23
  t.push_back(8);
  t.push_back(12);
  t.push_back(loc_head(14, 8));  // long form, line -3 over 8 units: units 8-15 -> 20
  put_svarint(t, -3);
  put_varint(t, 2);
  put_varint(t, 1);
  put_varint(t, 200);  // two varint bytes
  t.push_back(loc_head(15, 2));  // no location: units 16-17
  t.push_back(loc_head(13, 1));  // no columns, line +300 (two varint bytes): unit 18 -> 320
  put_svarint(t, 300);
  t.push_back(loc_head(13, 1));  // no columns, line -250: unit 19 -> 70
  put_svarint(t, -250);
  t.push_back(loc_head(0, 1));   // short form 0: same line: unit 20 -> 70
  t.push_back(0x01);

  const int first = 20;
  const std::map<int, int> expected_by_unit = {
      {0, 20}, {1, 20}, {2, 20}, {3, 21}, {4, 21}, {5, 21}, {6, 23}, {7, 23}, {8, 20}, {12, 20}, {15, 20},
      {16, -1}, {17, -1}, {18, 320}, {19, 70}, {20, 70}, {21, -1}, {40, -1}};
  for (auto [unit, line] : expected_by_unit) {
    INFO("code unit ", unit);
    CHECK(loc311(t, first, unit * 2) == line);
  }
  CHECK(loc311(t, first, -1) == first);
}

TEST_CASE("linetable: 3.11 no-location entry keeps the computed line") {
  Bytes t = {loc_head(11, 1), 0, 1, loc_head(15, 1), loc_head(10, 1), 0, 1};
  CHECK(loc311(t, 5, 0) == 6);
  CHECK(loc311(t, 5, 2) == -1);
  CHECK(loc311(t, 5, 4) == 6);
}

TEST_CASE("linetable: 3.11 varints") {
  // Line deltas near the varint byte boundaries: 31 (one byte zigzagged), 32 and -32 (two bytes),
  // 100000 (three bytes).
  for (int delta : {1, -1, 31, -31, 32, -32, 2047, -2048, 100000, -100000}) {
    Bytes t = {loc_head(13, 1)};
    put_svarint(t, delta);
    t.push_back(loc_head(13, 1));
    put_svarint(t, 1);
    INFO("delta ", delta);
    CHECK(loc311(t, 200000, 0) == 200000 + delta);
    CHECK(loc311(t, 200000, 2) == 200000 + delta + 1);
  }
}

TEST_CASE("linetable: 3.11 empty table and past the end") {
  CHECK(loc311({}, 9, 0) == -1);
  CHECK(loc311({}, 9, -1) == 9);
  Bytes t = {loc_head(10, 8), 1, 2};
  CHECK(loc311(t, 9, 14) == 9);
  CHECK(loc311(t, 9, 16) == -1);
}

TEST_CASE("linetable: corrupt and truncated tables stay in bounds") {
  GuardedTable guard;
  // Entries cut inside their varints, bytes that are no entry start, maximal varints.
  std::vector<Bytes> tables = {
      {loc_head(14, 1)},
      {loc_head(14, 1), 0x41},
      {loc_head(13, 1), 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f},
      {0x01, 0x02, 0x03},
      {loc_head(10, 1)},
      {loc_head(13, 8), 0x7f, 0x7f, 0x7f, 0x7f, 0x3f, loc_head(13, 8), 0x7f, 0x7f, 0x7f, 0x7f, 0x3f},
      {0xff},
      {0x80},
  };
  for (const auto& t : tables) {
    auto s = guard.place(t);
    for (int a = -1; a < 40; ++a) {
      (void)locations311_line(s, 1, a);
      (void)linetable310_line(s, 1, a);
      (void)lnotab_line(s, 1, a, true);
      (void)lnotab_line(s, 1, a, false);
    }
  }
  // Seeded random tables of every small length, every decoder, every address.
  std::mt19937 rng(20240229);
  for (int n = 0; n < 3000; ++n) {
    Bytes t(rng() % 48);
    for (auto& b : t) b = static_cast<uint8_t>(rng() & 0xff);
    if (!t.empty() && (rng() & 1)) t[0] |= 0x80;
    auto s = guard.place(t);
    for (int a = -1; a < 64; a += 1) {
      int l = locations311_line(s, 10, a);
      CHECK_MESSAGE((l == -1 || l == 10 || !t.empty()), "a line from nothing");
      (void)linetable310_line(s, 10, a);
      (void)lnotab_line(s, 10, a, n & 1);
    }
  }
  // Every real table, cut at every length up to 96 bytes.
  for (const auto& v : fixtures().at("versions")) {
    Decoder dec = decoder_for(v.at("format").get<std::string>());
    REQUIRE((dec != nullptr));
    for (const auto& c : v.at("codes")) {
      Bytes full = unhex(c.at("table").get<std::string>());
      int code_len = c.at("code_len").get<int>();
      for (size_t cut = 0; cut < std::min<size_t>(full.size(), 96); ++cut) {
        auto s = guard.place(Bytes(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut)));
        for (int o = -1; o < code_len; o += std::max(1, code_len / 8)) (void)dec(s, 1, o);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Real tables: what CPython computed for each instruction of the sample functions.

TEST_CASE("linetable: real co_lnotab of 2.7") { check_fixtures("lnotab27"); }
TEST_CASE("linetable: real co_lnotab of 3.6 to 3.9") { check_fixtures("lnotab36"); }
TEST_CASE("linetable: real co_linetable of 3.10") { check_fixtures("linetable310"); }
TEST_CASE("linetable: real location tables of 3.11 and later") { check_fixtures("locations311"); }

TEST_CASE("linetable: the real fixtures exercise the hard cases") {
  // Without these the real-table tests above would prove little: multi-byte steps, negative
  // line deltas, and every kind of location entry.
  std::set<std::string> formats;
  std::set<int> codes311;
  bool lnotab_negative = false, lnotab_255 = false, lt310_nolines = false;
  for (const auto& v : fixtures().at("versions")) {
    std::string f = v.at("format").get<std::string>();
    formats.insert(f);
    for (const auto& c : v.at("codes")) {
      Bytes t = unhex(c.at("table").get<std::string>());
      if (f == "lnotab36" || f == "lnotab27") {
        for (size_t i = 0; i + 1 < t.size(); i += 2) {
          lnotab_255 = lnotab_255 || t[i] == 255 || t[i + 1] == 255;
          lnotab_negative = lnotab_negative || (f == "lnotab36" && t[i + 1] >= 0x80);
        }
      } else if (f == "linetable310") {
        for (size_t i = 0; i + 1 < t.size(); i += 2) lt310_nolines = lt310_nolines || t[i + 1] == 0x80;
      } else {
        // Entry starts only: walk the table the way the format defines it.
        for (size_t i = 0; i < t.size(); ++i)
          if (t[i] & 0x80) codes311.insert((t[i] >> 3) & 15);
      }
    }
  }
  CHECK(formats == std::set<std::string>{"lnotab27", "lnotab36", "linetable310", "locations311"});
  CHECK(lnotab_negative);
  CHECK(lnotab_255);
  CHECK(lt310_nolines);
  for (int code = 0; code < 16; ++code) {
    INFO("location entry code ", code);
    CHECK(codes311.count(code) == 1);
  }
}
