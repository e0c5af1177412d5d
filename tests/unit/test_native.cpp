// Merging a thread's native and Python frames (src/native/unwind.hpp, merge_order) and telling
// where one C-level call of the evaluation loop ends (src/runtime/frames.hpp), on hand-built
// stacks: what the test lays out is what each frame must become.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "abi/facts.hpp"
#include "native/unwind.hpp"
#include "runtime/frames.hpp"

using namespace pyinspect;

namespace {
const std::string kEval = "_PyEval_EvalFrameDefault";

// A native stack from names, innermost first; "+name" is a call inlined into the next frame.
NativeStack stack_of(const std::vector<std::string>& names) {
  NativeStack s;
  for (const auto& n : names) {
    NativeFrame f;
    f.inlined = n[0] == '+';
    f.symbol = f.inlined ? n.substr(1) : n;
    s.frames.push_back(f);
  }
  // Inlined calls share their machine frame's symbol-table name.
  std::string machine;
  for (auto it = s.frames.rbegin(); it != s.frames.rend(); ++it) {
    if (!it->inlined) machine = it->symbol;
    it->elf_symbol = machine;
  }
  return s;
}

// The merged order as text: "py0", "py1" for Python frames, names for native ones.
std::vector<std::string> merged(const std::vector<int>& calls, const NativeStack& s, bool keep_all, int* unplaced) {
  std::vector<std::string> out;
  for (const auto& m : merge_order(calls, s, kEval, keep_all, unplaced))
    out.push_back(m.python ? "py" + std::to_string(m.index) : s.frames[m.index].symbol);
  return out;
}
}  // namespace

TEST_CASE("merge: one Python frame per evaluation call (3.10 and older)") {
  auto s = stack_of({"read", "os_read", kEval, "function_call", kEval, "main"});
  int unplaced = -1;
  CHECK(merged({0, 1}, s, false, &unplaced) == std::vector<std::string>{"read", "os_read", "py0", "function_call", "py1", "main"});
  CHECK(unplaced == 0);
  CHECK(merged({0, 1}, s, true, &unplaced) ==
        std::vector<std::string>{"read", "os_read", "py0", kEval, "function_call", "py1", kEval, "main"});
}

TEST_CASE("merge: several Python frames per call, and inlined calls (3.11+)") {
  // The innermost call runs py0..py2, the next py3; the evaluation frames have calls inlined into them.
  auto s = stack_of({"sem_wait", "+inner_helper", "lock_acquire", "+call_function", kEval, "+_PyEval_EvalFrame",
                     "_PyEval_Vector", kEval + ".cold", "start"});
  int unplaced = -1;
  CHECK(merged({0, 0, 0, 1}, s, false, &unplaced) ==
        std::vector<std::string>{"sem_wait", "inner_helper", "lock_acquire", "py0", "py1", "py2", "_PyEval_EvalFrame",
                                 "_PyEval_Vector", "py3", "start"});
  CHECK(unplaced == 0);
  // Kept: the inlined calls first (they run inside the loop), the Python frames, the loop itself.
  CHECK(merged({0, 0, 0, 1}, s, true, &unplaced) ==
        std::vector<std::string>{"sem_wait", "inner_helper", "lock_acquire", "call_function", "py0", "py1", "py2",
                                 kEval, "_PyEval_EvalFrame", "_PyEval_Vector", "py3", kEval + ".cold", "start"});
}

TEST_CASE("merge: a call whose Python frames were not read keeps its native frame") {
  // Call 0 has no Python frame (not started yet), call 1 has py0.
  auto s = stack_of({"x", kEval, "y", kEval, "z"});
  int unplaced = -1;
  CHECK(merged({1}, s, false, &unplaced) == std::vector<std::string>{"x", kEval, "y", "py0", "z"});
  CHECK(unplaced == 0);
}

TEST_CASE("merge: Python frames no evaluation frame accounts for go last, counted") {
  auto s = stack_of({"x", kEval, "y"});  // the unwinding stopped after one call
  int unplaced = -1;
  CHECK(merged({0, 1, 2}, s, false, &unplaced) == std::vector<std::string>{"x", "py0", "y", "py1", "py2"});
  CHECK(unplaced == 2);
  auto none = stack_of({});
  CHECK(merged({0}, none, false, &unplaced) == std::vector<std::string>{"py0"});
  CHECK(unplaced == 1);
}

TEST_CASE("merge: a thread without Python frames keeps its native stack") {
  auto s = stack_of({"epoll_wait", kEval, "start_thread"});
  int unplaced = -1;
  CHECK(merged({}, s, false, &unplaced) == std::vector<std::string>{"epoll_wait", kEval, "start_thread"});
  CHECK(unplaced == 0);
}

TEST_CASE("base_symbol: compiler suffixes and symbol versions") {
  CHECK(base_symbol("_PyEval_EvalFrameDefault.cold") == "_PyEval_EvalFrameDefault");
  CHECK(base_symbol("sock_recv_guts.lto_priv.0") == "sock_recv_guts");
  CHECK(base_symbol("clock_nanosleep@@GLIBC_2.17") == "clock_nanosleep");
  CHECK(base_symbol("plain") == "plain");
  CHECK(base_symbol(".hidden") == ".hidden");
}

TEST_CASE("evaluation calls: where each ends, by the version's facts") {
  auto frames = [](std::vector<std::pair<int, bool>> spec) {  // (owner, is_entry), innermost first
    std::vector<RawFrame> v;
    for (auto [owner, entry] : spec) {
      RawFrame f;
      f.owner = owner;
      f.is_entry = entry;
      v.push_back(f);
    }
    return v;
  };
  // Returns, per Python frame (shims left out), the call it belongs to.
  auto calls = [](const Facts& facts, const std::vector<RawFrame>& v) {
    std::vector<int> out;
    int call = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      if (is_shim(facts, v[i])) continue;
      out.push_back(call);
      if (ends_eval_call(facts, v, i)) ++call;
    }
    return out;
  };
  Facts f310 = Facts::for_version(PyVersion{3, 10, 13});
  CHECK(calls(f310, frames({{0, false}, {0, false}, {0, false}})) == std::vector<int>{0, 1, 2});
  Facts f311 = Facts::for_version(PyVersion{3, 11, 7});
  CHECK(calls(f311, frames({{0, false}, {0, true}, {0, false}, {0, true}})) == std::vector<int>{0, 0, 1, 1});
  Facts f312 = Facts::for_version(PyVersion{3, 12, 1});
  // py, py, shim, py, shim: the frame inside each shim ends a call.
  CHECK(calls(f312, frames({{0, false}, {1, false}, {3, false}, {0, false}, {3, false}})) == std::vector<int>{0, 0, 1});
  Facts f27 = Facts::for_version(PyVersion{2, 7, 18});
  CHECK(std::string(f27.eval_function) == "PyEval_EvalFrameEx");
  CHECK(std::string(f312.eval_function) == kEval);
}
