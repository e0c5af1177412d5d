#pragma once
// Stopping the target's threads while we read, and letting them go again whatever happens.
//
// PTRACE_SEIZE + PTRACE_INTERRUPT, never PTRACE_ATTACH: SEIZE sends no SIGSTOP, so if pyinspect
// dies (even by SIGKILL) the kernel detaches every tracee and wakes it, and no stray group-stop
// is left behind. Each stopped thread is owned by a StoppedThread, which detaches in its
// destructor (ESRCH counts as detached), so a half-built pause undoes itself.
#include <signal.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pyinspect {

// A stopped thread's registers as the unwinder wants them: in DWARF register numbering (x86-64:
// rax rdx rcx rbx rsi rdi rbp rsp r8-r15, then the return address column: rip).
struct ThreadRegisters {
  static constexpr size_t kCount = 17;
  std::array<uint64_t, kCount> dwarf{};
  uint64_t pc = 0;
  uint64_t sp = 0;
  // The system call it was stopped in (the kernel keeps its number and arguments to restart it):
  // -1 when it was not in one.
  int64_t syscall = -1;
  uint64_t syscall_args[2] = {0, 0};
};

// The system call a thread sleeps in, as /proc/PID/task/TID/syscall says (no stop needed):
// nullopt when it is running or the file cannot be read.
struct BlockedSyscall {
  int64_t number = -1;
  uint64_t args[2] = {0, 0};
};
std::optional<BlockedSyscall> blocked_syscall(int pid, int tid);
// The futex word a thread sleeps on (FUTEX_WAIT or FUTEX_WAIT_BITSET), from its system call.
// A timed wait interrupted by a stop goes on as restart_syscall, whose registers still hold the
// futex's arguments; but so they do for any other call restarted that way, so `*restarted` says
// the word is only a guess, to be believed only if it matches a lock.
std::optional<uint64_t> futex_waited(int64_t syscall, const uint64_t args[2], bool* restarted = nullptr);

class StoppedThread {
 public:
  // Seizes `tid` (it keeps running); nullptr if the thread vanished meanwhile. Throws Error
  // on permission problems.
  static std::unique_ptr<StoppedThread> seize(int pid, int tid);
  // Asks the seized thread to stop (PTRACE_INTERRUPT); false if it is gone.
  bool interrupt();
  ~StoppedThread();
  StoppedThread(const StoppedThread&) = delete;
  StoppedThread& operator=(const StoppedThread&) = delete;

  int tid() const { return tid_; }
  // Checks, without blocking, whether the thread has reached its ptrace stop (or exited).
  // True once nothing more is to be waited for.
  bool poll();
  bool stopped() const { return stopped_; }
  bool attached() const { return attached_; }
  // No longer waited for: it sat in uninterruptible sleep (D) past the grace period.
  bool given_up() const { return given_up_; }
  void give_up() { given_up_ = true; }
  // The thread's TLS base (fs_base on x86-64): glibc's pthread_t for that thread.
  std::optional<uint64_t> tls_base() const;
  // Its registers (PTRACE_GETREGS); nullopt if it is not stopped or the architecture is not
  // supported (x86-64 only, for now).
  std::optional<ThreadRegisters> registers() const;
  // All of them as the kernel keeps them (x86-64's user_regs_struct, in words): what a core's
  // NT_PRSTATUS holds. Empty if it is not stopped or the architecture is not supported.
  std::vector<uint64_t> user_registers() const;
  void detach();

 private:
  explicit StoppedThread(int tid) : tid_(tid) {}
  int tid_;
  bool stopped_ = false;
  bool attached_ = true;
  bool interrupted_ = false;
  bool given_up_ = false;
  int pending_signal_ = 0;  // a signal that arrived as we stopped it, handed back at detach
};

// A tracee that is also pyinspect's own child (record -- CMD) reports its exit to the first
// waitpid that asks: when a pause's wait collected it, its wait status is kept here.
std::optional<int> reaped_exit_status(int pid);

class ProcessPause {
 public:
  // Stops every thread of `pid`, including threads created while we attach. Throws Error on
  // failure (permission, process gone); nothing stays stopped if it throws.
  // A thread that has not stopped after `d_state_grace` and is in uninterruptible sleep (D: a
  // syscall that waits for I/O, a vfork child...) cannot stop until it wakes: it is not waited for
  // any longer, so that one such thread does not keep the others stopped for `timeout`.
  explicit ProcessPause(int pid, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000),
                        std::chrono::milliseconds d_state_grace = std::chrono::milliseconds(10));
  ~ProcessPause() { resume(); }
  ProcessPause(const ProcessPause&) = delete;
  ProcessPause& operator=(const ProcessPause&) = delete;

  void resume();
  bool active() const { return !threads_.empty(); }
  const std::vector<std::unique_ptr<StoppedThread>>& threads() const { return threads_; }
  // Threads that had not stopped when the wait ended (e.g. in uninterruptible sleep), by TID.
  const std::vector<int>& unstopped() const { return unstopped_; }
  // How long the target was stopped (from the first interrupt to the last detach).
  std::chrono::nanoseconds duration() const { return duration_; }
  // When every thread had stopped, and how long that took.
  std::chrono::steady_clock::time_point stopped_at() const { return stopped_at_; }
  int64_t stop_ns() const { return (stopped_at_ - start_).count(); }

 private:
  int pid_;
  std::vector<std::unique_ptr<StoppedThread>> threads_;
  // Waits for every thread to stop: sleeps in sigtimedwait() for SIGCHLD (which the kernel
  // sends the tracer on each tracee stop), so it neither spins nor oversleeps.
  void wait_all(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds d_state_grace);
  std::vector<int> unstopped_;
  sigset_t old_mask_{};
  bool mask_saved_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point stopped_at_;
  std::chrono::nanoseconds duration_{0};
};

}  // namespace pyinspect
