#include "output/refs_output.hpp"

#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/log.hpp"
#include "output/retained_output.hpp"

namespace pyinspect {

namespace {
std::string node_id(const RefsNode& n) {
  if (n.more) return "more" + std::to_string(n.id);
  char buf[32];
  std::snprintf(buf, sizeof buf, "o%llx", static_cast<unsigned long long>(n.address));
  return buf;
}

std::string describe(const RefsNode& n) {
  if (n.more) return n.kind;
  std::string s = n.kind + " " + log::hex(n.address);
  if (!n.repr.empty() && n.repr != n.kind) s += " " + n.repr;
  if (n.size) s += " (" + std::to_string(*n.size) + " bytes)";
  if (n.finalizer) s += " [has __del__]";
  for (const auto& root : n.roots) s += " [root: " + root + "]";
  return s;
}

std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}
}  // namespace

std::vector<std::string> cycle_status(const RefsResult& r, const RefsCycle& c) {
  std::vector<std::string> out;
  bool uncollectable = c.finalizer && r.finalizers_block_collection;
  if (c.in_garbage) {
    out.push_back("In gc.garbage: the collector found this cycle unreachable but could not free it" +
                  std::string(uncollectable ? " (Python 2 does not free cycles whose objects define __del__)" : "") +
                  "; it stays until the program empties gc.garbage.");
  } else if (!c.reachable) {
    out.push_back(uncollectable
                      ? "Unreachable, and a member defines __del__: Python 2's collector cannot free it and will "
                        "move it to gc.garbage, where it stays for good."
                      : "Unreachable: nothing alive refers to it; the collector frees it at its next run (unless "
                        "the collector is disabled).");
  } else {
    out.push_back("Alive: " + std::to_string(c.referrers) + (c.referrers == 1 ? " object outside the cycle refers" : " objects outside the cycle refer") +
                  " to it (--backrefs, --chain show which).");
  }
  if (c.finalizer && !uncollectable && !c.in_garbage)
    out.push_back("A member defines __del__; since Python 3.4 (PEP 442) that no longer stops the collector.");
  return out;
}

namespace {
using NodeIndex = std::map<uint32_t, const RefsNode*>;

// What matched, the graph's size, whether it was paused, and the warnings.
void print_refs_header(std::ostream& out, const RefsResult& r) {
  out << r.matched << (r.matched == 1 ? " object" : " objects") << " matched";
  if (r.mode == "chain" && r.matched > 1 && r.chain_reachable == 0)
    out << " (none reachable from a root)";
  else if (r.mode == "chain" && r.matched > 1)
    out << " (" << r.chain_reachable << " reachable from a root; the chain of the nearest)";
  else if (r.mode == "cycles" && r.matched > 1)
    out << " (the cycles of all of them, grouped by shape)";
  else if (r.mode != "chain" && r.starts.size() == 1 && r.matched > 1)
    out << " (showing the largest; --max-objects for more)";
  else if (r.mode != "chain" && r.starts.size() < r.matched)
    out << " (showing the " << r.starts.size() << " largest; --max-objects for more)";
  out << "; graph of " << r.graph_objects << " objects, " << r.graph_references << " references\n";
  if (!r.core.empty())
    out << "(read from the core file " << r.core << ")\n";
  else if (!r.paused)
    out << "(copied without pausing the target: the graph may be inconsistent)\n";
  for (const auto& w : r.warnings) out << "warning: " << w << "\n";
}

// What the object asked about retains (heap/dominators.hpp), when it was asked.
void print_retained(std::ostream& out, const RefsResult& r, const NodeIndex& nodes) {
  if (!r.retained_asked || r.starts.empty()) return;
  const RefsNode& n = *nodes.at(r.starts.front());
  out << n.kind << " " << log::hex(n.address);
  if (n.retained_size)
    out << " retains " << *n.retained_size << " bytes"
        << (*n.retained_size >= 1024 ? " (" + size_text(*n.retained_size) + ")" : std::string()) << " in "
        << *n.retained_count << (*n.retained_count == 1 ? " object" : " objects")
        << ": itself and what only it keeps alive\n";
  else
    out << ": no root reaches it, so it retains nothing on their behalf (no retained size)\n";
}

void print_chain(std::ostream& out, const RefsResult& r, const NodeIndex& nodes, const char* bold, const char* reset) {
  if (!r.chain_found) {
    out << "No chain of references from a root (a module, a thread's frame, the interpreter) reaches "
        << (r.matched == 1 ? "it: it is" : "any of them: they are")
        << " kept alive only by reference cycles, or by C code. Try --cycles or --backrefs.\n";
    return;
  }
  out << bold << r.chain_text << reset << "\n";
  for (size_t i = 0; i < r.chain.size(); ++i) {
    std::string label;
    if (i > 0)
      for (const auto& e : r.edges)
        if (e.from == r.chain[i - 1] && e.to == r.chain[i]) label = e.label;
    out << std::string(2 + 2 * i, ' ') << (i ? "--" + label + "--> " : std::string())
        << describe(*nodes.at(r.chain[i])) << "\n";
  }
}

void print_cycle(std::ostream& out, const RefsResult& r, const RefsCycle& c, size_t number, const NodeIndex& nodes,
                 const char* bold, const char* reset) {
  out << bold << "Cycle " << number << ": ";
  if (c.similar.cycles > 1)
    out << c.similar.cycles << " cycles like this one, " << c.similar.size << " bytes in all; this one: ";
  out << c.count << " objects, " << c.size << " bytes" << reset << " (";
  for (size_t k = 0; k < c.kinds.size() && k < 12; ++k) out << (k ? ", " : "") << c.kinds[k].second << " " << c.kinds[k].first;
  if (c.kinds.size() > 12) out << ", ...";
  out << ")\n";
  if (!c.ring.empty()) out << "  " << c.ring << "\n";
  if (c.similar.cycles > 1)
    out << "  Of the " << c.similar.cycles << ": " << c.similar.alive << " alive, " << c.similar.unreachable
        << " unreachable, " << c.similar.in_garbage << " in gc.garbage. This one:\n";
  for (const auto& line : cycle_status(r, c)) out << "  " << line << "\n";
  std::set<uint32_t> members(c.members.begin(), c.members.end());
  for (uint32_t n : c.members) {
    out << "  " << describe(*nodes.at(n)) << "\n";
    for (const auto& e : r.edges)
      if (e.from == n && members.count(e.to))
        out << "    --" << e.label << "--> " << nodes.at(e.to)->kind << " " << log::hex(nodes.at(e.to)->address) << "\n";
  }
  if (c.count > c.members.size()) out << "  ... and " << c.count - c.members.size() << " more objects\n";
}

// refs / backrefs: a tree from each start object, each object expanded once.
void print_tree(std::ostream& out, const RefsResult& r, const NodeIndex& nodes, const char* bold, const char* reset) {
  bool back = r.mode == "backrefs";
  std::multimap<uint32_t, const RefsEdge*> next;
  for (const auto& e : r.edges) next.emplace(back ? e.to : e.from, &e);
  std::set<uint32_t> printed;
  std::function<void(uint32_t, int)> walk = [&](uint32_t n, int indent) {
    if (!printed.insert(n).second) {
      out << " (see above)\n";
      return;
    }
    out << "\n";
    auto [b, e] = next.equal_range(n);
    for (auto it = b; it != e; ++it) {
      const RefsEdge& edge = *it->second;
      uint32_t m = back ? edge.from : edge.to;
      out << std::string(static_cast<size_t>(indent) + 2, ' ')
          << (edge.label.empty() ? (back ? "<-- " : "--> ")
                                 : (back ? "<--" + edge.label + "-- " : "--" + edge.label + "--> "))
          << describe(*nodes.at(m));
      walk(m, indent + 2);
    }
  };
  for (uint32_t s : r.starts) {
    out << bold << describe(*nodes.at(s)) << reset;
    walk(s, 0);
  }
}
}  // namespace

void print_refs_text(std::ostream& out, const RefsResult& r, const TextStyle& style) {
  NodeIndex nodes;
  for (const auto& n : r.nodes) nodes[n.id] = &n;
  const char* bold = style.color ? "\033[1m" : "";
  const char* reset = style.color ? "\033[0m" : "";
  print_refs_header(out, r);
  print_retained(out, r, nodes);
  if (r.mode == "chain") return print_chain(out, r, nodes, bold, reset);
  if (r.mode == "cycles") {
    if (r.cycles.empty()) out << "Not part of any reference cycle (references to classes and modules are not counted).\n";
    for (size_t i = 0; i < r.cycles.size(); ++i) print_cycle(out, r, r.cycles[i], i + 1, nodes, bold, reset);
    return;
  }
  print_tree(out, r, nodes, bold, reset);
}

std::string refs_dot(const RefsResult& r) {
  std::string out = "digraph ObjectGraph {\n  node[shape=box, style=filled, fillcolor=white, fontname=\"Helvetica\"];\n";
  int max_depth = 1;
  for (const auto& n : r.nodes) max_depth = std::max(max_depth, n.depth);
  for (const auto& n : r.nodes) {
    std::string label;
    if (n.more) {
      label = n.kind;
    } else {
      std::string name = n.kind;
      label = name + "\\n" + dot_escape(n.repr.empty() || n.repr == n.kind ? log::hex(n.address) : n.repr) +
              (n.size ? "\\n" + std::to_string(*n.size) + " bytes" : "");
      if (n.finalizer) label += "\\nhas __del__";
      for (const auto& root : n.roots) label += "\\nroot: " + dot_escape(root);
    }
    char color[64];
    if (n.start)
      std::snprintf(color, sizeof color, "\"0.15,0.8,1\"");  // yellow: the objects asked about
    else  // objgraph-like shading: lighter the further from the start objects
      std::snprintf(color, sizeof color, "\"0.6,%.2f,1\"", 0.1 + 0.5 * (1.0 - double(n.depth) / (max_depth + 1)));
    out += "  " + node_id(n) + "[label=\"" + label + "\", fillcolor=" + color;
    if (n.finalizer) out += ", color=red, penwidth=3";
    if (!n.roots.empty()) out += ", shape=doubleoctagon";
    if (n.more) out += ", shape=note, fillcolor=\"0,0,0.9\"";
    out += "];\n";
  }
  std::map<uint32_t, const RefsNode*> nodes;
  for (const auto& n : r.nodes) nodes[n.id] = &n;
  for (const auto& e : r.edges)
    out += "  " + node_id(*nodes[e.from]) + " -> " + node_id(*nodes[e.to]) + " [label=\"" + dot_escape(e.label) + "\"];\n";
  out += "}\n";
  return out;
}

nlohmann::json refs_json(const RefsResult& r) {
  nlohmann::json nodes = nlohmann::json::array(), edges = nlohmann::json::array();
  std::map<uint32_t, const RefsNode*> byid;
  for (const auto& n : r.nodes) {
    byid[n.id] = &n;
    nlohmann::json j = {{"id", node_id(n)},
                        {"address", n.more ? nlohmann::json(nullptr) : nlohmann::json(n.address)},
                        {"kind", n.kind},
                        {"type", n.type},
                        {"label", n.repr},
                        {"size", n.size ? nlohmann::json(*n.size) : nlohmann::json(nullptr)},
                        {"depth", n.depth},
                        {"start", n.start},
                        {"finalizer", n.finalizer},
                        {"roots", n.roots}};
    if (n.more) j["more"] = n.more;
    if (r.retained_asked && !r.starts.empty() && n.id == r.starts.front() && !n.more) {  // null: no root reaches it
      j["retained_size"] = n.retained_size ? nlohmann::json(*n.retained_size) : nlohmann::json(nullptr);
      j["retained_count"] = n.retained_count ? nlohmann::json(*n.retained_count) : nlohmann::json(nullptr);
    }
    nodes.push_back(j);
  }
  for (const auto& e : r.edges)
    edges.push_back({{"from", node_id(*byid[e.from])}, {"to", node_id(*byid[e.to])}, {"label", e.label}});
  nlohmann::json j = {{"pid", r.pid},
                      {"python", python_json(r.python)},
                      {"mode", r.mode},
                      {"matched", r.matched},
                      {"graph_objects", r.graph_objects},
                      {"graph_references", r.graph_references},
                      {"nodes", nodes},
                      {"edges", edges},
                      {"paused", r.paused},
                      {"core", r.core.empty() ? nlohmann::json() : nlohmann::json(r.core)},
                      {"pause_us", r.pause_ns / 1000.0},
                      {"elapsed_us", r.elapsed_ns / 1000.0},
                      {"warnings", r.warnings}};
  nlohmann::json starts = nlohmann::json::array();
  for (uint32_t s : r.starts) starts.push_back(node_id(*byid[s]));
  j["starts"] = starts;
  if (r.mode == "chain") {
    nlohmann::json path = nlohmann::json::array();
    for (uint32_t n : r.chain) path.push_back(node_id(*byid[n]));
    j["chain"] = {{"found", r.chain_found}, {"text", r.chain_text}, {"path", path}, {"reachable", r.chain_reachable}};
  }
  if (r.mode == "cycles") {
    nlohmann::json cycles = nlohmann::json::array();
    for (const auto& c : r.cycles) {
      nlohmann::json members = nlohmann::json::array(), kinds = nlohmann::json::object();
      for (uint32_t n : c.members) members.push_back(node_id(*byid[n]));
      for (const auto& [k, v] : c.kinds) kinds[k] = v;
      cycles.push_back({{"members", members},
                        {"count", c.count},
                        {"kinds", kinds},
                        {"size", c.size},
                        {"finalizer", c.finalizer},
                        {"collectable", !(c.finalizer && r.finalizers_block_collection)},
                        {"referrers", c.referrers},
                        {"reachable", c.reachable},
                        {"in_garbage", c.in_garbage},
                        {"status", cycle_status(r, c)},
                        {"ring", c.ring.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.ring)},
                        {"similar", {{"cycles", c.similar.cycles},
                                     {"size", c.similar.size},
                                     {"alive", c.similar.alive},
                                     {"unreachable", c.similar.unreachable},
                                     {"in_garbage", c.similar.in_garbage}}}});
    }
    j["cycles"] = cycles;
  }
  return j;
}

}  // namespace pyinspect
