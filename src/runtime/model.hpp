#pragma once
// Plain results of reading a target: what the output layer prints. No remote reads happen on
// these; addresses are kept only as numbers to show.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pyinspect {

// A frame's argument or local variable (stack --locals).
struct LocalVar {
  std::string name;
  std::string repr;      // bounded: see runtime/values.hpp; "<unbound>" when it has no value yet
  std::string type;      // empty when unbound
  uint64_t address = 0;  // the object's address; 0 when unbound
  bool cell = false;     // a cell or free variable (shared with an inner or outer function)
  bool argument = false;
};

struct FrameInfo {
  enum class Kind { Python, Native };
  Kind kind = Kind::Python;
  std::string function;   // qualified name where the version has one (3.11+), else co_name;
                          // native: the C function, demangled ("" when nothing names it)
  std::string name;       // co_name
  std::string file;       // co_filename
  int line = -1;          // -1: no line for this instruction
  int first_line = 0;     // co_firstlineno
  bool is_entry = false;  // first Python frame above a C call into the interpreter (3.11+)
  bool unreadable = false;  // its code object could not be read: function and file are "???"
  uint64_t code_address = 0;
  uint64_t frame_address = 0;
  // Which C-level evaluation runs this Python frame, counted from the innermost (0); -1 unknown.
  int eval_call = -1;
  // Native frames: file and line come from the DWARF (line 0 and file "" when it has none).
  std::string library;   // the binary the code is in, as the target names it
  uint64_t address = 0;  // the instruction or return address
  uint64_t offset = 0;   // that address in the library's own numbering (addr2line -e LIBRARY)
  bool inlined = false;  // a call the compiler inlined into the frame that follows
  bool is_native() const { return kind == Kind::Native; }
  // With --locals: its arguments and locals, in the code's order.
  std::vector<LocalVar> locals;
  bool locals_read = false;
  std::string locals_problem;  // why they could not be read
};

// What a blocked thread waits for (runtime/locks.hpp): a lock, a condition, a queue, a thread it
// joins, or the GIL; and who holds it, where that can be known.
struct WaitInfo {
  // Lock, RLock, Condition, Event, Semaphore, BoundedSemaphore, Barrier, Queue, Thread (a join),
  // GIL, or futex (asleep on a futex word no object pyinspect knows owns).
  std::string kind;
  std::string type;       // the object's class as the target names it (PriorityQueue, Worker...)
  uint64_t address = 0;   // the object waited for (0: the GIL, an unknown futex)
  uint64_t futex = 0;     // the futex word the thread sleeps on (0: not known)
  std::string name;       // where it is referenced from: "Worker._lock", "__main__.ledger_lock", "lock"
  int held_by = 0;        // kernel TID of the thread it waits for; 0: none or unknown
  std::string held_by_name;
  // certain (an RLock's owner, the GIL's holder, the thread joined), likely (inferred from the
  // holder's frames: inside a with-block on it), unknown, or none (nobody holds it: a wait for a
  // notification, an item, an event).
  std::string certainty;
  std::string how;        // how the holder is known, or why it is not
};

// A lock a thread's frames hold: the __exit__ of a with-block on it is on a live part of a frame's
// value stack (or an RLock records the thread as its owner).
struct HeldLock {
  std::string kind;  // Lock, RLock (a with-block on a Condition holds its lock)
  uint64_t address = 0;
  std::string name;
  std::string file;  // the frame that holds it; empty when known from an RLock's owner
  int line = -1;
  std::string function;
};

struct ThreadInfo {
  int native_id = 0;       // kernel TID, 0 if unknown
  uint64_t thread_id = 0;  // threading.get_ident() (pthread_t)
  std::string name;        // threading's name, else the kernel's comm
  bool name_from_threading = false;
  bool holds_gil = false;
  std::string state;  // running, sleeping, disk-sleep, stopped, zombie, unknown
  int64_t interpreter_id = 0;
  uint64_t tstate_address = 0;
  std::vector<FrameInfo> frames;  // innermost first (with --native, C and Python frames merged)
  bool truncated = false;         // the walk hit a bound, a cycle or unreadable memory
  bool python = true;             // false: a thread with no Python thread state (native frames only)
  // With --native: whether its native stack was unwound, and if it ended early, why.
  bool native = false;
  std::string native_problem;
  int python_frames_unplaced = 0;  // Python frames no evaluation frame of the native stack ran
  // Whether the thread was stopped while its stack was read: nullopt with --nonblocking (none
  // was); false for a thread that did not stop (in uninterruptible sleep).
  std::optional<bool> stopped;
  bool torn = false;  // its stack was seen to change while read: frames may be inconsistent
  std::optional<WaitInfo> waiting_for;
  std::vector<HeldLock> holds;
  std::vector<std::string> warnings;
};

struct PythonInfo {
  std::string version;  // "3.11.7"
  std::string implementation = "CPython";
  std::string binary;  // file that holds the interpreter (target's path)
  bool shared_library = false;
  std::string executable;
  std::string layout_source;     // "_Py_DebugOffsets + DWARF", "embedded table", ...
  std::string debug_file;        // where DWARF came from, if anywhere
  std::string interpreter_head;  // how the interpreter list was found
  bool debug_build = false;
};

// A snapshot read from a core file: which, and the signal that ended the process, if one did.
struct CoreInfo {
  std::string path;
  int signal = 0;  // 0: none recorded (a core written of a running process: gcore, dump)
  std::string signal_name;
  int thread = 0;  // the thread that received it (the kernel writes it first)
  int signal_code = 0;
  std::optional<uint64_t> address;  // the faulting address, for a fault
};

struct StackSnapshot {
  int pid = 0;
  std::optional<CoreInfo> core;  // read from a core file, not a live process
  std::string command;
  PythonInfo python;
  std::vector<ThreadInfo> threads;
  bool paused = false;     // false with --nonblocking
  int64_t pause_ns = 0;    // how long the target was stopped
  int64_t elapsed_ns = 0;  // whole read
  int interpreters = 0;
  int threads_not_stopped = 0;  // threads the pause could not stop (their stacks read while they ran)
  bool torn = false;            // something was seen to change while read
  bool native = false;          // native frames were asked for
  // Wait-for cycles among threads (kernel TIDs, each cycle from the first thread listed).
  std::vector<std::vector<int>> deadlocks;
  bool waits_read = false;  // what threads wait for was looked at
  std::vector<std::string> warnings;
};

// `pyinspect tasks`: one asyncio Task (runtime/tasks.hpp).
struct AsyncTask {
  uint64_t address = 0;  // its id() in the target
  std::string name;      // Task.get_name() ("Task-3" for an unnamed one; empty before 3.8)
  std::string state;     // pending, cancelled, finished
  uint64_t loop = 0;
  std::vector<FrameInfo> frames;  // its coroutine and what that awaits, innermost first
  // What it waits on (its _fut_waiter): "Task", "gather", a future's class; empty when it waits
  // on nothing (ready to run, or running now).
  std::string awaiting_kind;
  uint64_t awaiting = 0;
  std::vector<uint64_t> awaits;      // the tasks it waits for (that task, or a gather's tasks)
  std::vector<uint64_t> awaited_by;  // the tasks waiting for it
  std::string problem;               // what could not be read of it
};

struct EventLoopInfo {
  uint64_t address = 0;
  std::string type;  // its class
  int thread = 0;    // TID of the thread running it (run_forever), 0 if none runs it now
  std::string thread_name;
  size_t tasks = 0;
};

struct TasksSnapshot {
  int pid = 0;
  std::string command;
  PythonInfo python;
  std::vector<EventLoopInfo> loops;
  std::vector<AsyncTask> tasks;  // pending ones, by loop, in the registry's order
  std::vector<std::vector<uint64_t>> cycles;  // await cycles (task addresses)
  std::string registry;  // where the tasks were found ("asyncio.tasks._all_tasks", ...)
  bool paused = false;
  std::string core;  // the core file read, empty for a live process
  int64_t pause_ns = 0;
  int64_t elapsed_ns = 0;
  std::vector<std::string> warnings;
};

}  // namespace pyinspect
