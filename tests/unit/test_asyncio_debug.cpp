// 3.14's asyncio task registry, without a 3.14 interpreter: `_AsyncioDebug` found in a mapped
// library named as an _asyncio module (fixtures/asyncio_debug_fixture.cpp: its TaskObj declared
// as CPython 3.14 declares it, the struct filled by the compiler's offsetof) and decoded into the
// layout (src/abi/asyncio_debug.hpp); the fixed 3.14 TaskObj offsets against the same
// declaration; the task lists (circular lists of llist_node) walked over hand-built bytes.
#include <dlfcn.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "abi/asyncio_debug.hpp"
#include "abi/layout.hpp"
#include "base/error.hpp"
#include "proc/maps.hpp"
#include "proc/memory.hpp"
#include "runtime/tasks.hpp"
#include "runtime/threads.hpp"

using namespace pyinspect;

namespace {
struct Fixture {
  void* handle = nullptr;
  const uint64_t* debug = nullptr;    // _AsyncioDebug, as 13 words
  const uint64_t* members = nullptr;  // loop, state, fut_waiter; llist next, prev
  Fixture() {
    handle = dlopen(PYINSPECT_ASYNCIO_FIXTURE, RTLD_NOW | RTLD_LOCAL);
    REQUIRE_MESSAGE(handle != nullptr, dlerror());
    debug = static_cast<const uint64_t*>(dlsym(handle, "_AsyncioDebug"));
    members = static_cast<const uint64_t*>(dlsym(handle, "pyinspect_fixture_task_members"));
    REQUIRE(debug != nullptr);
    REQUIRE(members != nullptr);
  }
  ~Fixture() { dlclose(handle); }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> b(kAsyncioDebugSize);
    std::memcpy(b.data(), debug, b.size());
    return b;
  }
};

Layout layout_314() {
  PyVersion v{3, 14, 0, ""};
  Layout l;
  l.set_version(v);
  l.fill_from(fixed_layout(v));
  return l;
}
}  // namespace

TEST_CASE("asyncio debug: _AsyncioDebug is found in a mapped _asyncio module, by its symbol") {
  Fixture f;
  Maps maps = Maps::read(getpid());
  auto at = find_asyncio_debug(maps, [](const std::string& p) { return p; }, nullptr);
  REQUIRE(at.has_value());
  CHECK(at->value() == reinterpret_cast<uint64_t>(f.debug));
}

TEST_CASE("asyncio debug: the struct gives the task's, thread's and interpreter's members") {
  Fixture f;
  Layout l = layout_314();
  apply_asyncio_debug(f.bytes(), l);
  const uint64_t* d = f.debug;
  CHECK(l.off(F::task_name) == int64_t(d[1]));
  CHECK(l.off(F::task_awaited_by) == int64_t(d[2]));
  CHECK(l.off(F::task_is_task) == int64_t(d[3]));
  CHECK(l.off(F::task_awaited_by_is_set) == int64_t(d[4]));
  CHECK(l.off(F::task_coro) == int64_t(d[5]));
  CHECK(l.off(F::task_node) == int64_t(d[6]));
  CHECK(l.off(F::is_asyncio_tasks_head) == 69000);
  CHECK(l.off(F::ts_asyncio_running_loop) == 8800);
  CHECK(l.off(F::ts_asyncio_running_task) == 8808);
  CHECK(l.off(F::ts_asyncio_tasks_head) == 8816);
  // What the struct does not name, derived from 3.14's declaration, against the compiler's.
  CHECK(l.off(F::task_loop) == int64_t(f.members[0]));
  CHECK(l.off(F::task_state) == int64_t(f.members[1]));
  CHECK(l.off(F::task_fut_waiter) == int64_t(f.members[2]));
  CHECK(l.off(F::llist_next) == int64_t(f.members[3]));
  CHECK(l.off(F::llist_prev) == int64_t(f.members[4]));
  CHECK(l.source(F::task_coro) == LayoutSource::DebugOffsets);
}

TEST_CASE("asyncio debug: the fixed 3.14 TaskObj offsets are the compiler's for 3.14's declaration") {
  Fixture f;
  Layout l = fixed_layout(PyVersion{3, 14, 0, ""});
  const uint64_t* d = f.debug;
  CHECK(l.off(F::task_name) == int64_t(d[1]));
  CHECK(l.off(F::task_awaited_by) == int64_t(d[2]));
  CHECK(l.off(F::task_is_task) == int64_t(d[3]));
  CHECK(l.off(F::task_awaited_by_is_set) == int64_t(d[4]));
  CHECK(l.off(F::task_coro) == int64_t(d[5]));
  CHECK(l.off(F::task_node) == int64_t(d[6]));
  CHECK(l.off(F::task_loop) == int64_t(f.members[0]));
  CHECK(l.off(F::task_state) == int64_t(f.members[1]));
  CHECK(l.off(F::task_fut_waiter) == int64_t(f.members[2]));
}

TEST_CASE("asyncio debug: bytes that are not the struct are refused, the layout left alone") {
  Fixture f;
  auto refused = [](std::vector<uint8_t> b) {
    Layout l = layout_314();
    int64_t coro = l.off(F::task_coro);
    bool threw = false;
    try {
      apply_asyncio_debug(b, l);
    } catch (const Error& e) {
      threw = e.code() == ErrorCode::Corrupt;
    }
    CHECK(l.off(F::task_coro) == coro);
    return threw;
  };
  auto with = [&](size_t word, uint64_t v) {
    auto b = f.bytes();
    std::memcpy(b.data() + word * 8, &v, 8);
    return b;
  };
  CHECK(refused(std::vector<uint8_t>(40, 0)));           // too short
  CHECK(refused(std::vector<uint8_t>(kAsyncioDebugSize)));  // all zero: sizes of 0
  CHECK(refused(with(6, 4000)));                          // task_node past sizeof(TaskObj)
  CHECK(refused(with(5, 90)));                            // coro before is_task
  CHECK(refused(with(12, 9000)));                         // the thread's list head past its struct
  CHECK(refused(with(0, uint64_t(1) << 40)));             // an absurd size
  Layout ok = layout_314();
  CHECK_NOTHROW(apply_asyncio_debug(f.bytes(), ok));
}

TEST_CASE("task lists: a circular list of llist_node, from its head, each node once") {
  FakeMemory m;
  const RemoteAddr head(0x10000), a(0x20000), b(0x21000), c(0x22000);
  auto link = [&](RemoteAddr n, RemoteAddr next, RemoteAddr prev) {
    m.put<uint64_t>(n, next.value());
    m.put<uint64_t>(n + 8, prev.value());
  };
  link(head, a, c);
  link(a, b, head);
  link(b, c, a);
  link(c, head, b);
  NodeList nl = circular_list(m, head, 0, 8, 100, "tasks");
  CHECK(nl.complete);
  CHECK(nl.nodes == std::vector<RemoteAddr>{a, b, c});

  SUBCASE("empty: the head links to itself") {
    link(head, head, head);
    NodeList e = circular_list(m, head, 0, 8, 100, "tasks");
    CHECK(e.complete);
    CHECK(e.nodes.empty());
  }
  SUBCASE("never initialised: a null link") {
    link(head, RemoteAddr(), RemoteAddr());
    NodeList e = circular_list(m, head, 0, 8, 100, "tasks");
    CHECK(e.complete);
    CHECK(e.nodes.empty());
  }
  SUBCASE("a node that does not link back is a list that changed: reported, the nodes before kept") {
    link(b, c, head);
    NodeList e = circular_list(m, head, 0, 8, 100, "tasks");
    CHECK_FALSE(e.complete);
    CHECK(e.nodes == std::vector<RemoteAddr>{a});
    CHECK(e.problem.find("does not link back") != std::string::npos);
  }
  SUBCASE("a loop that misses the head") {
    link(c, b, b);
    NodeList e = circular_list(m, head, 0, -1, 100, "tasks");
    CHECK_FALSE(e.complete);
    CHECK(e.nodes == std::vector<RemoteAddr>{a, b, c});
    CHECK(e.problem.find("loops") != std::string::npos);
  }
  SUBCASE("an unreadable node") {
    link(b, RemoteAddr(0x7fff00000000), a);
    NodeList e = circular_list(m, head, 0, 8, 100, "tasks");
    CHECK_FALSE(e.complete);
    CHECK(e.nodes == std::vector<RemoteAddr>{a, b});
  }
  SUBCASE("the bound") {
    NodeList e = circular_list(m, head, 0, 8, 2, "tasks");
    CHECK_FALSE(e.complete);
    CHECK(e.nodes.size() == 2);
  }
}
