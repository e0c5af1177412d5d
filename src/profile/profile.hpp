#pragma once
// A sampled profile as the output layer sees it: distinct stacks with how often each was seen,
// over a table of distinct frames, plus what the sampler measured about itself. No remote reads
// happen on these.
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace pyinspect {

struct ProfileFrame {
  enum class Kind { Python, Thread, Process, Native };
  Kind kind = Kind::Python;
  std::string function;  // qualified name (3.11+) or co_name; a thread's or process's label;
                         // native: the C function ("??" when nothing names it)
  std::string file;      // empty for Thread and Process roots; native: the source file, else the library
  int line = -1;         // -1: aggregated by function (--function), or no line known
  bool is_root() const { return kind == Kind::Thread || kind == Kind::Process; }
  bool operator==(const ProfileFrame& o) const {
    return kind == o.kind && line == o.line && function == o.function && file == o.file;
  }
  // "function (file:line)", "function (file)" by function, the label alone for roots; native
  // frames are the same with "(C) " before the function.
  std::string label() const;
};

struct ProfileStack {
  std::vector<uint32_t> frames;  // indexes into Profile::frames, outermost (root) first
  uint64_t count = 0;            // samples that saw exactly this stack
};

// What the sampler measured about its own work; the title line and the summary print it.
struct SamplerStats {
  double rate_hz = 0;       // asked for
  double duration_s = 0;    // from the first sample to the last
  uint64_t ticks = 0;       // sampling instants that were due
  uint64_t taken = 0;       // instants at which the target was read
  uint64_t missed = 0;      // instants skipped because pyinspect fell behind
  uint64_t failed = 0;      // reads that could not be completed (counted, not recorded)
  uint64_t torn = 0;        // thread stacks seen to change while read, and so read again at once
  uint64_t thread_samples = 0;  // stacks recorded (one per thread per instant)
  uint64_t idle_samples = 0;    // thread stacks left out as idle (without --idle)
  uint64_t gil_samples = 0;     // thread stacks taken while that thread held the GIL
  uint64_t gil_instants = 0;    // instants at which some thread held the GIL
  uint64_t empty = 0;           // instants at which no thread had a Python frame
  double cpu_s = 0;             // pyinspect's own CPU time while sampling
  double pause_s = 0;           // the target's time stopped (blocking mode)
  double achieved_hz() const { return duration_s > 0 ? static_cast<double>(taken) / duration_s : 0; }
};

struct Profile {
  std::string title;   // the command line profiled
  int pid = 0;
  std::string python;  // "CPython 3.11.7"
  bool blocking = false;
  bool idle = false;       // idle threads included
  bool gil_only = false;
  bool by_function = false;
  bool native = false;  // C frames recorded too (record --native)
  std::vector<ProfileFrame> frames;
  std::vector<ProfileStack> stacks;
  SamplerStats stats;

  uint64_t total() const;  // samples over every stack
  // The index of `f` in frames, added if new.
  uint32_t intern(const ProfileFrame& f);
  // Adds one sample of `stack` (outermost first), `n` times.
  void add(const std::vector<uint32_t>& stack, uint64_t n = 1);
  // Forgets the stacks (top, between intervals); the frames stay.
  void clear_stacks() {
    stacks.clear();
    stack_index_.clear();
  }

 private:
  struct FrameHash {
    size_t operator()(const ProfileFrame& f) const;
  };
  struct StackHash {
    size_t operator()(const std::vector<uint32_t>& s) const;
  };
  std::unordered_map<ProfileFrame, uint32_t, FrameHash> frame_index_;
  std::unordered_map<std::vector<uint32_t>, size_t, StackHash> stack_index_;
};

}  // namespace pyinspect
