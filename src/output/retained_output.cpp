#include "output/retained_output.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace pyinspect {

namespace {
int percent(double share) { return static_cast<int>(std::lround(100.0 * share)); }

// "40000 items" -> "40,000 items": the suspect line is read by people.
std::string grouped(const std::string& repr) {
  size_t digits = 0;
  while (digits < repr.size() && std::isdigit(static_cast<unsigned char>(repr[digits]))) ++digits;
  if (digits < 4 || repr.compare(digits, 5, " item") != 0) return repr;
  std::string out;
  for (size_t i = 0; i < digits; ++i) {
    if (i && (digits - i) % 3 == 0) out += ',';
    out += repr[i];
  }
  return out + repr.substr(digits);
}

nlohmann::json row_json(const RetainedRow& x) {
  return {{"address", x.address},
          {"kind", x.kind},
          {"label", x.repr},
          {"size", x.size ? nlohmann::json(*x.size) : nlohmann::json(nullptr)},
          {"retained_size", x.retained_size},
          {"retained_count", x.retained_count},
          {"share", x.share},
          {"dominator", x.dominator ? nlohmann::json(*x.dominator) : nlohmann::json(nullptr)},
          {"chain", x.chain}};
}
}  // namespace

std::string size_text(uint64_t bytes) {
  char buf[32];
  static const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
    return buf;
  }
  double v = static_cast<double>(bytes) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof *units) {
    v /= 1024;
    ++u;
  }
  std::snprintf(buf, sizeof buf, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

std::string leak_suspect_line(const RetainedRow& x) {
  std::string what = x.kind;
  if (!x.repr.empty() && x.repr != x.kind) what += ", " + grouped(x.repr);
  return "Leak suspect: " + x.chain + " (" + what + ") retains " + size_text(x.retained_size) + " (" +
         std::to_string(percent(x.share)) + "%)";
}

void print_retained_text(std::ostream& out, const RetainedResult& r, const TextStyle& style) {
  const char* bold = style.color ? "\033[1m" : "";
  const char* yellow = style.color ? "\033[33m" : "";
  const char* reset = style.color ? "\033[0m" : "";
  out << "Retained sizes: " << r.reachable_objects << " objects (" << size_text(r.reachable_size)
      << ") in the dominator tree of " << r.roots << " roots";
  if (r.unreachable_objects)
    out << "; " << r.unreachable_objects << " objects (" << size_text(r.unreachable_size)
        << ") no root reaches are in no tree (unreachable cycles, objects only C state holds)";
  out << "\n";
  if (!r.core.empty())
    out << "(read from the core file " << r.core << ")\n";
  else if (!r.paused)
    out << "(copied without pausing the target: the graph may be inconsistent)\n";
  for (const auto& w : r.warnings) out << "warning: " << w << "\n";
  out << bold << " Index        Address       Size   Retained   %  Objects  Kind" << reset << "\n";
  char line[160];
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const RetainedRow& x = r.rows[i];
    std::string size = x.size ? std::to_string(*x.size) : "-";
    std::snprintf(line, sizeof line, "%6zu %#14llx %10s %10llu %3d %8llu  ", i, static_cast<unsigned long long>(x.address),
                  size.c_str(), static_cast<unsigned long long>(x.retained_size), percent(x.share),
                  static_cast<unsigned long long>(x.retained_count));
    out << line << x.kind;
    if (!x.repr.empty() && x.repr != x.kind) out << "  " << x.repr;
    out << "\n" << std::string(7, ' ') << x.chain << "\n";
  }
  if (r.rows.size() < r.listable)
    out << "<" << r.listable - r.rows.size() << " more objects retain less; --top N shows more>\n";
  if (!r.suspects.empty()) out << "\n";
  for (const auto& x : r.suspects) out << yellow << leak_suspect_line(x) << reset << "\n";
  out << "\nNot listed: modules, their namespaces and the interpreter's own roots (sys.modules, builtins, "
         "interned strings), which retain what they hold by design; and an object that passes "
      << percent(kPassThroughShare) << "% or more of what it retains on to one object it dominates (that one is "
      << "listed, its chain through it). The sizes are sys.getsizeof's.\n";
  if (r.unknown_size_objects)
    out << r.unknown_size_objects << " objects counted with size 0, their size unknown (pyinspect heap says why)\n";
}

nlohmann::json retained_json(const RetainedResult& r) {
  nlohmann::json rows = nlohmann::json::array(), suspects = nlohmann::json::array();
  for (const auto& x : r.rows) rows.push_back(row_json(x));
  for (const auto& x : r.suspects) {
    nlohmann::json j = row_json(x);
    j["text"] = leak_suspect_line(x);
    suspects.push_back(j);
  }
  return {{"pid", r.pid},
          {"python", python_json(r.python)},
          {"total_objects", r.total_objects},
          {"total_size", r.total_size},
          {"reachable_objects", r.reachable_objects},
          {"reachable_size", r.reachable_size},
          {"unreachable_objects", r.unreachable_objects},
          {"unreachable_size", r.unreachable_size},
          {"unknown_size_objects", r.unknown_size_objects},
          {"roots", r.roots},
          {"graph_references", r.graph_references},
          {"listable", r.listable},
          {"retained", rows},
          {"leak_suspects", suspects},
          {"paused", r.paused},
          {"core", r.core.empty() ? nlohmann::json() : nlohmann::json(r.core)},
          {"pause_us", r.pause_ns / 1000.0},
          {"elapsed_us", r.elapsed_ns / 1000.0},
          {"warnings", r.warnings}};
}

}  // namespace pyinspect
