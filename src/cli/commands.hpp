#pragma once
// Subcommands: each parses its own options from `args` (argv after the command name) and
// returns the process exit code. Errors are thrown as pyinspect::Error and reported by main.
#include <string>
#include <vector>

namespace pyinspect {

struct GlobalOptions {
  int verbosity = 0;
  bool color = false;  // resolved from --color, NO_COLOR and isatty
  std::string color_mode = "auto";
};

int cmd_stack(const std::vector<std::string>& args, const GlobalOptions& g);
int cmd_tasks(const std::vector<std::string>& args, const GlobalOptions& g);
int cmd_info(const std::vector<std::string>& args, const GlobalOptions& g);
int cmd_heap(const std::vector<std::string>& args, const GlobalOptions& g);
int cmd_memory(const std::vector<std::string>& args, const GlobalOptions& g);
int cmd_refs(const std::vector<std::string>& args, const GlobalOptions& g);
int cmd_record(const std::vector<std::string>& args, const GlobalOptions& g);
int cmd_top(const std::vector<std::string>& args, const GlobalOptions& g);
int cmd_dump(const std::vector<std::string>& args, const GlobalOptions& g);
int cmd_abi(const std::vector<std::string>& args, const GlobalOptions& g);

}  // namespace pyinspect
