#include "output/profile_output.hpp"
namespace pyinspect {
void write_folded(std::ostream& out, const Profile& p) {
  for (auto& s : p.stacks) { bool first=true; for (auto f : s.frames) { out << (first?"":";") << p.frames[f].label(); first=false;} out << " " << s.count << "\n"; }
}
nlohmann::json speedscope_json(const Profile&) { return {}; }
nlohmann::json profile_json(const Profile& p) {
  nlohmann::json j; j["stats"]={{"taken",p.stats.taken},{"missed",p.stats.missed},{"failed",p.stats.failed},{"thread_samples",p.stats.thread_samples},{"idle_samples",p.stats.idle_samples},{"duration_s",p.stats.duration_s},{"cpu_s",p.stats.cpu_s}};
  j["frames"]=nlohmann::json::array(); for (auto& f: p.frames) j["frames"].push_back({{"kind",static_cast<int>(f.kind)},{"function",f.function},{"file",f.file},{"line",f.line}});
  j["stacks"]=nlohmann::json::array(); for (auto& s: p.stacks) j["stacks"].push_back({{"frames",s.frames},{"count",s.count}});
  return j; }
void write_flamegraph(std::ostream& out, const Profile& p) { write_folded(out, p); }
}
