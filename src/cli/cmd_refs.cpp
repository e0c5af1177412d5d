#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "base/emergency.hpp"
#include "base/error.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "heap/census.hpp"
#include "heap/graph.hpp"
#include "heap/refs.hpp"
#include "heap/snapshot.hpp"
#include "output/atomic_file.hpp"
#include "output/json_util.hpp"
#include "output/refs_output.hpp"

namespace pyinspect {

namespace {
std::string find_dot() {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/dot";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return {};
}

Error no_dot(const std::string& format) {
  return Error(ErrorCode::Output, "Graphviz's dot is not installed, needed for --" + format +
                                      "; install it (Debian/Ubuntu: apt-get install graphviz) or write --dot FILE "
                                      "and render it elsewhere");
}

// Renders DOT with Graphviz's `dot` into `path` (format svg or png), atomically.
void render(const std::string& dot_text, const std::string& format, const std::string& path) {
  std::string dot = find_dot();
  if (dot.empty()) throw no_dot(format);
  AtomicFile input(path + ".dot", path);  // never committed: removed when done
  input.out << dot_text;
  input.out.flush();
  if (!input.out) throw Error(ErrorCode::Output, "cannot write " + path + ": " + std::strerror(errno));
  AtomicFile output(path);
  pid_t child = fork();
  if (child > 0) emergency_add_child(child);
  if (child == 0) {
    execl(dot.c_str(), "dot", ("-T" + format).c_str(), "-o", output.temp_path().c_str(), input.temp_path().c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (child > 0) {
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    emergency_remove_child(child);
  }
  if (child < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(ErrorCode::Output, "Graphviz's dot could not render " + path);
  output.commit();
}
// The command line of `refs`, parsed.
struct RefsArgs {
  std::string pid_text, address_text, dot_path, svg_path, png_path;
  bool json = false, nonblocking = false, no_dwarf = false, no_cache = false, no_progress = false;
  uint64_t max_copy_mib = 0;
  RefsOptions o;
  TargetOptions topts;
  CoreSearch search;
  std::string lib_path;
  bool progress() const { return !no_progress && isatty(STDERR_FILENO); }
};

po::options_description refs_options(RefsArgs& a) {
  po::options_description desc("Options");
  RefsOptions& o = a.o;
  desc.add_options()("pid", po::value(&a.pid_text)->required(), "process to inspect, or a core file of one")
      ("type", po::value(&o.type), "start from objects of this class: Name or module.Name")
      ("address", po::value(&a.address_text), "start from the object at this address (0x...)")
      ("backrefs", po::bool_switch(&o.backrefs), "what refers to them, up to roots (default: what they refer to)")
      ("chain", po::bool_switch(&o.chain), "one shortest chain of references from a root to the object")
      ("cycles", po::bool_switch(&o.cycles), "the reference cycles the objects are part of")
      ("max-depth", po::value(&o.max_depth)->default_value(o.max_depth), "levels of references to follow")
      ("too-many", po::value(&o.too_many)->default_value(o.too_many),
       "more neighbours than this collapse into one 'N more references' node")
      ("max-objects", po::value(&o.max_objects)->default_value(o.max_objects), "start from at most N matching objects")
      ("dot", po::value(&a.dot_path), "write the graph as Graphviz DOT to FILE (-: standard output)")
      ("svg", po::value(&a.svg_path), "render the graph to an SVG file (needs Graphviz's dot)")
      ("png", po::value(&a.png_path), "render the graph to a PNG file (needs Graphviz's dot)")
      ("json", po::bool_switch(&a.json), "print one JSON document (docs/json.md)")
      ("nonblocking", po::bool_switch(&a.nonblocking), "copy the memory without pausing the target")
      ("no-progress", po::bool_switch(&a.no_progress), "no progress line on stderr")
      ("max-copy", po::value(&a.max_copy_mib), "refuse to copy more than this many MiB of the target's memory (default: what the available memory allows)")
      ("no-dwarf", po::bool_switch(&a.no_dwarf), "ignore debug info; use the embedded layout tables")
      ("no-cache", po::bool_switch(&a.no_cache), "read the DWARF even if its layout is cached")
      ("python", po::value(&a.topts.force_version), "CPython version X.Y, when the binary does not tell");
  add_core_options(desc, a.search, a.lib_path);
  return desc;
}

// Usage errors before the target is touched; fills in the address and the target options.
void check_refs_args(RefsArgs& a) {
  RefsOptions& o = a.o;
  if (o.type.empty() == a.address_text.empty())
    throw Error(ErrorCode::Usage, "give exactly one of --type NAME and --address 0x...");
  if (int(o.backrefs) + int(o.chain) + int(o.cycles) > 1)
    throw Error(ErrorCode::Usage, "--backrefs, --chain and --cycles are different questions: give one");
  if (o.max_depth < 0 || o.max_depth > 100) throw Error(ErrorCode::Usage, "--max-depth wants 0 to 100");
  if (o.too_many < 1 || o.max_objects < 1) throw Error(ErrorCode::Usage, "--too-many and --max-objects want at least 1");
  if (a.dot_path == "-" && a.json) throw Error(ErrorCode::Usage, "--dot - and --json both want standard output: choose one");
  if (!a.dot_path.empty() && a.dot_path != "-") check_output_path("--dot", a.dot_path);
  if (!a.svg_path.empty()) check_output_path("--svg", a.svg_path);
  if (!a.png_path.empty()) check_output_path("--png", a.png_path);
  if (!a.address_text.empty()) {
    char* end = nullptr;
    errno = 0;
    unsigned long long addr = std::strtoull(a.address_text.c_str(), &end, 0);
    if (errno || !end || *end || addr == 0)
      throw Error(ErrorCode::Usage,
                  "'" + a.address_text + "' is not an address (expected 0x... as pyinspect heap --largest shows, or the decimal id())");
    o.address = addr;
  }
  if ((!a.svg_path.empty() || !a.png_path.empty()) && find_dot().empty()) throw no_dot(a.svg_path.empty() ? "png" : "svg");
  a.topts.use_dwarf = !a.no_dwarf;
  a.topts.use_cache = !a.no_cache;
  finish_core_options(a.search, a.lib_path);
}

// Copies the target's memory, builds the object graph and answers the question.
RefsResult read_refs(const RefsArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  OpenedTarget target = open_target(a.pid_text, a.search);
  Process& proc = *target.proc;
  ProcessMemory& mem = *target.mem;
  PythonProcess py(proc, mem, a.topts);
  int64_t pause_ns = 0;
  // The graph needs about as much again as the copy (docs/performance.md).
  std::vector<std::string> pause_warnings;
  auto snap = take_snapshot(proc.pid(), mem, a.nonblocking, a.max_copy_mib << 20, pause_ns, pause_warnings, 2.0,
                            a.progress());
  HeapContext ctx(*snap, py.layout(), py.types(), &snap->maps());
  ObjectGraph graph(ctx, *snap, py, a.progress());
  RefsResult r = compute_refs(graph, a.o);
  r.pid = proc.pid();
  r.python = python_info(py, *snap);
  r.pause_ns = pause_ns;
  r.paused = !a.nonblocking && mem.live();
  r.core = mem.core_path();
  r.warnings = pause_warnings;
  r.warnings.insert(r.warnings.end(), graph.warnings().begin(), graph.warnings().end());
  r.elapsed_ns = (std::chrono::steady_clock::now() - t0).count();
  return r;
}

// The graph files asked for, then the answer on standard output (unless the DOT is the output).
void write_refs(const RefsResult& r, const RefsArgs& a, const GlobalOptions& g) {
  std::string dot_text = (a.dot_path.empty() && a.svg_path.empty() && a.png_path.empty()) ? "" : refs_dot(r);
  std::string summary = " (" + std::to_string(r.nodes.size()) + " objects, " + std::to_string(r.edges.size()) + " references)";
  if (a.dot_path == "-") {
    std::cout << dot_text;  // the graph is the output
  } else if (!a.dot_path.empty()) {
    write_file_atomically(a.dot_path, dot_text);
    std::cerr << "pyinspect: wrote " << a.dot_path << summary << "\n";
  }
  for (auto [path, format] : {std::pair{&a.svg_path, "svg"}, std::pair{&a.png_path, "png"}}) {
    if (path->empty()) continue;
    render(dot_text, format, *path);
    std::cerr << "pyinspect: wrote " << *path << summary << "\n";
  }
  if (a.json)
    std::cout << dump_json(refs_json(r)) << "\n";
  else if (a.dot_path != "-")
    print_refs_text(std::cout, r, TextStyle{g.color, false});
}
}  // namespace

int cmd_refs(const std::vector<std::string>& args, const GlobalOptions& g) {
  RefsArgs a;
  po::options_description desc = refs_options(a);
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect refs PID|CORE (--type NAME | --address 0x...) [options]", args, desc, pos, vm)) return 0;
  check_refs_args(a);
  write_refs(read_refs(a), a, g);
  return 0;
}

}  // namespace pyinspect
