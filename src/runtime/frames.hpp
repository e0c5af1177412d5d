#pragma once
// Walking a thread's Python frames and turning code objects into function, file and line.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/model.hpp"
#include "runtime/objects.hpp"

namespace pyinspect {

// One frame as read while the target is paused: just enough to decode later.
struct RawFrame {
  RemoteAddr frame;
  RemoteAddr code;
  int64_t lasti = -1;  // <=3.10: f_lasti (bytes; 3.10: code units)
  RemoteAddr instr;    // 3.11+: prev_instr / instr_ptr
  int owner = 0;       // 3.11+: _PyInterpreterFrame.owner
  bool is_entry = false;
};

struct FrameWalk {
  std::vector<RawFrame> frames;  // innermost first
  bool truncated = false;
  bool at_limit = false;  // stopped at max_frames, not for want of readable memory
  std::string problem;    // why the walk stopped early, if it did
};

// 3.12+: a frame the evaluation loop pushes on the C stack to mark where one call of it begins.
bool is_shim(const Facts& facts, const RawFrame& f);
// Whether frames[i] is the outermost Python frame of one C-level call of the evaluation loop.
bool ends_eval_call(const Facts& facts, const std::vector<RawFrame>& frames, size_t i);

// The frame chain of one thread state, bounded by `max_frames` and safe against cycles.
FrameWalk walk_frames(const ObjectReader& r, RemoteAddr tstate, size_t max_frames);
// One frame (a PyFrameObject <=3.10, a _PyInterpreterFrame 3.11+) as the walk reads it.
std::optional<RawFrame> read_frame(const ObjectReader& r, RemoteAddr frame);
// The thread's innermost frame (null: none); nullopt, with the reason, when it cannot be read.
std::optional<RemoteAddr> current_frame(const ObjectReader& r, RemoteAddr tstate, std::string* problem = nullptr);
// The code object of a 3.11+ _PyInterpreterFrame (f_code, or 3.14's tagged f_executable).
std::optional<RemoteAddr> interp_frame_code(const ObjectReader& r, RemoteAddr iframe);
// The name of local slot `slot` of a frame running `code`: its variables, then cells and free
// variables; "stack" for the value stack above them.
std::string local_name(const ObjectReader& r, RemoteAddr code, int64_t slot);

// Decoded facts of a code object, cached across frames (deep recursion repeats one code).
struct CodeInfo {
  std::string name, qualname, file;
  int first_line = 0;
  std::vector<uint8_t> line_table;
  int64_t first_traceable = 0;  // 3.11+: code units before the first traceable instruction
  bool valid = false;
  bool complete = false;     // its name, file and line table were read too (else placeholders)
  uint64_t serial = 0;       // distinct for every decoding: a key that changes when the code does
  uint64_t fingerprint = 0;  // what revalidation compares (see FrameDecoder::next_generation)
  uint64_t checked = 0;      // the generation it was last checked in
  mutable std::unordered_map<int64_t, int> lines;  // instruction offset -> line, as looked up
};

class FrameDecoder {
 public:
  explicit FrameDecoder(const ObjectReader& r) : r_(r) {}
  // nullopt for frames that are not Python frames of their own (C-stack shims, frames not yet
  // started on 3.11+); an unreadable FrameInfo ("???") when its code object cannot be read.
  std::optional<FrameInfo> decode(const RawFrame& f);
  // The code a frame runs and its line, without building a FrameInfo (a profiler's hot path);
  // nullopt as decode() for frames that are not Python frames of their own.
  struct Location {
    const CodeInfo* code;
    int line;
  };
  std::optional<Location> locate(const RawFrame& f);
  const CodeInfo& code(RemoteAddr code);
  // For a reader that comes back to a live target again and again (the profiler): from now on a
  // cached code object is checked once per generation against the object at its address (its
  // type, first line and the name, file and line-table objects it points to), and decoded again
  // if it changed: a code object freed and another made at its address.
  void next_generation() { ++generation_; }
  // Drops what is cached of one code object (it is decoded again when next met).
  void forget(RemoteAddr code) { cache_.erase(code); }

 private:
  int line_for(const CodeInfo& c, int64_t addr) const;
  std::optional<uint64_t> fingerprint(RemoteAddr code) const;
  CodeInfo decode_code(RemoteAddr addr);
  const ObjectReader& r_;
  std::unordered_map<RemoteAddr, CodeInfo> cache_;
  uint64_t generation_ = 0;
  uint64_t serial_ = 0;
  mutable std::vector<int64_t> print_offsets_;  // the fields fingerprint() reads
};

}  // namespace pyinspect
