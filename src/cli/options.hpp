#pragma once
// Shared command-line plumbing for the subcommands.
#include <boost/program_options.hpp>
#include <string>
#include <vector>

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

}  // namespace pyinspect
