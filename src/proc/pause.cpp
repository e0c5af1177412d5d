#include "proc/pause.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "base/emergency.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "proc/process.hpp"

namespace pyinspect {

namespace {
std::map<int, int>& reaped() {
  static std::map<int, int> statuses;
  return statuses;
}

// The kernel refuses to attach to a thread that is exiting with EPERM, as it does for lack of
// rights: tell the two apart by the thread's state.
bool exiting(int pid, int tid) {
  auto t = Process::task_info(pid, tid);
  return !t || t->state == 'Z' || t->state == 'X';
}
}  // namespace

std::optional<int> reaped_exit_status(int pid) {
  auto it = reaped().find(pid);
  if (it == reaped().end()) return std::nullopt;
  return it->second;
}

std::unique_ptr<StoppedThread> StoppedThread::seize(int pid, int tid) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
    int err = errno;
    if (err == ESRCH) return nullptr;  // thread exited between listing and seizing
    if ((err == EPERM || err == EACCES) && exiting(pid, tid)) return nullptr;
    if (err == EPERM || err == EACCES) throw_errno(err, "attach to process " + std::to_string(pid), pid);
    throw_errno(err, "attach to thread " + std::to_string(tid) + " of process " + std::to_string(pid), pid);
  }
  emergency_add_tracee(tid);
  return std::unique_ptr<StoppedThread>(new StoppedThread(tid));
}

bool StoppedThread::interrupt() {
  if (interrupted_) return true;
  interrupted_ = true;
  if (ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) == 0) return true;
  attached_ = errno == ESRCH ? false : attached_;  // gone: nothing to detach
  return false;
}

bool StoppedThread::poll() {
  if (stopped_ || !attached_) return true;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(tid_, &status, __WALL | WNOHANG);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR) continue;
      attached_ = false;  // ECHILD: gone, nothing to detach
      return true;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      reaped()[tid_] = status;
      attached_ = false;
      return true;
    }
    if (WIFSTOPPED(status)) {
      int event = status >> 16;
      int sig = WSTOPSIG(status);
      if (event == 0 && sig != SIGTRAP) {
        // A signal-delivery stop that raced with our interrupt: the thread is stopped; keep the
        // signal and hand it back when we detach so the target still receives it.
        pending_signal_ = sig;
        emergency_set_tracee_signal(tid_, sig);
      }
      stopped_ = true;
      return true;
    }
  }
}

std::optional<uint64_t> StoppedThread::tls_base() const {
#if defined(__x86_64__)
  if (!stopped_) return std::nullopt;
  errno = 0;
  long v = ptrace(PTRACE_PEEKUSER, tid_, offsetof(user_regs_struct, fs_base), nullptr);
  if (errno != 0) return std::nullopt;
  return static_cast<uint64_t>(v);
#else
  return std::nullopt;
#endif
}

std::optional<ThreadRegisters> StoppedThread::registers() const {
#if defined(__x86_64__)
  if (!stopped_) return std::nullopt;
  user_regs_struct r{};
  if (ptrace(PTRACE_GETREGS, tid_, nullptr, &r) != 0) return std::nullopt;
  ThreadRegisters out;
  out.dwarf = {r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8,
               r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip};
  out.pc = r.rip;
  out.sp = r.rsp;
  out.syscall = static_cast<int64_t>(r.orig_rax);
  out.syscall_args[0] = r.rdi;
  out.syscall_args[1] = r.rsi;
  return out;
#else
  return std::nullopt;
#endif
}

std::vector<uint64_t> StoppedThread::user_registers() const {
#if defined(__x86_64__)
  if (!stopped_) return {};
  user_regs_struct r{};
  if (ptrace(PTRACE_GETREGS, tid_, nullptr, &r) != 0) return {};
  static_assert(sizeof r % 8 == 0);
  std::vector<uint64_t> out(sizeof r / 8);
  std::memcpy(out.data(), &r, sizeof r);
  return out;
#else
  return {};
#endif
}

std::optional<BlockedSyscall> blocked_syscall(int pid, int tid) {
  std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/syscall";
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return std::nullopt;
  char buf[256] = {};
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  // "NR arg1 ... arg6 sp pc" in a system call, "-1 sp pc" outside one, "running" while running.
  BlockedSyscall out;
  char* end = nullptr;
  out.number = std::strtoll(buf, &end, 10);
  if (end == buf) return std::nullopt;
  for (uint64_t& a : out.args) {
    char* next = nullptr;
    a = std::strtoull(end, &next, 16);
    if (next == end) break;
    end = next;
  }
  return out;
}

std::optional<uint64_t> futex_waited(int64_t syscall, const uint64_t args[2], bool* restarted) {
#if defined(__x86_64__)
  constexpr int64_t kFutex = 202, kRestart = 219;  // SYS_futex, SYS_restart_syscall
#else
  constexpr int64_t kFutex = -2, kRestart = -2;
#endif
  if (syscall != kFutex && syscall != kRestart) return std::nullopt;
  if (restarted) *restarted = syscall == kRestart;
  // linux/futex.h: FUTEX_WAIT 0, FUTEX_WAIT_BITSET 9; FUTEX_PRIVATE_FLAG 128, FUTEX_CLOCK_REALTIME 256.
  uint64_t op = args[1] & ~uint64_t(128 | 256);
  if (op != 0 && op != 9) return std::nullopt;
  return args[0];
}

void StoppedThread::detach() {
  if (!attached_) return;
  attached_ = false;
  emergency_remove_tracee(tid_);
  // Works whether or not the thread has reached its stop yet; ESRCH means it is gone, which
  // counts as detached.
  ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(static_cast<long>(pending_signal_)));
}

StoppedThread::~StoppedThread() {
  detach();
  emergency_remove_tracee(tid_);  // also when it went away by itself
}

ProcessPause::ProcessPause(int pid, std::chrono::milliseconds timeout, std::chrono::milliseconds d_state_grace)
    : pid_(pid) {
  start_ = std::chrono::steady_clock::now();
  auto deadline = start_ + timeout;
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  mask_saved_ = pthread_sigmask(SIG_BLOCK, &chld, &old_mask_) == 0;
  std::set<int> seen;
  try {
    // Threads may be created while we attach: list again until a pass finds nothing new. A new
    // thread can only be created by a running thread, so once every listed thread is stopped
    // and a fresh listing adds none, the set is complete. Each pass first seizes (the threads
    // run on), then interrupts them all at once, so the pause starts as late as it can.
    for (int pass = 0; pass < 1000; ++pass) {
      std::vector<int> tids = Process::list_tids(pid);
      if (tids.empty())
        throw Error(ErrorCode::TargetExited, "process " + std::to_string(pid) + " exited while being read");
      bool added = false;
      for (int tid : tids) {
        if (!seen.insert(tid).second) continue;
        added = true;
        if (auto t = StoppedThread::seize(pid, tid)) threads_.push_back(std::move(t));
      }
      if (pass == 0) start_ = std::chrono::steady_clock::now();
      for (auto& t : threads_) t->interrupt();
      wait_all(deadline, d_state_grace);
      if (!added) break;
    }
  } catch (...) {
    resume();
    throw;
  }
  stopped_at_ = std::chrono::steady_clock::now();
  for (auto& t : threads_)
    if (!t->stopped() && t->attached()) unstopped_.push_back(t->tid());
  if (!unstopped_.empty())
    LOG_INFO(unstopped_.size() << " thread(s) of process " << pid << " did not stop; reading them anyway");
  if (threads_.empty()) {
    resume();
    throw Error(ErrorCode::TargetExited, "process " + std::to_string(pid) + " exited while being read");
  }
}

void ProcessPause::wait_all(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds d_state_grace) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  const auto grace_end = std::chrono::steady_clock::now() + d_state_grace;
  for (;;) {
    bool all = true;
    for (auto& t : threads_) all = (t->given_up() || t->poll()) && all;
    if (all) return;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    if (now >= grace_end) {
      // Whoever still runs is either about to stop or asleep in the kernel: stop waiting for the
      // sleepers in D, they stop only once their wait is over.
      bool others = false;
      for (auto& t : threads_) {
        if (t->given_up() || t->stopped() || !t->attached()) continue;
        auto info = Process::task_info(pid_, t->tid());
        if (info && info->state == 'D')
          t->give_up();
        else
          others = true;
      }
      if (!others) return;
    }
    auto wake = now < grace_end ? std::min(deadline, grace_end) : deadline;
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(wake - now).count();
    timespec ts{static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)};
    // A stop that happened since the poll above left SIGCHLD pending, so this returns at once.
    sigtimedwait(&chld, nullptr, &ts);
  }
}

void ProcessPause::resume() {
  for (auto& t : threads_) t->detach();
  if (!threads_.empty()) duration_ = std::chrono::steady_clock::now() - start_;
  threads_.clear();
  if (mask_saved_) {
    // Drop the SIGCHLDs our tracees' stops queued before SIGCHLD is unblocked again.
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    timespec zero{0, 0};
    while (sigtimedwait(&chld, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
    mask_saved_ = false;
  }
}

}  // namespace pyinspect
