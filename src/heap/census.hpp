#pragma once
// `pyinspect heap`: a census of every live object, guppy-style, from a copy of the target's
// memory (the target is paused only while the copy is made).
#include <cstdint>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "heap/heap_types.hpp"
#include "runtime/model.hpp"
#include "runtime/stack.hpp"
#include "runtime/target.hpp"

namespace pyinspect {

// "1 item", "3 items": a container's short description.
inline std::string items_text(int64_t n) { return std::to_string(n) + (n == 1 ? " item" : " items"); }

enum class GroupBy { Kind, Type, Module, Size };

struct HeapRow {
  std::string kind;
  uint64_t count = 0;
  uint64_t size = 0;
};

struct LargeObject {
  uint64_t address = 0;
  std::string kind;
  uint64_t size = 0;
  std::string repr;
};

struct MemorySummary {
  uint64_t rss_bytes = 0;             // resident set of the whole process
  uint64_t copied_bytes = 0;          // writable resident memory pyinspect copied
  // Data buffers left out of the copy (resident bytes, ranges), and what of them the census
  // still read, from the live process after the pause (docs/heap.md, "Limits and memory").
  uint64_t left_out_bytes = 0, left_out_ranges = 0;
  uint64_t live_read_bytes = 0, live_read_ranges = 0;
  uint64_t object_bytes = 0;          // sum of sys.getsizeof over the objects found
  // 3.11+: instances whose attributes live without a dict object (inline or in a separate values
  // array); sys.getsizeof counts that storage in no object.
  uint64_t dictless_instances = 0;
  uint64_t dictless_values_bytes = 0;
  // pymalloc (when its state could be read; else why not)
  bool pymalloc_known = false;
  std::string pymalloc_unknown;
  uint64_t arenas = 0, arena_bytes = 0;
  uint64_t pool_bytes_used = 0;   // blocks handed out
  uint64_t pool_bytes_free = 0;   // free blocks in pools that are in use
  uint64_t arena_bytes_free = 0;  // empty pools
  uint64_t pools_used = 0;        // pools with blocks handed out
  uint64_t pool_size = 0, arena_size = 0;
  std::vector<uint64_t> arena_list;  // where each arena starts
  // gc.garbage
  uint64_t garbage_count = 0;
  std::vector<HeapRow> garbage_kinds;
};

// How the census reached a set of objects, in the order it walks (docs/heap.md, "Counting like
// gc"): first what the garbage collector tracks and what it reaches as gc.get_referents() reports
// it; then, through references gc.get_referents() does not report, by reason; then from the
// interpreter's other roots, by root. An in-process census built on gc (guppy, objgraph, a loop
// over gc.get_objects()) sees the first group only.
struct FoundThrough {
  const char* id;     // "gc", "dict-str-keys", ... (JSON)
  const char* what;   // a line of explanation (text)
  uint64_t objects = 0, bytes = 0;
};

struct HeapCensus {
  int pid = 0;
  std::string command;
  PythonInfo python;
  uint64_t total_objects = 0;
  uint64_t total_size = 0;
  uint64_t gc_tracked = 0;
  std::vector<FoundThrough> found_through;
  // Objects counted with size 0 because their size could not be known, by reason, and the types
  // they are of (the most common first).
  uint64_t unknown_size_objects = 0;
  std::map<std::string, uint64_t> unknown_size_reasons;  // size_problem_text -> objects
  std::vector<std::pair<std::string, uint64_t>> unknown_size_types;
  // Objects of C types pyinspect does not model that define a __sizeof__ of their own: sized as
  // object.__sizeof__ would size them, which may be less (types, the most common first).
  std::vector<std::pair<std::string, uint64_t>> unmirrored_sizeof_types;
  // Objects whose references could not all be read: what they hold may be missing.
  uint64_t referents_unreadable = 0, referents_missing_member = 0;
  std::vector<std::pair<std::string, uint64_t>> referents_problem_types;
  // Aggregates from which every grouping is made.
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_kind, by_type, by_module;
  std::map<uint64_t, uint64_t> by_size;  // exact size -> count
  std::vector<LargeObject> largest;
  MemorySummary memory;
  int64_t pause_ns = 0, elapsed_ns = 0;
  bool paused = true;
  std::string core;  // the core file read, empty for a live process
  std::vector<std::string> warnings;
};

// One object of the census, for --list-objects.
struct ListedObject {
  uint64_t address;
  const std::string& type;
  std::optional<uint64_t> size;
  const TypeInfo& info;
};

class HeapSnapshot;
class HeapContext;
struct HeapCensus;
struct CensusOptions {
  bool nonblocking = false;
  size_t largest = 0;
  bool progress = false;          // a progress line on stderr
  uint64_t max_copy_bytes = 0;    // refuse to copy more (0: no limit)
  std::function<void(const ListedObject&)> each_object;  // called for every object, if set
  // Called once the census is done, while its copy of the memory still exists (pyinspect
  // memory): the context, the copy, and the TLS base of every thread that stopped.
  std::function<void(HeapContext&, const HeapSnapshot&, const HeapCensus&, const std::vector<uint64_t>&)> after_walk;
  // Called before the walk, once the copy is made and pymalloc's arenas read (each_object then
  // sees a prepared caller).
  std::function<void(HeapContext&, const HeapSnapshot&, const HeapCensus&, const std::vector<uint64_t>&)> before_walk;
};

HeapCensus take_census(PythonProcess& py, ProcessMemory& mem, const CensusOptions& opts);

// The copy of the target's writable memory the census and refs work on: planned while the
// target runs, copied while it is paused (unless nonblocking). pause_ns: how long it was stopped;
// warnings: threads that did not stop.
// tls_bases, if given, gets the TLS base of every thread that stopped (glibc's struct pthread,
// which lies in the thread's stack mapping).
std::unique_ptr<HeapSnapshot> take_snapshot(int pid, ProcessMemory& mem, bool nonblocking, uint64_t max_copy_bytes,
                                            int64_t& pause_ns, std::vector<std::string>& warnings,
                                            double need_factor = 1.5, bool progress = false,
                                            std::vector<uint64_t>* tls_bases = nullptr);
// gc.garbage (the gc module's list of what the collector could not free), if it can be found.
class HeapContext;
std::optional<RemoteAddr> gc_garbage_list(HeapContext& ctx, const PythonProcess& py);

// Rows sorted by size (largest first), then count, then name.
std::vector<HeapRow> group_rows(const HeapCensus& c, GroupBy by);
const char* group_title(GroupBy by);

// A short description of an object for listings: a string's first characters, "N items"...
std::string short_repr(HeapContext& ctx, RemoteAddr obj, const TypeInfo& ti);

}  // namespace pyinspect
