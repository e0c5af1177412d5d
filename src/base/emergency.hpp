#pragma once
// What must be undone if pyinspect is ended by a signal: threads of the target it has stopped,
// temporary files it is writing, a child (Graphviz's dot) it is waiting for. Registered while they
// exist; undone by `emergency_cleanup()` from a signal handler, so everything here is
// async-signal-safe: fixed-size tables of atomics, no allocation, only system calls.
//
// The kernel would detach the stopped threads anyway when pyinspect exits (they were seized with
// PTRACE_SEIZE), but detaching explicitly hands back a signal that arrived as a thread was
// being stopped, and lets the handler exit with the right status.
#include <sys/types.h>

namespace pyinspect {

// A stopped thread, with the signal to hand back to it when it is detached (0: none).
void emergency_add_tracee(pid_t tid);
void emergency_set_tracee_signal(pid_t tid, int sig);
void emergency_remove_tracee(pid_t tid);

// A temporary file to unlink. Returns false when the table is full (the file is then not
// removed on a signal; it is still removed on every normal path).
bool emergency_add_file(const char* path);
void emergency_remove_file(const char* path);

// A child process to kill.
void emergency_add_child(pid_t pid);
void emergency_remove_child(pid_t pid);

// Detaches the tracees, kills the children, unlinks the files. Async-signal-safe; idempotent.
void emergency_cleanup();

}  // namespace pyinspect
