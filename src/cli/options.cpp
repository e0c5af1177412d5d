#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include "cli/options.hpp"

#include <charconv>
#include <iostream>
#include <set>
#include <sstream>

#include "base/error.hpp"
#include "base/log.hpp"
#include "elf/elf_file.hpp"

namespace pyinspect {

namespace {
bool is_positional(const po::positional_options_description& pos, const std::string& name) {
  for (unsigned i = 0; i < pos.max_total_count() && i < 16; ++i)
    if (pos.name_for_position(i) == name) return true;
  return false;
}
}  // namespace

bool parse_command(const std::string& usage, const std::vector<std::string>& args, po::options_description& desc,
                   const po::positional_options_description& pos, po::variables_map& vm) {
  desc.add_options()("help,h", "show this help");
  // No option takes a negative number (counts, depths, sizes, seconds); the parser would turn
  // "-1" into a huge unsigned value, so refuse it here with the option's name.
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a == "--") continue;
    std::string name = a, value;
    if (auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[i + 1];
    }
    if (value.size() > 1 && value[0] == '-' && (std::isdigit(static_cast<unsigned char>(value[1])) || value[1] == '.') &&
        desc.find_nothrow(name.substr(2), false) && desc.find(name.substr(2), false).semantic()->max_tokens() > 0)
      throw Error(ErrorCode::Usage, name + " wants a number of 0 or more, not '" + value + "'");
  }
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    if (vm.count("help")) {
      // The positional arguments are in the usage line, not options of their own.
      po::options_description visible("Options");
      for (const auto& o : desc.options())
        if (!is_positional(pos, o->long_name())) visible.add(o);
      std::cout << "Usage: " << usage << "\n\n" << visible << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::required_option& e) {
    std::string name = e.get_option_name();
    while (!name.empty() && name[0] == '-') name.erase(0, 1);
    if (!is_positional(pos, name)) throw Error(ErrorCode::Usage, std::string(e.what()) + " (see --help)");
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    throw Error(ErrorCode::Usage, "missing " + name + " (usage: " + usage + ")");
  } catch (const po::error& e) {
    throw Error(ErrorCode::Usage, std::string(e.what()) + " (see --help)");
  }
  return true;
}

void check_output_path(const std::string& option, const std::string& path) {
  if (path.empty()) throw Error(ErrorCode::Usage, option + " wants a file name");
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw Error(ErrorCode::Output, "cannot write " + path + " (" + option + "): it is a directory");
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  if (access(dir.c_str(), W_OK) != 0)
    throw Error(ErrorCode::Output, "cannot write " + path + " (" + option + "): " + dir + ": " + std::strerror(errno));
  if (access(path.c_str(), F_OK) == 0 && access(path.c_str(), W_OK) != 0)
    throw Error(ErrorCode::Output, "cannot write " + path + " (" + option + "): " + std::strerror(errno));
}

int parse_pid(const std::string& text) {
  long long v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
    // Commands that read only a live process (open_target takes cores for the others).
    if (CoreFile::looks_like_core(text))
      throw Error(ErrorCode::Usage, "'" + text + "' is a core file: this command reads a live process only "
                                    "(stack, tasks, heap, refs, memory and info read cores)");
    throw Error(ErrorCode::Usage, "'" + text + "' is not a process ID (expected a positive number)");
  }
  if (v <= 0) throw Error(ErrorCode::Usage, "'" + text + "' is not a process ID (must be greater than 0)");
  if (v > 4194304) throw Error(ErrorCode::Usage, "'" + text + "' is not a process ID (larger than any pid_max)");
  return static_cast<int>(v);
}

namespace {
// Each mapped ELF file whose first page the core holds names its build-id there: a file found
// here with another one is not what the process ran (a core from another machine, or a library
// upgraded since), and what is read from it may not fit. One not found here at all is named
// too: without the executable or libpython the interpreter cannot be found (exit 5), and that
// error alone would not say why.
void check_files(const CoreFile& core) {
  std::set<std::string> seen;
  std::vector<std::string> missing;
  for (const auto& f : core.files()) {
    if (f.file_offset != 0 || !seen.insert(f.path).second) continue;
    const size_t len = std::min<uint64_t>(4096, f.end - f.start);
    const uint8_t* head = core.view(f.start, len);
    std::string theirs = build_id_in_image(head, len);
    std::string here = core.host_path(f.path);
    if (access(here.c_str(), R_OK) != 0) {
      // The ELF files: the core keeps their first page (a mapped data file is rarely read).
      if (head && len >= 4 && std::memcmp(head, "\177ELF", 4) == 0) missing.push_back(f.path);
      continue;
    }
    if (theirs.empty()) continue;
    std::string mine;
    try {
      mine = ElfFile(here).build_id();
    } catch (const Error&) {
      continue;
    }
    if (mine != theirs)
      LOG_WARN(here << " is not the file the process had mapped as " << f.path << " (build-id "
                    << (mine.empty() ? "none" : mine) << " here, " << theirs
                    << " in the core): what is read from it may not fit; give the right one with --exe, --sysroot or "
                       "--lib-search-path");
  }
  if (missing.empty()) return;
  std::string names;
  for (size_t i = 0; i < missing.size() && i < 4; ++i) names += (i ? ", " : "") + missing[i];
  if (missing.size() > 4) names += " and " + std::to_string(missing.size() - 4) + " more";
  LOG_WARN(missing.size() << (missing.size() == 1 ? " file" : " files") << " the core names "
                          << (missing.size() == 1 ? "is" : "are") << " not here: " << names
                          << " (a core from another machine? give where they are with --sysroot, --lib-search-path "
                             "or --exe)");
}
}  // namespace

OpenedTarget open_target(const std::string& text, const CoreSearch& search) {
  OpenedTarget t;
  bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits && access(text.c_str(), F_OK) == 0) {
    if (!CoreFile::looks_like_core(text))
      throw Error(ErrorCode::Usage, "'" + text + "' is not a process ID nor an ELF core file");
    auto core = std::make_shared<const CoreFile>(text, search);
    for (const auto& w : core->warnings()) LOG_WARN(w);
    check_files(*core);
    t.proc = std::make_unique<Process>(core);
    t.mem = std::make_unique<ProcessMemory>(core);
    return t;
  }
  if (!digits && text.find('/') != std::string::npos)
    throw Error(ErrorCode::Usage, "'" + text + "': no such file (expected a process ID or a core file)");
  t.proc = std::make_unique<Process>(parse_pid(text));
  t.mem = std::make_unique<ProcessMemory>(t.proc->pid(), Maps::read(t.proc->pid()));
  return t;
}

void add_core_options(po::options_description& desc, CoreSearch& search, std::string& lib_path) {
  desc.add_options()("sysroot", po::value(&search.sysroot),
                     "core files: the directory the target's files are under here (a core from another machine)")(
      "exe", po::value(&search.exe), "core files: the target's executable, where it is here")(
      "lib-search-path", po::value(&lib_path),
      "core files: directories (separated by ':') to find the target's libraries in, by name");
}

void finish_core_options(CoreSearch& search, const std::string& lib_path) {
  std::istringstream in(lib_path);
  for (std::string d; std::getline(in, d, ':');)
    if (!d.empty()) search.lib_dirs.push_back(d);
}

}  // namespace pyinspect
