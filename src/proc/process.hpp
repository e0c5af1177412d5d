#pragma once
// Facts about a target process from /proc: does it exist, what runs in it, its threads, and how
// to reach its files from our mount namespace.
#include <optional>
#include <string>
#include <vector>

namespace pyinspect {

struct TaskInfo {
  int tid = 0;
  std::string comm;  // kernel thread name (15 chars)
  char state = '?';  // R, S, D, T, t, Z, ...
};

class Process {
 public:
  // Checks that `pid` is a live user-space process we may look at; throws Error otherwise
  // (no such process, zombie, kernel thread, ourselves).
  explicit Process(int pid);

  int pid() const { return pid_; }
  // The executable as the target names it (inside its own mount namespace).
  const std::string& exe() const { return exe_; }
  // The command line, arguments joined by spaces.
  const std::string& cmdline() const { return cmdline_; }

  // Path under which we can open a file the target names `path` (handles other mount
  // namespaces through /proc/PID/root).
  std::string host_path(const std::string& path) const;

  // The current threads of the target (re-read each call).
  std::vector<int> tids() const { return list_tids(pid_); }
  static std::vector<int> list_tids(int pid);
  std::vector<TaskInfo> tasks() const;
  static std::optional<TaskInfo> task_info(int pid, int tid);

  // Resident set size in bytes, 0 if unknown.
  uint64_t rss_bytes() const;
  // True if /proc/PID still exists and is not a zombie.
  bool alive() const { return is_alive(pid_); }
  static bool is_alive(int pid);

 private:
  int pid_;
  std::string exe_;
  std::string cmdline_;
};

// Reads a small /proc file whole; nullopt on any error.
std::optional<std::string> read_proc_file(const std::string& path);

}  // namespace pyinspect
