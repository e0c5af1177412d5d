#pragma once
// Shared command-line plumbing for the subcommands.
#include <boost/program_options.hpp>
#include <memory>
#include <string>
#include <vector>

#include "proc/core_file.hpp"
#include "proc/memory.hpp"
#include "proc/process.hpp"

namespace pyinspect {

namespace po = boost::program_options;

// Parses `args` against `desc` (+ positionals); prints help and returns false on --help.
// Throws Error(Usage) on bad options.
bool parse_command(const std::string& usage, const std::vector<std::string>& args, po::options_description& desc,
                   const po::positional_options_description& pos, po::variables_map& vm);

// Checks, before anything is done to the target, that an output file can be written: its
// directory exists and is writable, and it is not a directory. Throws Error(Output) otherwise.
void check_output_path(const std::string& option, const std::string& path);

// A PID argument: digits only, > 0, within pid_max. Throws Error(Usage) otherwise.
int parse_pid(const std::string& text);

// What a command reads: a live process (a PID) or a core file of one (a path), with its memory.
struct OpenedTarget {
  std::unique_ptr<Process> proc;
  std::unique_ptr<ProcessMemory> mem;
  bool live() const { return proc->live(); }
};
// A PID, or the path of an ELF core file (kernel, gcore or `pyinspect dump`). Throws
// Error(Usage) for text that is neither, Error(Corrupt) for a core that cannot be read.
OpenedTarget open_target(const std::string& text, const CoreSearch& search);
// --sysroot, --exe, --lib-search-path: where a core's files are on this machine.
void add_core_options(po::options_description& desc, CoreSearch& search, std::string& lib_path);
// Splits --lib-search-path (directories separated by ':') into `search`.
void finish_core_options(CoreSearch& search, const std::string& lib_path);

}  // namespace pyinspect
