#pragma once
// Facts about a target process from /proc: does it exist, what runs in it, its threads, and how
// to reach its files from our mount namespace.
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pyinspect {

class CoreFile;

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
  // The process a core file was taken of: its threads are the core's, its files are opened
  // under the core's sysroot, and nothing is asked of /proc (the PID may be another process's
  // now).
  explicit Process(std::shared_ptr<const CoreFile> core);
  bool live() const { return core_ == nullptr; }
  const CoreFile* core() const { return core_.get(); }

  int pid() const { return pid_; }
  // The executable as the target names it (inside its own mount namespace).
  const std::string& exe() const { return exe_; }
  // The command line, arguments joined by spaces.
  const std::string& cmdline() const { return cmdline_; }

  // Path under which we can open a file the target names `path` (handles other mount
  // namespaces through /proc/PID/root).
  std::string host_path(const std::string& path) const;

  // The current threads of the target (re-read each call; a core's, as it recorded them).
  std::vector<int> tids() const;
  static std::vector<int> list_tids(int pid);
  std::vector<TaskInfo> tasks() const;
  // One thread (a core's: its name is the process's, its state from its registers).
  std::optional<TaskInfo> task(int tid) const;
  static std::optional<TaskInfo> task_info(int pid, int tid);

  // Resident set size in bytes, 0 if unknown.
  uint64_t rss_bytes() const;
  // True if /proc/PID still exists and is not a zombie (a core is a file: always).
  bool alive() const { return !live() || is_alive(pid_); }
  static bool is_alive(int pid);

 private:
  int pid_;
  std::string exe_;
  std::string cmdline_;
  std::shared_ptr<const CoreFile> core_;
};

// Reads a small /proc file whole; nullopt on any error.
std::optional<std::string> read_proc_file(const std::string& path);

}  // namespace pyinspect
