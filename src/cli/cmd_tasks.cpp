#include <iostream>

#include "base/error.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "output/json_util.hpp"
#include "output/tasks_output.hpp"
#include "runtime/tasks.hpp"

namespace pyinspect {

int cmd_tasks(const std::vector<std::string>& args, const GlobalOptions& g) {
  po::options_description desc("Options");
  std::string pid_text;
  TasksOptions opts;
  TargetOptions topts;
  bool json = false, no_cache = false, addresses = false, no_dwarf = false;
  CoreSearch search;
  std::string lib_path;
  desc.add_options()("pid", po::value(&pid_text)->required(), "process to inspect, or a core file of one")(
      "json", po::bool_switch(&json), "print one JSON document (docs/json.md)")(
      "nonblocking", po::bool_switch(&opts.nonblocking),
      "do not pause the target; the tasks may be inconsistent, but the target never stops")(
      "addresses", po::bool_switch(&addresses), "show each task's address")(
      "no-dwarf", po::bool_switch(&no_dwarf), "ignore debug info; use the embedded layout tables")(
      "no-cache", po::bool_switch(&no_cache), "read the DWARF even if its layout is cached")(
      "python", po::value(&topts.force_version), "CPython version X.Y, when the binary does not tell");
  add_core_options(desc, search, lib_path);
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect tasks PID|CORE [options]", args, desc, pos, vm)) return 0;
  topts.use_dwarf = !no_dwarf;
  topts.use_cache = !no_cache;
  finish_core_options(search, lib_path);
  OpenedTarget target = open_target(pid_text, search);
  Process& proc = *target.proc;
  ProcessMemory& mem = *target.mem;
  PythonProcess py(proc, mem, topts);
  TasksSnapshot snap = read_tasks(py, mem, opts);
  if (json)
    std::cout << dump_json(tasks_json(snap)) << "\n";
  else
    print_tasks_text(std::cout, snap, TextStyle{g.color, addresses});
  std::cout.flush();
  return 0;
}

}  // namespace pyinspect
