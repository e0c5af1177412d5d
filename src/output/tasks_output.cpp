#include "output/tasks_output.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "base/log.hpp"

namespace pyinspect {

namespace {

std::string task_label(const AsyncTask& t) {
  return "(T) " + (t.name.empty() ? "Task " + log::hex(t.address) : t.name);
}

std::string awaiting_text(const AsyncTask& t) {
  if (t.awaiting_kind.empty()) return "";
  if (t.awaiting_kind == "Task") return "";  // the tree shows it
  return " — awaits " + t.awaiting_kind + " " + log::hex(t.awaiting);
}

std::string frame_text(const FrameInfo& f) {
  return f.function + " (" + f.file + ":" + (f.line >= 0 ? std::to_string(f.line) : std::string("?")) + ")";
}

}  // namespace

void print_tasks_text(std::ostream& out, const TasksSnapshot& snap, const TextStyle& style) {
  std::string cmd = snap.command.size() > 100 ? snap.command.substr(0, 97) + "..." : snap.command;
  out << (style.color ? "\033[1m" : "") << "Process " << snap.pid << ": " << cmd << (style.color ? "\033[0m" : "")
      << " — CPython " << snap.python.version << " (layout from " << snap.python.layout_source << ")\n";
  if (!snap.core.empty())
    out << "(read from the core file " << snap.core << ")\n";
  else if (!snap.paused)
    out << "(read without pausing the target: the tasks may be inconsistent)\n";
  std::map<uint64_t, const AsyncTask*> by_addr;
  for (const auto& t : snap.tasks) by_addr[t.address] = &t;
  std::set<uint64_t> in_cycle;
  for (const auto& c : snap.cycles) in_cycle.insert(c.begin(), c.end());
  std::set<uint64_t> printed;
  // One task and, under it, the tasks it awaits.
  constexpr size_t kMaxDepth = 100;  // deeper chains of tasks are cut, and say so
  std::function<void(const AsyncTask&, const std::string&, bool, bool, size_t)> node =
      [&](const AsyncTask& t, const std::string& prefix, bool last, bool root, size_t depth) {
    std::string branch = root ? "" : (last ? "└── " : "├── ");
    std::string under = root ? "" : (last ? "    " : "│   ");
    out << prefix << branch << task_label(t) << awaiting_text(t);
    if (style.show_addresses) out << " id=" << log::hex(t.address);
    if (printed.count(t.address)) {
      out << " (shown above)\n";
      return;
    }
    if (depth >= kMaxDepth) {
      out << " (and the tasks it awaits: deeper than " << kMaxDepth << " levels, in --json)\n";
      return;
    }
    out << "\n";
    printed.insert(t.address);
    std::vector<const AsyncTask*> kids;
    for (uint64_t a : t.awaits)
      if (auto it = by_addr.find(a); it != by_addr.end() && !in_cycle.count(a)) kids.push_back(it->second);
    std::string inner = prefix + under + (kids.empty() ? "    " : "│   ");
    for (const auto& f : t.frames) out << inner << frame_text(f) << "\n";
    if (!t.problem.empty()) out << inner << "[" << t.problem << "]\n";
    for (size_t i = 0; i < kids.size(); ++i) node(*kids[i], prefix + under, i + 1 == kids.size(), false, depth + 1);
  };
  for (const auto& loop : snap.loops) {
    out << "Event loop " << log::hex(loop.address) << " (" << loop.type << ")";
    if (loop.thread) out << ", run by thread " << loop.thread << " \"" << loop.thread_name << "\"";
    out << ": " << loop.tasks << (loop.tasks == 1 ? " task" : " tasks") << "\n";
    for (const auto& t : snap.tasks)
      if (t.loop == loop.address && t.awaited_by.empty() && !in_cycle.count(t.address)) node(t, "", true, true, 0);
    // Tasks awaited only from within a cycle.
    for (const auto& t : snap.tasks)
      if (t.loop == loop.address && !printed.count(t.address) && !in_cycle.count(t.address)) {
        bool from_cycle = std::all_of(t.awaited_by.begin(), t.awaited_by.end(), [&](uint64_t a) { return in_cycle.count(a) > 0; });
        if (from_cycle) node(t, "", true, true, 0);
      }
  }
  if (!snap.cycles.empty()) {
    out << "Await cycles (these tasks wait for each other and never finish):\n";
    for (const auto& c : snap.cycles) {
      out << "  ";
      for (uint64_t a : c) out << task_label(*by_addr[a]) << " → ";
      out << task_label(*by_addr[c[0]]) << "\n";
      for (uint64_t a : c) {
        const AsyncTask& t = *by_addr[a];
        out << "    " << task_label(t) << awaiting_text(t) << "\n";
        for (const auto& f : t.frames) out << "        " << frame_text(f) << "\n";
        printed.insert(a);
      }
    }
  }
  // What neither a tree nor a cycle showed: tasks awaited only from within a cycle's component.
  bool header = false;
  for (const auto& t : snap.tasks) {
    if (printed.count(t.address) || in_cycle.count(t.address)) continue;
    if (!header) out << "Tasks awaited from within those cycles:\n";
    header = true;
    node(t, "", true, true, 0);
  }
  if (snap.tasks.empty()) out << "(no pending asyncio tasks)\n";
  for (const auto& w : snap.warnings) out << "warning: " << w << "\n";
}

nlohmann::json tasks_json(const TasksSnapshot& snap) {
  nlohmann::json tasks = nlohmann::json::array();
  for (const auto& t : snap.tasks) {
    nlohmann::json frames = nlohmann::json::array();
    for (const auto& f : t.frames)
      frames.push_back({{"function", f.function},
                        {"name", f.name},
                        {"file", f.file},
                        {"line", f.line >= 0 ? nlohmann::json(f.line) : nlohmann::json(nullptr)}});
    nlohmann::json awaiting = nullptr;
    if (!t.awaiting_kind.empty()) awaiting = {{"kind", t.awaiting_kind}, {"address", t.awaiting}};
    tasks.push_back({{"id", t.address},
                     {"name", t.name.empty() ? nlohmann::json(nullptr) : nlohmann::json(t.name)},
                     {"state", t.state},
                     {"loop", t.loop},
                     {"frames", frames},
                     {"awaiting", awaiting},
                     {"awaits", t.awaits},
                     {"awaited_by", t.awaited_by},
                     {"problem", t.problem.empty() ? nlohmann::json(nullptr) : nlohmann::json(t.problem)}});
  }
  nlohmann::json loops = nlohmann::json::array();
  for (const auto& l : snap.loops)
    loops.push_back({{"address", l.address},
                     {"type", l.type},
                     {"thread", l.thread ? nlohmann::json(l.thread) : nlohmann::json(nullptr)},
                     {"thread_name", l.thread ? nlohmann::json(l.thread_name) : nlohmann::json(nullptr)},
                     {"tasks", l.tasks}});
  nlohmann::json out = snapshot_json_header(snap.pid, snap.command, snap.python, snap.paused, snap.pause_ns,
                                            snap.elapsed_ns);
  out.update({{"core", snap.core.empty() ? nlohmann::json() : nlohmann::json(snap.core)},
              {"registry", snap.registry},
              {"loops", loops},
              {"tasks", tasks},
              {"cycles", snap.cycles},
              {"warnings", snap.warnings}});
  return out;
}

}  // namespace pyinspect
