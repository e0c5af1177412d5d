#include <iostream>
#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "base/log.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "output/json_util.hpp"
#include "output/stack_output.hpp"
#include "runtime/stack.hpp"

namespace pyinspect {

int cmd_info(const std::vector<std::string>& args, const GlobalOptions&) {
  po::options_description desc("Options");
  std::string pid_text;
  TargetOptions topts;
  bool json = false, no_cache = false, no_dwarf = false;
  CoreSearch search;
  std::string lib_path;
  desc.add_options()("pid", po::value(&pid_text)->required(), "process to inspect, or a core file of one")(
      "json", po::bool_switch(&json), "print one JSON document")("no-dwarf", po::bool_switch(&no_dwarf),
                                                                 "ignore debug info; use the embedded layout tables")(
      "no-cache", po::bool_switch(&no_cache), "read the DWARF even if its layout is cached (see docs/usage.md)")(
      "python", po::value(&topts.force_version), "CPython version X.Y, when the binary does not tell")(
      "find-interpreter", po::value(&topts.head_method)->default_value("auto"),
      "how to find the interpreter list: auto, runtime, symbol, code, scan");
  add_core_options(desc, search, lib_path);
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect info PID|CORE [options]", args, desc, pos, vm)) return 0;
  topts.use_dwarf = !no_dwarf;
  topts.use_cache = !no_cache;

  finish_core_options(search, lib_path);
  OpenedTarget target = open_target(pid_text, search);
  Process& proc = *target.proc;
  ProcessMemory& mem = *target.mem;
  PythonProcess py(proc, mem, topts);
  StackOptions so;
  so.nonblocking = true;  // counting threads needs no pause
  so.max_frames = 0;
  so.thread_names = false;
  so.waits = false;
  StackSnapshot snap = read_stacks(py, mem, so);
  const Layout& l = py.layout();
  if (json) {
    nlohmann::json j = {{"pid", proc.pid()},
                        {"command", proc.cmdline()},
                        {"python", python_json(snap.python)},
                        {"runtime_address", py.runtime().value()},
                        {"layout_fields_known", l.known_fields()},
                        {"layout_fields_total", kFieldCount},
                        {"interpreters", snap.interpreters},
                        {"threads", snap.threads.size()},
                        {"rss_bytes", target.live() ? nlohmann::json(proc.rss_bytes()) : nlohmann::json()},
                        {"core", target.live() ? nlohmann::json() : nlohmann::json(mem.core()->path())}};
    std::cout << dump_json(j) << "\n";
    return 0;
  }
  const auto& p = snap.python;
  std::cout << "Process:            " << proc.pid() << " (" << proc.cmdline() << ")\n"
            << "Python:             CPython " << p.version << (p.debug_build ? " (debug build)" : "") << "\n"
            << "Executable:         " << p.executable << "\n"
            << "Interpreter in:     " << p.binary << (p.shared_library ? " (shared library)" : " (static build)")
            << "\n"
            << "Debug info:         " << (p.debug_file.empty() ? std::string("none") : p.debug_file) << "\n"
            << "Layout from:        " << p.layout_source << " (" << l.known_fields() << " of " << kFieldCount
            << " members known)\n"
            << "Interpreter state:  found through " << p.interpreter_head << "\n";
  if (py.runtime()) std::cout << "_PyRuntime:         " << log::hex(py.runtime().value()) << "\n";
  std::cout << "Interpreters:       " << snap.interpreters << "\n"
            << "Python threads:     " << snap.threads.size() << "\n";
  if (target.live())
    std::cout << "Resident memory:    " << proc.rss_bytes() / (1024 * 1024) << " MiB\n";
  else
    std::cout << "Core file:          " << mem.core()->path() << "\n";
  return 0;
}

}  // namespace pyinspect
