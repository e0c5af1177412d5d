#include "proc/pause.hpp"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>
#include <cstddef>
#include <set>

#include "base/error.hpp"
#include "base/log.hpp"
#include "proc/process.hpp"

namespace pyinspect {

std::unique_ptr<StoppedThread> StoppedThread::seize(int pid, int tid) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
    int err = errno;
    if (err == ESRCH) return nullptr;  // thread exited between listing and seizing
    if (err == EPERM || err == EACCES)
      throw_errno(err, "attach to process " + std::to_string(pid), pid);
    throw_errno(err, "attach to thread " + std::to_string(tid) + " of process " + std::to_string(pid), pid);
  }
  std::unique_ptr<StoppedThread> t(new StoppedThread(tid));
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
    if (errno == ESRCH) return nullptr;  // destructor detaches
    throw_errno(errno, "interrupt thread " + std::to_string(tid), pid);
  }
  return t;
}

bool StoppedThread::wait_stopped(std::chrono::steady_clock::time_point deadline) {
  long delay_ns = 2000;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(tid_, &status, __WALL | WNOHANG);
    if (r == tid_) {
      if (WIFEXITED(status) || WIFSIGNALED(status)) {
        attached_ = false;
        return false;
      }
      if (WIFSTOPPED(status)) {
        int event = status >> 16;
        int sig = WSTOPSIG(status);
        if (event == 0 && sig != SIGTRAP) {
          // A signal-delivery stop that raced with our interrupt: the thread is stopped; keep
          // the signal and hand it back when we detach so the target still receives it.
          pending_signal_ = sig;
        }
        stopped_ = true;
        return true;
      }
      continue;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      attached_ = errno != ECHILD && errno != ESRCH ? attached_ : false;
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    timespec ts{0, delay_ns};
    nanosleep(&ts, nullptr);
    delay_ns = std::min(delay_ns * 2, 1000000L);
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

void StoppedThread::detach() {
  if (!attached_) return;
  attached_ = false;
  // Works whether or not the thread has reached its stop yet; ESRCH means it is gone, which
  // counts as detached.
  ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(static_cast<long>(pending_signal_)));
}

StoppedThread::~StoppedThread() { detach(); }

ProcessPause::ProcessPause(int pid, std::chrono::milliseconds timeout) : pid_(pid) {
  start_ = std::chrono::steady_clock::now();
  auto deadline = start_ + timeout;
  std::set<int> seen;
  // Threads may be created while we attach: list again until a pass finds nothing new. A new
  // thread can only be created by a running thread, so once every listed thread is stopped and
  // a fresh listing adds none, the set is complete.
  for (int pass = 0; pass < 1000; ++pass) {
    std::vector<int> tids = Process::list_tids(pid);
    if (tids.empty()) {
      threads_.clear();
      throw Error(ErrorCode::NoSuchProcess, "process " + std::to_string(pid) + " has exited");
    }
    bool added = false;
    for (int tid : tids) {
      if (!seen.insert(tid).second) continue;
      added = true;
      if (auto t = StoppedThread::seize(pid, tid)) threads_.push_back(std::move(t));
    }
    for (auto& t : threads_)
      if (!t->stopped()) t->wait_stopped(deadline);
    if (!added) break;
  }
  for (auto& t : threads_) unstopped_ += t->stopped() ? 0 : 1;
  if (unstopped_ > 0)
    spdlog::warn("{} thread(s) of process {} did not stop within {} ms; reading them anyway",
                 unstopped_, pid, timeout.count());
  if (threads_.empty()) throw Error(ErrorCode::NoSuchProcess, "process " + std::to_string(pid) + " has exited");
}

void ProcessPause::resume() {
  if (threads_.empty()) return;
  for (auto& t : threads_) t->detach();
  threads_.clear();
  duration_ = std::chrono::steady_clock::now() - start_;
}

}  // namespace pyinspect
