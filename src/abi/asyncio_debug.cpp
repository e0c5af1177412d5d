#include "abi/asyncio_debug.hpp"

#include <cstring>
#include <string>

#include "base/error.hpp"

namespace pyinspect {

namespace {
struct Decoded {
  // asyncio_task_object
  uint64_t task_size, task_name, task_awaited_by, task_is_task, task_awaited_by_is_set, task_coro, task_node;
  // asyncio_interpreter_state
  uint64_t interp_size, interp_tasks_head;
  // asyncio_thread_state
  uint64_t thread_size, thread_running_loop, thread_running_task, thread_tasks_head;
};
static_assert(sizeof(Decoded) == kAsyncioDebugSize);

[[noreturn]] void refuse(const std::string& why) {
  throw Error(ErrorCode::Corrupt, "the target's _AsyncioDebug is not a struct pyinspect can read: " + why);
}
}  // namespace

void apply_asyncio_debug(std::span<const uint8_t> bytes, Layout& l) {
  if (bytes.size() < kAsyncioDebugSize) refuse("only " + std::to_string(bytes.size()) + " bytes");
  Decoded d;
  std::memcpy(&d, bytes.data(), sizeof d);
  constexpr uint64_t kMaxStruct = 1 << 20;
  if (!d.task_size || d.task_size > kMaxStruct || !d.interp_size || d.interp_size > kMaxStruct || !d.thread_size ||
      d.thread_size > kMaxStruct)
    refuse("implausible struct sizes");
  // TaskObj as 3.14 declares it: FutureObj_HEAD (the header, loop, nine more pointers,
  // awaited_by; the state, is_task, awaited_by_is_set; bit-fields), then num_cancels_requested,
  // fut_waiter, coro, name, context, task_node.
  const uint64_t task_members[] = {d.task_awaited_by, d.task_is_task, d.task_awaited_by_is_set,
                                   d.task_coro,       d.task_name,    d.task_node};
  for (size_t i = 0; i < std::size(task_members); ++i) {
    if (task_members[i] >= d.task_size) refuse("a TaskObj member past the struct's " + std::to_string(d.task_size) + " bytes");
    if (i && task_members[i] <= task_members[i - 1]) refuse("TaskObj's members out of their declared order");
  }
  if (d.task_node + 16 > d.task_size) refuse("task_node (two pointers) does not fit in TaskObj");
  if (d.task_awaited_by < 80 + 16 || d.task_coro < 8 || d.task_is_task < 4)
    refuse("TaskObj's members too close to its start");
  if (d.interp_tasks_head + 16 > d.interp_size || d.thread_tasks_head + 16 > d.thread_size ||
      d.thread_running_loop + 8 > d.thread_size || d.thread_running_task + 8 > d.thread_size)
    refuse("a thread's or interpreter's member past its struct");
  auto set = [&](F f, uint64_t v) { l.set(f, static_cast<int64_t>(v), LayoutSource::DebugOffsets); };
  set(F::task_name, d.task_name);
  set(F::task_awaited_by, d.task_awaited_by);
  set(F::task_is_task, d.task_is_task);
  set(F::task_awaited_by_is_set, d.task_awaited_by_is_set);
  set(F::task_coro, d.task_coro);
  set(F::task_node, d.task_node);
  // What follows from the declaration: the loop is the first of the eleven pointers that end
  // with awaited_by, the state (an enum) comes just before is_task, fut_waiter just before coro.
  set(F::task_loop, d.task_awaited_by - 80);
  set(F::task_state, d.task_is_task - 4);
  set(F::task_fut_waiter, d.task_coro - 8);
  set(F::is_asyncio_tasks_head, d.interp_tasks_head);
  set(F::ts_asyncio_running_loop, d.thread_running_loop);
  set(F::ts_asyncio_running_task, d.thread_running_task);
  set(F::ts_asyncio_tasks_head, d.thread_tasks_head);
  // struct llist_node (Include/internal/pycore_llist.h): next, prev.
  if (!l.has(F::llist_next)) l.set(F::llist_next, 0, LayoutSource::Fixed);
  if (!l.has(F::llist_prev)) l.set(F::llist_prev, 8, LayoutSource::Fixed);
}

}  // namespace pyinspect
