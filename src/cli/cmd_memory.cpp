#include <unistd.h>

#include <iostream>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "heap/accounting.hpp"
#include "output/json_util.hpp"
#include "output/memory_output.hpp"

namespace pyinspect {

int cmd_memory(const std::vector<std::string>& args, const GlobalOptions& g) {
  po::options_description desc("Options");
  std::string pid_text;
  uint64_t max_copy_mib = 0;
  bool json = false, no_progress = false, no_dwarf = false, no_cache = false;
  MemoryOptions opts;
  TargetOptions topts;
  CoreSearch search;
  std::string lib_path;
  desc.add_options()("pid", po::value(&pid_text)->required(), "process to inspect, or a core file of one")
      ("json", po::bool_switch(&json), "print one JSON document (docs/json.md)")
      ("nonblocking", po::bool_switch(&opts.nonblocking),
       "copy the memory without pausing the target (the figures may be inconsistent)")
      ("max-copy", po::value(&max_copy_mib), "refuse to copy more than this many MiB of the target's memory (default: what the available memory allows)")
      ("no-progress", po::bool_switch(&no_progress), "no progress line on stderr")
      ("no-dwarf", po::bool_switch(&no_dwarf),
       "ignore debug info: CPython's (use the embedded layout tables) and libc's (find malloc's arenas from the chunk headers)")
      ("no-cache", po::bool_switch(&no_cache), "read the DWARF even if its layout is cached")
      ("python", po::value(&topts.force_version), "CPython version X.Y, when the binary does not tell");
  add_core_options(desc, search, lib_path);
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect memory PID|CORE [options]", args, desc, pos, vm)) return 0;
  topts.use_dwarf = !no_dwarf;
  topts.use_cache = !no_cache;
  opts.use_debug_info = !no_dwarf;
  opts.max_copy_bytes = max_copy_mib << 20;
  opts.progress = !no_progress && isatty(STDERR_FILENO);

  finish_core_options(search, lib_path);
  OpenedTarget target = open_target(pid_text, search);
  PythonProcess py(*target.proc, *target.mem, topts);
  MemoryAccount account = account_memory(py, *target.mem, opts);
  if (json)
    std::cout << dump_json(memory_json(account)) << "\n";
  else
    print_memory_text(std::cout, account, TextStyle{g.color, false});
  return 0;
}

}  // namespace pyinspect
