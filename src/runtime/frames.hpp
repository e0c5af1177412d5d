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
  std::string problem;  // why the walk stopped early, if it did
};

// The frame chain of one thread state, bounded by `max_frames` and safe against cycles.
FrameWalk walk_frames(const ObjectReader& r, RemoteAddr tstate, size_t max_frames);

// Decoded facts of a code object, cached across frames (deep recursion repeats one code).
struct CodeInfo {
  std::string name, qualname, file;
  int first_line = 0;
  std::vector<uint8_t> line_table;
  int64_t first_traceable = 0;  // 3.11+: code units before the first traceable instruction
  bool valid = false;
};

class FrameDecoder {
 public:
  explicit FrameDecoder(const ObjectReader& r) : r_(r) {}
  // nullopt for frames that are not Python frames of their own (C-stack shims, frames not yet
  // started on 3.11+); a FrameInfo with "<unknown>" when the code cannot be read.
  std::optional<FrameInfo> decode(const RawFrame& f);
  const CodeInfo& code(RemoteAddr code);

 private:
  std::optional<std::vector<uint8_t>> read_bytes_object(RemoteAddr obj, size_t max) const;
  int line_for(const CodeInfo& c, int64_t addr) const;
  const ObjectReader& r_;
  std::unordered_map<RemoteAddr, CodeInfo> cache_;
};

}  // namespace pyinspect
