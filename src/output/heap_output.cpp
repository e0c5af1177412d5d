#include "output/heap_output.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/log.hpp"

namespace pyinspect {

namespace {
int percent(uint64_t part, uint64_t whole) {
  return whole ? static_cast<int>(std::lround(100.0 * static_cast<double>(part) / static_cast<double>(whole))) : 0;
}

std::string mib(uint64_t bytes) {
  char buf[32];
  if (bytes >= (uint64_t{10} << 20))
    std::snprintf(buf, sizeof buf, "%.0f MiB", static_cast<double>(bytes) / (1 << 20));
  else if (bytes >= (uint64_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  else
    std::snprintf(buf, sizeof buf, "%.0f KiB", static_cast<double>(bytes) / 1024);
  return buf;
}

// "dict (12), str (3), ..." for the first few types of a (type, count) list.
std::string top_list(const std::vector<std::pair<std::string, uint64_t>>& types) {
  std::string s;
  for (size_t i = 0; i < types.size() && i < 5; ++i)
    s += (i ? ", " : "") + types[i].first + " (" + std::to_string(types[i].second) + ")";
  if (types.size() > 5) s += ", ...";
  return s;
}

// Where the objects came from, against what a census built on gc would see (docs/heap.md).
void print_found_through(std::ostream& out, const HeapCensus& c) {
  if (c.found_through.empty()) return;
  out << "\nHow the " << c.total_objects << " objects were found (a census built on gc sees the first line only):\n";
  char line[64];
  for (const auto& f : c.found_through) {
    if (!f.objects) continue;
    std::snprintf(line, sizeof line, "  %10llu %-7s %10s  ", static_cast<unsigned long long>(f.objects),
                  f.objects == 1 ? "object" : "objects", mib(f.bytes).c_str());
    out << line << f.what << "\n";
  }
}

const char* by_name(GroupBy by) {
  switch (by) {
    case GroupBy::Kind: return "kind";
    case GroupBy::Type: return "type";
    case GroupBy::Module: return "module";
    case GroupBy::Size: return "size";
  }
  return "";
}

std::map<std::string, std::pair<uint64_t, uint64_t>> aggregate(const HeapCensus& c, GroupBy by) {
  std::map<std::string, std::pair<uint64_t, uint64_t>> m;
  for (const auto& r : group_rows(c, by)) m[r.kind] = {r.count, r.size};
  return m;
}
}  // namespace

void print_heap_text(std::ostream& out, const HeapCensus& c, GroupBy by, size_t top, const TextStyle& style) {
  auto rows = group_rows(c, by);
  char line[512];
  std::snprintf(line, sizeof line, "Partition of a set of %llu objects. Total size = %llu bytes.\n",
                static_cast<unsigned long long>(c.total_objects), static_cast<unsigned long long>(c.total_size));
  out << line;
  out << (style.color ? "\033[1m" : "") << " Index  Count   %     Size   % Cumulative  % " << group_title(by)
      << (style.color ? "\033[0m" : "") << "\n";
  uint64_t cumulative = 0;
  size_t shown = top == 0 ? rows.size() : std::min(top, rows.size());
  for (size_t i = 0; i < shown; ++i) {
    const auto& r = rows[i];
    cumulative += r.size;
    std::snprintf(line, sizeof line, "%6zu %6llu %3d %8llu %3d %10llu %3d ", i, static_cast<unsigned long long>(r.count),
                  percent(r.count, c.total_objects), static_cast<unsigned long long>(r.size), percent(r.size, c.total_size),
                  static_cast<unsigned long long>(cumulative), percent(cumulative, c.total_size));
    out << line << r.kind << "\n";
  }
  if (shown < rows.size()) out << "<" << rows.size() - shown << " more rows; --top 0 shows them all>\n";

  if (!c.largest.empty()) {
    out << "\nLargest objects:\n";
    for (const auto& o : c.largest) {
      std::snprintf(line, sizeof line, "  %#14llx %12llu  ", static_cast<unsigned long long>(o.address),
                    static_cast<unsigned long long>(o.size));
      out << line << o.kind << "  " << o.repr << "\n";
    }
  }

  const auto& m = c.memory;
  if (!c.core.empty())
    out << "\nPython objects " << mib(m.object_bytes) << " (a core file records no RSS); memory read from the core "
        << c.core;
  else
    out << "\nProcess RSS " << mib(m.rss_bytes) << "; Python objects " << mib(m.object_bytes) << " ("
        << percent(m.object_bytes, m.rss_bytes) << "% of RSS); writable memory copied " << mib(m.copied_bytes);
  if (m.left_out_ranges)
    out << ", data buffers left out of the copy " << mib(m.left_out_bytes) << " (" << m.left_out_ranges
        << (m.left_out_ranges == 1 ? " range" : " ranges") << ")";
  out << "\n";
  if (m.pymalloc_known)
    out << "pymalloc: " << m.arenas << " arenas (" << mib(m.arena_bytes) << "): " << mib(m.pool_bytes_used)
        << " in allocated blocks; " << mib(m.pool_bytes_free) << " in free blocks and " << mib(m.arena_bytes_free)
        << " in empty pools, kept by Python and not returned to the OS\n";
  if (!m.pymalloc_known && !m.pymalloc_unknown.empty()) out << "pymalloc: not read: " << m.pymalloc_unknown << "\n";
  if (m.dictless_instances)
    out << "Instance attributes kept without a dict object (3.11+): " << m.dictless_instances << " instances, "
        << mib(m.dictless_values_bytes) << " (counted in no object's size; see docs/heap.md)\n";
  if (m.garbage_count) {
    out << (style.color ? "\033[33m" : "") << "gc.garbage holds " << m.garbage_count
        << " uncollectable objects:" << (style.color ? "\033[0m" : "");
    for (size_t i = 0; i < std::min<size_t>(m.garbage_kinds.size(), 5); ++i)
      out << (i ? ", " : " ") << m.garbage_kinds[i].count << " " << m.garbage_kinds[i].kind;
    out << "\n";
  }
  if (c.unknown_size_objects) {
    out << c.unknown_size_objects << " objects counted with size 0, their size unknown:";
    for (const auto& [why, n] : c.unknown_size_reasons) out << " " << n << " because of " << why << ";";
    out << " types " << top_list(c.unknown_size_types) << "\n";
  }
  if (!c.unmirrored_sizeof_types.empty()) {
    uint64_t n = 0;
    for (const auto& t : c.unmirrored_sizeof_types) n += t.second;
    out << n << " objects of C types with a __sizeof__ of their own that pyinspect does not mirror, sized as "
        << "object.__sizeof__ would (they may hold more): " << top_list(c.unmirrored_sizeof_types) << "\n";
  }
  if (uint64_t n = c.referents_unreadable + c.referents_missing_member)
    out << (style.color ? "\033[33m" : "") << n << " objects' references could not all be read (" << c.referents_unreadable
        << " unreadable memory, " << c.referents_missing_member << " a member this build's layout lacks): what they hold "
        << "may be missing; types " << top_list(c.referents_problem_types) << (style.color ? "\033[0m" : "") << "\n";
  print_found_through(out, c);
  if (!c.paused && c.core.empty())
    out << "(copied without pausing the target: counts and sizes may be inconsistent)\n";
  for (const auto& w : c.warnings) out << "warning: " << w << "\n";
}

std::vector<GrowthRow> growth_rows(const HeapCensus& before, const HeapCensus& after, GroupBy by) {
  auto a = aggregate(before, by), b = aggregate(after, by);
  std::vector<GrowthRow> rows;
  for (const auto& [k, v] : b) {
    GrowthRow r{k, 0, v.first, 0, v.second};
    if (auto it = a.find(k); it != a.end()) r.count_before = it->second.first, r.size_before = it->second.second;
    if (r.count_delta() || r.size_delta()) rows.push_back(r);
  }
  for (const auto& [k, v] : a)
    if (!b.count(k)) rows.push_back({k, v.first, 0, v.second, 0});
  std::sort(rows.begin(), rows.end(), [](const GrowthRow& x, const GrowthRow& y) {
    if (x.size_delta() != y.size_delta()) return x.size_delta() > y.size_delta();
    if (x.count_delta() != y.count_delta()) return x.count_delta() > y.count_delta();
    return x.kind < y.kind;
  });
  return rows;
}

void print_growth_text(std::ostream& out, const HeapCensus& before, const HeapCensus& after, GroupBy by, size_t top,
                       const std::string& span, const TextStyle&) {
  auto rows = growth_rows(before, after, by);
  char line[512];
  out << "Growth " << span << ": ";
  std::snprintf(line, sizeof line, "%+lld objects, %+lld bytes (%llu -> %llu objects, %llu -> %llu bytes)\n",
                static_cast<long long>(after.total_objects) - static_cast<long long>(before.total_objects),
                static_cast<long long>(after.total_size) - static_cast<long long>(before.total_size),
                static_cast<unsigned long long>(before.total_objects), static_cast<unsigned long long>(after.total_objects),
                static_cast<unsigned long long>(before.total_size), static_cast<unsigned long long>(after.total_size));
  out << line;
  out << "      Count      Change        Size      Change " << group_title(by) << "\n";
  size_t shown = top == 0 ? rows.size() : std::min(top, rows.size());
  for (size_t i = 0; i < shown; ++i) {
    const auto& r = rows[i];
    std::snprintf(line, sizeof line, "%11llu %+11lld %11llu %+11lld ", static_cast<unsigned long long>(r.count_after),
                  static_cast<long long>(r.count_delta()), static_cast<unsigned long long>(r.size_after),
                  static_cast<long long>(r.size_delta()));
    out << line << r.kind << "\n";
  }
  if (shown < rows.size()) out << "<" << rows.size() - shown << " more rows; --top 0 shows them all>\n";
  if (rows.empty()) out << "(no change)\n";
}

nlohmann::json heap_json(const HeapCensus& c, GroupBy by, size_t top) {
  auto rows = group_rows(c, by);
  nlohmann::json jrows = nlohmann::json::array();
  for (size_t i = 0; i < rows.size() && (top == 0 || i < top); ++i)
    jrows.push_back({{"kind", rows[i].kind}, {"count", rows[i].count}, {"size", rows[i].size}});
  nlohmann::json largest = nlohmann::json::array();
  for (const auto& o : c.largest)
    largest.push_back({{"address", o.address}, {"kind", o.kind}, {"size", o.size}, {"repr", o.repr}});
  const auto& m = c.memory;
  nlohmann::json garbage = nlohmann::json::array();
  for (const auto& g : m.garbage_kinds) garbage.push_back({{"kind", g.kind}, {"count", g.count}});
  nlohmann::json memory = {{"rss_bytes", m.rss_bytes},
                           {"copied_bytes", m.copied_bytes},
                           {"left_out_bytes", m.left_out_bytes},
                           {"left_out_ranges", m.left_out_ranges},
                           {"live_read_bytes", m.live_read_bytes},
                           {"live_read_ranges", m.live_read_ranges},
                           {"object_bytes", m.object_bytes},
                           {"dictless_instances", m.dictless_instances},
                           {"dictless_values_bytes", m.dictless_values_bytes},
                           {"garbage_count", m.garbage_count},
                           {"garbage", garbage}};
  if (!m.pymalloc_known) memory["pymalloc_unknown"] = m.pymalloc_unknown;
  if (m.pymalloc_known)
    memory["pymalloc"] = {{"arenas", m.arenas},
                          {"arena_bytes", m.arena_bytes},
                          {"pool_bytes_used", m.pool_bytes_used},
                          {"pool_bytes_free", m.pool_bytes_free},
                          {"arena_bytes_free", m.arena_bytes_free}};
  nlohmann::json found = nlohmann::json::array();
  for (const auto& f : c.found_through) found.push_back({{"how", f.id}, {"objects", f.objects}, {"bytes", f.bytes}});
  auto types_json = [](const std::vector<std::pair<std::string, uint64_t>>& v) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, n] : v) j[k] = n;
    return j;
  };
  return {{"pid", c.pid},
          {"command", c.command},
          {"python", python_json(c.python)},
          {"by", by_name(by)},
          {"total_objects", c.total_objects},
          {"total_size", c.total_size},
          {"total_rows", rows.size()},
          {"found_through", found},
          {"unknown_size_objects", c.unknown_size_objects},
          {"unknown_size_reasons", c.unknown_size_reasons},
          {"unknown_size_types", types_json(c.unknown_size_types)},
          {"unmirrored_sizeof_types", types_json(c.unmirrored_sizeof_types)},
          {"referents_unreadable", c.referents_unreadable},
          {"referents_missing_member", c.referents_missing_member},
          {"referents_problem_types", types_json(c.referents_problem_types)},
          {"gc_tracked", c.gc_tracked},
          {"rows", jrows},
          {"largest", largest},
          {"memory", memory},
          {"paused", c.paused},
          {"core", c.core.empty() ? nlohmann::json() : nlohmann::json(c.core)},
          {"pause_us", c.pause_ns / 1000.0},
          {"elapsed_us", c.elapsed_ns / 1000.0},
          {"warnings", c.warnings}};
}

nlohmann::json growth_json(const HeapCensus& before, const HeapCensus& after, GroupBy by, size_t top, double seconds) {
  auto rows = growth_rows(before, after, by);
  nlohmann::json jrows = nlohmann::json::array();
  for (size_t i = 0; i < rows.size() && (top == 0 || i < top); ++i) {
    const auto& r = rows[i];
    jrows.push_back({{"kind", r.kind},
                     {"count", r.count_after},
                     {"count_change", r.count_delta()},
                     {"size", r.size_after},
                     {"size_change", r.size_delta()}});
  }
  return {{"pid", after.pid},
          {"python", python_json(after.python)},
          {"by", by_name(by)},
          {"seconds", seconds},
          {"before", {{"total_objects", before.total_objects}, {"total_size", before.total_size}}},
          {"after", {{"total_objects", after.total_objects}, {"total_size", after.total_size}}},
          {"rows", jrows}};
}

void print_diff_text(std::ostream& out, const HeapCensus& before, const HeapCensus& after, const HeapDiff& d, GroupBy by,
                     size_t top, const TextStyle& style) {
  print_growth_text(out, before, after, by, top, "from " + d.before_target + " to " + d.after_target, style);
  out << "\nNew objects (at an address where " << d.before_target << " had no object of their type): " << d.fresh.count
      << " objects, " << d.fresh.size << " bytes";
  if (d.fresh.largest.empty()) {
    out << "\n";
    return;
  }
  out << "; the largest:\n";
  char line[96];
  for (const auto& o : d.fresh.largest) {
    std::snprintf(line, sizeof line, "  %#14llx %12llu  ", static_cast<unsigned long long>(o.address),
                  static_cast<unsigned long long>(o.size));
    out << line << o.kind << "  " << o.repr << "\n";
  }
}

nlohmann::json diff_json(const HeapCensus& before, const HeapCensus& after, const HeapDiff& d, GroupBy by, size_t top) {
  nlohmann::json j = growth_json(before, after, by, top, 0);
  j.erase("seconds");
  j["before"]["target"] = d.before_target;
  j["after"]["target"] = d.after_target;
  j["before"]["core"] = before.core.empty() ? nlohmann::json() : nlohmann::json(before.core);
  j["after"]["core"] = after.core.empty() ? nlohmann::json() : nlohmann::json(after.core);
  nlohmann::json largest = nlohmann::json::array();
  for (const auto& o : d.fresh.largest)
    largest.push_back({{"address", o.address}, {"kind", o.kind}, {"size", o.size}, {"repr", o.repr}});
  j["new_objects"] = {{"count", d.fresh.count}, {"size", d.fresh.size}, {"largest", largest}};
  j["warnings"] = before.warnings;
  for (const auto& w : after.warnings) j["warnings"].push_back(w);
  return j;
}

}  // namespace pyinspect
