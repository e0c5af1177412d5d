#include "base/emergency.hpp"

#include <signal.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace pyinspect {

namespace {
// A process has at most a few thousand threads worth pausing; more than this and the kernel's
// own detach at exit covers the rest.
constexpr int kTracees = 8192;
constexpr int kFiles = 16;
constexpr int kPathMax = 4096;
constexpr int kChildren = 4;

struct Tracee {
  std::atomic<pid_t> tid{0};
  std::atomic<int> sig{0};
};
Tracee g_tracees[kTracees];

struct File {
  std::atomic<bool> used{false};  // claimed by a writer
  std::atomic<bool> ready{false};  // path complete: the handler may unlink it
  char path[kPathMax];
};
File g_files[kFiles];

std::atomic<pid_t> g_children[kChildren];

int slot_of(pid_t tid) {
  // Open addressing on the tid: registration and lookup stay O(1) for thousands of threads.
  return static_cast<int>(static_cast<unsigned>(tid) % kTracees);
}
}  // namespace

void emergency_add_tracee(pid_t tid) {
  for (int i = 0, s = slot_of(tid); i < kTracees; ++i, s = (s + 1) % kTracees) {
    pid_t expected = 0;
    if (g_tracees[s].tid.compare_exchange_strong(expected, tid)) {
      g_tracees[s].sig.store(0);
      return;
    }
  }
}

void emergency_set_tracee_signal(pid_t tid, int sig) {
  for (int i = 0, s = slot_of(tid); i < kTracees; ++i, s = (s + 1) % kTracees)
    if (g_tracees[s].tid.load() == tid) {
      g_tracees[s].sig.store(sig);
      return;
    }
}

void emergency_remove_tracee(pid_t tid) {
  for (int i = 0, s = slot_of(tid); i < kTracees; ++i, s = (s + 1) % kTracees)
    if (g_tracees[s].tid.load() == tid) {
      // A tombstone would be needed for a general hash table; here a freed slot only makes a
      // later probe longer, never wrong, because lookups scan the whole table when not found.
      g_tracees[s].tid.store(0);
      return;
    }
}

bool emergency_add_file(const char* path) {
  if (std::strlen(path) >= static_cast<size_t>(kPathMax)) return false;
  for (auto& f : g_files) {
    bool expected = false;
    if (f.used.compare_exchange_strong(expected, true)) {
      std::strcpy(f.path, path);
      f.ready.store(true);
      return true;
    }
  }
  return false;
}

void emergency_remove_file(const char* path) {
  for (auto& f : g_files)
    if (f.ready.load() && std::strcmp(f.path, path) == 0) {
      f.ready.store(false);
      f.used.store(false);
      return;
    }
}

void emergency_add_child(pid_t pid) {
  for (auto& c : g_children) {
    pid_t expected = 0;
    if (c.compare_exchange_strong(expected, pid)) return;
  }
}

void emergency_remove_child(pid_t pid) {
  for (auto& c : g_children) {
    pid_t expected = pid;
    if (c.compare_exchange_strong(expected, 0)) return;
  }
}

void emergency_cleanup() {
  for (auto& t : g_tracees) {
    pid_t tid = t.tid.exchange(0);
    if (tid > 0) ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(t.sig.load())));
  }
  for (auto& c : g_children) {
    pid_t pid = c.exchange(0);
    if (pid > 0) kill(pid, SIGKILL);
  }
  for (auto& f : g_files)
    if (f.ready.exchange(false)) unlink(f.path);
}

}  // namespace pyinspect
