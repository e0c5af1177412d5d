#include "heap/accounting.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <unordered_set>

#include "base/log.hpp"
#include "heap/buffers.hpp"
#include "heap/glibc_malloc.hpp"
#include "heap/heap_types.hpp"
#include "heap/pymalloc.hpp"
#include "heap/snapshot.hpp"
#include "runtime/threads.hpp"
#include "proc/core_file.hpp"
#include "proc/pagemap.hpp"
#include "proc/process.hpp"

namespace pyinspect {

namespace {

constexpr uint64_t kPage = 4096;

// Reads from the copy, and what the copy does not hold (read-only data, the data left out of it)
// from the live process: the account reads chunk headers and page starts there, which the
// census's count of live reads (what its walk needed of left-out data) is not about.
class CopyThenLive : public Memory {
 public:
  CopyThenLive(const HeapSnapshot& copy, const Memory& live) : copy_(copy), live_(live) {}
  bool read(RemoteAddr addr, void* out, size_t len) const override {
    if (copy_.left_out_at(addr)) return live_.read(addr, out, len);
    return copy_.read(addr, out, len) || live_.read(addr, out, len);
  }

 private:
  const HeapSnapshot& copy_;
  const Memory& live_;
};

enum class Where : uint8_t { MallocHeap, MmappedChunk, Pymalloc, Other };

struct Range {
  uint64_t start, end;
  Where where;
  uint64_t resident = 0, exclusive = 0;
};

// What an object's struct may point to that it owns (item arrays, hash tables, keys, buffers):
// every type but those whose memory is all inline.
bool may_own_memory(Cat c) {
  switch (c) {
    case Cat::Str: case Cat::Str27: case Cat::Unicode27: case Cat::Bytes: case Cat::Long: case Cat::Int27:
    case Cat::Float: case Cat::Complex: case Cat::Tuple: case Cat::NoneType: case Cat::Cell: case Cat::Method:
    case Cat::Slice: case Cat::Range: case Cat::Property: case Cat::ClassMethod: case Cat::StaticMethod:
      return false;
    default: return true;
  }
}

// An environment variable as the target was started (a core's: from its stack).
std::string environ_value(const Process& proc, const std::string& name) {
  if (const CoreFile* core = proc.core()) return core->environment(name);
  std::ifstream f("/proc/" + std::to_string(proc.pid()) + "/environ", std::ios::binary);
  std::string entry;
  while (std::getline(f, entry, '\0'))
    if (entry.compare(0, name.size() + 1, name + "=") == 0) return entry.substr(name.size() + 1);
  return "";
}

// Files with an executable mapping: the program and its libraries (a file mapped only as data
// is not code). A core may not say which of its files' mappings were executable (gcore leaves
// their code out with its permissions): there, an ELF file mapped from its start.
std::set<std::string> code_files(const Maps& maps, const Memory& mem, bool core) {
  std::set<std::string> out;
  for (const auto& m : maps.entries()) {
    if (!m.is_file()) continue;
    char magic[4] = {};
    if (m.executable || (core && m.offset == 0 && mem.read(RemoteAddr(m.start), magic, 4) && !std::memcmp(magic, "\177ELF", 4)))
      out.insert(m.path);
  }
  return out;
}

std::string type_counts_text(const std::map<std::string, std::pair<uint64_t, uint64_t>>& by_type) {
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> v(by_type.begin(), by_type.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
  std::string out;
  for (size_t i = 0; i < v.size() && i < 4; ++i) {
    if (i) out += ", ";
    out += std::to_string(v[i].second.first) + " " + v[i].first;
  }
  if (v.size() > 4) out += ", ...";
  return out;
}

// The stack pointer of each thread blocked in a system call (/proc/PID/task/TID/syscall: "nr
// args... sp pc"): an address in its stack, for when no thread was stopped to give its TLS base.
std::vector<uint64_t> stack_pointers(int pid) {
  std::vector<uint64_t> out;
  for (int tid : Process::list_tids(pid)) {
    if (tid == pid) continue;  // [stack] is known by name
    std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/syscall");
    std::vector<std::string> fields;
    std::string w;
    while (f >> w) fields.push_back(w);
    if (fields.size() >= 3 && fields[0] != "running")
      out.push_back(std::strtoull(fields[fields.size() - 2].c_str(), nullptr, 16));
  }
  return out;
}

class Accountant {
 public:
  Accountant(PythonProcess& py, ProcessMemory& live, const MemoryOptions& opts, MemoryAccount& out)
      : py_(py), live_(live), opts_(opts), out_(out),
        pm_(py.process().core() ? std::make_unique<PageMap>(*py.process().core())
                                : std::make_unique<PageMap>(py.process().pid())) {
    out_.categories.reserve(16);  // cat() hands out references that must stay valid
  }

  // Before the walk, on the copy: glibc's malloc, the mappings, pymalloc's arenas, the chunks
  // objects may own.
  void prepare(HeapContext& ctx, const HeapSnapshot& snap, const HeapCensus& census, const std::vector<uint64_t>& tls) {
    ctx_ = &ctx;
    mem_ = std::make_unique<CopyThenLive>(snap, live_);
    const Maps& maps = snap.maps();
    const Process& proc = py_.process();
    const int pid = proc.pid();
    const CoreFile* core = proc.core();
    // libc and its debug info: where the target's mount namespace or the core's search finds them.
    malloc_ = read_glibc_malloc(*mem_, maps, core ? core->search().sysroot : "/proc/" + std::to_string(pid) + "/root",
                                opts_.use_debug_info, [&proc](const std::string& path) { return proc.host_path(path); });
    out_.malloc_source = malloc_.source;
    out_.glibc_version = malloc_.glibc_version;
    if (!malloc_.found) out_.malloc_unknown = malloc_.why_not;
    for (auto& p : malloc_.problems) out_.warnings.push_back("malloc: " + p);
    auto smaps = core ? core_smaps(*core) : read_smaps(pid);
    if (smaps.empty()) out_.warnings.push_back("/proc/" + std::to_string(pid) + "/smaps could not be read");
    env_ = environ_value(proc, "PYTHONMALLOC");
    std::vector<uint64_t> in_stacks = tls;
    if (in_stacks.empty() && !core) in_stacks = stack_pointers(pid);  // --nonblocking: no thread was stopped
    pym_ = census.memory;  // the census read pymalloc's arenas before its walk
    if (!pym_.pymalloc_known && ctx.l.facts().obmalloc == Facts::Obmalloc::Statics) find_pymalloc(ctx, maps);
    classify(*mem_, maps, smaps, pym_, in_stacks);
    // The chunks handed out, heap and mmapped, by address; and their user pointers, which an
    // owner's struct holds.
    chunks_ = malloc_.in_use;
    for (const auto& r : ranges_)
      if (r.where == Where::MmappedChunk) chunks_.push_back({r.start, r.end - r.start});
    std::sort(chunks_.begin(), chunks_.end(), [](const MallocChunk& x, const MallocChunk& y) { return x.addr < y.addr; });
    owned_.assign(chunks_.size(), false);
    users_.reserve(chunks_.size() * 2);
    for (const auto& c : chunks_) users_.insert(c.user());
  }

  // Each object as the census finds it: where it lies, what it owns.
  void object(const ListedObject& o) {
    uint64_t size = o.size.value_or(0);
    object_bytes_ += size;
    ++objects_;
    uint64_t own = size;  // the object less the buffer its sys.getsizeof counts
    if (may_own_memory(o.info.cat)) {
      own -= std::min(own, buffer(o.address, o.info));
      scan_struct(o.address, o.info);
    }
    if (const Range* r = range_of(o.address)) {
      if (r->where != Where::Pymalloc) mark_chunk_holding(o.address);  // pymalloc's blocks are no chunks
    } else {
      // Outside the allocators (static types and objects in the binaries' data): taken out of
      // the line its mapping is on.
      MemoryCategory& from = in(stack_ranges_, o.address) ? cat("thread_stacks")
                             : in(code_ranges_, o.address) ? cat("code_and_libraries") : cat("other");
      from.bytes -= std::min(from.bytes, own);
      from.private_bytes -= std::min(from.private_bytes, own);
      outside_objects_ += own;
    }
  }

  // After the walk: what no object owns, the free memory, and what is left.
  void finish_walk(const HeapCensus& census) {
    unowned();
    describe_buffers();
    total(census);
  }


 private:
  MemoryCategory& cat(const char* name) {
    for (auto& c : out_.categories)
      if (std::string(c.name) == name) return c;
    out_.categories.push_back({name, "", 0, 0, 0, "", "", {}, {}});
    return out_.categories.back();
  }

  // A build whose arena table no symbol names: the table is a block malloc handed out, found
  // from the pools objects lie in (pymalloc.hpp, find_arena_table).
  void find_pymalloc(HeapContext& ctx, const Maps& maps) {
    const uint64_t pool_size = ctx.l.facts().pool_size;
    std::vector<std::pair<uint64_t, uint64_t>> blocks;
    for (const auto& c : malloc_.in_use) blocks.emplace_back(c.user(), c.size - 16);
    auto in_heap = [&](uint64_t a) {
      for (const auto& ar : malloc_.arenas)
        for (auto [s, e] : ar.heaps)
          if (a >= s && a < e) return true;
      return false;
    };
    // Objects that live as long as the interpreter: its dicts of modules, of sys and of builtins,
    // and some modules.
    std::vector<uint64_t> samples;
    NodeList interps = interpreters(py_, ctx.mem);
    if (!interps.nodes.empty()) {
      RemoteAddr interp(interps.nodes.back());
      for (F f : {F::is_modules, F::is_sysdict, F::is_builtins})
        if (ctx.l.has(f))
          if (auto d = ctx.mem.read_ptr(interp + ctx.l.off(f)); d && !d->null()) samples.push_back(d->value());
      if (ctx.l.has(F::is_modules))
        if (auto mods = ctx.mem.read_ptr(interp + ctx.l.off(F::is_modules)))
          for (const char* name : {"sys", "builtins", "__builtin__", "__main__", "os", "gc", "threading"})
            if (auto m = ctx.reader.dict_get(*mods, name)) samples.push_back(m->value());
    }
    std::set<uint64_t> tried;
    for (uint64_t a : samples) {
      const MapEntry* m = maps.find(RemoteAddr(a));
      if (!m || m->is_file() || !m->path.empty() || in_heap(a)) continue;
      uint64_t pool = a & ~(pool_size - 1);
      if (!tried.insert(pool).second) continue;
      if (auto table = find_arena_table(ctx, blocks, pool)) {
        MemorySummary found = pym_;
        if (read_arena_table(ctx, table->first, table->second, found)) {
          pym_ = found;
          pym_.pymalloc_unknown.clear();
          pymalloc_found_in_chunks_ = true;
        }
        return;
      }
    }
  }

  // Each mapping by what it is; the allocators' memory further into ranges.
  void classify(const Memory& mem, const Maps& maps, const std::vector<SmapsEntry>& smaps, const MemorySummary& pym,
                const std::vector<uint64_t>& tls) {
    std::vector<std::pair<uint64_t, uint64_t>> heaps;
    for (const auto& a : malloc_.arenas)
      for (auto h : a.heaps) heaps.push_back(h);
    std::sort(heaps.begin(), heaps.end());
    std::unordered_set<uint64_t> arenas(pym.arena_list.begin(), pym.arena_list.end());
    std::set<std::string> files;
    const std::set<std::string> code_paths = code_files(maps, mem, py_.process().core() != nullptr);
    MemoryCategory& stacks = cat("thread_stacks");
    MemoryCategory& code = cat("code_and_libraries");
    MemoryCategory& other = cat("other");
    for (const auto& m : smaps) {
      out_.rss_bytes += m.rss;
      out_.private_bytes += m.private_dirty;
      bool stack = m.path == "[stack]";
      for (uint64_t t : tls) stack = stack || (t >= m.start && t < m.end);
      bool file = !m.path.empty() && m.path[0] == '/';
      if (stack) {
        stacks.bytes += m.rss, stacks.private_bytes += m.private_dirty, ++stacks.count;
        stack_ranges_.emplace_back(m.start, m.end);
        continue;
      }
      if (file || m.path == "[vdso]" || m.path == "[vvar]" || m.path == "[vsyscall]") {
        if (!file || code_paths.count(m.path)) {
          code.bytes += m.rss, code.private_bytes += m.private_dirty;
          if (file) files.insert(m.path);
          code_ranges_.emplace_back(m.start, m.end);
        } else {
          other.bytes += m.rss, other.private_bytes += m.private_dirty;
          ++mapped_files_;
        }
        continue;
      }
      if (m.rss == 0) continue;
      // Anonymous memory: glibc's heaps, its mmapped chunks, pymalloc's arenas, or other.
      pm_->load(m.start, m.end);
      uint64_t classified = 0, classified_private = 0;
      uint64_t c = m.start;
      // A chunk that began in the mappings before this one (numpy's buffers span three: it asks
      // for huge pages inside them) covers the start of this one.
      if (carry_end_ > m.start) {
        auto n = pm_->count(m.start, std::min(carry_end_, m.end));
        classified += n.resident, classified_private += n.exclusive;
        c = std::min(carry_end_, m.end);
      }
      while (c < m.end) {
        Range r{c, 0, Where::Other};
        auto h = std::upper_bound(heaps.begin(), heaps.end(), std::make_pair(c, UINT64_MAX));
        if (h != heaps.begin() && std::prev(h)->second > c) {
          r.where = Where::MallocHeap;
          r.end = std::min(std::prev(h)->second, m.end);
        } else if (h != heaps.end() && h->first < c + kPage && h->first > c) {
          // A heap starts inside this page (after its header): the page is the heap's.
          r.where = Where::MallocHeap;
          r.end = std::min(h->second, m.end);
        } else if (arenas.count(c)) {
          r.where = Where::Pymalloc;
          r.end = std::min(c + pym.arena_size, m.end);
        } else if (auto size = mmapped_chunk_at(mem, c, anon_end(smaps, &m))) {
          r.where = Where::MmappedChunk;
          r.end = c + *size;
        } else {
          c += kPage;  // other memory
          continue;
        }
        auto n = pm_->count(r.start, r.end);
        r.resident = n.resident, r.exclusive = n.exclusive;
        if (r.end > m.end) {
          // The part in this mapping; the next ones count theirs (carry_end_).
          n = pm_->count(r.start, m.end);
          carry_end_ = r.end;
          pm_->load(m.start, m.end);
        }
        classified += n.resident, classified_private += n.exclusive;
        ranges_.push_back(r);
        c = r.end;
      }
      other.bytes += m.rss > classified ? m.rss - classified : 0;
      other.private_bytes += m.private_dirty > classified_private ? m.private_dirty - classified_private : 0;
      ++anon_mappings_;
    }
    stacks.what = stacks.count == 1 ? "stack" : "stacks";
    code.count = files.size();
    code.what = "files";
    std::sort(ranges_.begin(), ranges_.end(), [](const Range& a, const Range& b) { return a.start < b.start; });
  }

  // The end of the anonymous memory that continues mapping m without a gap.
  static uint64_t anon_end(const std::vector<SmapsEntry>& smaps, const SmapsEntry* m) {
    uint64_t end = m->end;
    for (const SmapsEntry* x = m + 1; x < smaps.data() + smaps.size() && x->start == end && x->path.empty(); ++x)
      end = x->end;
    return end;
  }

  const Range* range_of(uint64_t addr) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr, [](uint64_t a, const Range& r) { return a < r.start; });
    if (it == ranges_.begin()) return nullptr;
    --it;
    return addr < it->end ? &*it : nullptr;
  }

  static bool in(const std::vector<std::pair<uint64_t, uint64_t>>& v, uint64_t a) {
    for (auto [s, e] : v)
      if (a >= s && a < e) return true;
    return false;
  }

  int64_t chunk_index_of_user(uint64_t p) const {
    auto it = std::lower_bound(chunks_.begin(), chunks_.end(), p - 16,
                               [](const MallocChunk& c, uint64_t a) { return c.addr < a; });
    return (it != chunks_.end() && it->addr == p - 16) ? it - chunks_.begin() : -1;
  }

  void mark_chunk_holding(uint64_t addr) {
    auto it = std::upper_bound(chunks_.begin(), chunks_.end(), addr,
                               [](uint64_t a, const MallocChunk& c) { return a < c.addr; });
    if (it == chunks_.begin()) return;
    --it;
    if (addr < it->addr + it->size) owned_[it - chunks_.begin()] = true;
  }

  // What an object's struct points to that is the start of a chunk: its item array, table,
  // keys or buffer (the chunk is then the object's).
  void scan_struct(uint64_t addr, const TypeInfo& ti) {
    uint64_t words[128];
    int64_t len = std::clamp<int64_t>(ti.basicsize, 16, ti.cat == Cat::Type ? 1024 : 256);
    if (!mem_->read(RemoteAddr(addr), words, static_cast<size_t>(len) & ~size_t{7})) return;
    for (int64_t w = 2; w < len / 8; ++w)
      if (users_.count(words[w]))
        if (auto i = chunk_index_of_user(words[w]); i >= 0) owned_[i] = true;
  }

  // The buffer an object owns: where it is and how much of it is resident. Returns the bytes of
  // it that the object's sys.getsizeof counts.
  uint64_t buffer(uint64_t addr, const TypeInfo& ti) {
    auto buf = owned_buffer(*ctx_, RemoteAddr(addr), ti);
    if (!buf) return 0;
    MemoryCategory& b = cat("object_buffers");
    if (buf->in_sizeof) buffer_in_sizeof_ += buf->bytes;
    uint64_t resident = buf->bytes;
    const Range* r = range_of(buf->addr);
    if (r && r->where == Where::MmappedChunk) {
      // The chunk is the buffer's own: its resident pages (calloc'd pages never touched take no
      // memory), once.
      if (!buffer_chunks_.insert(r->start).second) return buf->in_sizeof ? buf->bytes : 0;
      resident = r->resident;
      b.private_bytes += r->exclusive;
    } else if (!r) {
      // A mapping of its own (mmap.mmap): its resident pages, taken from the line it is on.
      auto n = pm_->count(buf->addr, buf->addr + buf->bytes);
      resident = n.resident;
      b.private_bytes += n.exclusive;
      MemoryCategory& from = in(stack_ranges_, buf->addr) ? cat("thread_stacks")
                             : in(code_ranges_, buf->addr) ? cat("code_and_libraries") : cat("other");
      from.bytes -= std::min(from.bytes, n.resident);
      from.private_bytes -= std::min(from.private_bytes, n.exclusive);
      outside_buffers_ += n.resident;
    } else {
      b.private_bytes += buf->bytes;
      if (auto i = chunk_index_of_user(buf->addr); i >= 0) owned_[i] = true;
    }
    b.bytes += resident;
    ++b.count;
    auto& t = buffer_types_[ti.name];
    ++t.first, t.second += buf->bytes;
    if (buf->bytes > largest_) largest_ = buf->bytes, largest_addr_ = addr, largest_type_ = ti.name;
    return buf->in_sizeof ? buf->bytes : 0;
  }

  void describe_buffers() {
    MemoryCategory& b = cat("object_buffers");
    b.what = "buffers";
    b.figures.emplace_back("nominal_bytes", buffer_in_sizeof_);
    if (largest_) {
      char a[32];
      std::snprintf(a, sizeof a, "0x%llx", static_cast<unsigned long long>(largest_addr_));
      b.notes.emplace_back("largest_type", largest_type_);
      b.notes.emplace_back("largest_address", a);
      b.figures.emplace_back("largest_bytes", largest_);
      b.notes.emplace_back("types", type_counts_text(buffer_types_));
    }
  }

  // Chunks handed out that no object lies in and no object's struct points to.
  void unowned() {
    MemoryCategory& un = cat("malloc_unowned");
    for (size_t i = 0; i < chunks_.size(); ++i) {
      if (owned_[i]) continue;
      const Range* r = range_of(chunks_[i].addr);
      bool is_mmapped = r && r->where == Where::MmappedChunk && r->start == chunks_[i].addr;
      if (is_mmapped && buffer_chunks_.count(chunks_[i].addr)) continue;  // counted as a buffer
      uint64_t bytes = chunks_[i].size;
      if (is_mmapped) {
        bytes = r->resident, un.private_bytes += r->exclusive;
        ++unowned_mmapped_;
      } else {
        un.private_bytes += bytes;
      }
      un.bytes += bytes;
      ++un.count;
    }
    un.what = "chunks";
  }

  void total(const HeapCensus& census) {
    const MemorySummary& pym = pym_;
    // Free memory glibc keeps, resident pages only.
    MemoryCategory& mf = cat("malloc_free");
    uint64_t nominal_bins = chunk_bytes(malloc_.free_bins), nominal_top = chunk_bytes(malloc_.free_top);
    uint64_t nominal_fast = chunk_bytes(malloc_.free_fast), nominal_tcache = chunk_bytes(malloc_.free_tcache);
    for (const auto* v : {&malloc_.free_bins, &malloc_.free_top, &malloc_.free_fast, &malloc_.free_tcache})
      for (const auto& c : *v) {
        auto n = pm_->count(c.addr, c.addr + c.size);
        mf.bytes += n.resident, mf.private_bytes += n.exclusive, ++mf.count;
      }
    mf.what = "chunks";
    mf.figures = {{"bins_bytes", nominal_bins},       {"top_bytes", nominal_top},       {"fastbins_bytes", nominal_fast},
                  {"tcache_bytes", nominal_tcache},   {"bins_chunks", malloc_.free_bins.size()},
                  {"fastbins_chunks", malloc_.free_fast.size()}, {"tcache_chunks", malloc_.free_tcache.size()},
                  {"arenas", malloc_.arenas.size()}, {"tcaches", malloc_.tcaches}};
    uint64_t in_use = chunk_bytes(malloc_.in_use);
    cat("malloc_unowned").figures = {{"heap_in_use_bytes", in_use}, {"heap_in_use_chunks", malloc_.in_use.size()},
                                     {"unowned_mmapped_chunks", unowned_mmapped_}};
    if (malloc_.mmapped_bytes) cat("malloc_unowned").figures.emplace_back("mmapped_bytes_glibc", *malloc_.mmapped_bytes);

    // pymalloc: free blocks in the pools in use, and every resident page of its arenas that is
    // not in a pool in use (empty pools).
    MemoryCategory& pf = cat("pymalloc_free");
    uint64_t arena_resident = 0, arena_private = 0;
    for (const auto& r : ranges_)
      if (r.where == Where::Pymalloc) arena_resident += r.resident, arena_private += r.exclusive;
    uint64_t used_pools = pym.pools_used * pym.pool_size;
    // (At most the empty pools pymalloc counts: the rest of an arena's resident pages, before its
    // first aligned pool, is overhead.)
    uint64_t empty = std::min(arena_resident > used_pools ? arena_resident - used_pools : 0, pym.arena_bytes_free);
    pf.bytes = pym.pool_bytes_free + empty;
    pf.private_bytes = std::min(pf.bytes, arena_private);
    pf.count = pym.arenas;
    pf.what = "arenas";
    pf.figures = {{"free_block_bytes", pym.pool_bytes_free}, {"empty_pool_bytes", pym.arena_bytes_free},
                  {"arena_resident_bytes", arena_resident}, {"used_block_bytes", pym.pool_bytes_used}};

    // Objects: sys.getsizeof of each, less the buffers listed on their own line.
    MemoryCategory& po = cat("python_objects");
    po.bytes = object_bytes_ > buffer_in_sizeof_ ? object_bytes_ - buffer_in_sizeof_ : 0;
    po.count = objects_;
    po.what = "objects";
    uint64_t outside = outside_objects_;
    uint64_t gc_bytes = 0;
    for (const auto& f : census.found_through)
      if (std::string(f.id) == "gc") gc_bytes = f.bytes;
    po.private_bytes = po.bytes;
    po.figures = {{"sizeof_bytes", object_bytes_}, {"gc_visible_sizeof_bytes", gc_bytes}, {"outside_allocators_bytes", outside},
                  {"unknown_size_objects", census.unknown_size_objects}};

    // What is left of the allocators' memory: headers, rounding, what objects point to that
    // sys.getsizeof does not count.
    uint64_t allocators = 0, allocators_private = 0;
    for (const auto& r : ranges_) allocators += r.resident, allocators_private += r.exclusive;
    uint64_t in_objects = po.bytes > outside ? po.bytes - outside : 0;
    uint64_t buffers_here = cat("object_buffers").bytes - std::min(cat("object_buffers").bytes, outside_buffers_);
    uint64_t explained = in_objects + buffers_here + pf.bytes + mf.bytes + cat("malloc_unowned").bytes;
    MemoryCategory& oh = cat("allocator_overhead");
    if (allocators >= explained) {
      oh.bytes = allocators - explained;
    } else {
      out_.warnings.push_back("the allocators' resident memory (" + std::to_string(allocators) +
                              " bytes) is less than what was counted in it (" + std::to_string(explained) +
                              " bytes): the lines above overlap by the difference");
    }
    uint64_t explained_private = po.private_bytes + cat("object_buffers").private_bytes + pf.private_bytes +
                                 mf.private_bytes + cat("malloc_unowned").private_bytes;
    oh.private_bytes = allocators_private > explained_private ? allocators_private - explained_private : 0;
    // (Objects outside the allocators took their private bytes from the line they were on.)
    po.private_bytes = std::min(po.private_bytes, in_objects + outside);
    oh.figures = {{"allocators_resident_bytes", allocators},
                  {"instance_values_bytes", census.memory.dictless_values_bytes}};
    cat("other").count = anon_mappings_ + mapped_files_;
    cat("other").what = "mappings";
    describe(census);
  }

  void describe(const HeapCensus& census) {
    auto set = [&](const char* name, const char* title, std::string expl) {
      MemoryCategory& c = cat(name);
      c.title = title;
      c.explanation = std::move(expl);
    };
    auto n = [](uint64_t v) { return std::to_string(v); };
    auto many = [](uint64_t v, const char* one, const char* more) { return std::to_string(v) + " " + (v == 1 ? one : more); };
    const MemorySummary& pym = pym_;
    set("python_objects", "Python objects",
        n(objects_) + " live objects, as sys.getsizeof counts them less the buffers below (pyinspect heap for the table)");
    MemoryCategory& b = cat("object_buffers");
    std::string types;
    for (auto& [k, v] : b.notes)
      if (k == "types") types = v;
    set("object_buffers", "buffers owned by objects",
        b.count ? "data of " + types : "no object owns a buffer (bytearray, array.array, numpy.ndarray, io, mmap)");
    set("pymalloc_free", "pymalloc free",
        pym.pymalloc_known ? "free blocks and empty pools in " + many(pym.arenas, "arena", "arenas") +
                                 ": kept by Python, reused for new objects"
        : env_.find("mimalloc") != std::string::npos
            ? "not pymalloc: PYTHONMALLOC=" + env_ + " keeps objects in mimalloc's segments, which pyinspect does not "
                  "walk yet (their free memory is in other mappings)"
            : "pymalloc not read: " + pym.pymalloc_unknown);
    set("malloc_free", "malloc free",
        malloc_.found ? "free chunks inside glibc's heaps (" + many(malloc_.arenas.size(), "arena", "arenas") +
                            "): kept by the allocator, not returned to the OS (malloc_trim would return most)"
                      : "glibc's malloc not read: " + malloc_.why_not);
    set("malloc_unowned", "malloc in use, no owner",
        "allocated by C code (the interpreter's own state, extension modules, libraries) that no Python object points to");
    set("allocator_overhead", "allocator overhead",
        "chunk and pool headers, size rounding, and memory objects point to that sys.getsizeof does not count" +
            (census.memory.dictless_values_bytes
                 ? std::string(" (of which attribute values of ") + n(census.memory.dictless_instances) +
                       " instances kept without a dict: " + n(census.memory.dictless_values_bytes >> 10) + " KiB)"
                 : std::string()));
    set("thread_stacks", "thread stacks",
        many(cat("thread_stacks").count, "thread's stack", "threads' stacks") + " (the pages they touched)");
    set("code_and_libraries", "code and libraries",
        n(cat("code_and_libraries").count) + " files: the executable, libraries and their data");
    set("other", "other mappings",
        n(anon_mappings_) + " other anonymous mappings (interpreter frame stacks, extension modules' own memory)" +
            (mapped_files_ ? ", " + n(mapped_files_) + " mappings of data files" : std::string()));
  }

 public:
  void finish() {
    // The order of the table.
    static const char* const order[] = {"python_objects", "object_buffers", "pymalloc_free", "malloc_free",
                                        "malloc_unowned", "allocator_overhead", "thread_stacks",
                                        "code_and_libraries", "other"};
    std::vector<MemoryCategory> sorted;
    for (const char* name : order) sorted.push_back(cat(name));
    out_.categories = std::move(sorted);
  }

 private:
  PythonProcess& py_;
  ProcessMemory& live_;
  const MemoryOptions& opts_;
  MemoryAccount& out_;
  std::unique_ptr<PageMap> pm_;
  GlibcMalloc malloc_;

 public:
  MemorySummary pym_;  // pymalloc, as the census read it or as found here
  bool pymalloc_found_in_chunks_ = false;

 private:
  HeapContext* ctx_ = nullptr;
  std::string env_;  // PYTHONMALLOC, as the target was started
  uint64_t carry_end_ = 0;  // the end of a chunk that runs on past the mapping it starts in
  std::unique_ptr<CopyThenLive> mem_;
  uint64_t objects_ = 0, object_bytes_ = 0, buffer_in_sizeof_ = 0, outside_objects_ = 0, outside_buffers_ = 0;
  uint64_t unowned_mmapped_ = 0, anon_mappings_ = 0, mapped_files_ = 0;
  std::vector<Range> ranges_;
  std::vector<std::pair<uint64_t, uint64_t>> stack_ranges_, code_ranges_;
  std::vector<MallocChunk> chunks_;  // handed out, heap and mmapped, by address
  std::vector<bool> owned_;          // of chunks_: an object lies in it or points to it
  std::unordered_set<uint64_t> users_;
  std::set<uint64_t> buffer_chunks_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> buffer_types_;
  uint64_t largest_ = 0, largest_addr_ = 0;
  std::string largest_type_;
};

}  // namespace

MemoryAccount account_memory(PythonProcess& py, ProcessMemory& mem, const MemoryOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  MemoryAccount out;
  out.pid = py.process().pid();
  out.command = py.process().cmdline();
  out.paused = !opts.nonblocking && mem.live();
  Accountant acc(py, mem, opts, out);
  CensusOptions copts;
  copts.nonblocking = opts.nonblocking;
  copts.progress = opts.progress;
  copts.max_copy_bytes = opts.max_copy_bytes;
  copts.each_object = [&](const ListedObject& o) { acc.object(o); };
  copts.before_walk = [&](HeapContext& ctx, const HeapSnapshot& snap, const HeapCensus& c,
                          const std::vector<uint64_t>& tls) { acc.prepare(ctx, snap, c, tls); };
  copts.after_walk = [&](HeapContext&, const HeapSnapshot&, const HeapCensus& c, const std::vector<uint64_t>&) {
    acc.finish_walk(c);
  };
  HeapCensus census = take_census(py, mem, copts);
  acc.finish();
  out.python = census.python;
  out.objects = census.total_objects;
  out.unknown_size_objects = census.unknown_size_objects;
  out.unmirrored_sizeof = census.unmirrored_sizeof_types;
  out.pause_ns = census.pause_ns;
  for (auto& w : census.warnings) out.warnings.push_back(w);
  out.core = mem.core_path();
  out.core_sparse = mem.core() && mem.core()->sparse();
  std::string env = environ_value(py.process(), "PYTHONMALLOC");
  const MemorySummary& pym = acc.pym_;
  if (pym.pymalloc_known)
    out.allocator = "pymalloc (" + std::to_string(pym.arenas) + " arenas" +
                    (acc.pymalloc_found_in_chunks_ ? ", its arena table found among malloc's chunks" : "") + ")" +
                    (env.empty() ? "" : ", PYTHONMALLOC=" + env);
  else
    out.allocator = env.empty() ? "no pymalloc arena (" + pym.pymalloc_unknown + ")" : "PYTHONMALLOC=" + env;
  out.elapsed_ns = (std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace pyinspect
