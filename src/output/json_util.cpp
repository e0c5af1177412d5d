#include "output/json_util.hpp"

namespace pyinspect {
std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace pyinspect
