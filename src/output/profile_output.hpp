#pragma once
#include <nlohmann/json.hpp>
#include <ostream>
#include "profile/profile.hpp"
namespace pyinspect {
void write_folded(std::ostream& out, const Profile& p);
nlohmann::json speedscope_json(const Profile& p);
nlohmann::json profile_json(const Profile& p);
void write_flamegraph(std::ostream& out, const Profile& p);
}
