// Seeded fuzzing of every decoder over corrupt memory (docs/architecture.md, principles: trust nothing read; a torn or corrupt object
// becomes a warning and a partial result, never a crash, a hang or an unbounded allocation).
//
// Each test case builds, for every embedded layout (2.7, 3.6-3.13), the structures CPython keeps:
// type objects, strings in each representation, ints, dicts in each layout, containers, code
// objects with their line tables, frames, generators, instances with a dict, managed or inline
// values, or slots, thread states with their frame chains, and GC lists. Then, from a fixed seed,
// it feeds a decoder copies of that memory mutated near the structure it starts from: bits
// flipped, words replaced by random values, by pointers to other objects, to themselves (loops),
// by huge counts and sizes; ranges cut short or unmapped; ranges of pure random bytes.
//
// A decoder may return anything or throw pyinspect's Error. It must not crash, throw anything
// else, take more than a second, allocate more than a GiB, or return more than its documented
// bounds. The budget is fixed; PYINSPECT_FUZZ_ITERATIONS=N runs N inputs per test case instead
// (a longer run in CI) and PYINSPECT_FUZZ_SEED=S varies the seeds. A failure names the input and
// its seed: the same variables and that many iterations reproduce it.
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <span>
#include <string>
#include <typeinfo>
#include <unordered_set>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "fake_python.hpp"
#include "heap/census.hpp"
#include "heap/heap_types.hpp"
#include "heap/roots.hpp"
#include "runtime/frames.hpp"
#include "runtime/linetable.hpp"
#include "runtime/objects.hpp"

using namespace pyinspect;
using namespace pyinspect::test;
using Bytes = std::vector<uint8_t>;

namespace {

// ---------------------------------------------------------------------------------------------
// Budget, seeds, and the limits each decoder call runs under

constexpr auto kMaxCall = std::chrono::seconds(1);  // one call over a few hundred KiB of memory
constexpr unsigned kWatchdogSeconds = 20;           // an input still running then hangs: abort
constexpr uint64_t kAllocationHeadroom = uint64_t{1} << 30;

size_t env_number(const char* name, size_t fallback) {
  const char* s = std::getenv(name);
  if (!s || !*s) return fallback;
  char* end = nullptr;
  unsigned long long n = std::strtoull(s, &end, 0);
  return end && *end == '\0' ? static_cast<size_t>(n) : fallback;
}
size_t iterations(size_t default_count) {
  size_t n = env_number("PYINSPECT_FUZZ_ITERATIONS", 0);
  return n ? n : default_count;
}

// splitmix64: a well-spread seed for each input from the test's seed and the input's number.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t input_seed(uint64_t test_salt, size_t index) {
  static const uint64_t base = env_number("PYINSPECT_FUZZ_SEED", 20240611);
  return mix(mix(base ^ test_salt) + index);
}

char g_watchdog_message[512] = "fuzz: a decoder call did not return\n";

void on_watchdog(int) {
  // Only async-signal-safe calls: the message was formatted before the call began.
  ssize_t ignored = write(STDERR_FILENO, g_watchdog_message, std::strlen(g_watchdog_message));
  (void)ignored;
  std::abort();
}

uint64_t vm_data_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmData:", 0) == 0) return std::strtoull(line.c_str() + 7, nullptr, 10) * 1024;
  return 0;
}

// For one test case: the watchdog, and a cap on how much the process's data may grow, so that a
// decoder asking for gigabytes fails (std::bad_alloc, reported as a failure below; AddressSanitizer
// reports it itself) instead of exhausting the machine.
class FuzzLimits {
 public:
  FuzzLimits() {
    struct sigaction sa {};
    sa.sa_handler = on_watchdog;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old_action_);
    uint64_t data = vm_data_bytes();
    if (data && getrlimit(RLIMIT_DATA, &old_limit_) == 0) {
      rlimit lim = old_limit_;
      uint64_t cap = data + kAllocationHeadroom;
      if (lim.rlim_cur == RLIM_INFINITY || cap < lim.rlim_cur) {
        lim.rlim_cur = cap;
        limited_ = setrlimit(RLIMIT_DATA, &lim) == 0;
      }
    }
  }
  ~FuzzLimits() {
    alarm(0);
    sigaction(SIGALRM, &old_action_, nullptr);
    if (limited_) setrlimit(RLIMIT_DATA, &old_limit_);
  }
  FuzzLimits(const FuzzLimits&) = delete;
  FuzzLimits& operator=(const FuzzLimits&) = delete;

 private:
  struct sigaction old_action_ {};
  rlimit old_limit_{};
  bool limited_ = false;
};

// Runs decoder calls: each under the time bound, each input under the watchdog. Throwing
// pyinspect's Error is an allowed outcome (a layout member missing, an unsupported version); any
// other exception, std::bad_alloc included, fails the test.
class Runner {
 public:
  explicit Runner(const char* test) : test_(test), start_(std::chrono::steady_clock::now()) {}
  ~Runner() { alarm(0); }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // A new input: its description, for messages, and the watchdog armed again.
  void input(const std::string& where) {
    where_ = where;
    std::snprintf(g_watchdog_message, sizeof g_watchdog_message, "%s: no result within %u s (%s)\n", test_,
                  kWatchdogSeconds, where_.c_str());
    alarm(kWatchdogSeconds);
  }

  template <class Fn>
  void call(const char* decoder, Fn&& fn) {
    ++calls_;
    auto t0 = std::chrono::steady_clock::now();
    std::string unexpected;
    try {
      fn();
    } catch (const Error&) {
    } catch (const std::exception& e) {
      unexpected = std::string(typeid(e).name()) + ": " + e.what();
    }
    auto took = std::chrono::steady_clock::now() - t0;
    if (!unexpected.empty()) FAIL(std::string(decoder), " threw ", unexpected, " (", where_, ")");
    if (took > kMaxCall)
      FAIL(std::string(decoder), " took ", std::chrono::duration<double>(took).count(), " s (", where_, ")");
  }

  // A bound on a decoder's output.
  void bound(bool ok, const char* what) {
    if (!ok) FAIL(std::string(what), " (", where_, ")");
  }

  void report(size_t inputs) const {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    MESSAGE(std::string(test_), ": ", inputs, " inputs, ", calls_, " decoder calls in ", s, " s");
  }

 private:
  const char* test_;
  std::chrono::steady_clock::time_point start_;
  std::string where_;
  size_t calls_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Valid line tables (Objects/lnotab_notes.txt of 2.7, 3.6 and 3.10; Objects/locations.md)

enum class Fmt { Lnotab27, Lnotab36, Linetable310, Locations311 };

Fmt fmt_of(const Layout& l) {
  switch (l.facts().lines) {
    case Facts::LineTable::Lnotab: return l.facts().lnotab_signed ? Fmt::Lnotab36 : Fmt::Lnotab27;
    case Facts::LineTable::Linetable310: return Fmt::Linetable310;
    case Facts::LineTable::Locations311: return Fmt::Locations311;
  }
  return Fmt::Lnotab36;
}

// `entries` steps of a table as CPython writes it.
Bytes valid_table(Fmt f, std::mt19937_64& rng, int entries) {
  Bytes t;
  auto sbyte = [&](int lo, int hi) {
    return static_cast<uint8_t>(static_cast<int8_t>(lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1))));
  };
  for (int i = 0; i < entries; ++i) {
    switch (f) {
      case Fmt::Lnotab27:  // (address increment, line increment), both unsigned
        t.push_back(static_cast<uint8_t>(rng() % 256));
        t.push_back(static_cast<uint8_t>(rng() % 256));
        break;
      case Fmt::Lnotab36:  // the line increment is signed
        t.push_back(static_cast<uint8_t>(rng() % 256));
        t.push_back(sbyte(-128, 127));
        break;
      case Fmt::Linetable310:  // (end delta in bytes, line delta; -128: no line)
        t.push_back(static_cast<uint8_t>(2 * (rng() % 128)));
        t.push_back(rng() % 8 == 0 ? 0x80 : sbyte(-127, 127));
        break;
      case Fmt::Locations311: {
        int code = static_cast<int>(rng() % 16), units = 1 + static_cast<int>(rng() % 8);
        t.push_back(loc_head(code, units));
        if (code < 10) {  // short form: one byte of column data
          t.push_back(static_cast<uint8_t>(rng() % 128));
        } else if (code <= 12) {  // one-line forms: start and end column
          t.push_back(static_cast<uint8_t>(rng() % 128));
          t.push_back(static_cast<uint8_t>(rng() % 128));
        } else if (code == 13) {  // no column: the line delta
          put_svarint(t, static_cast<int32_t>(rng() % 2001) - 1000);
        } else if (code == 14) {  // long form: line delta, end line delta, columns + 1
          put_svarint(t, static_cast<int32_t>(rng() % 200001) - 100000);
          put_varint(t, static_cast<uint32_t>(rng() % 50));
          put_varint(t, static_cast<uint32_t>(rng() % 300));
          put_varint(t, static_cast<uint32_t>(rng() % 300));
        }  // 15: no location, nothing follows
        break;
      }
    }
  }
  return t;
}

// Holds bytes at the very end of a readable page followed by an inaccessible one: a decoder
// that reads past the end faults even without a sanitizer.
class GuardedBytes {
 public:
  GuardedBytes() {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    len_ = 4 * page_;
    void* p = mmap(nullptr, len_ + page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    base_ = static_cast<uint8_t*>(p);
    REQUIRE(mprotect(base_ + len_, page_, PROT_NONE) == 0);
  }
  ~GuardedBytes() { munmap(base_, len_ + page_); }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;

  std::span<const uint8_t> place(const Bytes& b) {
    if (b.size() > len_) FAIL("a table of ", b.size(), " bytes does not fit");
    uint8_t* at = base_ + len_ - b.size();
    if (!b.empty()) std::memcpy(at, b.data(), b.size());
    return {at, b.size()};
  }

 private:
  uint8_t* base_ = nullptr;
  size_t page_ = 0, len_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Memory images: the fake memory's ranges as bytes

struct Range {
  uint64_t start = 0;
  Bytes bytes;
  uint64_t end() const { return start + bytes.size(); }
};

struct Image {
  std::vector<Range> ranges;  // sorted, disjoint
  static constexpr size_t npos = SIZE_MAX;

  size_t find(uint64_t a) const {
    auto it = std::upper_bound(ranges.begin(), ranges.end(), a, [](uint64_t x, const Range& r) { return x < r.start; });
    if (it == ranges.begin()) return npos;
    --it;
    return a < it->end() ? static_cast<size_t>(it - ranges.begin()) : npos;
  }
  uint64_t bytes() const {
    uint64_t n = 0;
    for (const auto& r : ranges) n += r.bytes.size();
    return n;
  }
};

// The readable bytes of `mem` in [lo, hi), found byte by byte.
Image capture(const Memory& mem, uint64_t lo, uint64_t hi) {
  Image img;
  for (uint64_t a = lo; a < hi; ++a) {
    uint8_t b;
    if (!mem.read(RemoteAddr(a), &b, 1)) continue;
    if (img.ranges.empty() || img.ranges.back().end() != a) img.ranges.push_back({a, {}});
    img.ranges.back().bytes.push_back(b);
  }
  return img;
}

// ---------------------------------------------------------------------------------------------
// The structures of one CPython version, built in a fake memory

struct Ver {
  int major, minor;
};
const Ver kVersions[] = {{2, 7}, {3, 6}, {3, 7}, {3, 8}, {3, 9}, {3, 10}, {3, 11}, {3, 12}, {3, 13}};

// Py_TPFLAGS_* (Include/object.h).
constexpr uint64_t kFlagInlineValues = 1ull << 2, kFlagManagedWeakref = 1ull << 3, kFlagManagedDict = 1ull << 4,
                   kFlagHeap = 1ull << 9, kFlagReady = 1ull << 12, kFlagGc = 1ull << 14, kFlagList = 1ull << 25,
                   kFlagTuple = 1ull << 26, kFlagBaseExc = 1ull << 30;
constexpr int32_t kTObjectEx = 16;  // T_OBJECT_EX (Include/structmember.h)
// _PyInterpreterFrame.owner (Include/internal/pycore_frame.h, 3.11+).
constexpr uint8_t kOwnedByThread = 0, kOwnedByGenerator = 1, kOwnedByCStack = 3;

// A member written when the structures were built: what the mutations aim at, by kind.
enum class SiteKind : uint8_t { Count, Link, Item };
struct SiteRef {
  uint32_t offset;  // in its range
  uint8_t width;    // 1, 4 or 8 bytes
  SiteKind kind;    // a number; a pointer the decoders follow as structure (or null); an object
};

struct Base {
  Ver v{};
  Layout l;
  TypeAddrs types;
  Image image;
  std::vector<std::vector<uint32_t>> links;  // per range: the ranges its words point into
  std::vector<std::vector<SiteRef>> sites;   // per range
  std::vector<uint64_t> anchors;             // objects and range starts, for pointer mutations
  // Where decoders start. Objects also grouped by type, so that each kind of object is as
  // likely a start as any other, however many of it there are.
  std::vector<RemoteAddr> objects, types_made, strs, dicts, instances, codes, tstates, iframes, gc_heads;
  std::vector<std::vector<RemoteAddr>> by_type;
  std::vector<std::pair<RemoteAddr, RemoteAddr>> split_tables;  // (shared keys, values)
  RemoteAddr active;                                            // threading._active
  std::string name_attr;                                        // the threads' name attribute
  FakeMemory mem;                                               // the image, loaded
  uint64_t mapped = 0;
};

class Builder {
 public:
  explicit Builder(Ver v)
      : v_(v), l_(layout_for(v.major, v.minor)), py_(l_), rng_(0xb0117 + 100u * v.major + v.minor) {}

  Base build();

 private:
  using Items = std::vector<std::pair<RemoteAddr, RemoteAddr>>;

  bool py2() const { return (l_.version.major == 2); }
  bool v311() const { return l_.version.at_least(3, 11); }
  bool has(F f) const { return l_.has(f); }
  int64_t off(F f) const { return l_.off(f); }
  int64_t sz(S s, int64_t fallback) const { return l_.has(s) ? l_.size(s) : fallback; }
  // Every member the builder writes is a site the mutations aim at: a count, or a pointer.
  struct Site {
    uint64_t addr;
    uint8_t width;
    bool pointer;
  };
  void site(RemoteAddr a, uint8_t width, bool pointer) { sites_.push_back({a.value(), width, pointer}); }
  void wp(RemoteAddr a, RemoteAddr v) {
    py_.ptr(a, v);
    site(a, 8, true);
  }
  void w64(RemoteAddr a, int64_t v) {
    py_.i64(a, v);
    site(a, 8, false);
  }
  void wu64(RemoteAddr a, uint64_t v) {
    py_.u64(a, v);
    site(a, 8, false);
  }
  void w32(RemoteAddr a, int32_t v) {
    py_.i32(a, v);
    site(a, 4, false);
  }
  void wu32(RemoteAddr a, uint32_t v) {
    py_.u32(a, v);
    site(a, 4, false);
  }
  void w8(RemoteAddr a, uint8_t v) {
    py_.u8(a, v);
    site(a, 1, false);
  }
  // Members this version's layout has; the others are left out.
  void ptr(RemoteAddr o, F f, RemoteAddr v) {
    if (has(f)) wp(o + off(f), v);
  }
  void i64(RemoteAddr o, F f, int64_t v) {
    if (has(f)) w64(o + off(f), v);
  }
  void i32(RemoteAddr o, F f, int32_t v) {
    if (has(f)) w32(o + off(f), v);
  }
  void u8(RemoteAddr o, F f, uint8_t v) {
    if (has(f)) w8(o + off(f), v);
  }
  // The size of an object that holds `fields`.
  int64_t extent(std::initializer_list<F> fields, int64_t at_least = 16) const {
    int64_t n = at_least;
    for (F f : fields)
      if (has(f)) n = std::max(n, off(f) + 8);
    return n;
  }
  RemoteAddr pick() { return pool_[rng_() % pool_.size()]; }

  RemoteAddr cstring(const std::string& s) {
    RemoteAddr a = py_.alloc(s.size() + 1);
    py_.put_bytes(a, s.data(), s.size());
    return a;
  }
  void shape(RemoteAddr type, int64_t basic, int64_t item, uint64_t flags, RemoteAddr base) {
    w64(py_.at(type, F::tp_basicsize), basic);
    w64(py_.at(type, F::tp_itemsize), item);
    uint64_t old = *py_.mem.read_as<uint64_t>(py_.at(type, F::tp_flags));
    wu64(py_.at(type, F::tp_flags), old | flags | kFlagReady);
    ptr(type, F::tp_base, base);
  }
  RemoteAddr static_type(const std::string& name, int64_t basic, int64_t item, uint64_t flags, RemoteAddr base) {
    RemoteAddr t = py_.type_object(name, 0);
    site(t + off(F::ob_type), 8, true);
    site(t + off(F::tp_name), 8, true);
    shape(t, basic, item, flags, base);
    types_made_.push_back(t);
    return t;
  }

  // An object of `type` in `n` bytes. A GC object has its PyGC_Head before it (and `pre` more
  // bytes before that: the 3.11+ pre-header of managed dicts) and is linked into a GC list.
  RemoteAddr obj(RemoteAddr type, int64_t n, bool gc, int64_t pre = 0) {
    int64_t head = gc ? gc_head_ : 0;
    RemoteAddr block = py_.alloc(static_cast<size_t>(pre + head + n));
    RemoteAddr o = block + pre + head;
    w64(o + off(F::ob_refcnt), 1);
    wp(o + off(F::ob_type), type);
    if (gc) track(o + (-head));
    objects_.push_back(o);
    return o;
  }
  void track(RemoteAddr node) {
    size_t g = tracked_++ % gen_heads_.size();
    RemoteAddr head = gen_heads_[g], tail = tails_[g];
    wp(node + off(F::gc_next), head);
    wp(node + off(F::gc_prev), tail);
    // 3.8+ set flag bits in the low bits of the links during a collection.
    uint64_t flag = l_.version.at_least(3, 8) && tracked_ % 7 == 0 ? 1 : 0;
    wp(tail + off(F::gc_next), RemoteAddr(node.value() | flag));
    wp(head + off(F::gc_prev), node);
    tails_[g] = node;
  }

  // Strings and bytes made by FakePython, with their members as sites.
  void str_sites(RemoteAddr o) {
    site(o + off(F::ob_type), 8, true);
    if (py2()) {
      site(o + off(F::ob_size), 8, false);
    } else {
      site(o + off(F::uni_length), 8, false);
      site(o + off(F::uni_state), 4, false);
    }
    objects_.push_back(o);
    strs_.push_back(o);
  }
  RemoteAddr str(const std::string& s) {
    RemoteAddr o = py_.str(s);
    str_sites(o);
    return o;
  }
  RemoteAddr unicode(const std::u32string& s, unsigned kind) {
    RemoteAddr o = py_.unicode(s, kind);
    str_sites(o);
    return o;
  }
  RemoteAddr bytes(const Bytes& b) {
    RemoteAddr o = py_.bytes(b);
    site(o + off(F::ob_type), 8, true);
    site(o + off(F::ob_size), 8, false);
    objects_.push_back(o);
    return o;
  }
  // An int of `sign` and magnitude `mag` (Include/cpython/longintrepr.h): 30-bit digits, the
  // count signed in ob_size up to 3.11, lv_tag = ndigits << 3 | sign bits from 3.12.
  RemoteAddr long_(int sign, uint64_t mag) {
    std::vector<uint32_t> digits;
    for (uint64_t m = mag; m; m >>= 30) digits.push_back(static_cast<uint32_t>(m & 0x3fffffff));
    int64_t n = static_cast<int64_t>(digits.size());
    RemoteAddr o = obj(py_.types.long_, off(F::long_digit) + 4 * std::max<int64_t>(n, 1), false);
    if (l_.facts().long_size == Facts::LongSize::Tag)
      wu64(o + off(F::long_tag), static_cast<uint64_t>(n) << 3 | (n == 0 ? 1 : sign < 0 ? 2 : 0));
    else
      w64(o + off(F::ob_size), sign < 0 ? -n : n);
    for (int64_t i = 0; i < n; ++i) wu32(o + off(F::long_digit) + 4 * i, digits[static_cast<size_t>(i)]);
    return o;
  }
  RemoteAddr tuple(const std::vector<RemoteAddr>& items) {
    int64_t n = static_cast<int64_t>(items.size());
    RemoteAddr o = obj(py_.types.tuple, off(F::tuple_item) + 8 * std::max<int64_t>(n, 1), true);
    w64(o + off(F::ob_size), n);
    for (int64_t i = 0; i < n; ++i) wp(o + off(F::tuple_item) + 8 * i, items[static_cast<size_t>(i)]);
    return o;
  }
  RemoteAddr list(const std::vector<RemoteAddr>& items) {
    int64_t n = static_cast<int64_t>(items.size());
    RemoteAddr o = obj(py_.types.list, sz(S::sz_PyListObject, 40), true);
    RemoteAddr arr = py_.alloc(static_cast<size_t>(8 * (n + 2)));
    for (int64_t i = 0; i < n; ++i) wp(arr + 8 * i, items[static_cast<size_t>(i)]);
    w64(o + off(F::ob_size), n);
    wp(o + off(F::list_item), arr);
    i64(o, F::list_allocated, n + 2);
    return o;
  }

  // 3.6-3.10 keys: header, dk_size indices (1, 2 or 4 bytes each), then {hash, key, value}.
  RemoteAddr keys36(const Items& entries) {
    int64_t n = static_cast<int64_t>(entries.size()), size = 8;
    while (size * 2 / 3 < n) size *= 2;
    int width = size <= 0xff ? 1 : size <= 0xffff ? 2 : 4;
    int64_t idx = off(F::dk_indices);
    RemoteAddr k = py_.alloc(static_cast<size_t>(idx + size * width + size * 2 / 3 * 24));
    i64(k, F::dk_refcnt, 1);
    i64(k, F::dk_size, size);
    i64(k, F::dk_usable, size * 2 / 3 - n);
    i64(k, F::dk_nentries, n);
    py_.put_bytes(k + idx, Bytes(static_cast<size_t>(size * width), 0xff));
    for (int64_t i = 0; i < n; ++i) {
      py_.put_bytes(k + idx + ((i * 5) % size) * width, &i, static_cast<size_t>(width));
      RemoteAddr e = k + idx + size * width + 24 * i;
      w64(e, 1000 + i);
      wp(e + 8, entries[static_cast<size_t>(i)].first);
      wp(e + 16, entries[static_cast<size_t>(i)].second);
    }
    return k;
  }
  // 3.11+ keys: header, 1 << dk_log2_index_bytes of indices, then {hash, key, value} entries
  // (kind 0, general) or {key, value} (kind 1 unicode, 2 split).
  RemoteAddr keys311(const Items& entries, int kind) {
    int64_t n = static_cast<int64_t>(entries.size());
    int log2_size = 3;
    while (((int64_t{1} << log2_size) * 2 / 3) < n) ++log2_size;
    int log2_index = log2_size + (log2_size < 8 ? 0 : log2_size < 16 ? 1 : 2);
    int64_t idx = off(F::dk_indices), esize = kind == 0 ? 24 : 16;
    int64_t usable = (int64_t{1} << log2_size) * 2 / 3;
    RemoteAddr k = py_.alloc(static_cast<size_t>(idx + (int64_t{1} << log2_index) + usable * esize));
    i64(k, F::dk_refcnt, 1);
    u8(k, F::dk_log2_size, static_cast<uint8_t>(log2_size));
    u8(k, F::dk_log2_index_bytes, static_cast<uint8_t>(log2_index));
    u8(k, F::dk_kind, static_cast<uint8_t>(kind));
    i64(k, F::dk_usable, usable - n);
    i64(k, F::dk_nentries, n);
    py_.put_bytes(k + idx, Bytes(static_cast<size_t>(1) << log2_index, 0xff));
    for (int64_t i = 0; i < n; ++i) {
      RemoteAddr e = k + idx + (int64_t{1} << log2_index) + esize * i;
      if (kind == 0) {
        w64(e, 2000 + i);
        e = e + 8;
      }
      wp(e, entries[static_cast<size_t>(i)].first);
      wp(e + 8, entries[static_cast<size_t>(i)].second);
    }
    return k;
  }
  // Fills a dict object (a dict, or a subclass of `basic` bytes) with a combined table.
  RemoteAddr dict(const Items& items, RemoteAddr type = {}, int64_t basic = 0, bool general = false) {
    RemoteAddr d = obj(type ? type : py_.types.dict, basic ? basic : sz(S::sz_PyDictObject, 48), true);
    int64_t n = static_cast<int64_t>(items.size());
    i64(d, F::dict_used, n);
    switch (l_.facts().dict) {
      case Facts::Dict::Dict27: {
        // ma_mask + 1 slots of {me_hash, me_key, me_value}; up to 8 in ma_smalltable.
        int64_t slots = 8;
        while (slots * 2 / 3 < n) slots *= 2;
        RemoteAddr table = slots == 8 && has(F::dict_smalltable) ? d + off(F::dict_smalltable)
                                                                  : py_.alloc(static_cast<size_t>(slots * 24));
        for (int64_t i = 0; i < n; ++i) {
          RemoteAddr e = table + ((i * 3) % slots) * 24;
          w64(e, 3000 + i);
          wp(e + 8, items[static_cast<size_t>(i)].first);
          wp(e + 16, items[static_cast<size_t>(i)].second);
        }
        i64(d, F::dict_fill, n);
        i64(d, F::dict_mask, slots - 1);
        ptr(d, F::dict_table, table);
        break;
      }
      case Facts::Dict::Dict36: ptr(d, F::dict_keys, keys36(items)); break;
      case Facts::Dict::Dict311: ptr(d, F::dict_keys, keys311(items, general ? 0 : 1)); break;
    }
    dicts_.push_back(d);
    return d;
  }
  // Shared keys of `names` and an instance's values array for them (3.6+). 3.13 puts
  // PyDictValues' header (capacity, size, embedded, valid) before the array.
  std::pair<RemoteAddr, RemoteAddr> split(const std::vector<RemoteAddr>& names, const std::vector<RemoteAddr>& values) {
    Items entries;
    for (RemoteAddr k : names) entries.emplace_back(k, RemoteAddr());
    RemoteAddr keys = l_.facts().dict == Facts::Dict::Dict311 ? keys311(entries, 2) : keys36(entries);
    RemoteAddr vals = py_.alloc(static_cast<size_t>(values_header() + 8 * (values.size() + 2)));
    write_values(vals, values);
    split_tables_.emplace_back(keys, vals);
    return {keys, vals};
  }
  int64_t values_header() const { return has(F::dv_values) ? off(F::dv_values) : 0; }
  void write_values(RemoteAddr vals, const std::vector<RemoteAddr>& values) {
    if (has(F::dv_capacity)) {
      u8(vals, F::dv_capacity, static_cast<uint8_t>(values.size() + 2));
      u8(vals, F::dv_size, static_cast<uint8_t>(values.size()));
      u8(vals, F::dv_valid, 1);
    }
    for (size_t i = 0; i < values.size(); ++i) wp(vals + values_header() + static_cast<int64_t>(8 * i), values[i]);
  }

  // A class statement: a PyHeapTypeObject with its name, module, MRO and __slots__ members
  // (PyMemberDefs after the type object, at Py_TYPE(type)->tp_basicsize).
  RemoteAddr heap_type(const std::string& name, int64_t basic, uint64_t flags, RemoteAddr base,
                       const std::vector<std::pair<std::string, int64_t>>& slots = {}) {
    int64_t md = sz(S::sz_PyMemberDef, 40), heap = sz(S::sz_PyHeapTypeObject, 900);
    RemoteAddr t = obj(py_.types.type, heap + md * static_cast<int64_t>(slots.size()), true);
    wp(t + off(F::tp_name), cstring(name));
    w64(t + off(F::tp_basicsize), basic);
    wu64(t + off(F::tp_flags), flags | kFlagHeap | kFlagReady);
    ptr(t, F::tp_base, base);
    ptr(t, F::ht_name, str(name));
    ptr(t, F::ht_qualname, str(name));
    ptr(t, F::tp_dict, dict({{str("__module__"), str("app")}}));
    ptr(t, F::tp_mro, tuple({t, base, py_.types.object}));
    ptr(t, F::tp_bases, tuple({base}));
    w64(t + off(F::ob_size), static_cast<int64_t>(slots.size()));
    for (size_t i = 0; i < slots.size(); ++i) {
      RemoteAddr m = t + heap + md * static_cast<int64_t>(i);
      ptr(m, F::mdef_name, cstring(slots[i].first));
      i32(m, F::mdef_type, kTObjectEx);
      i64(m, F::mdef_offset, slots[i].second);
    }
    types_made_.push_back(t);
    return t;
  }

  RemoteAddr code(const std::string& name, int units) {
    int64_t size = sz(S::sz_PyCodeObject, 200) + (v311() ? 2 * units + 16 : 0);
    RemoteAddr co = obj(py_.types.code, size, false);
    i32(co, F::co_firstlineno, 10 + static_cast<int32_t>(rng_() % 500));
    ptr(co, F::co_name, str(name));
    ptr(co, F::co_qualname, str("App." + name));
    ptr(co, F::co_filename, str("/srv/app/" + name + ".py"));
    ptr(co, l_.facts().lines == Facts::LineTable::Lnotab ? F::co_lnotab : F::co_linetable,
        bytes(valid_table(fmt_of(l_), rng_, 2 + static_cast<int>(rng_() % 14))));
    ptr(co, F::co_consts, tuple({pick(), pick(), py_.types.none}));
    ptr(co, F::co_names, tuple({str("x")}));
    ptr(co, F::co_varnames, tuple({str("a"), str("b")}));
    ptr(co, F::co_cellvars, tuple({}));
    ptr(co, F::co_localsplusnames, tuple({str("a"), str("b")}));
    ptr(co, F::co_localspluskinds, bytes({0x20, 0x20}));
    i32(co, F::co_nlocals, 2);
    i32(co, F::co_nlocalsplus, 2);
    i32(co, F::co_stacksize, 2);
    i32(co, F::co_firsttraceable, static_cast<int32_t>(rng_() % 2));
    if (v311())
      w64(co + off(F::ob_size), units);
    else
      ptr(co, F::co_code, bytes(Bytes(static_cast<size_t>(2 * units), 0x64)));
    codes_.push_back(co);
    return co;
  }
  // <=3.10: a PyFrameObject at code unit `unit`, its two locals and one value on its stack.
  RemoteAddr frame_object(RemoteAddr co, RemoteAddr back, int unit) {
    RemoteAddr f = obj(py_.types.frame, sz(S::sz_PyFrameObject, 400) + 8 * 4, true);
    ptr(f, F::fo_back, back);
    ptr(f, F::fo_code, co);
    // f_lasti: a byte offset up to 3.9, a code-unit index on 3.10.
    i32(f, F::fo_lasti, l_.facts().lasti_in_code_units ? unit : 2 * unit);
    ptr(f, F::fo_globals, globals_);
    ptr(f, F::fo_builtins, builtins_);
    RemoteAddr plus = f + off(F::fo_localsplus);
    wp(plus, pick());
    wp(plus + 8, pick());
    wp(plus + 16, pick());
    ptr(f, F::fo_valuestack, plus + 16);
    if (l_.version.is(3, 10))
      i32(f, F::fo_stacktop, 1);  // f_stackdepth
    else
      ptr(f, F::fo_stacktop, plus + 24);
    return f;
  }
  // 3.11+: a _PyInterpreterFrame's members and three live slots.
  void fill_iframe(RemoteAddr f, RemoteAddr co, RemoteAddr prev, int unit, uint8_t owner) {
    ptr(f, F::if_code, co);
    ptr(f, F::if_previous, prev);
    ptr(f, F::if_instr, co + off(F::co_code_adaptive) + 2 * unit);
    u8(f, F::if_owner, owner);
    ptr(f, F::if_func, func_);
    ptr(f, F::if_globals, globals_);
    ptr(f, F::if_builtins, builtins_);
    for (int i = 0; i < 3; ++i) wp(f + off(F::if_localsplus) + 8 * i, pick());
    i32(f, F::if_stacktop, 3);
    u8(f, F::if_is_entry, prev.null() ? 1 : 0);
  }
  int64_t iframe_size() const { return sz(S::sz_PyInterpreterFrame, 80) + 8 * 4; }
  RemoteAddr iframe(RemoteAddr co, RemoteAddr prev, int unit, uint8_t owner = kOwnedByThread) {
    RemoteAddr f = py_.alloc(static_cast<size_t>(iframe_size()));
    fill_iframe(f, co, prev, unit, owner);
    iframes_.push_back(f);
    return f;
  }
  // A chain of `n` frames, innermost first; returns the innermost.
  RemoteAddr frames(int n, bool shim) {
    RemoteAddr below;
    for (int i = 0; i < n; ++i) {
      RemoteAddr co = code("f" + std::to_string(frames_made_++), 8);
      int unit = static_cast<int>(rng_() % 8);
      if (!v311()) {
        below = frame_object(co, below, unit);
      } else {
        below = iframe(co, below, unit, shim && i == 1 ? kOwnedByCStack : kOwnedByThread);
      }
    }
    return below;
  }
  RemoteAddr tstate(RemoteAddr next, uint64_t ident, RemoteAddr top) {
    RemoteAddr ts = py_.alloc(static_cast<size_t>(sz(S::sz_PyThreadState, 400)));
    ptr(ts, F::ts_next, next);
    i64(ts, F::ts_thread_id, static_cast<int64_t>(ident));
    i32(ts, F::ts_native_thread_id, static_cast<int32_t>(4000 + tstates_.size()));
    ptr(ts, F::ts_dict, dict({{str("tsd"), pick()}}));
    switch (l_.facts().frames) {
      case Facts::Frames::FrameObjects: ptr(ts, F::ts_frame, top); break;
      case Facts::Frames::InterpreterFramesViaCFrame: {
        RemoteAddr cframe = py_.alloc(64);
        ptr(ts, F::ts_cframe, cframe);
        ptr(cframe, F::cframe_current_frame, top);
        break;
      }
      case Facts::Frames::InterpreterFrames: ptr(ts, F::ts_current_frame, top); break;
    }
    tstates_.push_back(ts);
    return ts;
  }

  // Instances of a class whose attributes (`attrs` on `names`) live where this version keeps
  // them: a __dict__ at tp_dictoffset (<=3.10); 3.11+ a managed dict or values without a dict
  // (3.11: a values pointer at -4 words; 3.12: a tagged one at -3; 3.13: inline after the object).
  std::vector<RemoteAddr> instances(const std::string& cls_name, const std::vector<RemoteAddr>& names,
                                    const std::vector<RemoteAddr>& values) {
    Items items;
    for (size_t i = 0; i < names.size(); ++i) items.emplace_back(names[i], values[i]);
    using ID = Facts::InstanceDict;
    ID model = l_.facts().instance_dict;
    std::vector<RemoteAddr> out;
    if (model == ID::DictOffset) {
      RemoteAddr cls = heap_type(cls_name, 32, kFlagGc, py_.types.object);
      w64(cls + off(F::tp_dictoffset), 16);
      w64(cls + off(F::tp_weaklistoffset), 24);
      for (int k = 0; k < 2; ++k) {
        RemoteAddr o = obj(cls, 32, true);
        wp(o + 16, dict(items));
        out.push_back(o);
      }
    } else {
      uint64_t flags = kFlagGc | kFlagManagedDict | (model != ID::PreHeader311 ? kFlagManagedWeakref : 0) |
                       (model == ID::Inline313 ? kFlagInlineValues : 0);
      RemoteAddr cls = heap_type(cls_name, 16, flags, py_.types.object);
      auto [keys, vals] = split(names, values);
      ptr(cls, F::ht_cached_keys, keys);
      int64_t inline_bytes = model == ID::Inline313 ? values_header() + 8 * static_cast<int64_t>(names.size() + 2) : 0;
      // Without a dict object.
      RemoteAddr o = obj(cls, 16 + inline_bytes, true, 16);
      if (model == ID::PreHeader311)
        wp(o + (-4 * 8), vals);
      else if (model == ID::Tagged312)
        wp(o + (-3 * 8), RemoteAddr(vals.value() - 1));  // the values pointer minus one: tagged
      else
        write_values(o + 16, values);
      out.push_back(o);
      // With one.
      RemoteAddr d = obj(cls, 16 + inline_bytes, true, 16);
      wp(d + (-3 * 8), dict(items));
      out.push_back(d);
    }
    for (RemoteAddr o : out) instances_.push_back(o);
    return out;
  }

  // Objects of `type` whose pointer members `fields` refer to objects of the pool.
  RemoteAddr fielded(RemoteAddr type, std::initializer_list<F> fields, bool gc) {
    RemoteAddr o = obj(type, extent(fields, 24), gc);
    for (F f : fields) ptr(o, f, pick());
    return o;
  }

  Ver v_;
  Layout l_;
  FakePython py_;
  std::mt19937_64 rng_;
  int64_t gc_head_ = 16;
  std::vector<RemoteAddr> gen_heads_, tails_;
  size_t tracked_ = 0;
  int frames_made_ = 0;
  RemoteAddr globals_, builtins_, func_;
  std::vector<RemoteAddr> pool_, objects_, types_made_, strs_, dicts_, instances_, codes_, tstates_, iframes_;
  std::vector<std::pair<RemoteAddr, RemoteAddr>> split_tables_;
  std::vector<Site> sites_;
};

Base Builder::build() {
  auto& t = py_.types;
  const bool p2 = py2();
  gc_head_ = sz(S::sz_PyGC_Head, 16);

  // The GC lists: three generations and, from 3.7, the permanent one; each head links to itself.
  int64_t gen_size = sz(S::sz_gc_generation, 24);
  int gens = l_.version.at_least(3, 7) ? 4 : 3;
  RemoteAddr gen_array = py_.alloc(static_cast<size_t>(gen_size * gens));
  for (int g = 0; g < gens; ++g) {
    RemoteAddr head = gen_array + g * gen_size + off(F::gcgen_head);
    wp(head + off(F::gc_next), head);
    wp(head + off(F::gc_prev), head);
    gen_heads_.push_back(head);
    tails_.push_back(head);
  }

  // Type objects with the sizes and flags of the real ones, from the layout where it has them.
  int64_t heap_type_size = sz(S::sz_PyHeapTypeObject, 900);
  t.object = static_type("object", 16, 0, 0, {});
  shape(t.type, heap_type_size, sz(S::sz_PyMemberDef, 40), kFlagGc, t.object);
  shape(t.code, sz(S::sz_PyCodeObject, 200), v311() ? 2 : 0, 0, t.object);
  shape(t.unicode, sz(S::sz_PyUnicodeObject, 80), 0, 0, t.object);
  if (p2) {
    shape(t.str27, off(F::str_sval) + 1, 1, 0, t.object);
    shape(t.int27, 24, 0, 0, t.object);
  } else {
    shape(t.bytes, off(F::bytes_sval) + 1, 1, 0, t.object);
  }
  shape(t.long_, off(F::long_digit), 4, 0, t.object);
  shape(t.bool_, p2 ? 24 : off(F::long_digit), p2 ? 0 : 4, 0, p2 ? t.int27 : t.long_);
  shape(t.dict, sz(S::sz_PyDictObject, 48), 0, kFlagGc, t.object);
  shape(t.float_, 24, 0, 0, t.object);
  for (RemoteAddr a : {t.type, t.code, t.unicode, t.str27, t.int27, t.bytes, t.long_, t.bool_, t.dict, t.float_})
    if (a) types_made_.push_back(a);
  t.none_type = static_type("NoneType", 16, 0, 0, t.object);
  t.none = obj(t.none_type, 16, false);
  t.tuple = static_type("tuple", off(F::tuple_item), 8, kFlagGc | kFlagTuple, t.object);
  t.list = static_type("list", sz(S::sz_PyListObject, 40), 0, kFlagGc | kFlagList, t.object);
  t.set = static_type("set", sz(S::sz_PySetObject, 200), 0, kFlagGc, t.object);
  t.frozenset = static_type("frozenset", sz(S::sz_PySetObject, 200), 0, kFlagGc, t.object);
  t.bytearray = static_type("bytearray", sz(S::sz_PyByteArrayObject, 56), 0, 0, t.object);
  t.frame = static_type("frame", sz(S::sz_PyFrameObject, 400), 8, kFlagGc, t.object);
  t.function = static_type("function", sz(S::sz_PyFunctionObject, 144), 0, kFlagGc, t.object);
  t.gen = static_type("generator", sz(S::sz_PyGenObject, 96), v311() ? 8 : 0, kFlagGc, t.object);
  t.cell = static_type("cell", extent({F::cell_ref}), 0, kFlagGc, t.object);
  t.module = static_type("module", sz(S::sz_PyModuleObject, 56), 0, kFlagGc, t.object);
  t.method = static_type("method", extent({F::meth_func, F::meth_self, F::meth_class}), 0, kFlagGc, t.object);
  t.cfunction = static_type("builtin_function_or_method", extent({F::cfunc_ml, F::cfunc_self, F::cfunc_module}), 0,
                            kFlagGc, t.object);
  t.property = static_type("property", extent({F::prop_get, F::prop_set, F::prop_del, F::prop_doc, F::prop_name}), 0,
                           kFlagGc, t.object);
  t.weakref = static_type("weakref", extent({F::wr_object, F::wr_callback}), 0, kFlagGc, t.object);
  t.slice = static_type("slice", extent({F::slice_start, F::slice_stop, F::slice_step}), 0, kFlagGc, t.object);
  t.range =
      static_type("range", extent({F::range_start, F::range_stop, F::range_step, F::range_length}), 0, 0, t.object);
  t.traceback = static_type("traceback", extent({F::tb_next, F::tb_frame}), 0, kFlagGc, t.object);
  t.super = static_type("super", extent({F::super_type, F::super_obj, F::super_obj_type}), 0, kFlagGc, t.object);
  t.mappingproxy = static_type("mappingproxy", extent({F::mappingproxy_mapping}), 0, kFlagGc, t.object);
  t.classmethod = static_type("classmethod", extent({F::cm_callable, F::cm_dict}), 0, kFlagGc, t.object);
  t.staticmethod = static_type("staticmethod", extent({F::sm_callable, F::sm_dict}), 0, kFlagGc, t.object);
  t.method_descr = static_type("method_descriptor", extent({F::descr_type, F::descr_name, F::descr_qualname}), 0,
                               kFlagGc, t.object);
  t.method_wrapper = static_type("method-wrapper", extent({F::wrapper_descr, F::wrapper_self}), 0, kFlagGc, t.object);
  if (p2) {
    t.instance27 = static_type("instance", extent({F::inst_class, F::inst_dict}), 0, kFlagGc, t.object);
    t.class27 = static_type("classobj", extent({F::class_bases, F::class_dict, F::class_name}), 0, kFlagGc, t.object);
  }
  RemoteAddr value_error = static_type(
      "ValueError", extent({F::exc_dict, F::exc_args, F::exc_notes, F::exc_traceback, F::exc_context, F::exc_cause}),
      0, kFlagGc | kFlagBaseExc, t.object);
  // C types of extension modules, known by name.
  int64_t block_size = sz(S::sz_block, p2 ? 512 : 528);
  RemoteAddr deque_type = static_type("collections.deque", sz(S::sz_dequeobject, p2 ? 80 : 216), 0, kFlagGc, t.object);
  RemoteAddr defdict_type =
      static_type("collections.defaultdict", extent({F::defdict_factory}, 56), 0, kFlagGc, t.dict);
  int64_t odict_size =
      extent({F::odict_first, F::odict_fast_nodes_size, F::odict_inst_dict, F::odict_weakreflist}, 112);
  RemoteAddr odict_type = p2 ? RemoteAddr() : static_type("collections.OrderedDict", odict_size, 0, kFlagGc, t.dict);
  RemoteAddr array_type = static_type("array.array", 64, 0, kFlagGc, t.object);
  RemoteAddr buffered_type = static_type(
      "_io.BufferedReader", extent({F::buffered_buffer, F::buffered_buffer_size}, 64), 0, kFlagGc, t.object);
  RemoteAddr count_type = static_type("itertools.count", 48, 0, kFlagGc, t.object);  // modelled by no rule

  // Leaf objects: strings in every representation, numbers, bytes.
  for (const char* s : {"x", "_name", "__module__", "app", "main", "worker", "/srv/app/main.py"})
    pool_.push_back(str(s));
  pool_.push_back(str(std::string(300, 'q')));
  for (auto [sign, mag] : std::initializer_list<std::pair<int, uint64_t>>{
           {1, 0}, {1, 7}, {-1, 42}, {1, 1ull << 30}, {-1, 123456789012345ull}, {1, ~0ull >> 1}})
    pool_.push_back(long_(sign, mag));
  pool_.push_back(bytes({1, 2, 3, 0, 255}));
  RemoteAddr f = obj(t.float_, 24, false);
  py_.put_bytes(f + off(F::float_fval), "\x1f\x85\xebQ\xb8\x1e\t@", 8);
  pool_.push_back(f);
  if (p2) {
    RemoteAddr i = obj(t.int27, 24, false);
    w64(i + off(F::int_ival), -99);
    pool_.push_back(i);
    // unicode: length and a separate buffer of Py_UNICODE (4 bytes in this build).
    RemoteAddr u = obj(t.unicode, sz(S::sz_PyUnicodeObject, 48), false);
    RemoteAddr buf = py_.alloc(16);
    const uint32_t chars[] = {'n', 0xe4, 0x1f600};
    py_.put_bytes(buf, chars, sizeof chars);
    w64(u + off(F::uni27_length), 3);
    wp(u + off(F::uni27_str), buf);
    pool_.push_back(u);
    strs_.push_back(u);
  } else {
    for (auto [text, kind] : std::initializer_list<std::pair<std::u32string, unsigned>>{
             {U"caf\u00e9", 1}, {U"\u20ac 20 \u03c9", 2}, {U"\U0001F600!", 4}}) {
      pool_.push_back(unicode(text, kind));
    }
    // A legacy string: PyUnicodeObject with its characters in a separate buffer, and a UTF-8 copy.
    RemoteAddr u = obj(t.unicode, sz(S::sz_PyUnicodeObject, 80), false);
    RemoteAddr data = py_.alloc(16);
    const uint16_t chars[] = {0x3a9, 'm', 'e', 'g', 'a', 0};
    py_.put_bytes(data, chars, sizeof chars);
    w64(u + off(F::uni_length), 5);
    wu32(u + off(F::uni_state), py_.unicode_state(2, false, false));
    wp(u + off(F::uni_data), data);
    RemoteAddr utf8 = py_.alloc(8);
    py_.put_bytes(utf8, "\xce\xa9mega", 6);
    ptr(u, F::uni_utf8, utf8);
    i64(u, F::uni_utf8_length, 6);
    strs_.push_back(u);
    pool_.push_back(u);
  }
  pool_.push_back(t.none);

  // Containers.
  std::vector<RemoteAddr> some;
  for (int i = 0; i < 5; ++i) some.push_back(pick());
  pool_.push_back(tuple(some));
  RemoteAddr lst = list(some);
  RemoteAddr empty_tuple = tuple({});
  Items items;
  for (int i = 0; i < 4; ++i) items.emplace_back(str("k" + std::to_string(i)), pick());
  RemoteAddr plain = dict(items);
  Items many;
  for (int i = 0; i < 40; ++i) many.emplace_back(str("n" + std::to_string(i)), pick());
  dict(many);
  dict({{long_(1, 5), pick()}, {str("s"), pick()}}, {}, 0, true);  // keys of any type: general kind
  builtins_ = dict({{str("len"), pick()}});
  // A set in its small table and one with a table of its own: {hash, key} entries.
  int64_t entry = sz(S::sz_setentry, 16), key_off = has(F::setentry_key) ? off(F::setentry_key) : 0;
  for (int64_t slots : {int64_t{8}, int64_t{32}}) {
    RemoteAddr s = obj(slots == 8 ? t.set : t.frozenset, sz(S::sz_PySetObject, 200), true);
    RemoteAddr table = slots == 8 && has(F::set_smalltable) ? s + off(F::set_smalltable)
                                                           : py_.alloc(static_cast<size_t>(slots * entry));
    for (int64_t i = 0; i < slots; i += 3) wp(table + i * entry + key_off, pick());
    i64(s, F::set_mask, slots - 1);
    i64(s, F::set_used, (slots + 2) / 3);
    i64(s, F::set_fill, (slots + 2) / 3);
    ptr(s, F::set_table, table);
  }
  RemoteAddr ba = obj(t.bytearray, sz(S::sz_PyByteArrayObject, 56), false);
  RemoteAddr ba_bytes = py_.alloc(16);
  i64(ba, F::bytearray_alloc, 16);
  ptr(ba, F::bytearray_bytes, ba_bytes);
  ptr(ba, F::bytearray_start, ba_bytes);
  w64(ba + off(F::ob_size), 3);

  // Functions, modules, code, frames, generators.
  globals_ = dict({{str("__name__"), str("app")}, {str("REGISTRY"), lst}});
  RemoteAddr mod = obj(t.module, sz(S::sz_PyModuleObject, 56), true);
  ptr(mod, F::md_dict, globals_);
  ptr(mod, F::md_name, str("app"));
  RemoteAddr cell = obj(t.cell, extent({F::cell_ref}), true);
  ptr(cell, F::cell_ref, pick());
  func_ = obj(t.function, sz(S::sz_PyFunctionObject, 144), true);
  ptr(func_, F::func_code, code("handler", 12));
  ptr(func_, F::func_globals, globals_);
  ptr(func_, F::func_builtins, builtins_);
  ptr(func_, F::func_name, str("handler"));
  ptr(func_, F::func_qualname, str("App.handler"));
  ptr(func_, F::func_module, str("app"));
  ptr(func_, F::func_defaults, tuple({pick()}));
  ptr(func_, F::func_closure, tuple({cell}));
  ptr(func_, F::func_dict, dict({{str("attr"), pick()}}));
  fielded(t.method, {F::meth_func, F::meth_self, F::meth_class}, true);
  fielded(t.cfunction, {F::cfunc_self, F::cfunc_module}, true);
  fielded(t.property, {F::prop_get, F::prop_set, F::prop_del, F::prop_doc, F::prop_name}, true);
  fielded(t.weakref, {F::wr_object, F::wr_callback}, true);
  fielded(t.slice, {F::slice_start, F::slice_stop, F::slice_step}, true);
  if (!p2) fielded(t.range, {F::range_start, F::range_stop, F::range_step, F::range_length}, false);
  fielded(t.super, {F::super_type, F::super_obj, F::super_obj_type}, true);
  fielded(t.mappingproxy, {F::mappingproxy_mapping}, true);
  fielded(t.classmethod, {F::cm_callable, F::cm_dict}, true);
  fielded(t.staticmethod, {F::sm_callable, F::sm_dict}, true);
  fielded(t.method_descr, {F::descr_type, F::descr_name, F::descr_qualname}, true);
  fielded(t.method_wrapper, {F::wrapper_descr, F::wrapper_self}, true);

  RemoteAddr frame_obj;
  if (!v311()) {
    frame_obj = frame_object(code("done", 4), RemoteAddr(), 1);
    RemoteAddr g = obj(t.gen, sz(S::sz_PyGenObject, 96), true);
    RemoteAddr gf = frame_object(code("gen", 6), RemoteAddr(), 2);
    ptr(gf, F::fo_gen, g);
    ptr(g, F::gen_frame, gf);
    ptr(g, F::gen_code, codes_.back());
    ptr(g, F::gen_name, str("gen"));
    ptr(g, F::gen_qualname, str("App.gen"));
  } else {
    // A frame object that owns its _PyInterpreterFrame (its function has returned).
    frame_obj = obj(t.frame, sz(S::sz_PyFrameObject, 72) + iframe_size(), true);
    RemoteAddr data = frame_obj + off(F::fo_frame_data);
    fill_iframe(data, code("done", 4), RemoteAddr(), 1, kOwnedByThread);
    ptr(frame_obj, F::fo_frame, data);
    // A suspended generator (gi_frame_state -1) with its frame inside the object.
    RemoteAddr g = obj(t.gen, sz(S::sz_PyGenObject, 96) + iframe_size(), true);
    RemoteAddr gco = code("gen", 6);
    fill_iframe(g + off(F::gen_iframe), gco, RemoteAddr(), 2, kOwnedByGenerator);
    w8(g + off(F::gen_frame_state), static_cast<uint8_t>(-1));
    ptr(g, F::gen_code, gco);
    ptr(g, F::gen_name, str("gen"));
    ptr(g, F::gen_qualname, str("App.gen"));
  }
  RemoteAddr tb = fielded(t.traceback, {F::tb_next}, true);
  ptr(tb, F::tb_frame, frame_obj);
  RemoteAddr exc = fielded(value_error, {F::exc_context, F::exc_cause, F::exc_notes}, true);
  ptr(exc, F::exc_args, tuple({pick()}));
  ptr(exc, F::exc_traceback, tb);
  ptr(exc, F::exc_dict, dict({{str("detail"), pick()}}));

  // Subclasses of dict known by name, a deque across two blocks, an array, a buffered reader and
  // a GC type no rule models (its words are scanned).
  RemoteAddr dd = dict(items, defdict_type, extent({F::defdict_factory}, 56));
  ptr(dd, F::defdict_factory, t.list);
  if (odict_type) {
    RemoteAddr od = dict(items, odict_type, odict_size);
    ptr(od, F::odict_first, py_.alloc(32));
    i64(od, F::odict_fast_nodes_size, 8);
  }
  {
    // 2.7's _collections is an extension: its members are at the fixed offsets the decoders use.
    RemoteAddr dq = obj(deque_type, sz(S::sz_dequeobject, p2 ? 80 : 216), true);
    int64_t per_block = (block_size - 16) / 8, data_off = has(F::block_data) ? off(F::block_data) : 8;
    int64_t right_off = has(F::block_rightlink) ? off(F::block_rightlink) : 8 + 8 * per_block;
    RemoteAddr b1 = py_.alloc(static_cast<size_t>(block_size)), b2 = py_.alloc(static_cast<size_t>(block_size));
    for (int64_t i = 0; i < per_block; ++i) {
      wp(b1 + data_off + 8 * i, pick());
      wp(b2 + data_off + 8 * i, pick());
    }
    wp(b1 + right_off, b2);
    wp(b2 + right_off, RemoteAddr());
    ptr(b2, F::block_leftlink, b1);
    int64_t left = per_block / 2, len = per_block;
    wp(dq + (has(F::deque_leftblock) ? off(F::deque_leftblock) : 16), b1);
    ptr(dq, F::deque_rightblock, b2);
    w64(dq + (has(F::deque_leftindex) ? off(F::deque_leftindex) : 32), left);
    i64(dq, F::deque_rightindex, left + len - per_block - 1);
    w64(dq + (p2 ? 48 : off(F::ob_size)), len);
  }
  {
    // arraymodule: ob_item at 24, allocated at 32, ob_descr at 40; arraydescr.itemsize at 4.
    RemoteAddr arr = obj(array_type, 64, true);
    RemoteAddr descr = py_.alloc(32);
    w32(descr + 4, 8);
    wp(arr + 24, py_.alloc(32));
    w64(arr + 32, 4);
    wp(arr + 40, descr);
    w64(arr + off(F::ob_size), 3);
  }
  if (has(F::buffered_buffer)) {
    RemoteAddr br = obj(buffered_type, extent({F::buffered_buffer, F::buffered_buffer_size}, 64), true);
    ptr(br, F::buffered_buffer, py_.alloc(64));
    i64(br, F::buffered_buffer_size, 64);
  }
  {
    RemoteAddr c = obj(count_type, 48, true);
    for (int64_t w = 16; w < 48; w += 8) wp(c + w, pick());
  }

  // Classes and their instances.
  if (l_.facts().instance_dict == Facts::InstanceDict::DictOffset) {
    // class IntSub(int): var-sized, so its instances keep their __dict__ after the digits
    // (tp_dictoffset -8, counted from the end of the items).
    RemoteAddr intsub = heap_type("IntSub", off(F::long_digit) + 8, kFlagGc, t.long_);
    w64(intsub + off(F::tp_itemsize), 4);
    w64(intsub + off(F::tp_dictoffset), -8);
    RemoteAddr o = obj(intsub, off(F::long_digit) + 24, true);
    w64(o + off(F::ob_size), 1);
    wu32(o + off(F::long_digit), 12345);
    wp(o + (((off(F::long_digit) + 8 + 4 + 7) & ~int64_t{7}) - 8), dict({{str("extra"), pick()}}));
    instances_.push_back(o);
  }
  RemoteAddr slotted = heap_type("Slotted", 32, kFlagGc, t.object, {{"a", 16}, {"b", 24}});
  RemoteAddr so = obj(slotted, 32, true);
  wp(so + 16, pick());
  wp(so + 24, pick());
  instances_.push_back(so);
  const std::string name_attr = p2 ? "_Thread__name" : "_name";
  std::vector<RemoteAddr> names = {str(name_attr), str("x")};
  auto app = instances("App", names, {str("app-instance"), pick()});
  auto threads = instances("Thread", names, {str("MainThread"), pick()});
  if (!p2) {
    // A str subclass instance: a legacy string of sizeof(PyUnicodeObject) and its data.
    RemoteAddr sub = heap_type("StrSub", sz(S::sz_PyUnicodeObject, 80), kFlagGc | (1ull << 28), t.unicode);
    RemoteAddr s = obj(sub, sz(S::sz_PyUnicodeObject, 80), true);
    RemoteAddr data = py_.alloc(8);
    py_.put_bytes(data, "ab", 3);
    w64(s + off(F::uni_length), 2);
    wu32(s + off(F::uni_state), py_.unicode_state(1, false, true));
    wp(s + off(F::uni_data), data);
    strs_.push_back(s);
  } else {
    RemoteAddr cls = obj(t.class27, extent({F::class_bases, F::class_dict, F::class_name}), true);
    ptr(cls, F::class_bases, empty_tuple);
    ptr(cls, F::class_dict, dict({{str("__module__"), str("app")}}));
    ptr(cls, F::class_name, str("Old"));
    RemoteAddr inst = obj(t.instance27, extent({F::inst_class, F::inst_dict}), true);
    ptr(inst, F::inst_class, cls);
    ptr(inst, F::inst_dict, dict({{names[0], str("old")}, {names[1], pick()}}));
    instances_.push_back(inst);
  }
  (void)app;

  // Threads: the main one four frames deep (3.12+: a C-stack shim among them), a second one two
  // deep, an idle one; threading._active maps their idents to Thread instances.
  RemoteAddr t3 = tstate(RemoteAddr(), 0x7f0000003000, RemoteAddr());
  RemoteAddr t2 = tstate(t3, 0x7f0000002000, frames(2, false));
  tstate(t2, 0x7f0000001000, frames(4, l_.facts().first_shim_owner >= 0));
  RemoteAddr active = dict({{long_(1, 0x7f0000001000), threads[0]}, {long_(1, 0x7f0000002000), threads[1]}});

  // The image, and the pointers between its ranges.
  Base b;
  b.v = v_;
  b.l = l_;
  b.types = py_.types;
  b.image = capture(py_.mem, 0x100000, py_.alloc(0).value());
  const Image& img = b.image;
  for (const auto& r : img.ranges) b.mem.add(RemoteAddr(r.start), r.bytes);
  b.mapped = img.bytes();
  b.links.resize(img.ranges.size());
  for (size_t r = 0; r < img.ranges.size(); ++r) {
    const Bytes& by = img.ranges[r].bytes;
    for (size_t w = 0; w + 8 <= by.size(); w += 8) {
      uint64_t p;
      std::memcpy(&p, by.data() + w, 8);
      size_t to = img.find(p & ~uint64_t{7});
      if (to != Image::npos && to != r &&
          std::find(b.links[r].begin(), b.links[r].end(), static_cast<uint32_t>(to)) == b.links[r].end())
        b.links[r].push_back(static_cast<uint32_t>(to));
    }
    b.anchors.push_back(img.ranges[r].start);
  }
  for (RemoteAddr o : objects_) b.anchors.push_back(o.value());
  std::unordered_set<uint64_t> object_starts;
  for (RemoteAddr o : objects_) object_starts.insert(o.value());
  for (RemoteAddr o : types_made_) object_starts.insert(o.value());
  b.sites.resize(img.ranges.size());
  for (const Site& st : sites_) {
    size_t r = img.find(st.addr);
    if (r == Image::npos || st.addr + st.width > img.ranges[r].end()) continue;
    SiteKind kind = SiteKind::Count;
    if (st.pointer) {
      uint64_t v = 0;
      std::memcpy(&v, img.ranges[r].bytes.data() + (st.addr - img.ranges[r].start), 8);
      kind = v && object_starts.count(v & ~uint64_t{7}) ? SiteKind::Item : SiteKind::Link;
    }
    b.sites[r].push_back({static_cast<uint32_t>(st.addr - img.ranges[r].start), st.width, kind});
  }
  std::map<uint64_t, std::vector<RemoteAddr>> typed;
  for (RemoteAddr o : objects_)
    if (auto ty = py_.mem.read_ptr(o + off(F::ob_type))) typed[ty->value()].push_back(o);
  for (auto& [type, objs] : typed) b.by_type.push_back(std::move(objs));
  b.objects = objects_;
  b.types_made = types_made_;
  b.strs = strs_;
  b.dicts = dicts_;
  b.instances = instances_;
  b.codes = codes_;
  b.tstates = tstates_;
  b.iframes = iframes_;
  b.gc_heads = gen_heads_;
  b.split_tables = split_tables_;
  b.active = active;
  b.name_attr = name_attr;
  (void)plain;
  return b;
}

std::vector<Base>& bases() {
  static std::vector<Base> all = [] {
    std::vector<Base> out;
    for (const Ver& v : kVersions) out.push_back(Builder(v).build());
    return out;
  }();
  return all;
}

// ---------------------------------------------------------------------------------------------
// Mutations

template <class T>
const T& one_of(std::mt19937_64& rng, const std::vector<T>& v) {
  return v[rng() % v.size()];
}

// A mutated copy of a base's memory: the ranges it changes are replaced in the base's fake memory
// while it lives, and put back after. Most mutations go where a decoder started at `target` reads
// (its range, then the ranges it points to, two links deep), and most of those to the members the
// structures were built with: counts made huge, negative or off by one, links made to loop back to
// their own structure or to the start, pointers moved to other objects.
class Mutation {
 public:
  Mutation(Base& base, std::mt19937_64& rng, RemoteAddr target);
  ~Mutation() {
    for (auto& [ri, r] : touched_) base_.mem.add(RemoteAddr(r.start), base_.image.ranges[ri].bytes);
  }
  Mutation(const Mutation&) = delete;
  Mutation& operator=(const Mutation&) = delete;

  const Memory& mem() const { return base_.mem; }
  uint64_t mapped() const { return mapped_; }

 private:
  Range& touch(size_t ri) {
    auto it = touched_.find(ri);
    if (it == touched_.end()) it = touched_.emplace(ri, base_.image.ranges[ri]).first;
    return it->second;
  }

  Base& base_;
  std::map<size_t, Range> touched_;
  uint64_t mapped_ = 0;
};

Mutation::Mutation(Base& base, std::mt19937_64& rng, RemoteAddr target) : base_(base) {
  const Image& img = base.image;
  const auto& ranges = img.ranges;
  std::vector<size_t> focus;
  size_t near = 0;  // focus[0, near): the target's range and those it points to directly
  if (size_t r = img.find(target.value()); r != Image::npos) {
    focus.push_back(r);
    for (size_t depth = 0, from = 0; depth < 2; ++depth) {
      size_t to = focus.size();
      for (size_t i = from; i < to && focus.size() < 64; ++i)
        for (uint32_t n : base.links[focus[i]])
          if (std::find(focus.begin(), focus.end(), n) == focus.end()) focus.push_back(n);
      if (depth == 0) near = focus.size();
      from = to;
    }
  }
  auto pick_range = [&]() -> size_t {
    uint64_t p = rng() % 8;
    if (focus.empty() || p == 0) return rng() % ranges.size();
    if (p < 4) return focus[0];
    if (p < 7 || near == focus.size()) return focus[rng() % near];
    return focus[near + rng() % (focus.size() - near)];
  };
  auto randomize = [&](Range& r) {
    for (auto& byte : r.bytes) byte = static_cast<uint8_t>(rng());
  };

  uint64_t mode = rng() % 64;
  if (mode == 0) {
    for (size_t i = 0; i < ranges.size(); ++i) randomize(touch(i));  // pure random bytes everywhere
  } else if (mode < 4) {
    for (size_t f : focus) randomize(touch(f));  // pure random bytes where the decoder starts
  }
  static const std::vector<uint64_t> huge = {
      uint64_t(INT64_MAX), uint64_t(INT64_MIN), ~uint64_t{0}, uint64_t{1} << 62, uint64_t{1} << 40, uint64_t{1} << 32,
      uint64_t{1} << 31, uint64_t{1} << 30, uint64_t{1} << 24, uint64_t{1} << 20, 0x7fffffff, 0xffffffff, 1000003};
  static const std::vector<uint64_t> ints32 = {0x80000000, 0x7fffffff, 0xffffffff, 0x40000000, 0xfffffffe, 0x10000};
  static const std::vector<uint8_t> bytes = {0x00, 0xff, 0x80, 0x7f, 0x01, 0x40, 0x28, 0x3f};
  int count = 1 + static_cast<int>(rng() % 4);
  if (rng() % 4 == 0) count += static_cast<int>(rng() % 24);
  for (int m = 0; m < count; ++m) {
    size_t ri = pick_range();
    Range& r = touch(ri);
    size_t n = r.bytes.size();
    if (n == 0) continue;
    const auto& sites = base.sites[ri];
    size_t w = (rng() % ((n + 7) / 8)) * 8;
    size_t width = 8;
    uint64_t old = 0;
    auto put = [&](uint64_t v) {
      for (size_t i = 0; i < width && w + i < n; ++i) r.bytes[w + i] = static_cast<uint8_t>(v >> (8 * i));
    };
    if (!sites.empty() && rng() % 4 != 0) {
      // A member: a link or a count most often, then an object pointer.
      SiteKind want = rng() % 5 < 2 ? SiteKind::Link : rng() % 3 < 2 ? SiteKind::Count : SiteKind::Item;
      std::vector<const SiteRef*> of_kind;
      for (const auto& st : sites)
        if (st.kind == want) of_kind.push_back(&st);
      const SiteRef& st = of_kind.empty() ? sites[rng() % sites.size()] : *of_kind[rng() % of_kind.size()];
      w = st.offset;
      width = st.width;
      if (w + width > n) continue;  // cut short by an earlier mutation
      for (size_t i = 0; i < width; ++i) old |= static_cast<uint64_t>(r.bytes[w + i]) << (8 * i);
      if (st.kind != SiteKind::Count) {
        size_t to = img.find(old & ~uint64_t{7});
        if (st.kind == SiteKind::Link && to != Image::npos && rng() % 3 == 0) {
          // Where this link leads, a link back to there or to here: a loop of one or two steps
          // further down the chain.
          const auto& next_sites = base.sites[to];
          std::vector<const SiteRef*> links;
          for (const auto& ns : next_sites)
            if (ns.kind == SiteKind::Link && ns.width == 8) links.push_back(&ns);
          Range& tr = touch(to);
          if (!links.empty() && links.back()->offset + 8u <= tr.bytes.size()) {
            const SiteRef& ns = *links[rng() % links.size()];
            if (ns.offset + 8u <= tr.bytes.size()) {
              uint64_t back = rng() % 2 ? tr.start : r.start;
              for (size_t i = 0; i < 8; ++i) tr.bytes[ns.offset + i] = static_cast<uint8_t>(back >> (8 * i));
            }
          }
          continue;
        }
        switch (rng() % 8) {
          case 0: put(r.start); break;                                             // its own structure: a loop
          case 1: put(focus.empty() ? r.start : ranges[focus[0]].start); break;  // back to the start
          case 2: put(ranges[focus.empty() ? ri : focus[rng() % focus.size()]].start); break;
          case 3: put(0); break;
          case 4: put(old + 8 * (rng() % 9) - 32); break;  // beside where it pointed
          case 5: put(rng()); break;
          default: put(one_of(rng, base.anchors)); break;
        }
      } else if (width == 8) {
        switch (rng() % 6) {
          case 0:
          case 1: put(one_of(rng, huge) + (rng() % 2 ? 0 : rng() % 5 - 2)); break;
          case 2: put(0 - old); break;
          case 3: put(old + rng() % 3 - 1); break;
          case 4: put(static_cast<uint64_t>(static_cast<int64_t>(rng() % 70) - 5)); break;
          default: put(rng()); break;
        }
      } else if (width == 4) {
        switch (rng() % 4) {
          case 0: put(one_of(rng, ints32)); break;
          case 1: put(old + rng() % 3 - 1); break;
          case 2: put(rng() % 64); break;
          default: put(rng()); break;
        }
      } else {
        put(rng() % 2 ? one_of(rng, bytes) : rng() % 2 ? old ^ (1u << (rng() % 8)) : rng());
      }
      continue;
    }
    switch (rng() % 14) {
      case 0:
      case 1: r.bytes[rng() % n] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
      case 2: put(rng()); break;
      case 3:
      case 4: put(one_of(rng, base.anchors) + (rng() % 4 == 0 ? 8 * (rng() % 8) : 0)); break;  // another object
      case 5: put(rng() % 2 ? r.start : r.start + w); break;        // itself: a loop
      case 6: put(r.start + 8 * (rng() % ((n + 7) / 8))); break;  // inside itself
      case 7: put(one_of(rng, huge)); break;
      case 8: put(static_cast<uint64_t>(static_cast<int64_t>(rng() % 13) - 4)); break;  // small, maybe negative
      case 9: r.bytes[rng() % n] = rng() % 2 ? one_of(rng, bytes) : static_cast<uint8_t>(rng()); break;
      case 10: {
        const Range& from = ranges[rng() % ranges.size()];
        if (from.bytes.size() >= 8) {
          uint64_t v;
          std::memcpy(&v, from.bytes.data() + (rng() % (from.bytes.size() / 8)) * 8, 8);
          put(v);
        }
        break;
      }
      case 11: {
        size_t len = std::min<size_t>(n - w, 1 + rng() % 64);
        for (size_t i = 0; i < len; ++i) r.bytes[w + i] = static_cast<uint8_t>(rng());
        break;
      }
      case 12: r.bytes.resize(rng() % n); break;  // cut short
      default:
        if (rng() % 4 == 0) r.bytes.clear();  // unmapped
        break;
    }
  }
  mapped_ = base.mapped;
  for (const auto& [ri, r] : touched_) {
    mapped_ = mapped_ - ranges[ri].bytes.size() + r.bytes.size();
    base.mem.add(RemoteAddr(r.start), r.bytes);
  }
}

// Where a decoder starts: mostly one of `choices`, sometimes any object or range of the image,
// or an address in no mapping or misaligned.
RemoteAddr target(std::mt19937_64& rng, const Base& base, const std::vector<RemoteAddr>& choices) {
  uint64_t r = rng() % 32;
  if (r == 0) return RemoteAddr(rng() % 4 ? one_of(rng, base.anchors) + 1 + rng() % 7 : rng());
  if (r < 4 || choices.empty()) return RemoteAddr(one_of(rng, base.anchors));
  return one_of(rng, choices);
}
// An object, each type as likely as any other.
RemoteAddr any_object(std::mt19937_64& rng, const Base& base) {
  return target(rng, base, one_of(rng, base.by_type));
}

std::string describe(const Base& b, size_t input, uint64_t seed) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "CPython %d.%d, input %zu, seed 0x%016llx", b.v.major, b.v.minor, input,
                static_cast<unsigned long long>(seed));
  return buf;
}

// Runs `body(base, rng, runner)` on `default_count` inputs (or PYINSPECT_FUZZ_ITERATIONS), over
// the versions in turn.
template <class Body>
void fuzz(const char* test, uint64_t salt, size_t default_count, Body&& body) {
  auto& all = bases();
  FuzzLimits limits;
  Runner run(test);
  size_t n = iterations(default_count);
  for (size_t i = 0; i < n; ++i) {
    Base& b = all[i % all.size()];
    uint64_t seed = input_seed(salt, i);
    std::mt19937_64 rng(seed);
    run.input(describe(b, i, seed));
    body(b, rng, run);
  }
  run.report(n);
}

// Counts what a referent walk reports, and checks each child is what for_each_referent promises.
struct CountingVisitor : ReferentVisitor {
  uint64_t visits = 0;
  bool bad_child = false;
  void visit(RemoteAddr child, const Edge&) override {
    ++visits;
    if (child.null() || (child.value() & 7)) bad_child = true;
  }
};

// Bounds of a decoded frame: read_str limits of 1024 and 4096 characters, UTF-8 at most 4 bytes
// each; line tables of at most 16 MiB.
void check_frame(Runner& run, const FrameInfo& fi) {
  run.bound(fi.name.size() <= 4 * 1024, "co_name longer than 1024 characters");
  run.bound(fi.function.size() <= 4 * 1024, "qualified name longer than 1024 characters");
  run.bound(fi.file.size() <= 4 * 4096, "co_filename longer than 4096 characters");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Line tables: pure functions over a span, placed against a guard page.

TEST_CASE("fuzz: line tables") {
  FuzzLimits limits;
  GuardedBytes guard;
  Runner run("fuzz: line tables");
  const size_t n = iterations(300000);
  for (size_t i = 0; i < n; ++i) {
    uint64_t seed = input_seed(1, i);
    std::mt19937_64 rng(seed);
    Fmt f = static_cast<Fmt>(i % 4);
    char where[80];
    std::snprintf(where, sizeof where, "format %d, input %zu, seed 0x%016llx", static_cast<int>(f), i,
                  static_cast<unsigned long long>(seed));
    run.input(where);
    Bytes t;
    if (rng() % 4) {
      t = valid_table(f, rng, static_cast<int>(rng() % 40));
      // Bytes flipped, replaced, inserted, removed; the table cut short.
      for (int m = static_cast<int>(rng() % 6); m > 0 && !t.empty(); --m) {
        size_t at = rng() % t.size();
        switch (rng() % 5) {
          case 0: t[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
          case 1: t[at] = static_cast<uint8_t>(rng()); break;
          case 2: t.insert(t.begin() + static_cast<ptrdiff_t>(at), static_cast<uint8_t>(rng())); break;
          case 3: t.erase(t.begin() + static_cast<ptrdiff_t>(at)); break;
          case 4: t.resize(at); break;
        }
      }
    } else {
      t.resize(rng() % 200);
      for (auto& b : t) b = static_cast<uint8_t>(rng());
    }
    auto span = guard.place(t);
    static const int firsts[] = {1, 0, -5, INT32_MAX - 3, INT32_MIN + 3};
    int first = rng() % 2 ? firsts[rng() % std::size(firsts)] : static_cast<int>(rng());
    int64_t pairs = static_cast<int64_t>(t.size() / 2);
    for (int k = 0; k < 6; ++k) {
      int addr = k == 0 ? -1 : k == 1 ? INT32_MAX : static_cast<int>(rng() % (2 * t.size() + 600));
      int line = 0;
      switch (f) {
        case Fmt::Lnotab27:
        case Fmt::Lnotab36: {
          bool sgn = f == Fmt::Lnotab36;
          run.call("lnotab_line", [&] { line = lnotab_line(span, first, addr, sgn); });
          // Each pair moves the line by at most 255 (unsigned) or 128 (signed).
          int64_t d = static_cast<int64_t>(line) - first;
          run.bound(line == -1 || (sgn ? std::llabs(d) <= 128 * pairs : d >= 0 && d <= 255 * pairs),
                    "lnotab line beyond what the pairs add up to");
          break;
        }
        case Fmt::Linetable310:
          run.call("linetable310_line", [&] { line = linetable310_line(span, first, addr); });
          run.bound(addr >= 0 || line == first, "3.10 line of a negative address is not the first line");
          run.bound(line == -1 || std::llabs(static_cast<int64_t>(line) - first) <= 128 * pairs,
                    "3.10 line beyond what the entries add up to");
          break;
        case Fmt::Locations311:
          run.call("locations311_line", [&] { line = locations311_line(span, first, addr); });
          run.bound(addr >= 0 || line == first, "3.11 line of a negative address is not the first line");
          run.bound(addr < 0 || !t.empty() || line == -1, "3.11 line from an empty table");
          break;
      }
    }
  }
  run.report(n);
}

// ---------------------------------------------------------------------------------------------
// Frames: a thread state's chain and each frame's code, name, file and line.

TEST_CASE("fuzz: frames") {
  fuzz("fuzz: frames", 2, 100000, [](Base& b, std::mt19937_64& rng, Runner& run) {
    RemoteAddr start = target(rng, b, b.tstates);
    Mutation mut(b, rng, start);
    const Memory& mem = mut.mem();
    ObjectReader r(mem, b.l, b.types);
    static const size_t limits[] = {1, 2, 3, 5, 16, 100000};
    size_t max_frames = limits[rng() % std::size(limits)];
    FrameWalk walk;
    run.call("walk_frames", [&] { walk = walk_frames(r, start, max_frames); });
    run.bound(walk.frames.size() <= max_frames, "more frames than max_frames");
    run.bound(!walk.truncated || !walk.problem.empty(), "a truncated walk without its reason");
    std::unordered_set<RemoteAddr> seen;
    for (const auto& f : walk.frames) run.bound(seen.insert(f.frame).second, "a frame walked twice (a loop)");
    // The walk's frames, and frames made of random words.
    std::vector<RawFrame> raws = walk.frames;
    for (int k = 0; k < 2; ++k) {
      RawFrame raw;
      raw.frame = RemoteAddr(one_of(rng, b.anchors));
      raw.code = rng() % 2 ? one_of(rng, b.codes) : RemoteAddr(one_of(rng, b.anchors));
      raw.lasti = static_cast<int32_t>(rng());
      raw.instr = raw.code + static_cast<int64_t>(rng() % 4 ? rng() % 512 : rng());
      raw.owner = static_cast<int8_t>(rng() % 6);
      raws.push_back(raw);
    }
    FrameDecoder dec(r);
    for (const auto& raw : raws) {
      std::optional<FrameInfo> fi;
      run.call("FrameDecoder::decode", [&] { fi = dec.decode(raw); });
      if (fi) check_frame(run, *fi);
      size_t table = 0;
      run.call("FrameDecoder::code", [&] { table = dec.code(raw.code).line_table.size(); });
      run.bound(table <= (size_t{1} << 24), "a line table over 16 MiB");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Threads: every thread state of the list with its frames, and threading._active's names.

TEST_CASE("fuzz: threads") {
  fuzz("fuzz: threads", 3, 60000, [](Base& b, std::mt19937_64& rng, Runner& run) {
    RemoteAddr head = b.tstates.back();  // the first of the list
    Mutation mut(b, rng, rng() % 2 ? head : rng() % 2 ? b.active : target(rng, b, b.tstates));
    const Memory& mem = mut.mem();
    uint64_t mapped = mut.mapped();
    ObjectReader r(mem, b.l, b.types);
    FrameDecoder dec(r);
    // The thread states as the list links them (each once), and the ones built, whatever links
    // to them now.
    std::vector<RemoteAddr> states = b.tstates;
    std::unordered_set<RemoteAddr> seen(states.begin(), states.end());
    for (RemoteAddr ts = head; ts && seen.size() < 32;) {
      std::optional<RemoteAddr> next;
      run.call("read ts_next", [&] { next = mem.read_ptr(ts + b.l.require(F::ts_next)); });
      if (!next || next->null() || !seen.insert(*next).second) break;
      states.push_back(*next);
      ts = *next;
    }
    for (RemoteAddr ts : states) {
      FrameWalk walk;
      run.call("walk_frames", [&] { walk = walk_frames(r, ts, 100000); });
      run.bound(walk.frames.size() <= mapped / 8, "more frames than words of memory");
      for (const auto& raw : walk.frames) {
        std::optional<FrameInfo> fi;
        run.call("FrameDecoder::decode", [&] { fi = dec.decode(raw); });
        if (fi) check_frame(run, *fi);
      }
    }
    // threading._active: {ident: Thread}, each Thread's name an instance attribute.
    size_t items = 0;
    bool long_name = false;
    run.call("thread names", [&] {
      r.dict_items(b.active, [&](RemoteAddr k, RemoteAddr v) {
        ++items;
        (void)r.read_int(k);
        (void)r.instance_dict(v);
        if (auto name = r.instance_attr(v, b.name_attr))
          if (auto s = r.read_str(*name, 256)) long_name |= s->size() > 4 * 256;
        return true;
      });
    });
    run.bound(items <= mapped / 16 + 1, "more dict items than entries in memory");
    run.bound(!long_name, "a thread name longer than 256 characters");
  });
}

// ---------------------------------------------------------------------------------------------
// Objects: str, int, type names, instance dicts and attributes.

TEST_CASE("fuzz: objects") {
  fuzz("fuzz: objects", 4, 120000, [](Base& b, std::mt19937_64& rng, Runner& run) {
    RemoteAddr obj = rng() % 3 == 0 ? target(rng, b, b.strs)
                     : rng() % 2    ? target(rng, b, b.instances)
                                    : any_object(rng, b);
    Mutation mut(b, rng, obj);
    const Memory& mem = mut.mem();
    ReadLimits limits;
    if (rng() % 4 == 0) limits.max_string_chars = 1 + rng() % 100;
    ObjectReader r(mem, b.l, b.types, limits);
    static const size_t maxes[] = {0, 1, 3, 64, 5001};
    size_t max = maxes[rng() % std::size(maxes)];
    std::optional<std::string> s;
    run.call("read_str", [&] { s = r.read_str(obj, max); });
    size_t chars = max ? max : limits.max_string_chars;
    run.bound(!s || s->size() <= 4 * chars, "read_str past its limit of characters");
    static const std::string texts[] = {"x",          "_name",       "__module__",
                                        "MainThread", "caf\xc3\xa9", std::string(5000, 'q')};
    const std::string& text = texts[rng() % std::size(texts)];
    run.call("str_equals", [&] { (void)r.str_equals(obj, text); });
    run.call("read_int", [&] { (void)r.read_int(obj); });
    std::optional<std::string> tn;
    run.call("type_name", [&] {
      if (auto t = r.type_of(obj)) {
        (void)r.type_flags(*t);
        tn = r.type_name(*t);
      }
    });
    run.bound(!tn || tn->size() <= 256, "a type name longer than 256 bytes");
    run.call("instance_dict", [&] { (void)r.instance_dict(obj); });
    run.call("instance_attr", [&] { (void)r.instance_attr(obj, rng() % 2 ? b.name_attr : "x"); });
  });
}

// ---------------------------------------------------------------------------------------------
// Dicts: 2.7 tables, 3.6-3.10 and 3.11+ keys (general, unicode, split), values arrays.

TEST_CASE("fuzz: dicts") {
  fuzz("fuzz: dicts", 5, 150000, [](Base& b, std::mt19937_64& rng, Runner& run) {
    bool split = !b.split_tables.empty() && rng() % 3 == 0;
    std::pair<RemoteAddr, RemoteAddr> kv = split ? one_of(rng, b.split_tables) : std::pair<RemoteAddr, RemoteAddr>{};
    RemoteAddr d = split ? kv.first : target(rng, b, b.dicts);
    Mutation mut(b, rng, rng() % 4 || !split ? d : kv.second);
    const Memory& mem = mut.mem();
    uint64_t mapped = mut.mapped();
    ReadLimits limits;
    if (rng() % 4 == 0) limits.max_dict_entries = 1 + rng() % 64;
    ObjectReader r(mem, b.l, b.types, limits);
    // A 2.7 table is read up to twice the entry limit of slots (ma_mask + 1 of them).
    uint64_t most = std::min<uint64_t>(2 * limits.max_dict_entries, mapped / 16 + 1);
    uint64_t stop = rng() % 4 == 0 ? 1 + rng() % 3 : UINT64_MAX;
    uint64_t calls = 0;
    auto fn = [&](RemoteAddr, RemoteAddr) { return ++calls < stop; };
    if (split) {
      run.call("keys_values_items", [&] { r.keys_values_items(kv.first, kv.second, fn); });
    } else {
      run.call("dict_items", [&] { r.dict_items(d, fn); });
    }
    run.bound(calls <= most, "more dict items than the limit or the memory holds");
    run.bound(calls <= stop, "items after the callback said stop");
    static const char* keys[] = {"x", "_name", "__module__", "k3", "n39", "missing"};
    if (!split) run.call("dict_get", [&] { (void)r.dict_get(d, keys[rng() % std::size(keys)]); });
  });
}

// ---------------------------------------------------------------------------------------------
// Heap types: what the census learns from a type object (category, names, slots, MRO).

TEST_CASE("fuzz: heap types") {
  fuzz("fuzz: heap types", 6, 100000, [](Base& b, std::mt19937_64& rng, Runner& run) {
    RemoteAddr t = target(rng, b, b.types_made);
    Mutation mut(b, rng, t);
    const Memory& mem = mut.mem();
    std::unique_ptr<HeapContext> ctx;
    run.call("HeapContext", [&] { ctx = std::make_unique<HeapContext>(mem, b.l, b.types); });
    if (!ctx) return;
    size_t lookups = 0;
    std::vector<const TypeInfo*> infos;
    for (int k = 0; k < 3; ++k) {
      RemoteAddr what = k == 0 ? t : k == 1 ? target(rng, b, b.types_made) : any_object(rng, b);
      ++lookups;
      run.call(k ? "HeapContext::type_of" : "HeapContext::info", [&] {
        const TypeInfo* ti = k ? ctx->type_of(what) : ctx->info(what);
        if (ti) infos.push_back(ti);
      });
    }
    run.bound(ctx->all_types().size() <= lookups, "more types than were looked up");
    for (const TypeInfo* ti : infos) {
      // plausible_type: a sane basicsize (or none, when the whole type object could not be read);
      // names from read_str (256 characters) and tp_name (256 bytes); slots from at most 64 heap
      // bases of fewer than 4096 members each.
      run.bound(ti->basicsize == 0 || (ti->basicsize >= 16 && ti->basicsize <= (1 << 20)),
                "a type of implausible basicsize");
      run.bound(ti->name.size() <= 2 * 4 * 256 + 1, "a type name past its limits");
      run.bound(ti->module.size() <= 4 * 256, "a module name past its limit");
      run.bound(ti->slots.size() <= 64 * 4096, "more slots than the heap bases can have");
      for (const auto& [off, name] : ti->slots) {
        run.bound(off > 0 && off < ti->basicsize, "a slot outside the instance");
        run.bound(name.size() <= 128, "a slot name longer than 128 bytes");
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Sizes: sys.getsizeof from outside, for every kind of object, and the short description the
// listings of large objects show.

TEST_CASE("fuzz: sizes") {
  fuzz("fuzz: sizes", 7, 90000, [](Base& b, std::mt19937_64& rng, Runner& run) {
    RemoteAddr obj = any_object(rng, b);
    Mutation mut(b, rng, obj);
    const Memory& mem = mut.mem();
    HeapContext ctx(mem, b.l, b.types);
    for (int k = 0; k < 3; ++k) {
      RemoteAddr o = k == 0 ? obj : any_object(rng, b);
      // Its own type, or (one time in four) another object's: a type confused by a torn read.
      RemoteAddr typed = rng() % 4 ? o : any_object(rng, b);
      std::optional<uint64_t> size;
      std::string repr;
      run.call("object_size", [&] {
        if (const TypeInfo* ti = ctx.type_of(typed)) size = object_size(ctx, o, *ti).bytes;
      });
      run.call("short_repr", [&] {
        if (const TypeInfo* ti = ctx.type_of(typed)) repr = short_repr(ctx, o, *ti);
      });
      // Sizes beyond 2**42 are refused as misreads; the header adds at most 48 bytes.
      run.bound(!size || *size <= (uint64_t{1} << 42) + 48, "an object size beyond 2**42");
      // At most 60 characters of a string (each newline shown as two), 41 bytes, a count, a type name.
      run.bound(repr.size() <= 4096, "a short description that is not short");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Referents: what each object refers to (tp_traverse and the references kept outside it), and
// 3.11+ interpreter frames' locals.

TEST_CASE("fuzz: referents") {
  fuzz("fuzz: referents", 8, 150000, [](Base& b, std::mt19937_64& rng, Runner& run) {
    bool frame = !b.iframes.empty() && rng() % 5 == 0;
    RemoteAddr obj = frame ? one_of(rng, b.iframes) : any_object(rng, b);
    Mutation mut(b, rng, obj);
    const Memory& mem = mut.mem();
    uint64_t mapped = mut.mapped();
    HeapContext ctx(mem, b.l, b.types);
    CountingVisitor v;
    if (frame) {
      run.call("for_each_frame_referent", [&] { for_each_frame_referent(ctx, obj, v); });
    } else {
      RemoteAddr typed = rng() % 4 ? obj : any_object(rng, b);
      run.call("for_each_referent", [&] {
        if (const TypeInfo* ti = ctx.type_of(typed)) for_each_referent(ctx, obj, *ti, v);
      });
    }
    run.bound(!v.bad_child, "a null or misaligned referent");
    // Every referent is a word read from memory; a few rules read a word twice (an instance's
    // dict and its items), none more often. A loop re-reading the same memory exceeds this.
    run.bound(v.visits <= 2 * (mapped / 8) + 64, "more referents than words of memory");
  });
}

// ---------------------------------------------------------------------------------------------
// GC lists, and the census's closure over referents from them: every object found once, its type,
// size and referents.

TEST_CASE("fuzz: GC lists") {
  fuzz("fuzz: GC lists", 9, 8000, [](Base& b, std::mt19937_64& rng, Runner& run) {
    RemoteAddr head = one_of(rng, b.gc_heads);
    Mutation mut(b, rng, rng() % 2 ? head : any_object(rng, b));
    const Memory& mem = mut.mem();
    uint64_t mapped = mut.mapped();
    HeapContext ctx(mem, b.l, b.types);
    struct Closure : ReferentVisitor {
      HeapContext& ctx;
      std::unordered_set<uint64_t> seen;
      std::vector<RemoteAddr> stack;
      uint64_t reported = 0;
      explicit Closure(HeapContext& c) : ctx(c) {}
      void visit(RemoteAddr child, const Edge&) override {
        ++reported;
        if (child.null() || (child.value() & 7) || seen.count(child.value())) return;
        if (!ctx.type_of(child)) return;
        seen.insert(child.value());
        stack.push_back(child);
      }
    } closure(ctx);
    for (RemoteAddr h : b.gc_heads) {
      uint64_t before = closure.reported;
      GcListWalk walk;
      run.call("for_each_gc_object", [&] { walk = for_each_gc_object(ctx, h, closure); });
      // Brent's search ends a loop within twice its length: each node reported at most three
      // times.
      run.bound(walk.objects == closure.reported - before, "objects counted but not reported");
      run.bound(walk.objects <= 3 * (mapped / 8) + 3, "a GC list walked past its loop");
    }
    run.call("census closure", [&] {
      while (!closure.stack.empty()) {
        RemoteAddr o = closure.stack.back();
        closure.stack.pop_back();
        const TypeInfo* ti = ctx.type_of(o);
        if (!ti) continue;
        (void)object_size(ctx, o, *ti);
        for_each_referent(ctx, o, *ti, closure);
      }
    });
    // An object is found once, and it is a readable word: no more objects than words.
    run.bound(closure.seen.size() <= mapped / 8, "more objects than words of memory");
  });
}
