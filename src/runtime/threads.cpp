#include "runtime/threads.hpp"

#include <unordered_set>

#include "runtime/target.hpp"

namespace pyinspect {

namespace {
// Follows `next_off` links from `first` until NULL, collecting each node.
NodeList follow(const Memory& mem, std::optional<RemoteAddr> first, int64_t next_off, size_t bound, const char* what) {
  NodeList out;
  std::unordered_set<RemoteAddr> seen;
  std::optional<RemoteAddr> p = first;
  while (p && !p->null()) {
    if (out.nodes.size() >= bound) {
      out.complete = false;
      out.problem = std::string("more than ") + std::to_string(bound) + " " + what + ": the rest not read";
      return out;
    }
    if (!seen.insert(*p).second) {
      out.complete = false;
      out.problem = std::string("the list of ") + what + " loops";
      return out;
    }
    out.nodes.push_back(*p);
    p = mem.read_ptr(*p + next_off);
  }
  if (!p) {
    out.complete = false;
    out.problem = std::string("the list of ") + what + " could not be read to its end";
  }
  return out;
}
}  // namespace

NodeList interpreters(const PythonProcess& py, const Memory& mem, const ThreadWalkLimits& limits) {
  auto first = py.first_interpreter(mem);
  if (!first) return {};  // none yet, or none any more
  return follow(mem, first, py.layout().require(F::is_next), limits.interpreters, "interpreters");
}

NodeList thread_states(const Layout& l, const Memory& mem, RemoteAddr interp, const ThreadWalkLimits& limits) {
  return follow(mem, mem.read_ptr(interp + l.require(F::is_tstate_head)), l.require(F::ts_next), limits.threads,
                "threads");
}

NodeList circular_list(const Memory& mem, RemoteAddr head, int64_t next_off, int64_t prev_off, size_t bound,
                       const char* what) {
  NodeList out;
  std::unordered_set<RemoteAddr> seen;
  auto fail = [&](const std::string& why) {
    out.complete = false;
    out.problem = why;
    return out;
  };
  RemoteAddr prev = head;
  std::optional<RemoteAddr> p = mem.read_ptr(head + next_off);
  while (true) {
    const std::string after = " after " + std::to_string(out.nodes.size()) + " " + what;
    if (!p) return fail(std::string("the list of ") + what + " could not be read" + after);
    if (p->null()) {
      if (out.nodes.empty()) return out;  // never initialised: empty
      return fail(std::string("the list of ") + what + " has a null link" + after);
    }
    if (*p == head) return out;
    if (out.nodes.size() >= bound)
      return fail(std::string("more than ") + std::to_string(bound) + " " + what + ": the rest not read");
    if (!seen.insert(*p).second) return fail(std::string("the list of ") + what + " loops" + after);
    if (prev_off >= 0) {
      auto back = mem.read_ptr(*p + prev_off);
      if (!back || *back != prev)
        return fail(std::string("the list of ") + what + " does not link back" + after + " (changed as it was read?)");
    }
    out.nodes.push_back(*p);
    prev = *p;
    p = mem.read_ptr(*p + next_off);
  }
}

}  // namespace pyinspect
