#include "runtime/target.hpp"

#include <algorithm>
#include <iterator>
#include <unordered_map>

#include "abi/debug_offsets.hpp"
#include "abi/layout_cache.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "elf/debug_file.hpp"
#include "elf/dwarf_types.hpp"
#include "runtime/objects.hpp"
#include "runtime/threads.hpp"

namespace pyinspect {

namespace {
std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

// Load bias of a file from its mappings: a PT_LOAD segment is mapped at a page-aligned address
// whose file offset equals the segment's page-aligned offset.
std::optional<uint64_t> load_bias(const ElfFile& elf, const Maps& maps, const std::string& target_path) {
  if (elf.is_executable()) return 0;
  for (const auto& seg : elf.segments()) {
    uint64_t page_off = seg.offset & ~0xfffull;
    for (const auto& m : maps.entries()) {
      if (m.path != target_path || m.offset != page_off) continue;
      return m.start - (seg.vaddr & ~0xfffull);
    }
  }
  return std::nullopt;
}

PythonProcess::PythonProcess(const Process& proc, const ProcessMemory& mem, const TargetOptions& opts) : proc_(proc) {
  find_binary(mem);
  IdentifyOptions io;
  io.use_dwarf = opts.use_dwarf;
  io.use_cache = opts.use_cache;
  io.force_version = opts.force_version;
  Identified id =
      identify(*bin_, mem, base_name(proc_.exe()), "/proc/" + std::to_string(proc_.pid()) + "/root", io);
  layout_ = std::move(id.layout);
  version_exact_ = id.version_exact;
  runtime_ = id.runtime;
  dwarf_file_ = id.dwarf_file;
  resolve_types();
  find_interpreter_head(mem, opts.head_method);
}

void PythonProcess::find_binary(const ProcessMemory& mem) {
  const Maps& maps = mem.maps();
  auto open_mapped = [&](const std::string& target_path) -> std::unique_ptr<MappedBinary> {
    auto b = std::make_unique<MappedBinary>();
    b->target_path = target_path;
    b->host_path = proc_.host_path(target_path);
    try {
      b->elf = std::make_unique<ElfFile>(b->host_path);
    } catch (const Error& e) {
      LOG_DEBUG("cannot open " << b->host_path << ": " << e.what());
      return nullptr;
    }
    auto bias = load_bias(*b->elf, maps, target_path);
    if (!bias) return nullptr;
    b->bias = *bias;
    return b;
  };

  std::string exe_path, libpython_path;
  for (const auto& m : maps.entries()) {
    if (!m.is_file()) continue;
    std::string p = m.path;
    std::string name = base_name(p);
    if (libpython_path.empty() && name.rfind("libpython", 0) == 0 && name.find(".so") != std::string::npos &&
        PyVersion::from_file_name(name))
      libpython_path = p;
  }
  // The executable is the file named by /proc/PID/exe; its mapping path is the same string.
  for (const auto& m : maps.entries())
    if (m.is_file() && (m.path == proc_.exe() || m.path == proc_.exe() + " (deleted)")) {
      exe_path = m.path;
      break;
    }

  // A static build has the interpreter in the executable; a shared build in libpython. Prefer
  // whichever actually defines the interpreter's symbols.
  for (const std::string& candidate : {exe_path, libpython_path}) {
    if (candidate.empty()) continue;
    auto b = open_mapped(candidate);
    if (!b) continue;
    b->exports_api = b->elf->exported_symbol("PyCode_Type").has_value();
    if (!b->exports_api && !b->elf->symbol("PyCode_Type")) continue;
    shared_ = candidate == libpython_path && candidate != exe_path;
    bin_ = std::move(b);
    break;
  }
  if (!bin_) {
    std::string comm = base_name(proc_.exe());
    throw Error(ErrorCode::NotPython, "process " + std::to_string(proc_.pid()) + " (" + comm +
                                          ") is not a CPython process: neither its executable nor a mapped "
                                          "libpython defines the interpreter");
  }
  std::vector<std::string> roots = {"", "/proc/" + std::to_string(proc_.pid()) + "/root"};
  if (!bin_->elf->has_debug_info()) {
    bin_->debug = find_debug_file(*bin_->elf, bin_->target_path, roots);
  }
  LOG_INFO("interpreter in " << bin_->target_path << " (bias " << log::hex(bin_->bias) << ")"
                             << (bin_->debug ? ", debug info in " + bin_->debug->path() : ""));
}

void PythonProcess::resolve_types() {
#define PYINSPECT_TYPE_LOOKUP(name, sym) \
  if (auto a = bin_->api_symbol(sym)) types_.name = *a;
  PYINSPECT_TYPES(PYINSPECT_TYPE_LOOKUP)
#undef PYINSPECT_TYPE_LOOKUP
  if (!types_.code)
    throw Error(ErrorCode::NotPython, bin_->target_path + " does not export PyCode_Type; not a CPython interpreter");
}

bool PythonProcess::valid_interpreter(const Memory& mem, RemoteAddr interp) const {
  if (interp.null() || (interp.value() & 7)) return false;
  auto ts = mem.read_ptr(interp + layout_.off(F::is_tstate_head));
  if (!ts) return false;
  if (!ts->null()) {  // no threads: a fresh or finalizing interpreter, judged by its dicts alone
    auto back = mem.read_ptr(*ts + layout_.off(F::ts_interp));
    if (!back || *back != interp) return false;
  }
  // A thread state at the head of its list also points at itself this way, and other structs
  // may by chance: an interpreter also owns its modules, sys and builtins dicts.
  ObjectReader r(mem, layout_, types_);
  for (F f : {F::is_modules, F::is_sysdict, F::is_builtins}) {
    if (!layout_.has(f)) continue;
    auto d = mem.read_ptr(interp + layout_.off(f));
    if (!d || !r.has_type(*d, types_.dict)) return false;
  }
  return true;
}

void PythonProcess::find_interpreter_head(const ProcessMemory& mem, const std::string& method) {
  static const char* const kMethods[] = {"auto", "runtime", "symbol", "code", "scan"};
  if (std::find(std::begin(kMethods), std::end(kMethods), method) == std::end(kMethods))
    throw Error(ErrorCode::Usage,
                "unknown --find-interpreter method '" + method + "' (auto, runtime, symbol, code or scan)");
  auto use = [&](const char* m) { return method == "auto" || method == m; };
  layout_.require(F::is_tstate_head);
  layout_.require(F::ts_interp);
  // <=3.6: the thread state holding the GIL (exported), for gil_holder().
  if (const char* sym = layout_.facts().tstate_current_symbol)
    if (auto cur = bin_->api_symbol(sym)) tstate_current_var_ = *cur;
  if (use("runtime") && runtime_ && layout_.has(F::rt_interpreters_head)) {
    head_var_ = runtime_ + layout_.off(F::rt_interpreters_head);
    head_how_ = "_PyRuntime.interpreters.head";
    return;
  }
  if (auto ih = bin_->static_symbol("interp_head"); ih && use("symbol")) {
    head_var_ = *ih;
    head_how_ = "symbol interp_head";
    return;
  }
  if (use("code") && head_from_code(mem)) return;
  if (use("scan") && head_from_scan(mem)) return;
  if (method != "auto") {
    std::string why = method == "runtime" ? (runtime_ ? "_PyRuntime has no interpreter list in this layout"
                                                      : "the interpreter has no _PyRuntime (CPython 3.7 and later do)")
                      : method == "symbol" ? "the interpreter has no symbol interp_head (up to CPython 3.6, not stripped)"
                      : method == "code"   ? "PyInterpreterState_Head's code does not name a variable it reads"
                                           : "no pointer in the interpreter's data leads to a valid interpreter state";
    throw Error(ErrorCode::NotPython, "method '" + method + "' does not find the interpreter state in process " +
                                          std::to_string(proc_.pid()) + ": " + why);
  }
  throw Error(ErrorCode::NotPython, "cannot find the interpreter state in process " + std::to_string(proc_.pid()) +
                                        " (is Python initialised?)");
}

// Stripped 2.7/3.6: PyInterpreterState_Head() is exported and is `mov rax, [rip+X]; ret`, so its
// code names the static variable.
bool PythonProcess::head_from_code(const ProcessMemory& mem) {
  auto fn = bin_->elf->exported_symbol("PyInterpreterState_Head");
  if (!fn) return false;
  auto code = bin_->elf->read_vaddr(fn->value, 16);
  if (!code) return false;
  const auto& c = *code;
  size_t i = 0;
  if (c[0] == 0xf3 && c[1] == 0x0f && c[2] == 0x1e && c[3] == 0xfa) i = 4;  // endbr64
  if (!(c[i] == 0x48 && c[i + 1] == 0x8b && c[i + 2] == 0x05 && c[i + 7] == 0xc3)) return false;
  int32_t disp;
  std::memcpy(&disp, c.data() + i + 3, 4);
  RemoteAddr var = bin_->at(fn->value + i + 7 + static_cast<int64_t>(disp));
  auto interp = mem.read_ptr(var);
  if (!interp || !valid_interpreter(mem, *interp)) return false;
  head_var_ = var;
  head_how_ = "the code of PyInterpreterState_Head()";
  return true;
}

// Every word of the binary's writable data that leads to a valid interpreter is a candidate
// (interp_head, but also variables that point to the main interpreter, which is the tail of the
// list); the head is the candidate from which the `next` chain is longest.
bool PythonProcess::head_from_scan(const ProcessMemory& mem) {
  RemoteAddr best_var;
  size_t best_len = 0;
  for (const auto& seg : bin_->elf->segments()) {
    if (!seg.writable) continue;
    RemoteAddr start = bin_->at(seg.vaddr & ~7ull);
    size_t len = std::min<uint64_t>(seg.memsz, 16 << 20);
    std::vector<uint64_t> words(len / 8);
    if (!mem.read(start, words.data(), words.size() * 8)) continue;
    std::unordered_map<uint64_t, size_t> chain_len;
    for (size_t i = 0; i < words.size(); ++i) {
      RemoteAddr p(words[i]);
      if (p.null() || (p.value() & 7) || !mem.maps().readable(p, 8)) continue;
      auto known = chain_len.find(p.value());
      if (known == chain_len.end()) known = chain_len.emplace(p.value(), interpreter_chain_length(mem, p)).first;
      if (known->second > best_len) {
        best_len = known->second;
        best_var = start + static_cast<int64_t>(i * 8);
      }
    }
  }
  if (!best_var) return false;
  head_var_ = best_var;
  head_how_ = "a scan of " + base_name(bin_->target_path) + "'s data";
  return true;
}

size_t PythonProcess::interpreter_chain_length(const Memory& mem, RemoteAddr p) const {
  size_t n = 0;
  for (RemoteAddr q = p; n < ThreadWalkLimits{}.interpreters && valid_interpreter(mem, q); ++n) {
    auto next = mem.read_ptr(q + layout_.off(F::is_next));
    if (!next || next->null()) return n + 1;
    q = *next;
  }
  return n;
}

std::optional<RemoteAddr> PythonProcess::first_interpreter(const Memory& mem) const {
  if (head_interp_) return head_interp_;
  auto p = mem.read_ptr(head_var_);
  if (!p || p->null()) return std::nullopt;
  return p;
}

RemoteAddr PythonProcess::gil_holder(const Memory& mem, RemoteAddr interp) const {
  const Layout& l = layout_;
  if (runtime_ && l.has(F::rt_gilstate_tstate_current)) {
    // 3.7-3.11: the thread state that holds the GIL, NULL while released.
    auto p = mem.read_ptr(runtime_ + l.off(F::rt_gilstate_tstate_current));
    return p ? *p : RemoteAddr();
  }
  if (l.has(F::is_ceval_gil) && l.has(F::gil_locked) && l.has(F::gil_last_holder)) {
    // 3.12+: per-interpreter GIL; last_holder counts only while locked.
    auto gil = mem.read_ptr(interp + l.off(F::is_ceval_gil));
    if (!gil || gil->null()) return RemoteAddr();
    auto locked = mem.read_as<int32_t>(*gil + l.off(F::gil_locked));
    auto holder = mem.read_ptr(*gil + l.off(F::gil_last_holder));
    LOG_DEBUG("GIL at " << log::hex(gil->value()) << ": locked " << locked.value_or(-1) << " last holder "
                        << log::hex(holder.value_or(RemoteAddr()).value()));
    if (!locked || !*locked || !holder) return RemoteAddr();
    return *holder;
  }
  if (!tstate_current_var_) return RemoteAddr();
  auto p = mem.read_ptr(tstate_current_var_);
  return p ? *p : RemoteAddr();
}

std::optional<std::pair<RemoteAddr, RemoteAddr>> PythonProcess::gil_wait_words(const Memory& mem,
                                                                               RemoteAddr interp) const {
  const Layout& l = layout_;
  if (!l.has(F::gil_cond) || !l.has(S::sz_gil_runtime_state)) return static_gil_wait_words(mem);
  RemoteAddr gil;
  if (l.has(F::is_ceval_gil)) {  // 3.12+: a pointer in the interpreter
    auto p = mem.read_ptr(interp + l.off(F::is_ceval_gil));
    if (!p || p->null()) return std::nullopt;
    gil = *p;
  } else if (runtime_ && l.has(F::rt_ceval_gil)) {  // 3.7-3.11: inside _PyRuntime
    gil = runtime_ + l.off(F::rt_ceval_gil);
  } else {
    return std::nullopt;
  }
  // cond and mutex (threads taking the GIL), then switch_cond and switch_mutex (a thread that
  // dropped it on request, until another takes it): all to the end of the struct.
  return std::make_pair(gil + l.off(F::gil_cond), gil + l.size(S::sz_gil_runtime_state));
}

std::optional<std::pair<RemoteAddr, RemoteAddr>> PythonProcess::static_gil_wait_words(const Memory& mem) const {
  const Facts& f = layout_.facts();
  auto sym = [&](const char* name) -> std::optional<ElfSymbol> {
    for (const ElfFile* e : {bin_->elf.get(), bin_->debug.get()})
      if (e)
        if (auto s = e->static_symbol(name); s && !s->function && s->size) return s;
    return std::nullopt;
  };
  if (f.gil_static_words) {
    // Their span, when they lie together (nothing else between but padding); else gil_cond's own
    // bytes, where a thread taking the GIL sleeps.
    std::vector<ElfSymbol> found;
    for (const char* const* n = f.gil_static_words; *n; ++n)
      if (auto s = sym(*n)) found.push_back(*s);
    if (found.empty()) return std::nullopt;
    uint64_t lo = UINT64_MAX, hi = 0, total = 0;
    for (const auto& s : found) {
      lo = std::min(lo, s.value);
      hi = std::max(hi, s.value + s.size);
      total += s.size;
    }
    if (hi - lo > total + 64) {
      lo = found[0].value;
      hi = found[0].value + found[0].size;
    }
    return std::make_pair(bin_->at(lo), bin_->at(hi));
  }
  if (f.gil_static_lock) {
    auto s = sym(f.gil_static_lock);
    if (!s) return std::nullopt;
    auto sem = mem.read_ptr(bin_->at(s->value));
    if (!sem || sem->null()) return std::nullopt;
    return std::make_pair(*sem, *sem + 32);  // sizeof(sem_t), its futex word first (glibc, x86-64)
  }
  return std::nullopt;
}

PyVersion PythonProcess::full_version(const Memory& mem) {
  if (version_exact_) return layout_.version;
  auto interp = first_interpreter(mem);
  if (interp && layout_.has(F::is_sysdict)) {
    ObjectReader r(mem, layout_, types_);
    if (auto sysdict = mem.read_ptr(*interp + layout_.off(F::is_sysdict)))
      if (auto v = r.dict_get(*sysdict, "version"))
        if (auto s = r.read_str(*v, 200))
          if (auto refined = refine_version(layout_.version, *s)) {
            version_exact_ = true;
            layout_.set_version(*refined);
          }
  }
  return layout_.version;
}

}  // namespace pyinspect
