#include "cli/options.hpp"

#include <charconv>
#include <iostream>

#include "base/error.hpp"

namespace pyinspect {

bool parse_command(const std::string& usage, const std::vector<std::string>& args, po::options_description& desc,
                   const po::positional_options_description& pos, po::variables_map& vm) {
  desc.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << "Usage: " << usage << "\n\n" << desc << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorCode::Usage, std::string(e.what()) + " (see --help)");
  }
  return true;
}

int parse_pid(const std::string& text) {
  long long v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size())
    throw Error(ErrorCode::Usage, "'" + text + "' is not a process ID (expected a positive number)");
  if (v <= 0) throw Error(ErrorCode::Usage, "'" + text + "' is not a process ID (must be greater than 0)");
  if (v > 4194304) throw Error(ErrorCode::Usage, "'" + text + "' is not a process ID (larger than any pid_max)");
  return static_cast<int>(v);
}

}  // namespace pyinspect
