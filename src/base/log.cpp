#include "base/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace pyinspect {

void init_logging(int verbosity) {
  auto logger = spdlog::stderr_color_mt("pyinspect");
  logger->set_pattern("pyinspect: %^%l%$: %v");
  logger->set_level(verbosity <= 0   ? spdlog::level::warn
                    : verbosity == 1 ? spdlog::level::info
                                     : spdlog::level::debug);
  spdlog::set_default_logger(logger);
}

}  // namespace pyinspect
