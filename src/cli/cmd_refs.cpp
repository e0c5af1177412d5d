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

// Renders DOT with Graphviz's `dot` into `path` (format svg or png), atomically.
void render(const std::string& dot_text, const std::string& format, const std::string& path) {
  std::string dot = find_dot();
  if (dot.empty())
    throw Error(ErrorCode::Output, "Graphviz's dot is not installed, needed for --" + format +
                                       "; install it (Debian/Ubuntu: apt-get install graphviz) or write --dot FILE "
                                       "and render it elsewhere");
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
}  // namespace

int cmd_refs(const std::vector<std::string>& args, const GlobalOptions& g) {
  po::options_description desc("Options");
  std::string pid_text, address_text, dot_path, svg_path, png_path;
  bool json = false, nonblocking = false, no_dwarf = false, no_cache = false, no_progress = false;
  uint64_t max_copy_mib = 0;
  RefsOptions o;
  TargetOptions topts;
  desc.add_options()("pid", po::value(&pid_text)->required(), "process to inspect")
      ("type", po::value(&o.type), "start from objects of this class: Name or module.Name")
      ("address", po::value(&address_text), "start from the object at this address (0x...)")
      ("backrefs", po::bool_switch(&o.backrefs), "what refers to them, up to roots (default: what they refer to)")
      ("chain", po::bool_switch(&o.chain), "one shortest chain of references from a root to the object")
      ("cycles", po::bool_switch(&o.cycles), "the reference cycles the objects are part of")
      ("max-depth", po::value(&o.max_depth)->default_value(o.max_depth), "levels of references to follow")
      ("too-many", po::value(&o.too_many)->default_value(o.too_many),
       "more neighbours than this collapse into one 'N more references' node")
      ("max-objects", po::value(&o.max_objects)->default_value(o.max_objects), "start from at most N matching objects")
      ("dot", po::value(&dot_path), "write the graph as Graphviz DOT to FILE (-: standard output)")
      ("svg", po::value(&svg_path), "render the graph to an SVG file (needs Graphviz's dot)")
      ("png", po::value(&png_path), "render the graph to a PNG file (needs Graphviz's dot)")
      ("json", po::bool_switch(&json), "print one JSON document (docs/json.md)")
      ("nonblocking", po::bool_switch(&nonblocking), "copy the memory without pausing the target")
      ("no-progress", po::bool_switch(&no_progress), "no progress line on stderr")
      ("max-copy", po::value(&max_copy_mib), "refuse to copy more than this many MiB of the target's memory (default: what the available memory allows)")
      ("no-dwarf", po::bool_switch(&no_dwarf), "ignore debug info; use the embedded layout tables")
      ("no-cache", po::bool_switch(&no_cache), "read the DWARF even if its layout is cached")
      ("python", po::value(&topts.force_version), "CPython version X.Y, when the binary does not tell");
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect refs PID (--type NAME | --address 0x...) [options]", args, desc, pos, vm)) return 0;
  if (o.type.empty() == address_text.empty())
    throw Error(ErrorCode::Usage, "give exactly one of --type NAME and --address 0x...");
  if (int(o.backrefs) + int(o.chain) + int(o.cycles) > 1)
    throw Error(ErrorCode::Usage, "--backrefs, --chain and --cycles are different questions: give one");
  if (o.max_depth < 0 || o.max_depth > 100) throw Error(ErrorCode::Usage, "--max-depth wants 0 to 100");
  if (o.too_many < 1 || o.max_objects < 1) throw Error(ErrorCode::Usage, "--too-many and --max-objects want at least 1");
  if (dot_path == "-" && json) throw Error(ErrorCode::Usage, "--dot - and --json both want standard output: choose one");
  if (!dot_path.empty() && dot_path != "-") check_output_path("--dot", dot_path);
  if (!svg_path.empty()) check_output_path("--svg", svg_path);
  if (!png_path.empty()) check_output_path("--png", png_path);
  if (!address_text.empty()) {
    char* end = nullptr;
    errno = 0;
    unsigned long long a = std::strtoull(address_text.c_str(), &end, 0);
    if (errno || !end || *end || a == 0)
      throw Error(ErrorCode::Usage, "'" + address_text + "' is not an address (expected 0x... as pyinspect heap --largest shows)");
    o.address = a;
  }
  if ((!svg_path.empty() || !png_path.empty()) && find_dot().empty())
    throw Error(ErrorCode::Output, std::string("Graphviz's dot is not installed, needed for --") +
                                       (svg_path.empty() ? "png" : "svg") +
                                       "; install it (Debian/Ubuntu: apt-get install graphviz) or write --dot FILE "
                                       "and render it elsewhere");
  topts.use_dwarf = !no_dwarf;
  topts.use_cache = !no_cache;

  auto t0 = std::chrono::steady_clock::now();
  Process proc(parse_pid(pid_text));
  ProcessMemory mem(proc.pid(), Maps::read(proc.pid()));
  PythonProcess py(proc, mem, topts);
  int64_t pause_ns = 0;
  // The graph needs about as much again as the copy (docs/performance.md).
  std::vector<std::string> pause_warnings;
  auto snap = take_snapshot(proc.pid(), mem, nonblocking, max_copy_mib << 20, pause_ns, pause_warnings, 2.0,
                            !no_progress && isatty(STDERR_FILENO));
  HeapContext ctx(*snap, py.layout(), py.types(), &snap->maps());
  ObjectGraph graph(ctx, *snap, py, !no_progress && isatty(STDERR_FILENO));
  RefsResult r = compute_refs(graph, o);
  r.pid = proc.pid();
  r.python = python_info(py, *snap);
  r.pause_ns = pause_ns;
  r.paused = !nonblocking;
  r.warnings = pause_warnings;
  r.warnings.insert(r.warnings.end(), graph.warnings().begin(), graph.warnings().end());
  r.elapsed_ns = (std::chrono::steady_clock::now() - t0).count();

  std::string dot_text = (dot_path.empty() && svg_path.empty() && png_path.empty()) ? "" : refs_dot(r);
  std::string summary = " (" + std::to_string(r.nodes.size()) + " objects, " + std::to_string(r.edges.size()) + " references)";
  if (dot_path == "-") {
    std::cout << dot_text;  // the graph is the output
  } else if (!dot_path.empty()) {
    write_file_atomically(dot_path, dot_text);
    std::cerr << "pyinspect: wrote " << dot_path << summary << "\n";
  }
  for (auto [path, format] : {std::pair{&svg_path, "svg"}, std::pair{&png_path, "png"}}) {
    if (path->empty()) continue;
    render(dot_text, format, *path);
    std::cerr << "pyinspect: wrote " << *path << summary << "\n";
  }
  if (json)
    std::cout << dump_json(refs_json(r)) << "\n";
  else if (dot_path != "-")
    print_refs_text(std::cout, r, TextStyle{g.color, false});
  return 0;
}

}  // namespace pyinspect
