#pragma once
// What blocked threads wait for, and who they wait for (stack): a thread asleep on a futex word
// is matched to the _thread lock that owns the word (found from its frames), to the GIL, or to
// the threading/queue call its frames are in (Condition.wait, Queue.get, Thread.join...). The
// holder of an RLock is its recorded owner; the holder of a plain Lock is inferred from the
// with-blocks live in other threads' frames. Wait-for cycles are deadlocks.
// docs/architecture.md, "Locks and deadlocks".
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/frames.hpp"
#include "runtime/model.hpp"
#include "runtime/objects.hpp"

namespace pyinspect {

// One thread of a snapshot, with what the analysis needs besides its ThreadInfo.
struct WaitInput {
  ThreadInfo* info = nullptr;
  std::vector<RawFrame> frames;  // its Python frames, innermost first, as decoded into info->frames
  std::optional<uint64_t> futex;  // the futex word it sleeps on, if it sleeps on one
  bool futex_guessed = false;     // in restart_syscall: believed only if it matches a lock or the GIL
  // Where the GIL's waiters of its interpreter sleep, [begin, end), when known.
  std::optional<std::pair<RemoteAddr, RemoteAddr>> gil_words;
};

// Fills each thread's waiting_for and holds, and snap.deadlocks. Reads the target through `r`
// (after the threads were released: locks, frames' variables and code do not move while a
// thread waits). Bounded: a few frames per thread, a few thousand objects in all.
void analyse_waits(const ObjectReader& r, std::vector<WaitInput>& threads, StackSnapshot& snap);

// What identifies the lock a thread sleeps for, from the futex word it sleeps on: the word itself
// (<=3.13: the sem_t a lock points to), or (3.14+: parked on a PyMutex) the address the waiter's
// wait_entry, around the word, says it parked on. nullopt if that cannot be read.
std::optional<uint64_t> parked_key(const Memory& m, const Layout& l, uint64_t futex);
// The same key for a _thread lock or RLock object: what its lock member points to (<=3.13), or
// the address of its PyMutex (3.14+). nullopt where the layout or memory does not say.
std::optional<uint64_t> lock_key(const Memory& m, const Layout& l, RemoteAddr lock, bool rlock);

// The depth of the live part of a 3.11+ frame's value stack at `offset` (code units), from its
// code's exception table (Objects/exception_handling_notes.txt): the stack depth of the handler
// that covers the instruction, 0 when none does.
int exception_depth(const std::vector<uint8_t>& table, int64_t offset);

// Wait-for cycles in `edges` (waiter -> the thread it waits for), each once, from the first
// thread of `order` it contains.
std::vector<std::vector<int>> wait_cycles(const std::vector<std::pair<int, int>>& edges, const std::vector<int>& order);

}  // namespace pyinspect
