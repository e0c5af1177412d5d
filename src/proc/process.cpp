#include "proc/process.hpp"

#include "proc/core_file.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>

#include "base/error.hpp"

namespace pyinspect {

std::optional<std::string> read_proc_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {
// Fields of /proc/PID/stat after the command name (which may contain spaces and parentheses).
std::vector<std::string> stat_fields(const std::string& stat) {
  std::vector<std::string> fields;
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream rest(stat.substr(close + 1));
  std::string f;
  while (rest >> f) fields.push_back(f);
  return fields;  // fields[0] = state (field 3), fields[6] = flags (field 9)
}

std::string comm_of(const std::string& stat) {
  size_t open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return {};
  return stat.substr(open + 1, close - open - 1);
}

constexpr unsigned long kPfKthread = 0x00200000;  // PF_KTHREAD in task flags
}  // namespace

Process::Process(int pid) : pid_(pid) {
  if (pid <= 0) throw Error(ErrorCode::Usage, "invalid PID " + std::to_string(pid));
  if (pid == getpid()) throw Error(ErrorCode::Usage, "PID " + std::to_string(pid) + " is pyinspect itself");
  std::string base = "/proc/" + std::to_string(pid);
  auto stat = read_proc_file(base + "/stat");
  if (!stat) throw Error(ErrorCode::NoSuchProcess, "no process with PID " + std::to_string(pid));
  auto fields = stat_fields(*stat);
  if (fields.size() < 7) throw Error(ErrorCode::NoSuchProcess, "cannot read state of PID " + std::to_string(pid));
  if (fields[0] == "Z" || fields[0] == "X")
    throw Error(ErrorCode::NoSuchProcess, "process " + std::to_string(pid) + " is a zombie (it has exited)");
  unsigned long flags = 0;
  std::from_chars(fields[6].data(), fields[6].data() + fields[6].size(), flags);
  if (flags & kPfKthread)
    throw Error(ErrorCode::NotPython, "process " + std::to_string(pid) + " is a kernel thread, not a Python process");
  // Status: an existing /proc entry we cannot inspect means another user's process.
  char buf[4096];
  ssize_t n = readlink((base + "/exe").c_str(), buf, sizeof buf - 1);
  if (n < 0) {
    int err = errno;
    if (err == EACCES || err == EPERM) throw_errno(err, "inspect process " + std::to_string(pid), pid);
    if (err == ENOENT) {
      if (!alive()) throw Error(ErrorCode::NoSuchProcess, "process " + std::to_string(pid) + " has exited");
      throw Error(ErrorCode::NotPython, "process " + std::to_string(pid) + " has no executable (kernel thread?)");
    }
    throw_errno(err, "read executable of process " + std::to_string(pid), pid);
  }
  exe_.assign(buf, static_cast<size_t>(n));
  if (auto cmd = read_proc_file(base + "/cmdline")) {
    std::string c = *cmd;
    while (!c.empty() && c.back() == '\0') c.pop_back();
    std::replace(c.begin(), c.end(), '\0', ' ');
    cmdline_ = c;
  }
}

Process::Process(std::shared_ptr<const CoreFile> core) : pid_(core->pid()), core_(std::move(core)) {
  exe_ = core_->executable();
  if (exe_.empty() && !core_->host_path("").empty()) exe_ = core_->host_path("");  // --exe
  if (exe_.empty())
    throw Error(ErrorCode::Usage, core_->path() + ": the core does not say which executable it ran (no NT_FILE note "
                                                  "naming it): give it with --exe");
  cmdline_ = core_->arguments();
}

std::vector<int> Process::tids() const {
  if (!core_) return list_tids(pid_);
  std::vector<int> out;
  for (const auto& t : core_->threads()) out.push_back(t.tid);
  return out;
}

std::optional<TaskInfo> Process::task(int tid) const {
  if (!core_) return task_info(pid_, tid);
  for (const auto& t : core_->threads())
    if (t.tid == tid) {
      // A core records no state; its registers tell whether the thread was in a system call
      // (blocked: "sleeping", as /proc would most often have said) or running code.
      char state = t.regs.syscall >= 0 ? 'S' : 'R';
      return TaskInfo{tid, core_->command_name(), state};
    }
  return std::nullopt;
}

std::string Process::host_path(const std::string& path) const {
  if (core_) return core_->host_path(path);
  // /proc/PID/root resolves the target's root even in another mount namespace; when it is our
  // own root this costs nothing but a symlink hop.
  std::string p = path;
  const std::string deleted = " (deleted)";
  if (p.size() > deleted.size() && p.compare(p.size() - deleted.size(), deleted.size(), deleted) == 0)
    p.resize(p.size() - deleted.size());
  std::string via_root = "/proc/" + std::to_string(pid_) + "/root" + p;
  if (access(via_root.c_str(), R_OK) == 0) return via_root;
  return p;
}

std::vector<int> Process::list_tids(int pid) {
  std::vector<int> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    int tid = 0;
    const char* name = e->d_name;
    auto [p, ec] = std::from_chars(name, name + std::char_traits<char>::length(name), tid);
    if (ec == std::errc() && *p == '\0' && tid > 0) out.push_back(tid);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<TaskInfo> Process::task_info(int pid, int tid) {
  auto stat = read_proc_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat");
  if (!stat) return std::nullopt;
  TaskInfo t;
  t.tid = tid;
  t.comm = comm_of(*stat);
  auto fields = stat_fields(*stat);
  if (!fields.empty() && !fields[0].empty()) t.state = fields[0][0];
  return t;
}

std::vector<TaskInfo> Process::tasks() const {
  std::vector<TaskInfo> out;
  for (int tid : tids())
    if (auto t = task(tid)) out.push_back(*t);
  return out;
}

uint64_t Process::rss_bytes() const {
  if (core_) return 0;  // not recorded
  auto statm = read_proc_file("/proc/" + std::to_string(pid_) + "/statm");
  if (!statm) return 0;
  std::istringstream in(*statm);
  uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

bool Process::is_alive(int pid) {
  auto stat = read_proc_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  auto fields = stat_fields(*stat);
  return !fields.empty() && fields[0] != "Z" && fields[0] != "X";
}

}  // namespace pyinspect
