#include "cli/sampling.hpp"

#include <sched.h>

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>

#include "base/emergency.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "proc/pause.hpp"

namespace pyinspect {

void SamplingArgs::describe(Profile& p) const {
  p.blocking = opts.blocking;
  p.idle = opts.idle;
  p.gil_only = opts.gil_only;
  p.by_function = opts.by_function;
  p.native = opts.native;
}

void add_sampling_options(po::options_description& desc, SamplingArgs& sa) {
  desc.add_options()("rate,r", po::value(&sa.opts.rate_hz)->default_value(sa.opts.rate_hz),
                     "samples per second")(
      "idle", po::bool_switch(&sa.opts.idle),
      "include threads that are not running (sleeping, waiting for a lock, I/O or the GIL)")(
      "gil", po::bool_switch(&sa.opts.gil_only), "only the thread that holds the GIL at each sample")(
      "threads", po::bool_switch(&sa.opts.threads), "a root per thread, with its name")(
      "function", po::bool_switch(&sa.opts.by_function), "aggregate by function, not by line")(
      "subprocesses", po::bool_switch(&sa.opts.subprocesses),
      "also sample the target's Python child processes (multiprocessing, gunicorn workers...), a root per process")(
      "nonblocking", po::bool_switch(&sa.nonblocking),
      "read the stacks while the target runs (the default: the target is never stopped; docs/performance.md)")(
      "blocking", po::bool_switch(&sa.blocking),
      "stop the target's threads for each sample (consistent stacks, at a cost to the target)")(
      "native", po::bool_switch(&sa.opts.native),
      "also the C frames, merged with the Python frames (as stack --native; implies --blocking)")(
      "native-all", po::bool_switch(&sa.opts.native_all),
      "as --native, and keep the evaluation loop's own C frames")(
      "realtime", po::value(&sa.realtime)->implicit_value(1)->value_name("PRIO"),
      "sample under the real-time scheduler (SCHED_FIFO, priority PRIO, default 1; root or CAP_SYS_NICE), so "
      "that other work on the machine does not delay the samples")(
      "max-frames", po::value(&sa.opts.max_frames)->default_value(sa.opts.max_frames),
      "at most N frames per stack (the innermost)")(
      "no-dwarf", po::bool_switch(&sa.no_dwarf), "ignore debug info; use the embedded layout tables");
}

void check_sampling_options(SamplingArgs& sa) {
  if (!(sa.opts.rate_hz > 0) || !std::isfinite(sa.opts.rate_hz) || sa.opts.rate_hz > 100000)
    throw Error(ErrorCode::Usage, "--rate wants a number of samples per second between 0 and 100000");
  if (sa.blocking && sa.nonblocking) throw Error(ErrorCode::Usage, "--blocking and --nonblocking: choose one");
  if (sa.opts.max_frames < 1) throw Error(ErrorCode::Usage, "--max-frames wants 1 or more");
  if (sa.realtime == 0 || sa.realtime > 99) throw Error(ErrorCode::Usage, "--realtime wants a priority from 1 to 99");
  sa.opts.realtime = sa.realtime > 0;
  if (sa.opts.native_all) sa.opts.native = true;
  if (sa.opts.native && sa.nonblocking)
    throw Error(ErrorCode::Usage, "--native reads each thread's registers, which needs it stopped: leave out --nonblocking");
  sa.opts.blocking = sa.blocking || sa.opts.native;
  sa.opts.use_dwarf = !sa.no_dwarf;
}

void enter_realtime(int priority) {
  if (priority <= 0) return;
  sched_param param{};
  param.sched_priority = priority;
  if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) != 0) {
    int err = errno;
    if (err == EPERM)
      throw Error(ErrorCode::Permission,
                  "--realtime: not allowed to use the real-time scheduler (run as root, or grant CAP_SYS_NICE)");
    throw Error(ErrorCode::Internal, std::string("--realtime: sched_setscheduler: ") + std::strerror(err));
  }
  LOG_DEBUG("sampling under SCHED_FIFO, priority " << priority);
}

namespace {
volatile std::sig_atomic_t g_stop = 0;
struct sigaction g_old[3];
constexpr int kStopSignals[3] = {SIGINT, SIGTERM, SIGHUP};

void on_stop(int sig) {
  if (g_stop) {
    // The second time: as pyinspect would without us.
    for (int i = 0; i < 3; ++i)
      if (kStopSignals[i] == sig) sigaction(sig, &g_old[i], nullptr);
    raise(sig);
    return;
  }
  g_stop = 1;
}
}  // namespace

StopFlag::StopFlag() {
  g_stop = 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the sampler's sleep ends at once
  for (int i = 0; i < 3; ++i) sigaction(kStopSignals[i], &sa, &g_old[i]);
}

StopFlag::~StopFlag() {
  for (int i = 0; i < 3; ++i) sigaction(kStopSignals[i], &g_old[i], nullptr);
}

const volatile std::sig_atomic_t& StopFlag::flag() const { return g_stop; }

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string join_command(const std::vector<std::string>& command) {
  std::string out;
  for (const auto& a : command) out += (out.empty() ? "" : " ") + a;
  return out;
}

int start_command(const std::vector<std::string>& command) {
  // A pipe closed by exec tells whether exec worked, and errno if it did not.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "start " + command[0]);
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw_errno(errno, "start " + command[0]);
  if (pid == 0) {
    close(fds[0]);
    // The program gets the signals pyinspect's own handlers would have changed back.
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp(argv[0], argv.data());
    int err = errno;
    ssize_t ignored = write(fds[1], &err, sizeof err);
    (void)ignored;
    _exit(127);
  }
  close(fds[1]);
  int err = 0;
  ssize_t n;
  do n = read(fds[0], &err, sizeof err);
  while (n < 0 && errno == EINTR);
  close(fds[0]);
  if (n == sizeof err) {
    waitpid(pid, nullptr, 0);
    throw Error(err == ENOENT ? ErrorCode::Usage : ErrorCode::Permission,
                "cannot run " + command[0] + ": " + std::strerror(err));
  }
  emergency_add_child(pid);
  return pid;
}

bool attach_started(Sampler& sampler, int child, const StopFlag& stop) {
  // The program is Python once its interpreter is mapped and set up: try until it is.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string last;
  while (!stop.flag()) {
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == child) {
      std::cerr << "pyinspect: the program ended before it could be read as Python"
                << (last.empty() ? "" : " (" + last + ")") << "\n";
      return false;
    }
    try {
      if (sampler.add_target(child, true)) return true;
      last = "its interpreter is not set up yet";
    } catch (const Error& e) {
      last = e.what();
      if (e.code() == ErrorCode::Permission || e.code() == ErrorCode::Unsupported) {
        std::cerr << "pyinspect: " << last << "\n";
        return false;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "pyinspect: the program did not become a Python process pyinspect can read within 10 s (" << last
                << "); waiting for it to end\n";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

int finish_command(int child, const Sampler* sampler) {
  std::optional<int> status = sampler ? sampler->child_status() : std::nullopt;
  while (!status) {
    int s = 0;
    pid_t r = waitpid(child, &s, 0);
    if (r == child) {
      status = s;
    } else if (r < 0 && errno != EINTR) {
      status = reaped_exit_status(child).value_or(0);
    }
  }
  emergency_remove_child(child);
  if (WIFEXITED(*status)) return WEXITSTATUS(*status);
  if (WIFSIGNALED(*status)) return 128 + WTERMSIG(*status);
  return 0;
}

}  // namespace pyinspect
