#pragma once
// The one walk over a target's interpreters and their threads, with one set of bounds, used by
// stack dumps, the heap's roots and the object graph (each thread's frames: frames.hpp). Lists
// are followed while they point to readable, unseen nodes, up to the bounds; a list that ends
// otherwise says why.
#include <string>
#include <vector>

#include "abi/layout.hpp"
#include "base/remote.hpp"
#include "proc/memory.hpp"

namespace pyinspect {

class PythonProcess;

struct ThreadWalkLimits {
  size_t interpreters = 1024;
  size_t threads = 100000;  // per interpreter
  size_t frames = 100000;   // per thread
};

struct NodeList {
  std::vector<RemoteAddr> nodes;
  bool complete = true;  // false: a bound was hit, a link could not be read, or the list loops
  std::string problem;
};

// Every interpreter, from the head of the list (the newest) to the main one (the last).
NodeList interpreters(const PythonProcess& py, const Memory& mem, const ThreadWalkLimits& limits = {});
// The thread states of one interpreter, newest first.
NodeList thread_states(const Layout& l, const Memory& mem, RemoteAddr interp, const ThreadWalkLimits& limits = {});

// The nodes of a circular doubly linked list (struct llist_node: 3.14's task lists) from its head,
// not counting the head: followed by `next_off` until the head comes back, each node's link at
// `prev_off` checked to point back to the one before. A head never initialised (its link null)
// is an empty list.
NodeList circular_list(const Memory& mem, RemoteAddr head, int64_t next_off, int64_t prev_off, size_t bound,
                       const char* what);

}  // namespace pyinspect
