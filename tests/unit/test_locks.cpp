// The pieces of runtime/locks.hpp that need no target: a 3.11+ exception table's handler depth
// at an instruction (tables laid out by hand in the format of CPython's
// Objects/exception_handling_notes.txt), and wait-for cycles among threads.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "proc/pause.hpp"
#include "runtime/locks.hpp"
#include "runtime/tasks.hpp"
#include "abi/layout.hpp"
#include "proc/memory.hpp"

using namespace pyinspect;

namespace {
// One entry: start, size, target, depth << 1 | lasti, each a varint of 6-bit groups, the first
// byte of the entry marked with 0x80 and every byte but a varint's last with 0x40.
void varint(std::vector<uint8_t>& out, uint64_t v, bool first) {
  std::vector<uint8_t> groups;
  do {
    groups.insert(groups.begin(), static_cast<uint8_t>(v & 63));
    v >>= 6;
  } while (v);
  for (size_t i = 0; i < groups.size(); ++i) {
    uint8_t b = groups[i];
    if (i + 1 < groups.size()) b |= 0x40;
    if (first && i == 0) b |= 0x80;
    out.push_back(b);
  }
}
void entry(std::vector<uint8_t>& out, uint64_t start, uint64_t size, uint64_t target, uint64_t depth, bool lasti) {
  varint(out, start, true);
  varint(out, size, false);
  varint(out, target, false);
  varint(out, depth << 1 | (lasti ? 1 : 0), false);
}
}  // namespace

TEST_CASE("exception table: the depth of the handler covering an instruction") {
  std::vector<uint8_t> t;
  entry(t, 2, 10, 20, 3, true);      // instructions 2..11: depth 3
  entry(t, 100, 5, 200, 1, false);   // 100..104: depth 1 (multi-byte start and target)
  entry(t, 5000, 70, 9000, 70, true);
  CHECK(t[0] == 0x82);
  CHECK(exception_depth(t, 1) == 0);
  CHECK(exception_depth(t, 2) == 3);
  CHECK(exception_depth(t, 11) == 3);
  CHECK(exception_depth(t, 12) == 0);
  CHECK(exception_depth(t, 100) == 1);
  CHECK(exception_depth(t, 104) == 1);
  CHECK(exception_depth(t, 105) == 0);
  CHECK(exception_depth(t, 5069) == 70);
  CHECK(exception_depth(t, 5070) == 0);
  CHECK(exception_depth({}, 0) == 0);
}

TEST_CASE("exception table: what is not one gives no depth, never a read past its end") {
  std::vector<uint8_t> t;
  entry(t, 2, 10, 20, 3, false);
  std::vector<uint8_t> unmarked = t;
  unmarked[0] &= 0x7f;
  CHECK(exception_depth(unmarked, 5) == 0);
  for (size_t n = 0; n < t.size(); ++n) {  // every truncation
    std::vector<uint8_t> cut(t.begin(), t.begin() + static_cast<long>(n));
    CHECK(exception_depth(cut, 5) == 0);
  }
  std::vector<uint8_t> endless(64, 0x7f);  // a varint that never ends
  endless[0] = 0xff;
  CHECK(exception_depth(endless, 5) == 0);
}

TEST_CASE("wait-for cycles: each once, from the thread listed first") {
  std::vector<std::pair<int, int>> edges = {{1, 2}, {2, 1}, {3, 1}, {4, 5}, {5, 6}, {6, 4}, {7, 7}, {8, 9}};
  auto cycles = wait_cycles(edges, {3, 5, 1, 2, 4, 6, 7, 8, 9});
  REQUIRE(cycles.size() == 3);
  CHECK(cycles[0] == std::vector<int>{1, 2});     // 3 waits into the cycle but is not in it
  CHECK(cycles[1] == std::vector<int>{5, 6, 4});  // from 5, listed before 4
  CHECK(cycles[2] == std::vector<int>{7});        // a thread waiting for a lock it holds
  CHECK(wait_cycles({{1, 2}, {2, 3}}, {1, 2, 3}).empty());
}

TEST_CASE("futex words: only waits, whatever the flags") {
  uint64_t wait[2] = {0x1000, 0};
  uint64_t bitset_private[2] = {0x2000, 9 | 128};
  uint64_t realtime[2] = {0x3000, 9 | 128 | 256};
  uint64_t wake[2] = {0x1000, 1 | 128};
  CHECK(futex_waited(202, wait) == std::optional<uint64_t>(0x1000));
  CHECK(futex_waited(202, bitset_private) == std::optional<uint64_t>(0x2000));
  CHECK(futex_waited(202, realtime) == std::optional<uint64_t>(0x3000));
  CHECK(!futex_waited(202, wake));
  CHECK(!futex_waited(230, wait));  // clock_nanosleep
  CHECK(!futex_waited(-1, wait));
  bool restarted = true;
  CHECK(futex_waited(202, wait, &restarted) == std::optional<uint64_t>(0x1000));
  CHECK(!restarted);
  CHECK(futex_waited(219, bitset_private, &restarted) == std::optional<uint64_t>(0x2000));  // restart_syscall
  CHECK(restarted);
}

TEST_CASE("await cycles: each once, from its task listed first; a task awaiting itself") {
  // 1 -> 2 -> 3 -> 1 (a cycle), 4 -> 1 (awaits into it), 5 -> 6, 5 -> 7 (a gather: no cycle),
  // 8 -> 8, 9 <-> 10.
  std::map<uint64_t, std::vector<uint64_t>> g = {{1, {2}}, {2, {3}}, {3, {1}}, {4, {1}},
                                                 {5, {6, 7}}, {8, {8}}, {9, {10}}, {10, {9}}};
  auto cycles = await_cycles(g, {4, 2, 3, 1, 5, 6, 7, 10, 9, 8});
  REQUIRE(cycles.size() == 3);
  CHECK(cycles[0] == std::vector<uint64_t>{2, 3, 1});
  CHECK(cycles[1] == std::vector<uint64_t>{10, 9});
  CHECK(cycles[2] == std::vector<uint64_t>{8});
  CHECK(await_cycles({{1, {2, 3}}, {2, {3}}}, {1, 2, 3}).empty());
}

TEST_CASE("await cycles: a real cycle through a component's first task, the shortest") {
  // A awaits a gather of B and C; B awaits A; C awaits D; D awaits a gather of C and A: one
  // component {A, B, C, D}; the shortest cycle through A is A -> B -> A.
  const uint64_t A = 1, B = 2, C = 3, D = 4;
  std::map<uint64_t, std::vector<uint64_t>> g = {{A, {B, C}}, {B, {A}}, {C, {D}}, {D, {C, A}}};
  auto cycles = await_cycles(g, {A, B, C, D});
  REQUIRE(cycles.size() == 1);
  CHECK(cycles[0] == std::vector<uint64_t>{A, B});
  // Through C first (listed first): C -> D -> C.
  auto from_c = await_cycles(g, {C, D, A, B});
  REQUIRE(from_c.size() == 1);
  CHECK(from_c[0] == std::vector<uint64_t>{C, D});
  // Every step of a reported cycle is an await.
  for (const auto& c : {cycles[0], from_c[0]})
    for (size_t i = 0; i < c.size(); ++i) {
      const auto& out = g[c[i]];
      CHECK(std::find(out.begin(), out.end(), c[(i + 1) % c.size()]) != out.end());
    }
}

TEST_CASE("await cycles: a chain of 200000 tasks (no recursion to overflow)") {
  std::map<uint64_t, std::vector<uint64_t>> g;
  std::vector<uint64_t> order;
  for (uint64_t i = 1; i <= 200000; ++i) {
    order.push_back(i);
    if (i < 200000) g[i] = {i + 1};
  }
  CHECK(await_cycles(g, order).empty());
  g[200000] = {1};
  auto c = await_cycles(g, order);
  REQUIRE(c.size() == 1);
  CHECK(c[0].size() == 200000);
  CHECK(c[0].front() == 1);
}

TEST_CASE("lock keys: a sem_t pointer up to 3.13, the parked-on PyMutex from 3.14") {
  FakeMemory m;
  const RemoteAddr lock(0x30000), sem(0x40000), entry(0x7ffd0000);
  SUBCASE("3.13: the futex word is the sem_t the lock points to") {
    Layout l;
    l.set_version(PyVersion{3, 13, 0, ""});
    l.set(F::lock_lock, 16, LayoutSource::Dwarf);
    m.put<uint64_t>(lock + 16, sem.value());
    CHECK(parked_key(m, l, sem.value()) == std::optional<uint64_t>(sem.value()));
    CHECK(lock_key(m, l, lock, false) == std::optional<uint64_t>(sem.value()));
  }
  SUBCASE("3.14: the waiter's wait_entry around the word names the mutex inside the lock") {
    // struct wait_entry (Python/parking_lot.c): park_arg, addr, sema (the sem_t), node, ...
    Layout l;
    l.set_version(PyVersion{3, 14, 0, ""});
    l.set(F::lock_lock, 16, LayoutSource::Dwarf);
    l.set(F::rlock_lock, 16, LayoutSource::Dwarf);
    l.set(F::wait_entry_addr, 8, LayoutSource::Dwarf);
    l.set(F::wait_entry_sema, 16, LayoutSource::Dwarf);
    m.put<uint64_t>(entry, 0);
    m.put<uint64_t>(entry + 8, (lock + 16).value());
    m.put<uint64_t>(entry + 16, 0);  // the semaphore's count: its futex word
    CHECK(parked_key(m, l, (entry + 16).value()) == std::optional<uint64_t>((lock + 16).value()));
    CHECK(lock_key(m, l, lock, false) == std::optional<uint64_t>((lock + 16).value()));
    CHECK(lock_key(m, l, lock, true) == std::optional<uint64_t>((lock + 16).value()));
    // Another lock's mutex is not this one.
    CHECK(lock_key(m, l, RemoteAddr(0x50000), false) != parked_key(m, l, (entry + 16).value()));
    // An entry that cannot be read gives no key (not a guess).
    CHECK_FALSE(parked_key(m, l, 0x12340010).has_value());
    Layout bare;
    bare.set_version(PyVersion{3, 14, 0, ""});
    CHECK_FALSE(parked_key(m, bare, (entry + 16).value()).has_value());
  }
}
