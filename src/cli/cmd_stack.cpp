#include <algorithm>
#include <iostream>

#include "base/error.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "output/json_util.hpp"
#include "output/stack_output.hpp"
#include "runtime/stack.hpp"

namespace pyinspect {

int cmd_stack(const std::vector<std::string>& args_in, const GlobalOptions& g) {
  // -l, --locals: repeated (-l -l, -ll) for longer values; counted here, given once to the parser.
  std::vector<std::string> args;
  int locals = 0;
  for (size_t i = 0; i < args_in.size(); ++i) {
    const std::string& a = args_in[i];
    if (a == "--") {  // what follows is not an option
      args.insert(args.end(), args_in.begin() + static_cast<long>(i), args_in.end());
      break;
    }
    // --locals and the abbreviations the parser would accept for it (--loc, --local).
    if (a.size() >= 5 && std::string("--locals").compare(0, a.size(), a) == 0) {
      ++locals;
      continue;
    }
    if (a.size() >= 2 && a[0] == '-' && a.find_first_not_of('l', 1) == std::string::npos) {
      locals += static_cast<int>(a.size() - 1);
      continue;
    }
    args.push_back(a);
  }
  po::options_description desc("Options");
  std::string pid_text;
  StackOptions opts;
  TargetOptions topts;
  CoreSearch search;
  std::string lib_path;
  bool json = false, no_cache = false, addresses = false, no_names = false, no_dwarf = false;
  desc.add_options()("pid", po::value(&pid_text)->required(), "process to inspect, or a core file of one")(
      "json", po::bool_switch(&json), "print one JSON document (docs/json.md)")(
      "nonblocking", po::bool_switch(&opts.nonblocking),
      "do not pause the target; the stacks may be inconsistent, but the target never stops")(
      "max-frames", po::value(&opts.max_frames)->default_value(opts.max_frames), "at most N frames per thread")(
      "native", po::bool_switch(&opts.native),
      "also the C frames of every thread, merged with its Python frames (unwound from a copy of its stack)")(
      "native-all", po::bool_switch(&opts.native_all),
      "as --native, and keep the evaluation loop's own frames beside the Python frames they run")(
      "addresses", po::bool_switch(&addresses), "show thread state and code object addresses")(
      "locals,l", "each Python frame's arguments and locals, as short reprs (-ll, -lll: longer)")(
      "no-thread-names", po::bool_switch(&no_names), "do not look up threading's thread names")(
      "no-dwarf", po::bool_switch(&no_dwarf), "ignore debug info; use the embedded layout tables")(
      "no-cache", po::bool_switch(&no_cache), "read the DWARF even if its layout (or, --native, its frames' names) is cached (see docs/usage.md)")(
      "python", po::value(&topts.force_version), "CPython version X.Y, when the binary does not tell")(
      "find-interpreter", po::value(&topts.head_method)->default_value("auto"),
      "how to find the interpreter list: auto, runtime, symbol, code, scan");
  add_core_options(desc, search, lib_path);
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect stack PID|CORE [options]", args, desc, pos, vm)) return 0;
  finish_core_options(search, lib_path);
  if (opts.max_frames < 1) throw Error(ErrorCode::Usage, "--max-frames wants 1 or more");
  opts.thread_names = !no_names;
  opts.locals = locals;
  if (opts.native_all) opts.native = true;
  if (opts.native && opts.nonblocking)
    throw Error(ErrorCode::Usage, "--native reads registers, which needs the pause: leave out --nonblocking");
  opts.max_native_frames = std::min<size_t>(opts.max_frames, 4096);  // a C stack deeper than this is a loop
  topts.use_dwarf = !no_dwarf;
  topts.use_cache = !no_cache;
  opts.native_cache = !no_cache;

  OpenedTarget target = open_target(pid_text, search);
  PythonProcess py(*target.proc, *target.mem, topts);
  StackSnapshot snap = read_stacks(py, *target.mem, opts);
  if (json)
    std::cout << dump_json(stack_json(snap)) << "\n";
  else
    print_stack_text(std::cout, snap, TextStyle{g.color, addresses});
  std::cout.flush();
  return 0;
}

}  // namespace pyinspect
