#pragma once
// Logging goes to stderr only, so stdout stays parseable (DESIGN principle 6).
#include <spdlog/spdlog.h>

namespace pyinspect {
// verbosity: 0 = warnings, 1 = info (-v), 2+ = debug (-vv).
void init_logging(int verbosity);
}  // namespace pyinspect
