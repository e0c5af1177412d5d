#pragma once
// CPython 3.14+'s _asyncio module publishes the offsets a debugger needs to list its tasks:
// `_AsyncioDebug` (struct _Py_AsyncioModuleDebugOffsets, Modules/_asynciomodule.c), an exported
// variable in a section of its own (".AsyncioDebug"). This turns those bytes into layout members;
// a target's own struct wins over the fixed layouts (abi/fixed_layouts.cpp).
#include <cstdint>
#include <span>

#include "abi/layout.hpp"

namespace pyinspect {

inline constexpr const char* kAsyncioDebugSymbol = "_AsyncioDebug";
inline constexpr const char* kAsyncioDebugSection = ".AsyncioDebug";
// Bytes the struct has as 3.14 declares it: 13 uint64_t (task object 7, interpreter state 2,
// thread state 4).
inline constexpr size_t kAsyncioDebugSize = 13 * 8;

// Sets in `layout` the members the struct gives (TaskObj's name, awaited_by, is_task,
// awaited_by_is_set, coro, node; the interpreter's and each thread's asyncio_tasks_head, the
// thread's running loop and task) and those that follow from them in 3.14's TaskObj (loop,
// state, fut_waiter). Throws Error(Corrupt) for bytes that are not a plausible struct: an offset
// past its struct's size, or members out of their declared order.
void apply_asyncio_debug(std::span<const uint8_t> bytes, Layout& layout);

}  // namespace pyinspect
