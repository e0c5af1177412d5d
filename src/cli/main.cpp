// pyinspect: look inside a running CPython process from the outside.
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "abi/facts.hpp"
#include "abi/layout.hpp"
#include "base/emergency.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "cli/commands.hpp"

using namespace pyinspect;

namespace {
const char* kUsage = R"(Usage: pyinspect [-v|-vv] [--color=auto|always|never] COMMAND [ARGS]
       pyinspect PID              (same as `pyinspect stack PID`)

Inspect a running CPython process from outside: read-only, no code injected.

Commands:
  stack PID      every thread's Python stack (function, file:line), what blocked threads wait for
  tasks PID      every pending asyncio task: its coroutine stack, what it awaits, who awaits it
  heap PID       a census of every live object, guppy-style (--top, --by, --largest, --growth)
  memory PID     where the process's resident memory goes: objects, their buffers, free memory
                 pymalloc and glibc malloc keep, memory no object owns, stacks, libraries
  refs PID       reference graphs: what objects hold (--type/--address), what holds them
                 (--backrefs), why they are alive (--chain), their cycles (--cycles); DOT/SVG/PNG
  record PID     sample the stacks and write a profile: flame graph (SVG), folded stacks,
                 speedscope or JSON (-o FILE, -d SECONDS, -r HZ); record -- COMMAND runs a program
  top PID        a live view of the functions the time goes to, refreshed every second
  info PID       which Python the process runs and how pyinspect reads it
  dump PID -o F  write an ELF core of the process, in one short pause
  stack, heap, refs, tasks and info take a core file in place of a PID (the kernel's, gdb's
                 gcore or dump's):
                 --exe, --sysroot, --lib-search-path say where its files are here
  abi dump BIN   print the layout pyinspect reads from BIN's DWARF (pyabi/ tables)
  abi check BIN  compare BIN's DWARF with the embedded table for its version
  abi fixed --python X.Y  the layouts used for extension modules' structs (_struct, ctypes...)

Options:
  -h, --help     this help; `pyinspect COMMAND --help` for a command's options
  -V, --version  version and supported CPython versions
  -v, --verbose  log what pyinspect does to stderr (-vv for more)
  --color WHEN   colour output: auto (default: on a terminal, unless NO_COLOR is set),
                 always, never

Exit codes: 0 ok, 1 internal error, 2 usage, 3 no such process, 4 permission denied,
5 not a Python process, 6 unsupported Python, 7 target exited, 8 unreadable target memory,
9 cannot write output, 10 resource limit, 11 no matching object, 130 interrupted,
128+N killed by signal N. See docs/exit-codes.md.
)";

void on_fatal_signal(int sig) {
  // Let the target's stopped threads go (with any signal that arrived as they stopped), stop
  // Graphviz, remove half-written files; then exit with the conventional status.
  emergency_cleanup();
  const char msg[] = "pyinspect: interrupted\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  _exit(sig == SIGINT ? 130 : 128 + sig);
}

void on_crash_signal(int sig) {
  // A bug in pyinspect: still let the target go and remove temporary files, then die of the same
  // signal (the handler was reset by SA_RESETHAND) so that a core dump shows where.
  emergency_cleanup();
  const char msg[] = "pyinspect: crashed (a bug in pyinspect); the target was released\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  raise(sig);
}

void install_signal_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU}) sigaction(sig, &sa, nullptr);
  struct sigaction crash;
  std::memset(&crash, 0, sizeof crash);
  crash.sa_handler = on_crash_signal;
  crash.sa_flags = SA_RESETHAND | SA_NODEFER;
  sigemptyset(&crash.sa_mask);
#if !defined(__SANITIZE_ADDRESS__)  // AddressSanitizer reports these itself
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) sigaction(sig, &crash, nullptr);
#endif
  // A closed pipe on stdout (`pyinspect stack 1 | head`) is not an error worth a signal death.
  signal(SIGPIPE, SIG_IGN);
}

bool is_number(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}
}  // namespace

int main(int argc, char** argv) {
  install_signal_handlers();
  GlobalOptions g;
  std::vector<std::string> args(argv + 1, argv + argc);
  size_t i = 0;
  // Global options come before the command.
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "-V" || a == "--version") {
      std::string untested;
      for (const auto& v : known_versions())
        if (!v.tested) untested += (untested.empty() ? "" : ", ") + std::to_string(v.major) + "." + std::to_string(v.minor);
      std::cout << "pyinspect " << PYINSPECT_VERSION << "\nSupports CPython " << known_versions_text()
                << " (embedded layouts: " << embedded_versions()
                << "; 3.13+ also through the target's _Py_DebugOffsets"
                << (untested.empty() ? "" : "; " + untested + " from its published sources, not yet tested on a real one")
                << ")\n";
      return 0;
    }
    if (a == "-v" || a == "--verbose") {
      ++g.verbosity;
    } else if (a.size() > 2 && a[0] == '-' && a.find_first_not_of('v', 1) == std::string::npos) {
      g.verbosity += static_cast<int>(a.size() - 1);
    } else if (a.rfind("--color", 0) == 0) {
      std::string v;
      if (a == "--color") {
        if (i + 1 >= args.size()) {
          std::cerr << "pyinspect: --color needs a value: auto, always or never\n";
          return 2;
        }
        v = args[++i];
      } else if (a.rfind("--color=", 0) == 0) {
        v = a.substr(8);
      }
      if (v != "auto" && v != "always" && v != "never") {
        std::cerr << "pyinspect: --color wants auto, always or never, not '" << v << "'\n";
        return 2;
      }
      g.color_mode = v;
    } else {
      break;
    }
  }
  init_logging(g.verbosity);
  const char* no_color = std::getenv("NO_COLOR");
  g.color = g.color_mode == "always" || (g.color_mode == "auto" && isatty(STDOUT_FILENO) && !(no_color && *no_color));

  if (i >= args.size()) {
    std::cerr << kUsage;
    return 2;
  }
  std::string command = args[i];
  std::vector<std::string> rest(args.begin() + static_cast<long>(i) + 1, args.end());
  try {
    if (is_number(command)) {
      rest.insert(rest.begin(), command);
      return cmd_stack(rest, g);
    }
    if (command == "stack") return cmd_stack(rest, g);
    if (command == "tasks") return cmd_tasks(rest, g);
    if (command == "info") return cmd_info(rest, g);
    if (command == "heap") return cmd_heap(rest, g);
    if (command == "memory") return cmd_memory(rest, g);
    if (command == "refs") return cmd_refs(rest, g);
    if (command == "record") return cmd_record(rest, g);
    if (command == "top") return cmd_top(rest, g);
    if (command == "abi") return cmd_abi(rest, g);
    if (command == "dump") return cmd_dump(rest, g);
    throw Error(ErrorCode::Usage, "unknown command '" + command + "' (see pyinspect --help)");
  } catch (const Error& e) {
    std::cerr << "pyinspect: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    std::cerr << "pyinspect: out of memory (see --max-copy and docs/safety.md); the target was released\n";
    return static_cast<int>(ErrorCode::Resources);
  } catch (const std::exception& e) {
    std::cerr << "pyinspect: internal error: " << e.what() << "\n";
    return static_cast<int>(ErrorCode::Internal);
  }
}
