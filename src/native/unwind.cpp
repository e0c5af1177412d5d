#include "native/unwind.hpp"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "abi/layout_cache.hpp"
#include "base/error.hpp"
#include "elf/debug_file.hpp"
#include "elf/elf_file.hpp"
#include "base/log.hpp"
#include "proc/maps.hpp"

namespace pyinspect {

namespace {
// The most of one thread's stack copied while it is stopped. Python threads use far less (a few
// KiB per C-level call); deeper stacks are read on from the running target, and counted.
constexpr uint64_t kMaxStackCopy = 2u << 20;
// x86-64's red zone: a leaf function may keep data this far below the stack pointer.
constexpr uint64_t kRedZone = 128;

std::string demangle(const char* name) {
  if (!name) return {};
  if (name[0] == '_' && name[1] == 'Z') {
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (out && status == 0) {
      std::string s(out);
      std::free(out);
      return s;
    }
    std::free(out);
  }
  return name;
}

// A DIE's name as a person wants it: the demangled linkage name (C++: with its class and
// namespace), else its name; both looked up through DW_AT_abstract_origin for inlined calls.
std::string die_name(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  const char* linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
  if (!linkage) linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
  if (linkage) return demangle(linkage);
  const char* n = dwarf_diename(die);
  return n ? n : "";
}
}  // namespace

namespace {
// The DIEs whose code holds `pc`, from below `parent` down to the innermost (lexical blocks,
// inlined calls, the function), outermost first. libdw's dwarf_getscopes does not serve here: it
// also looks for an inlined function's abstract definition in the same compilation unit, and
// finds nothing where link-time optimisation put it in another.
void scopes_at(Dwarf_Die* parent, Dwarf_Addr pc, std::vector<Dwarf_Die>& chain, int depth) {
  if (depth > 64) return;
  Dwarf_Die child;
  if (dwarf_child(parent, &child) != 0) return;
  do {
    switch (dwarf_tag(&child)) {
      case DW_TAG_namespace:  // C++: functions inside namespaces have no ranges of their own above them
        if (size_t before = chain.size(); scopes_at(&child, pc, chain, depth + 1), chain.size() > before) return;
        break;
      case DW_TAG_subprogram:
      case DW_TAG_inlined_subroutine:
      case DW_TAG_lexical_block:
      case DW_TAG_try_block:
      case DW_TAG_catch_block:
        if (dwarf_haspc(&child, pc) > 0) {
          chain.push_back(child);
          scopes_at(&child, pc, chain, depth + 1);
          return;
        }
        break;
      default:
        break;
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}
}  // namespace

std::string base_symbol(const std::string& name) {
  size_t cut = name.find_first_of(".@", 1);
  return cut == std::string::npos ? name : name.substr(0, cut);
}

std::vector<MergedFrame> merge_order(const std::vector<int>& eval_calls, const NativeStack& native,
                                     const std::string& eval_function, bool keep_all, int* unplaced) {
  std::vector<MergedFrame> out;
  size_t next = 0;  // the next Python frame to place
  int call = 0;     // the evaluation loop's calls met so far, from the innermost
  const auto& nf = native.frames;
  for (size_t i = 0; i < nf.size();) {
    size_t end = i;  // a machine frame: its inlined calls, then itself
    while (end + 1 < nf.size() && nf[end].inlined) ++end;
    bool eval = !nf[end].elf_symbol.empty() && base_symbol(nf[end].elf_symbol) == eval_function;
    size_t begin = next;
    if (eval) {
      // Python frames of this call, and of calls before it whose own frame was not seen.
      while (next < eval_calls.size() && eval_calls[next] <= call) ++next;
      ++call;
    }
    if (!eval || (begin == next && !keep_all)) {
      for (size_t k = i; k <= end; ++k) out.push_back({false, k});
    } else {
      if (keep_all)
        for (size_t k = i; k < end; ++k) out.push_back({false, k});
      for (size_t k = begin; k < next; ++k) out.push_back({true, k});
      if (keep_all) out.push_back({false, end});
    }
    i = end + 1;
  }
  *unplaced = static_cast<int>(eval_calls.size() - next);
  for (size_t k = next; k < eval_calls.size(); ++k) out.push_back({true, k});
  return out;
}

std::optional<NativeCapture> capture_native(const StoppedThread& t, const ProcessMemory& mem) {
  auto regs = t.registers();
  if (!regs) return std::nullopt;
  return capture_native(t.tid(), *regs, t.tls_base(), mem);
}

NativeCapture capture_native(int tid, const ThreadRegisters& regs, std::optional<uint64_t> tls_base,
                             const ProcessMemory& mem) {
  NativeCapture c;
  c.tid = tid;
  c.regs = regs;
  uint64_t sp = regs.sp;
  const MapEntry* m = mem.maps().find(RemoteAddr(sp));
  Maps fresh;
  if (!m && mem.live()) {  // a thread whose stack was mapped after we read the maps
    try {
      fresh = Maps::read(mem.pid());
      m = fresh.find(RemoteAddr(sp));
    } catch (const Error&) {
    }
  }
  if (!m) return c;  // no stack to copy: the unwinder reads what it needs live
  uint64_t lo = sp >= m->start + kRedZone ? sp - kRedZone : m->start;
  uint64_t hi = m->end;
  // A thread made by glibc has its struct pthread (where its TLS base points) at the top of its
  // stack, its frames all below: nothing above it is stack. The main thread's TLS lies elsewhere.
  if (tls_base && *tls_base > sp && *tls_base < hi) hi = *tls_base;
  if (hi - lo > kMaxStackCopy) {
    hi = lo + kMaxStackCopy;
    c.stack_cut = true;
  }
  c.stack.resize(hi - lo);
  if (!mem.read(RemoteAddr(lo), c.stack.data(), c.stack.size())) {
    c.stack.clear();
    return c;
  }
  c.stack_start = lo;
  return c;
}

struct NativeUnwinder::Impl {
  int pid;
  const Memory& live;
  const NativeModules* modules = nullptr;  // a core's, else the live process's
  Dwfl_Callbacks callbacks{};
  Dwfl_Thread_Callbacks thread_callbacks{};
  Dwfl* dwfl = nullptr;
  bool attached = false;
  const NativeCapture* current = nullptr;
  size_t live_reads = 0;
  // Naming a pc costs a DWARF walk: the names of each pc seen, with its inlined calls.
  std::unordered_map<uint64_t, std::vector<NativeFrame>> names;
  // Each module's function symbols by address (libdwfl's own lookup scans the whole table each
  // time: 0.6 ms a pc in libpython).
  struct Symbol {
    uint64_t start, size;
    const char* name;  // in the ELF file's string table, alive as long as the Dwfl
    int rank;          // which of several names at one address to show: global, then weak, then local
  };
  std::unordered_map<Dwfl_Module*, std::vector<Symbol>> symbols;

  // The names of a module's addresses kept on disk, by its build-id and what symbols and DWARF it
  // has (a binary stripped, or a debug package installed, names its code differently). Opening a
  // binary's DWARF costs tens of milliseconds (libc's debug file is compressed), a cached name
  // nothing.
  struct Cached {
    bool full = false;                // with the DWARF's lines and inlined calls
    std::vector<NativeFrame> frames;  // without pc, library and offset
  };
  struct ModuleCache {
    std::string file;  // empty: not cached (no build-id)
    std::unordered_map<uint64_t, Cached> entries;  // by the address in the file
    bool dirty = false;
  };
  bool use_cache = true;
  std::unordered_map<Dwfl_Module*, ModuleCache> caches;
  static constexpr size_t kMaxCached = 200000;  // entries per binary

  Impl(int p, const Memory& m) : pid(p), live(m) {}
  ~Impl() {
    try {
      for (auto& [mod, c] : caches) store(c);
    } catch (const std::exception&) {  // only a cache
    }
    if (dwfl) dwfl_end(dwfl);
    if (arch_elf) elf_end(arch_elf);
    if (arch_fd >= 0) ::close(arch_fd);
  }
  Elf* arch_elf = nullptr;
  int arch_fd = -1;

  // What pyinspect's own ELF reader says of a module's file, once per module: its build-id,
  // whether it has a symbol table and DWARF, and its separate debug file, found as the layout's
  // is (elf/debug_file.hpp: by build-id and .gnu_debuglink, ours and under the target's root).
  struct ModuleFacts {
    std::string build_id;
    bool symtab = false, dwarf = false;
    std::string debug_file;  // empty: none
  };
  std::unordered_map<Dwfl_Module*, std::optional<ModuleFacts>> facts;

  const ModuleFacts* facts_of(Dwfl_Module* mod) {
    auto [it, added] = facts.try_emplace(mod);
    if (!added) return it->second ? &*it->second : nullptr;
    GElf_Addr bias = 0;
    if (!dwfl_module_getelf(mod, &bias)) return nullptr;  // opens the file through find_elf
    const char *name = nullptr, *main = nullptr;
    name = dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, &main, nullptr);
    if (!main || !name) return nullptr;
    try {
      ElfFile elf(main);
      ModuleFacts f;
      f.build_id = elf.build_id();
      f.symtab = elf.has_symtab();
      f.dwarf = elf.has_debug_info();
      if (!f.dwarf)
        if (auto d = find_debug_file(elf, name, {"", modules ? modules->root : "/proc/" + std::to_string(pid) + "/root"}))
          f.debug_file = d->path();
      it->second = std::move(f);
    } catch (const Error& e) {
      LOG_DEBUG("native stacks: " << main << ": " << e.what());
    }
    return it->second ? &*it->second : nullptr;
  }

  // libdwfl's find_debuginfo: the debug file facts_of found (libdwfl uses the file's own DWARF
  // when there is none).
  static int find_debuginfo(Dwfl_Module* mod, void** userdata, const char*, Dwarf_Addr, const char*, const char*,
                            GElf_Word, char** debuginfo_file_name) {
    auto* self = static_cast<Impl*>(*userdata);
    const ModuleFacts* f = self ? self->facts_of(mod) : nullptr;
    if (!f || f->debug_file.empty()) return -1;
    int fd = ::open(f->debug_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) *debuginfo_file_name = strdup(f->debug_file.c_str());
    return fd;
  }

  ModuleCache& cache_of(Dwfl_Module* mod) {
    auto [it, added] = caches.try_emplace(mod);
    ModuleCache& c = it->second;
    if (!added || !use_cache) return c;
    const ModuleFacts* mf = facts_of(mod);
    if (!mf || mf->build_id.size() < 8) return c;
    const std::string& id = mf->build_id;
    bool symtab = mf->symtab, dwarf = mf->dwarf, debug = !mf->debug_file.empty();
    c.file = "names-" + id + "-" + (symtab ? "s" : "") + (dwarf ? "d" : "") + (debug ? "x" : "") + ".json";
    auto text = load_cache_file(c.file);
    if (!text) return c;
    try {
      auto j = nlohmann::json::parse(*text);
      if (j.value("version", "") != PYINSPECT_VERSION) return c;
      for (auto& [key, e] : j.at("entries").items()) {
        Cached entry;
        entry.full = e.at("full").get<bool>();
        for (auto& f : e.at("frames")) {
          NativeFrame nf;
          nf.symbol = f.at(0).get<std::string>();
          nf.elf_symbol = f.at(1).get<std::string>();
          nf.file = f.at(2).get<std::string>();
          nf.line = f.at(3).get<int>();
          nf.inlined = f.at(4).get<bool>();
          nf.symbol_offset = f.at(5).get<uint64_t>();
          entry.frames.push_back(std::move(nf));
        }
        c.entries.emplace(std::stoull(key, nullptr, 16), std::move(entry));
      }
      LOG_DEBUG("native stacks: " << c.entries.size() << " names from the cache " << c.file);
    } catch (const std::exception& e) {
      LOG_DEBUG("native stacks: ignoring the cache " << c.file << ": " << e.what());
      c.entries.clear();
    }
    return c;
  }

  static void store(ModuleCache& c) {
    if (!c.dirty || c.file.empty()) return;
    nlohmann::json entries = nlohmann::json::object();
    char key[24];
    for (auto& [at, e] : c.entries) {
      nlohmann::json frames = nlohmann::json::array();
      for (auto& f : e.frames)
        frames.push_back({f.symbol, f.elf_symbol, f.file, f.line, f.inlined, f.symbol_offset});
      std::snprintf(key, sizeof key, "%llx", static_cast<unsigned long long>(at));
      entries[key] = {{"full", e.full}, {"frames", frames}};
    }
    store_cache_file(c.file, nlohmann::json{{"version", PYINSPECT_VERSION}, {"entries", entries}}.dump());
    c.dirty = false;
  }

  // Files are opened through /proc/PID/root, so that a target in another mount namespace (a
  // container) gets its own libraries, not ours of the same name.
  static int find_elf(Dwfl_Module* mod, void** userdata, const char* name, Dwarf_Addr base, char** file_name,
                      Elf** elfp) {
    auto* self = static_cast<Impl*>(*userdata);
    if (self && self->modules) {
      // A core's: the file where host_path finds it; nothing else (the vDSO is not a file here).
      if (!name || name[0] != '/') return -1;
      std::string path = self->modules->host_path(name);
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return -1;
      *file_name = strdup(path.c_str());
      return fd;
    }
    if (self && name && name[0] == '/') {
      std::string path = "/proc/" + std::to_string(self->pid) + "/root" + name;
      struct stat st;
      if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
          *file_name = strdup(path.c_str());
          return fd;
        }
      }
    }
    // [vdso] (read from the target's memory) and files deleted since they were mapped.
    return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
  }

  static pid_t next_thread(Dwfl*, void* arg, void** thread_argp) {
    auto* self = static_cast<Impl*>(arg);
    if (*thread_argp || !self->current) return 0;
    *thread_argp = self;
    return self->current->tid;
  }
  static bool get_thread(Dwfl*, pid_t tid, void* arg, void** thread_argp) {
    auto* self = static_cast<Impl*>(arg);
    if (!self->current || self->current->tid != tid) return false;
    *thread_argp = self;
    return true;
  }
  static bool memory_read(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const NativeCapture* c = self->current;
    if (c && c->stack.size() >= sizeof(Dwarf_Word) && addr >= c->stack_start &&
        addr - c->stack_start <= c->stack.size() - sizeof(Dwarf_Word)) {
      std::memcpy(result, c->stack.data() + (addr - c->stack_start), sizeof(Dwarf_Word));
      return true;
    }
    uint64_t v;
    if (!self->live.read(RemoteAddr(addr), &v, sizeof v)) return false;
    ++self->live_reads;
    *result = v;
    return true;
  }
  static bool set_initial_registers(Dwfl_Thread* thread, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    const auto& r = self->current->regs;
    Dwarf_Word regs[ThreadRegisters::kCount];
    for (size_t i = 0; i < ThreadRegisters::kCount; ++i) regs[i] = r.dwarf[i];
    if (!dwfl_thread_state_registers(thread, 0, ThreadRegisters::kCount, regs)) return false;
    dwfl_thread_state_register_pc(thread, r.pc);
    return true;
  }

  void open() {
    callbacks.find_elf = &Impl::find_elf;
    callbacks.find_debuginfo = &Impl::find_debuginfo;
    dwfl = dwfl_begin(&callbacks);
    if (!dwfl) throw Error(ErrorCode::Internal, std::string("libdwfl: ") + dwfl_errmsg(-1));
    report();
    thread_callbacks.next_thread = &Impl::next_thread;
    thread_callbacks.get_thread = &Impl::get_thread;
    thread_callbacks.memory_read = &Impl::memory_read;
    thread_callbacks.set_initial_registers = &Impl::set_initial_registers;
    // A core's architecture is the core file's own (libdwfl would look for a module's ELF).
    if (modules && !modules->arch_file.empty()) {
      arch_fd = ::open(modules->arch_file.c_str(), O_RDONLY | O_CLOEXEC);
      if (arch_fd >= 0) arch_elf = elf_begin(arch_fd, ELF_C_READ_MMAP, nullptr);
    }
    attached = dwfl_attach_state(dwfl, arch_elf, pid, &thread_callbacks, this);
    if (!attached) LOG_WARN("native stacks: libdwfl cannot unwind this target: " << dwfl_errmsg(-1));
  }

  // The modules mapped into the target, from its maps; each module points back to us so that
  // find_elf knows the target. Reporting again may free modules (a library unloaded): what is
  // kept by module or by address is dropped with them (the names cache written first).
  std::chrono::steady_clock::time_point reported_at{};
  void report() {
    reported_at = std::chrono::steady_clock::now();
    for (auto& [mod, c] : caches) store(c);
    caches.clear();
    symbols.clear();
    names.clear();
    facts.clear();
    dwfl_report_begin(dwfl);
    int rc = modules ? report_maps(*modules->maps) : dwfl_linux_proc_report(dwfl, pid);
    dwfl_report_end(dwfl, nullptr, nullptr);
    if (rc != 0) LOG_DEBUG("native stacks: reading the modules of " << pid << " failed: " << rc);
    dwfl_getmodules(
        dwfl,
        [](Dwfl_Module*, void** userdata, const char*, Dwarf_Addr, void* arg) -> int {
          *userdata = arg;
          return DWARF_CB_OK;
        },
        this, 0);
  }

  // The modules of a Maps, as libdwfl reads /proc/PID/maps: the same text, from memory.
  int report_maps(const Maps& maps) {
    std::string text;
    char line[64];
    // libdwfl tells files apart by their inode: a made-up one per path (a core records none).
    std::unordered_map<std::string, unsigned long long> inode;
    for (const auto& m : maps.entries()) {
      std::snprintf(line, sizeof line, "%llx-%llx %c%c%cp %08llx 00:00 %llu ", static_cast<unsigned long long>(m.start),
                    static_cast<unsigned long long>(m.end), m.readable ? 'r' : '-', m.writable ? 'w' : '-',
                    m.executable ? 'x' : '-', static_cast<unsigned long long>(m.offset),
                    m.path.empty() ? 0ull : inode.emplace(m.path, inode.size() + 1).first->second);
      text += line;
      text += m.path;
      text += '\n';
    }
    FILE* f = fmemopen(text.data(), text.size(), "r");
    if (!f) return -1;
    int rc = dwfl_linux_proc_maps_report(dwfl, f);
    std::fclose(f);
    return rc;
  }

  const std::vector<Symbol>& symbols_of(Dwfl_Module* mod) {
    auto [it, added] = symbols.try_emplace(mod);
    if (!added) return it->second;
    if (log::enabled(log::Level::debug)) {
      Dwarf_Addr b;
      bool dwarf = dwfl_module_getdwarf(mod, &b) != nullptr;
      const char *main = nullptr, *debug = nullptr;
      const char* name = dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, &main, &debug);
      LOG_DEBUG("native stacks: module " << (name ? name : "?") << ": file " << (main ? main : "-") << ", debug file "
                                         << (debug ? debug : "-") << (dwarf ? "" : " (no DWARF: ")
                                         << (dwarf ? "" : dwfl_errmsg(-1)) << (dwarf ? "" : ")"));
    }
    auto& v = it->second;
    int n = dwfl_module_getsymtab(mod);
    for (int i = 1; i < n; ++i) {
      GElf_Sym sym;
      GElf_Addr addr = 0;
      const char* name = dwfl_module_getsym_info(mod, i, &sym, &addr, nullptr, nullptr, nullptr);
      if (!name || !*name || sym.st_shndx == SHN_UNDEF) continue;
      int type = GELF_ST_TYPE(sym.st_info);
      if (type != STT_FUNC && type != STT_GNU_IFUNC) continue;
      int bind = GELF_ST_BIND(sym.st_info);
      int rank = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;
      v.push_back({addr, sym.st_size, name, rank});
    }
    std::sort(v.begin(), v.end(), [](const Symbol& a, const Symbol& b) {
      if (a.start != b.start) return a.start < b.start;
      if (a.rank != b.rank) return a.rank < b.rank;
      return std::strcmp(a.name, b.name) < 0;
    });
    // One name per address: the best ranked.
    v.erase(std::unique(v.begin(), v.end(), [](const Symbol& a, const Symbol& b) { return a.start == b.start; }),
            v.end());
    return v;
  }

  // The function symbol that holds `at`: one whose extent covers it (a symbol without a size
  // covers up to the next one).
  const Symbol* symbol_at(Dwfl_Module* mod, uint64_t at) {
    const auto& v = symbols_of(mod);
    auto it = std::upper_bound(v.begin(), v.end(), at, [](uint64_t a, const Symbol& s) { return a < s.start; });
    if (it == v.begin()) return nullptr;
    --it;
    if (it->size ? at < it->start + it->size : (it + 1 == v.end() || at < (it + 1)->start)) return &*it;
    return nullptr;
  }

  const std::vector<NativeFrame>& name(uint64_t pc, bool activation, const std::string& name_only) {
    // A return address points after the call: look up the call itself.
    uint64_t at = activation ? pc : pc - 1;
    auto [it, added] = names.try_emplace(at);
    if (!added) return it->second;
    std::vector<NativeFrame>& out = it->second;
    NativeFrame machine;
    Dwfl_Module* mod = dwfl_addrmodule(dwfl, at);
    if (!mod) {
      machine.offset = pc;
      out.push_back(machine);
      return out;
    }
    const char* modname = dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    machine.library = modname ? modname : "";
    if (machine.library.rfind("[vdso", 0) == 0) machine.library = "[vdso]";
    GElf_Addr bias = 0;
    if (dwfl_module_getelf(mod, &bias)) machine.offset = pc - bias;
    ModuleCache& cache = cache_of(mod);
    uint64_t key = at - bias;
    if (auto hit = cache.entries.find(key); hit != cache.entries.end() && !hit->second.frames.empty()) {
      const Cached& e = hit->second;
      bool eval = !name_only.empty() && base_symbol(e.frames.back().elf_symbol) == name_only;
      if (e.full || eval) {
        // An evaluation-loop frame needs no more than its symbol.
        size_t from = eval ? e.frames.size() - 1 : 0;
        for (size_t i = from; i < e.frames.size(); ++i) {
          NativeFrame f = e.frames[i];
          f.pc = pc;
          f.library = machine.library;
          f.offset = machine.offset;
          out.push_back(std::move(f));
        }
        return out;
      }
    }
    if (const Symbol* s = symbol_at(mod, at)) {
      machine.elf_symbol = s->name;
      // Without its symbol version ("clock_nanosleep@@GLIBC_2.17").
      std::string n = s->name;
      machine.symbol = demangle(n.substr(0, n.find('@', 1)).c_str());
      machine.symbol_offset = pc - s->start;
    }
    if (!name_only.empty() && base_symbol(machine.elf_symbol) == name_only) {
      out.push_back(machine);
      remember(cache, key, out, false);
      return out;
    }
    if (Dwfl_Line* line = dwfl_module_getsrc(mod, at)) {
      int lineno = 0;
      if (const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr)) {
        machine.file = file;
        machine.line = lineno;
      }
    }
    // Inlined calls: the DWARF scopes around the pc, innermost first. Each inlined call is a frame
    // of its own, at the line the pc is (innermost) or where the next inner call was made.
    Dwarf_Addr dbias = 0;
    if (Dwarf_Die* cu = dwfl_module_addrdie(mod, at, &dbias)) {
      std::vector<Dwarf_Die> chain;  // outermost first
      scopes_at(cu, at - dbias, chain, 0);
      Dwarf_Files* files = nullptr;
      size_t nfiles = 0;
      bool have_files = dwarf_getsrcfiles(cu, &files, &nfiles) == 0;
      std::string file = machine.file;
      int line = machine.line;
      for (auto d = chain.rbegin(); d != chain.rend(); ++d) {
        Dwarf_Die* die = &*d;
        int tag = dwarf_tag(die);
        if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
        if (tag == DW_TAG_subprogram) {
          // The source's name, as the inlined calls have (the symbol table may hold an alias).
          std::string nm = die_name(die);
          if (!nm.empty()) machine.symbol = nm;
          machine.file = file;
          machine.line = line;
          break;
        }
        NativeFrame f;
        f.pc = pc;
        f.symbol = die_name(die);
        f.library = machine.library;
        f.offset = machine.offset;
        f.file = file;
        f.line = line;
        f.inlined = true;
        out.push_back(f);
        Dwarf_Attribute attr;
        Dwarf_Word v = 0;
        file.clear();
        line = 0;
        if (have_files && dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &v) == 0 && v < nfiles)
          if (const char* name = dwarf_filesrc(files, v, nullptr, nullptr)) file = name;
        if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &v) == 0) line = static_cast<int>(v);
      }
    }
    for (auto& f : out) f.elf_symbol = machine.elf_symbol;
    out.push_back(machine);
    remember(cache, key, out, true);
    return out;
  }

  void remember(ModuleCache& cache, uint64_t key, const std::vector<NativeFrame>& frames, bool full) {
    if (cache.file.empty() || cache.entries.size() >= kMaxCached) return;
    Cached& e = cache.entries[key];
    if (e.full && !full) return;
    e.full = full;
    e.frames = frames;
    cache.dirty = true;
  }
};

NativeUnwinder::NativeUnwinder(int pid, const Memory& live, bool use_cache, const NativeModules* modules)
    : impl_(std::make_unique<Impl>(pid, live)) {
  impl_->use_cache = use_cache;
  impl_->modules = modules;
  impl_->open();
}

NativeUnwinder::~NativeUnwinder() = default;

NativeStack NativeUnwinder::unwind(const NativeCapture& c, size_t max_frames) {
  NativeStack out;
  if (!impl_->attached) {
    out.truncated = true;
    out.problem = "libdwfl cannot unwind this target";
    return out;
  }
  struct Walk {
    Impl* self;
    size_t max;
    std::vector<std::pair<uint64_t, bool>> pcs;
    bool at_limit = false;
    std::string problem;
  } walk{impl_.get(), max_frames, {}, false, {}};
  impl_->current = &c;
  impl_->live_reads = 0;
  auto t0 = std::chrono::steady_clock::now();
  int rc = dwfl_getthread_frames(
      impl_->dwfl, c.tid,
      [](Dwfl_Frame* state, void* arg) -> int {
        auto* w = static_cast<Walk*>(arg);
        Dwarf_Addr pc = 0;
        bool activation = false;
        if (!dwfl_frame_pc(state, &pc, &activation)) {
          w->problem = dwfl_errmsg(-1);
          return DWARF_CB_ABORT;
        }
        if (pc == 0) return DWARF_CB_ABORT;  // the outermost frame's return address
        w->pcs.emplace_back(pc, activation);
        if (w->pcs.size() >= w->max) {
          w->at_limit = true;
          return DWARF_CB_ABORT;
        }
        return DWARF_CB_OK;
      },
      &walk);
  if (rc == -1 && walk.problem.empty()) walk.problem = dwfl_errmsg(-1);
  out.live_reads = impl_->live_reads;
  impl_->current = nullptr;
  // A pc in a module mapped after we read the maps (a library loaded since): read them again, at
  // most once a second (code outside any file, such as JIT trampolines or libffi closures, would
  // otherwise have them read at every unwind).
  if (std::chrono::steady_clock::now() - impl_->reported_at > std::chrono::seconds(1))
    for (const auto& [pc, act] : walk.pcs)
      if (!dwfl_addrmodule(impl_->dwfl, act ? pc : pc - 1)) {
        impl_->report();
        break;
      }
  auto t1 = std::chrono::steady_clock::now();
  for (const auto& [pc, act] : walk.pcs)
    for (const NativeFrame& f : impl_->name(pc, act, name_only_)) {
      out.frames.push_back(f);
      out.frames.back().pc = pc;
    }
  auto t2 = std::chrono::steady_clock::now();
  LOG_DEBUG("native stack of " << c.tid << ": " << walk.pcs.size() << " frames unwound in "
                               << std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count() << " us, named in "
                               << std::chrono::duration_cast<std::chrono::microseconds>(t2 - t1).count() << " us");
  if (walk.at_limit) {
    out.truncated = true;
    out.problem = "stopped at " + std::to_string(max_frames) + " frames";
  } else if (!walk.problem.empty()) {
    out.truncated = true;
    out.problem = walk.problem;
  }
  return out;
}

}  // namespace pyinspect
