#include "output/memory_output.hpp"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "output/retained_output.hpp"  // size_text

namespace pyinspect {

namespace {
int percent(uint64_t part, uint64_t whole) {
  return whole ? static_cast<int>(std::lround(100.0 * static_cast<double>(part) / static_cast<double>(whole))) : 0;
}
std::string note(const MemoryCategory& c, const char* key) {
  for (const auto& [k, v] : c.notes)
    if (k == key) return v;
  return "";
}
uint64_t figure(const MemoryCategory& c, const char* key) {
  for (const auto& [k, v] : c.figures)
    if (k == key) return v;
  return 0;
}
}  // namespace

void print_memory_text(std::ostream& out, const MemoryAccount& a, const TextStyle& style) {
  (void)style;
  const bool core = !a.core.empty();
  if (core)
    out << "Core file " << a.core << " of process " << a.pid << ": " << a.command << " — CPython " << a.python.version
        << "\nIn the core " << size_text(a.rss_bytes)
        << (a.core_sparse ? " (the pages that were in memory, code left out: a core records no RSS)\n\n"
                          : " (a core without holes, as gcore writes them: pages never touched count too; code "
                            "left out)\n\n");
  else
    out << "Process " << a.pid << ": " << a.command << " — CPython " << a.python.version << "\nRSS "
        << size_text(a.rss_bytes) << ", private " << size_text(a.private_bytes) << "\n\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-26s %10s %5s %10s  %s\n", "", core ? "in core" : "RSS", "", "private", "");
  out << line;
  uint64_t sum = 0;
  for (const auto& c : a.categories) {
    sum += c.bytes;
    std::string expl = c.explanation;
    if (std::string(c.name) == "object_buffers" && c.count) {
      std::string t = note(c, "largest_type");
      if (!t.empty())
        expl += " (largest: " + t + " " + note(c, "largest_address") + " " + size_text(figure(c, "largest_bytes")) + ")";
    }
    std::snprintf(line, sizeof line, "  %-26s %10s %4d%% %10s  ", c.title, size_text(c.bytes).c_str(),
                  percent(c.bytes, a.rss_bytes), size_text(c.private_bytes).c_str());
    out << line << expl << "\n";
  }
  std::snprintf(line, sizeof line, "  %-26s %10s %4d%%\n", "total", size_text(sum).c_str(), percent(sum, a.rss_bytes));
  out << line;
  out << "\nObject allocator: " << a.allocator << "\n";
  if (!a.malloc_unknown.empty())
    out << "glibc malloc: not read: " << a.malloc_unknown << "\n";
  else
    out << "glibc malloc: " << (a.glibc_version.empty() ? "" : a.glibc_version + ", ") << "read from "
        << a.malloc_source << "\n";
  if (!a.unmirrored_sizeof.empty()) {
    out << "Sized as object.__sizeof__ would, though their C type defines its own __sizeof__ (they may hold more):";
    for (size_t i = 0; i < a.unmirrored_sizeof.size() && i < 8; ++i)
      out << (i ? ", " : " ") << a.unmirrored_sizeof[i].first << " (" << a.unmirrored_sizeof[i].second << ")";
    out << "\n";
  }
  if (a.unknown_size_objects)
    out << a.unknown_size_objects << " objects of unknown size are counted as 0 bytes (pyinspect heap says why)\n";
  for (const auto& w : a.warnings) out << "warning: " << w << "\n";
  if (a.paused)
    out << "The target was paused for " << (a.pause_ns / 1000000.0) << " ms.\n";
}

nlohmann::json memory_json(const MemoryAccount& a) {
  nlohmann::json cats = nlohmann::json::array();
  for (const auto& c : a.categories) {
    nlohmann::json detail = nlohmann::json::object();
    for (const auto& [k, v] : c.figures) detail[k] = v;
    for (const auto& [k, v] : c.notes) detail[k] = v;
    detail["explanation"] = c.explanation;
    cats.push_back({{"name", c.name},
                    {"title", c.title},
                    {"bytes", c.bytes},
                    {"private_bytes", c.private_bytes},
                    {"count", c.count},
                    {"counts", c.what},
                    {"detail", detail}});
  }
  nlohmann::json unmirrored = nlohmann::json::object();
  for (const auto& [t, n] : a.unmirrored_sizeof) unmirrored[t] = n;
  return {{"pid", a.pid},
          {"core", a.core.empty() ? nlohmann::json() : nlohmann::json(a.core)},
          {"core_sparse", a.core.empty() ? nlohmann::json() : nlohmann::json(a.core_sparse)},
          {"command", a.command},
          {"python", python_json(a.python)},
          {"rss_bytes", a.rss_bytes},
          {"private_bytes", a.private_bytes},
          {"categories", cats},
          {"allocator", a.allocator},
          {"malloc", {{"source", a.malloc_source}, {"glibc_version", a.glibc_version}, {"unknown", a.malloc_unknown}}},
          {"objects", a.objects},
          {"unknown_size_objects", a.unknown_size_objects},
          {"unmirrored_sizeof", unmirrored},
          {"paused", a.paused},
          {"pause_us", a.pause_ns / 1000.0},
          {"elapsed_us", a.elapsed_ns / 1000.0},
          {"warnings", a.warnings}};
}

}  // namespace pyinspect
