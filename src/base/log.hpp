#pragma once
// Logging goes to stderr only, so stdout stays parseable (docs/architecture.md, principles: results on stdout). spdlog
// does the writing, in log.cpp alone; this header is light so that every file may log:
//   LOG_INFO("read " << n << " units of " << path);
#include <cstdint>
#include <sstream>
#include <string>

namespace pyinspect {

// verbosity: 0 = warnings, 1 = info (-v), 2+ = debug (-vv).
void init_logging(int verbosity);

namespace log {
enum class Level : int { debug = 0, info = 1, warn = 2 };
bool enabled(Level level);
void emit(Level level, const std::string& message);
// "0x7f..." for addresses in messages.
std::string hex(uint64_t value);
}  // namespace log

}  // namespace pyinspect

#define PYINSPECT_LOG(level, expr)                                \
  do {                                                            \
    if (::pyinspect::log::enabled(level)) {                       \
      std::ostringstream pyinspect_log_stream_;                   \
      pyinspect_log_stream_ << expr;                              \
      ::pyinspect::log::emit(level, pyinspect_log_stream_.str()); \
    }                                                             \
  } while (0)
#define LOG_DEBUG(expr) PYINSPECT_LOG(::pyinspect::log::Level::debug, expr)
#define LOG_INFO(expr) PYINSPECT_LOG(::pyinspect::log::Level::info, expr)
#define LOG_WARN(expr) PYINSPECT_LOG(::pyinspect::log::Level::warn, expr)
