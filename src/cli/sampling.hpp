#pragma once
// What `record` and `top` share: the sampling options, stopping on a signal, and starting the
// program to profile (-- COMMAND).
#include <csignal>
#include <string>
#include <vector>

#include "cli/options.hpp"
#include "profile/sampler.hpp"

namespace pyinspect {

struct SamplingArgs {
  SamplerOptions opts;
  bool blocking = false, nonblocking = false, no_dwarf = false;
  int realtime = -1;  // --realtime[=PRIO]: sample under SCHED_FIFO at this priority (-1: not given)
  // Copies the choices into the profile's header.
  void describe(Profile& p) const;
};

// --realtime: from now on pyinspect runs under SCHED_FIFO at `priority` (as perf record -r), so
// that other work on the machine does not delay its instants; processes it starts from now on do
// not inherit it (SCHED_RESET_ON_FORK). Throws Error(Permission) where it is not allowed.
void enter_realtime(int priority);

void add_sampling_options(po::options_description& desc, SamplingArgs& sa);
// Checks the values and settles blocking/nonblocking; throws Error(Usage).
void check_sampling_options(SamplingArgs& sa);

// SIGINT, SIGTERM and SIGHUP set the flag while this lives (sampling stops and the profile is
// written); a second one ends pyinspect as it would otherwise.
class StopFlag {
 public:
  StopFlag();
  ~StopFlag();
  StopFlag(const StopFlag&) = delete;
  StopFlag& operator=(const StopFlag&) = delete;
  const volatile std::sig_atomic_t& flag() const;
};

// Starts COMMAND (searched in PATH) as pyinspect's child; throws Error if it cannot.
int start_command(const std::vector<std::string>& command);
std::string join_command(const std::vector<std::string>& command);
// `v` with `digits` decimals (the figures record and top print).
std::string fixed(double v, int digits);
// Waits until the child is a Python process pyinspect can read and adds it to the sampler.
// False if it ended first, or did not become one within 10 s (said on stderr).
bool attach_started(Sampler& sampler, int child, const StopFlag& stop);
// Waits for the child to end; its exit code (128+N if killed by signal N), to pass through.
int finish_command(int child, const Sampler* sampler);

}  // namespace pyinspect
