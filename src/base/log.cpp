#include "base/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace pyinspect {

namespace {
int g_threshold = static_cast<int>(log::Level::warn);
}

void init_logging(int verbosity) {
  auto logger = spdlog::stderr_color_mt("pyinspect");
  logger->set_pattern("pyinspect: %^%l%$: %v");
  logger->set_level(spdlog::level::debug);
  spdlog::set_default_logger(logger);
  g_threshold = verbosity <= 0 ? 2 : verbosity == 1 ? 1 : 0;
}

namespace log {
bool enabled(Level level) {
  return static_cast<int>(level) >= g_threshold;
}

void emit(Level level, const std::string& message) {
  switch (level) {
    case Level::debug:
      spdlog::debug(message);
      break;
    case Level::info:
      spdlog::info(message);
      break;
    case Level::warn:
      spdlog::warn(message);
      break;
  }
}

std::string hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(value));
  return buf;
}
}  // namespace log

}  // namespace pyinspect
