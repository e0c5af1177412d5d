// Frame walking and decoding (src/runtime/frames.hpp) over fake memory, for the embedded layouts
// of 2.7, 3.9, 3.10, 3.11, 3.12 and 3.13. The test builds what CPython would hold: a thread state,
// a chain of frames (PyFrameObject.f_back up to 3.10; _PyInterpreterFrame.previous from 3.11,
// reached through tstate->cframe->current_frame on 3.11/3.12 and tstate->current_frame on 3.13),
// code objects with their names and line tables, and checks the decoded stack against it.
#include <doctest/doctest.h>

#include <string>
#include <tuple>
#include <vector>

#include "fake_python.hpp"
#include "runtime/frames.hpp"
#include "runtime/objects.hpp"

using namespace pyinspect;
using namespace pyinspect::test;
using Bytes = std::vector<uint8_t>;

namespace {

struct Ver {
  int major, minor, micro;
  bool at_least(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
  std::string str() const { return std::to_string(major) + "." + std::to_string(minor); }
};
const Ver kVersions[] = {{2, 7, 18}, {3, 9, 18}, {3, 10, 13}, {3, 11, 7}, {3, 12, 1}, {3, 13, 0}};

struct FrameSpec {
  std::string name, qualname, file;
  int firstlineno;
  int line;  // the line of the instruction the frame is at: firstlineno + 2 or more
};

// _PyInterpreterFrame.owner values (Include/internal/pycore_frame.h, 3.11+).
constexpr uint8_t kOwnedByThread = 0, kOwnedByGenerator = 1, kOwnedByCStack = 3;
constexpr int kFirstTraceable = 2;  // code units before the first traceable instruction
constexpr int kUnit = 3;            // the code unit (2 bytes each from 3.6) the frames are at

// A line table of the version's format in which the instructions before byte 4 are on
// firstlineno + 1 and those at bytes 4-7 on `line`.
Bytes line_table(const Ver& v, int firstlineno, int line) {
  int d = line - firstlineno;
  REQUIRE(d >= 2);
  REQUIRE(d < 120);
  if (!v.at_least(3, 10)) return {4, 1, 2, static_cast<uint8_t>(d - 1)};  // (addr incr, line incr)
  if (v.minor == 10) return {4, 1, 4, static_cast<uint8_t>(d - 1)};        // (end delta, line delta)
  Bytes t = {loc_head(13, 2)};                                            // no-column entries
  put_svarint(t, 1);
  t.push_back(loc_head(13, 2));
  put_svarint(t, d - 1);
  return t;
}

class FakeThread {
 public:
  explicit FakeThread(const Ver& v) : v_(v), layout_(layout_for(v.major, v.minor, v.micro)), py_(layout_) {
    py_.types.frame = py_.type_object("frame", 0);
    tstate_ = py_.alloc(static_cast<size_t>(py_.size(S::sz_PyThreadState)));
    if (v.at_least(3, 11) && !v.at_least(3, 13)) {
      cframe_ = py_.alloc(64);
      py_.ptr(py_.at(tstate_, F::ts_cframe), cframe_);
    }
  }

  FakePython& py() { return py_; }
  const Layout& layout() const { return layout_; }
  RemoteAddr tstate() const { return tstate_; }
  RemoteAddr cframe() const { return cframe_; }

  RemoteAddr code(const FrameSpec& s) {
    RemoteAddr co = py_.object(py_.types.code, static_cast<size_t>(py_.size(S::sz_PyCodeObject)) + 64);
    py_.i32(py_.at(co, F::co_firstlineno), s.firstlineno);
    py_.ptr(py_.at(co, F::co_name), py_.str(s.name));
    py_.ptr(py_.at(co, F::co_filename), py_.str(s.file));
    if (v_.at_least(3, 11)) {
      py_.ptr(py_.at(co, F::co_qualname), py_.str(s.qualname));
      py_.i32(py_.at(co, F::co_firsttraceable), kFirstTraceable);
    }
    py_.ptr(py_.at(co, v_.at_least(3, 10) ? F::co_linetable : F::co_lnotab),
            py_.bytes(line_table(v_, s.firstlineno, s.line)));
    return co;
  }

  // A frame of `code` at code unit `unit` (byte offset 2*unit; 2.7: byte offset 2*unit too).
  RemoteAddr frame(RemoteAddr code, int unit = kUnit, uint8_t owner = kOwnedByThread) {
    if (!v_.at_least(3, 11)) {
      RemoteAddr f = py_.object(py_.types.frame, static_cast<size_t>(py_.size(S::sz_PyFrameObject)));
      py_.ptr(py_.at(f, F::fo_code), code);
      // f_lasti: a byte offset up to 3.9, a code-unit index on 3.10.
      py_.i32(py_.at(f, F::fo_lasti), v_.minor == 10 ? unit : 2 * unit);
      return f;
    }
    RemoteAddr f = py_.alloc(static_cast<size_t>(py_.size(S::sz_PyInterpreterFrame)));
    py_.ptr(py_.at(f, F::if_code), code);
    py_.ptr(py_.at(f, F::if_instr), code + py_.off(F::co_code_adaptive) + 2 * unit);
    py_.u8(py_.at(f, F::if_owner), owner);
    return f;
  }

  void link(RemoteAddr f, RemoteAddr back) {
    py_.ptr(py_.at(f, v_.at_least(3, 11) ? F::if_previous : F::fo_back), back);
  }

  void set_top(RemoteAddr f) {
    if (!v_.at_least(3, 11))
      py_.ptr(py_.at(tstate_, F::ts_frame), f);
    else if (!v_.at_least(3, 13))
      py_.ptr(py_.at(cframe_, F::cframe_current_frame), f);
    else
      py_.ptr(py_.at(tstate_, F::ts_current_frame), f);
  }

  // Builds the chain innermost first and returns the frames.
  std::vector<RemoteAddr> chain(const std::vector<FrameSpec>& specs) {
    std::vector<RemoteAddr> frames;
    for (const auto& s : specs) frames.push_back(frame(code(s)));
    for (size_t i = 0; i + 1 < frames.size(); ++i) link(frames[i], frames[i + 1]);
    if (!frames.empty()) set_top(frames[0]);
    return frames;
  }

 private:
  Ver v_;
  Layout layout_;
  FakePython py_;
  RemoteAddr tstate_, cframe_;
};

using Decoded = std::tuple<std::string, std::string, std::string, int, int>;  // function, name, file, line, first

std::vector<Decoded> decode_all(const ObjectReader& r, const FrameWalk& walk) {
  FrameDecoder dec(r);
  std::vector<Decoded> out;
  for (const auto& raw : walk.frames)
    if (auto fi = dec.decode(raw)) out.emplace_back(fi->function, fi->name, fi->file, fi->line, fi->first_line);
  return out;
}

Decoded expected(const Ver& v, const FrameSpec& s) {
  // The qualified name exists from 3.11 on (co_qualname); before, the function is co_name.
  return {v.at_least(3, 11) ? s.qualname : s.name, s.name, s.file, s.line, s.firstlineno};
}

const std::vector<FrameSpec> kSpecs = {
    {"inner", "Outer.inner", "/srv/app/models.py", 120, 125},
    {"<lambda>", "handler.<locals>.<lambda>", "/srv/app/handlers.py", 40, 42},
    {"handler", "handler", "/srv/app/handlers.py", 10, 77},
    {"<module>", "<module>", "/srv/app/main.py", 1, 9},
};

void check_chain(const Ver& v) {
  FakeThread t(v);
  auto frames = t.chain(kSpecs);
  ObjectReader r(t.py().mem, t.layout(), t.py().types);
  FrameWalk walk = walk_frames(r, t.tstate(), 100);
  CHECK_FALSE(walk.truncated);
  CHECK(walk.problem.empty());
  REQUIRE(walk.frames.size() == frames.size());
  for (size_t i = 0; i < frames.size(); ++i) CHECK(walk.frames[i].frame == frames[i]);
  std::vector<Decoded> want;
  for (const auto& s : kSpecs) want.push_back(expected(v, s));
  CHECK(decode_all(r, walk) == want);
}

}  // namespace

TEST_CASE("frames: chain of 2.7") { check_chain({2, 7, 18}); }
TEST_CASE("frames: chain of 3.9") { check_chain({3, 9, 18}); }
TEST_CASE("frames: chain of 3.10") { check_chain({3, 10, 13}); }
TEST_CASE("frames: chain of 3.11") { check_chain({3, 11, 7}); }
TEST_CASE("frames: chain of 3.12") { check_chain({3, 12, 1}); }
TEST_CASE("frames: chain of 3.13") { check_chain({3, 13, 0}); }

TEST_CASE("frames: a cycle in the chain is cut") {
  for (const Ver& v : kVersions) {
    INFO("CPython ", v.str());
    FakeThread t(v);
    auto frames = t.chain({kSpecs[0], kSpecs[1], kSpecs[2]});
    t.link(frames[2], frames[1]);  // 0 -> 1 -> 2 -> 1 -> ...
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    FrameWalk walk = walk_frames(r, t.tstate(), 1000);
    CHECK(walk.truncated);
    CHECK_FALSE(walk.problem.empty());
    REQUIRE(walk.frames.size() == 3);
    CHECK(decode_all(r, walk) == std::vector<Decoded>{expected(v, kSpecs[0]), expected(v, kSpecs[1]), expected(v, kSpecs[2])});
    // A frame that points at itself.
    t.link(frames[0], frames[0]);
    walk = walk_frames(r, t.tstate(), 1000);
    CHECK(walk.truncated);
    CHECK(walk.frames.size() == 1);
  }
}

TEST_CASE("frames: an unreadable frame pointer ends the walk") {
  for (const Ver& v : kVersions) {
    INFO("CPython ", v.str());
    FakeThread t(v);
    auto frames = t.chain({kSpecs[0], kSpecs[1]});
    t.link(frames[1], RemoteAddr(0x7fff00000000));  // nothing mapped there
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    FrameWalk walk = walk_frames(r, t.tstate(), 100);
    CHECK(walk.truncated);
    CHECK_FALSE(walk.problem.empty());
    CHECK(decode_all(r, walk) == std::vector<Decoded>{expected(v, kSpecs[0]), expected(v, kSpecs[1])});
    // The first frame already unreadable.
    t.set_top(RemoteAddr(0x7fff00001000));
    walk = walk_frames(r, t.tstate(), 100);
    CHECK(walk.truncated);
    CHECK(walk.frames.empty());
    // The thread state itself unreadable.
    walk = walk_frames(r, RemoteAddr(0x7fff00002000), 100);
    CHECK(walk.truncated);
    CHECK(walk.frames.empty());
  }
}

TEST_CASE("frames: a freed frame object ends the walk (up to 3.10)") {
  // A frame that returned sits on the free list (or as its code's spare frame) with refcount 0,
  // its f_code left in place and f_back linking the next free frame: the chain of a thread read
  // while it changed can lead there, and what follows is not the thread's stack.
  for (const Ver& v : kVersions) {
    if (v.at_least(3, 11)) continue;  // interpreter frames have no refcount
    INFO("CPython ", v.str());
    FakeThread t(v);
    auto frames = t.chain({kSpecs[0], kSpecs[1], kSpecs[2], kSpecs[3]});
    t.py().i64(t.py().at(frames[2], F::ob_refcnt), 0);
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    FrameWalk walk = walk_frames(r, t.tstate(), 100);
    CHECK(walk.truncated);
    CHECK_FALSE(walk.at_limit);
    CHECK(walk.problem == "a freed frame in the chain");
    CHECK(decode_all(r, walk) == std::vector<Decoded>{expected(v, kSpecs[0]), expected(v, kSpecs[1])});
  }
}

TEST_CASE("frames: max_frames bounds the walk") {
  for (const Ver& v : kVersions) {
    INFO("CPython ", v.str());
    FakeThread t(v);
    t.chain(kSpecs);
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    FrameWalk walk = walk_frames(r, t.tstate(), 2);
    CHECK(walk.truncated);
    CHECK(walk.frames.size() == 2);
    CHECK(decode_all(r, walk) == std::vector<Decoded>{expected(v, kSpecs[0]), expected(v, kSpecs[1])});
    walk = walk_frames(r, t.tstate(), kSpecs.size());  // exactly enough
    CHECK_FALSE(walk.truncated);
    CHECK(walk.frames.size() == kSpecs.size());
  }
}

TEST_CASE("frames: an empty thread") {
  for (const Ver& v : kVersions) {
    INFO("CPython ", v.str());
    FakeThread t(v);
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    FrameWalk walk = walk_frames(r, t.tstate(), 100);
    CHECK_FALSE(walk.truncated);
    CHECK(walk.frames.empty());
  }
}

TEST_CASE("frames: C-stack shim frames are skipped (3.12+)") {
  for (const Ver& v : {Ver{3, 12, 1}, Ver{3, 13, 0}}) {
    INFO("CPython ", v.str());
    FakeThread t(v);
    RemoteAddr f0 = t.frame(t.code(kSpecs[0]));
    RemoteAddr shim = t.frame(t.code({"<shim>", "<shim>", "<shim>", 1, 3}), kUnit, kOwnedByCStack);
    RemoteAddr f1 = t.frame(t.code(kSpecs[1]));
    t.link(f0, shim);
    t.link(shim, f1);
    t.set_top(f0);
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    FrameWalk walk = walk_frames(r, t.tstate(), 100);
    CHECK_FALSE(walk.truncated);
    REQUIRE(walk.frames.size() == 3);
    CHECK(walk.frames[1].owner == kOwnedByCStack);
    CHECK(decode_all(r, walk) == std::vector<Decoded>{expected(v, kSpecs[0]), expected(v, kSpecs[1])});
  }
}

TEST_CASE("frames: frames before their first traceable instruction are skipped (3.11+)") {
  for (const Ver& v : {Ver{3, 11, 7}, Ver{3, 12, 1}, Ver{3, 13, 0}}) {
    INFO("CPython ", v.str());
    FakeThread t(v);
    RemoteAddr f0 = t.frame(t.code(kSpecs[0]), kFirstTraceable - 1);            // pushed, not started
    RemoteAddr f1 = t.frame(t.code(kSpecs[1]), -1);                            // 3.11/3.12: prev_instr before the code
    RemoteAddr f2 = t.frame(t.code(kSpecs[2]), kFirstTraceable - 1, kOwnedByGenerator);  // a generator's: kept
    RemoteAddr f3 = t.frame(t.code(kSpecs[3]), kFirstTraceable);                // the first traceable one: kept
    t.link(f0, f1);
    t.link(f1, f2);
    t.link(f2, f3);
    t.set_top(f0);
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    FrameWalk walk = walk_frames(r, t.tstate(), 100);
    REQUIRE(walk.frames.size() == 4);
    auto got = decode_all(r, walk);
    REQUIRE(got.size() == 2);
    CHECK(std::get<1>(got[0]) == kSpecs[2].name);
    CHECK(std::get<3>(got[0]) == kSpecs[2].firstlineno + 1);  // code unit 1: bytes 0-3 of the table
    CHECK(std::get<1>(got[1]) == kSpecs[3].name);
    CHECK(std::get<3>(got[1]) == kSpecs[3].line);  // code unit 2: bytes 4-7 of the table
  }
}

TEST_CASE("frames: a frame whose lasti is -1 is on its first line (up to 3.10)") {
  for (const Ver& v : {Ver{2, 7, 18}, Ver{3, 9, 18}, Ver{3, 10, 13}}) {
    INFO("CPython ", v.str());
    FakeThread t(v);
    RemoteAddr f = t.frame(t.code(kSpecs[0]));
    t.py().i32(t.py().at(f, F::fo_lasti), -1);
    t.set_top(f);
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    auto got = decode_all(r, walk_frames(r, t.tstate(), 10));
    REQUIRE(got.size() == 1);
    CHECK(std::get<3>(got[0]) == kSpecs[0].firstlineno);
  }
}

TEST_CASE("frames: a code pointer that is not a code object") {
  for (const Ver& v : kVersions) {
    INFO("CPython ", v.str());
    FakeThread t(v);
    RemoteAddr not_code = t.py().str("not a code object");
    RemoteAddr f0 = t.frame(not_code);
    RemoteAddr f1 = t.frame(t.code(kSpecs[1]));
    t.link(f0, f1);
    t.set_top(f0);
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    FrameWalk walk = walk_frames(r, t.tstate(), 100);
    REQUIRE(walk.frames.size() == 2);
    auto got = decode_all(r, walk);
    // Kept in its place as unreadable, with its addresses: the frames around it are still right.
    REQUIRE(got.size() == 2);
    CHECK(std::get<0>(got[0]) == "???");
    CHECK(std::get<2>(got[0]) == "???");
    CHECK(got[1] == expected(v, kSpecs[1]));
    FrameDecoder dec(r);
    auto first = dec.decode(walk.frames[0]);
    REQUIRE(first.has_value());
    CHECK(first->unreadable);
    CHECK(first->frame_address == f0.value());
    CHECK(first->code_address == not_code.value());
  }
}

TEST_CASE("frames: 3.11 and 3.12 threads without a cframe have no frames") {
  for (const Ver& v : {Ver{3, 11, 7}, Ver{3, 12, 1}}) {
    INFO("CPython ", v.str());
    FakeThread t(v);
    t.py().ptr(t.py().at(t.tstate(), F::ts_cframe), RemoteAddr());
    ObjectReader r(t.py().mem, t.layout(), t.py().types);
    FrameWalk walk = walk_frames(r, t.tstate(), 100);
    CHECK_FALSE(walk.truncated);
    CHECK(walk.frames.empty());
  }
}
