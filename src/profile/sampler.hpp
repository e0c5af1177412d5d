#pragma once
// Sampling a target's Python stacks on a steady clock (pyinspect record, pyinspect top).
//
// Each target is set up once (layout, interpreter head, types: what `stack` learns), then each
// sampling instant reads the thread states and frame chains. The pages those reads touched are
// remembered and fetched again at the next instant in one process_vm_readv, before the walk, so
// that a sample costs one system call for what it read last time plus reads of what moved; code
// objects are decoded once and checked against their address at each instant (a code object freed
// and another made in its place is decoded again). Nothing here writes to the target.
#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "profile/profile.hpp"

namespace pyinspect {

struct SamplerOptions {
  double rate_hz = 100;
  double duration_s = 0;  // 0: until stopped or every target has exited
  bool blocking = false;  // stop the target's threads at each instant (consistent stacks)
  bool idle = false;      // keep threads the kernel does not see running
  bool gil_only = false;  // only the thread that holds the GIL
  bool threads = false;   // a root frame per thread
  bool by_function = false;
  bool subprocesses = false;  // follow the targets' Python descendants (a root frame per process)
  size_t max_frames = 4096;   // per thread stack; deeper stacks keep their innermost frames
  bool use_dwarf = true;
  // C frames too, merged with the Python frames as stack --native merges them (needs blocking:
  // registers are read from stopped threads); native_all keeps the evaluation loop's frames.
  bool native = false;
  bool native_all = false;
  bool realtime = false;  // runs under SCHED_FIFO: when behind, still sleeps a little each instant
  // A child pyinspect started (record -- CMD): sampling ends when it exits, and its status is
  // collected (Sampler::child_status).
  int child = 0;
};

class TargetSampler;

class Sampler {
 public:
  Sampler(const SamplerOptions& opts, Profile& profile);
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Adds a process to sample; throws Error as PythonProcess does (not Python, no permission...).
  // With `when_ready`, only once its interpreter is set up (a program just started: what is read
  // of it before, its version, its types, may not hold afterwards); false if it is not yet.
  bool add_target(int pid, bool when_ready = false);
  // Samples until the duration has passed, `stop` is set (by a signal handler), or every target
  // has exited. `report` is called about once per `interval` and when sampling ends (its
  // argument then true); it returns false to stop.
  void run(const volatile std::sig_atomic_t& stop, std::chrono::milliseconds interval,
           const std::function<bool(bool last)>& report);
  const SamplerStats& stats() const { return stats_; }
  size_t targets() const { return targets_.size(); }
  // Processes sampled at some point (the root and, with subprocesses, its Python descendants).
  const std::set<int>& seen_pids() const { return seen_; }
  // The wait status of `SamplerOptions::child` once it has exited.
  std::optional<int> child_status() const { return child_status_; }
  // The profile's root-frame label for a process, as record prints it.
  static std::string process_label(int pid, const std::string& cmdline);

 private:
  void sample_all();
  void find_descendants();
  bool child_exited();

  SamplerOptions opts_;
  Profile& profile_;
  SamplerStats stats_;
  std::vector<std::unique_ptr<TargetSampler>> targets_;
  std::set<int> seen_;
  std::map<int, int> tries_;  // descendant pid -> attempts to read it as Python
  std::optional<int> child_status_;
};

}  // namespace pyinspect
