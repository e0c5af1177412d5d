#include "proc/core_file.hpp"

#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "base/error.hpp"
#include "base/log.hpp"

namespace pyinspect {

namespace {
// NT_FILE and NT_SIGINFO (include/uapi/linux/elf.h); older <elf.h> may lack them.
constexpr uint32_t kNtFile = 0x46494c45;
constexpr uint32_t kNtSiginfo = 0x53494749;

struct ElfHandle {
  Elf* e = nullptr;
  ~ElfHandle() {
    if (e) elf_end(e);
  }
};

template <class T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::string cstr(const char* p, size_t max) { return std::string(p, strnlen(p, max)); }

MapEntry file_entry(const CoreMappedFile& f, uint64_t start, uint64_t end) {
  MapEntry m;
  m.start = start;
  m.end = end;
  m.readable = true;  // its permissions are not recorded: what is not in the core was read-only
  m.path = f.path;
  m.offset = f.file_offset + (start - f.start);
  m.inode = 1;
  return m;
}
}  // namespace

bool CoreFile::looks_like_core(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  Elf64_Ehdr h{};
  bool ok = pread(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h);
  close(fd);
  return ok && std::memcmp(h.e_ident, ELFMAG, SELFMAG) == 0 && h.e_type == ET_CORE;
}

CoreFile::CoreFile(const std::string& path, CoreSearch search) : path_(path), search_(std::move(search)) {
  // A constructor that throws runs no destructor: what was opened is released here.
  try {
    open_and_parse();
  } catch (...) {
    release();
    throw;
  }
}

void CoreFile::open_and_parse() {
  const std::string& path = path_;
  while (!search_.sysroot.empty() && search_.sysroot.back() == '/') search_.sysroot.pop_back();
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(ErrorCode::Usage, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st{};
  if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) throw Error(ErrorCode::Usage, path + " is not a regular file");
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < sizeof(Elf64_Ehdr)) throw Error(ErrorCode::Usage, path + " is not an ELF core file (too short)");
  void* m = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
  if (m == MAP_FAILED) throw Error(ErrorCode::Usage, "cannot map " + path + ": " + std::strerror(errno));
  data_ = static_cast<const uint8_t*>(m);
  find_holes();

  elf_version(EV_CURRENT);
  ElfHandle h;
  h.e = elf_memory(reinterpret_cast<char*>(const_cast<uint8_t*>(data_)), size_);
  GElf_Ehdr eh;
  if (!h.e || elf_kind(h.e) != ELF_K_ELF || !gelf_getehdr(h.e, &eh))
    throw Error(ErrorCode::Usage, path + " is not an ELF file");
  if (eh.e_type != ET_CORE) throw Error(ErrorCode::Usage, path + " is an ELF file but not a core file");
  if (gelf_getclass(h.e) != ELFCLASS64 || eh.e_machine != EM_X86_64)
    throw Error(ErrorCode::Unsupported, path + " is a core file of another architecture (pyinspect reads x86-64)");
  size_t nph = 0;
  if (elf_getphdrnum(h.e, &nph) != 0) throw Error(ErrorCode::Corrupt, path + ": its program headers cannot be read");
  uint64_t missing = 0;
  for (size_t i = 0; i < nph; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(h.e, static_cast<int>(i), &ph))
      throw Error(ErrorCode::Corrupt, path + ": program header " + std::to_string(i) + " cannot be read");
    if (ph.p_type == PT_NOTE) {
      if (ph.p_offset > size_ || ph.p_filesz > size_ - ph.p_offset) {
        warnings_.push_back("a note segment runs past the end of the file (truncated core): left out");
        continue;
      }
      parse_notes(data_ + ph.p_offset, ph.p_filesz);
    } else if (ph.p_type == PT_LOAD) {
      CoreSegment s;
      s.vaddr = ph.p_vaddr;
      s.memsz = ph.p_memsz;
      s.offset = ph.p_offset;
      s.filesz = std::min(ph.p_filesz, ph.p_memsz);
      s.readable = ph.p_flags & PF_R;
      s.writable = ph.p_flags & PF_W;
      s.executable = ph.p_flags & PF_X;
      if (s.vaddr + s.memsz < s.vaddr) throw Error(ErrorCode::Corrupt, path + ": a segment wraps around the address space");
      if (s.offset > size_) {
        missing += s.filesz;
        s.filesz = 0;
      } else if (s.filesz > size_ - s.offset) {
        missing += s.filesz - (size_ - s.offset);
        s.filesz = size_ - s.offset;
      }
      if (s.memsz) segments_.push_back(s);
    }
  }
  if (missing)
    warnings_.push_back(path + " is truncated: " + std::to_string(missing) + " bytes of the memory it describes are missing");
  std::sort(segments_.begin(), segments_.end(), [](const auto& a, const auto& b) { return a.vaddr < b.vaddr; });
  std::sort(files_.begin(), files_.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
  if (threads_.empty()) throw Error(ErrorCode::Corrupt, path + " has no thread (no NT_PRSTATUS note)");
  if (!pid_) pid_ = threads_[0].tid;
}

CoreFile::~CoreFile() { release(); }

void CoreFile::release() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  for (auto& [p, fd] : open_files_)
    if (fd >= 0) close(fd);
  open_files_.clear();
}

void CoreFile::parse_notes(const uint8_t* p, size_t n) {
  // Each note: namesz, descsz, type, then the name and the descriptor, each padded to 4 bytes.
  size_t off = 0;
  while (off + 12 <= n) {
    uint32_t namesz = get<uint32_t>(p + off), descsz = get<uint32_t>(p + off + 4), type = get<uint32_t>(p + off + 8);
    size_t name_at = off + 12;
    size_t desc_at = name_at + ((static_cast<size_t>(namesz) + 3) & ~size_t(3));
    size_t next = desc_at + ((static_cast<size_t>(descsz) + 3) & ~size_t(3));
    if (desc_at > n || next > n || next <= off) {
      warnings_.push_back("a note runs past the end of its segment: the notes after it are left out");
      return;
    }
    std::string name = cstr(reinterpret_cast<const char*>(p + name_at), namesz);
    const uint8_t* d = p + desc_at;
    off = next;
    if (name != "CORE" && name != "LINUX") continue;
    if (type == NT_PRSTATUS && name == "CORE") {
      if (descsz < sizeof(elf_prstatus)) {
        warnings_.push_back("an NT_PRSTATUS note too short for its struct: a thread left out");
        continue;
      }
      elf_prstatus ps;
      std::memcpy(&ps, d, sizeof ps);
      user_regs_struct r;
      static_assert(sizeof(ps.pr_reg) == sizeof r);
      std::memcpy(&r, &ps.pr_reg, sizeof r);
      CoreThread t;
      t.tid = ps.pr_pid;
      t.signal = ps.pr_cursig;
      t.regs.dwarf = {r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8,
                      r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip};
      t.regs.pc = r.rip;
      t.regs.sp = r.rsp;
      t.regs.syscall = static_cast<int64_t>(r.orig_rax);
      t.regs.syscall_args[0] = r.rdi;
      t.regs.syscall_args[1] = r.rsi;
      t.fs_base = r.fs_base;
      if (t.tid > 0) threads_.push_back(t);
    } else if (type == NT_PRPSINFO && name == "CORE") {
      if (descsz < sizeof(elf_prpsinfo)) continue;
      elf_prpsinfo pi;
      std::memcpy(&pi, d, sizeof pi);
      fname_ = cstr(pi.pr_fname, sizeof pi.pr_fname);
      psargs_ = cstr(pi.pr_psargs, sizeof pi.pr_psargs);
      while (!psargs_.empty() && psargs_.back() == ' ') psargs_.pop_back();
      pid_ = pi.pr_pid;
    } else if (type == NT_AUXV && name == "CORE") {
      auxv_.assign(d, d + descsz);
    } else if (type == kNtSiginfo && name == "CORE") {
      if (descsz < 24) continue;
      CoreSignal s;  // siginfo_t: si_signo, si_errno, si_code, (pad), then the union
      s.signo = get<int32_t>(d);
      s.code = get<int32_t>(d + 8);
      s.addr = get<uint64_t>(d + 16);
      signal_ = s;
    } else if (type == kNtFile && name == "CORE") {
      // count, page_size, count x {start, end, file offset in pages}, then count names.
      if (descsz < 16) continue;
      uint64_t count = get<uint64_t>(d), page = get<uint64_t>(d + 8);
      if (count > (descsz - 16) / 24 || page == 0 || page > (1u << 30)) {
        warnings_.push_back("an NT_FILE note that cannot be read: mapped files unknown");
        continue;
      }
      const char* names = reinterpret_cast<const char*>(d + 16 + count * 24);
      const char* end = reinterpret_cast<const char*>(d + descsz);
      for (uint64_t i = 0; i < count; ++i) {
        CoreMappedFile f;
        f.start = get<uint64_t>(d + 16 + i * 24);
        f.end = get<uint64_t>(d + 16 + i * 24 + 8);
        f.file_offset = get<uint64_t>(d + 16 + i * 24 + 16) * page;
        if (names >= end) break;
        size_t len = strnlen(names, static_cast<size_t>(end - names));
        f.path.assign(names, len);
        names += len + 1;
        if (f.end > f.start) files_.push_back(std::move(f));
      }
    }
  }
}

std::optional<uint64_t> CoreFile::auxv(uint64_t type) const {
  for (size_t i = 0; i + 16 <= auxv_.size(); i += 16) {
    uint64_t t = get<uint64_t>(auxv_.data() + i);
    if (t == AT_NULL) break;
    if (t == type) return get<uint64_t>(auxv_.data() + i + 8);
  }
  return std::nullopt;
}

std::string CoreFile::host_path(const std::string& path) const {
  if (!search_.exe.empty() && (path == executable() || path.empty())) return search_.exe;
  std::string under = search_.sysroot + path;
  if (access(under.c_str(), R_OK) == 0) return under;
  std::string name = path.substr(path.rfind('/') + 1);
  for (const auto& d : search_.lib_dirs) {
    std::string p = d + "/" + name;
    if (access(p.c_str(), R_OK) == 0) return p;
  }
  return under;
}

std::string CoreFile::executable() const {
  if (auto phdr = auxv(AT_PHDR))
    for (const auto& f : files_)
      if (*phdr >= f.start && *phdr < f.end) return f.path;
  for (const auto& f : files_) {
    std::string base = f.path.substr(f.path.rfind('/') + 1);
    if (!fname_.empty() && base.rfind(fname_, 0) == 0) return f.path;
  }
  return "";
}

std::string CoreFile::environment(const std::string& name) const {
  auto execfn = auxv(AT_EXECFN);
  if (!execfn) return "";
  // The environment's strings end where the file name begins; 256 KiB holds any environment
  // the kernel's argument limit lets a process start with, less what the arguments take.
  constexpr uint64_t kBefore = 256 << 10;
  uint64_t start = *execfn > kBefore ? *execfn - kBefore : 0;
  for (const auto& s : segments_)
    if (*execfn > s.vaddr && *execfn <= s.vaddr + s.memsz) start = std::max(start, s.vaddr);
  std::string text(*execfn - start, '\0');
  if (text.empty() || !read(start, text.data(), text.size())) return "";
  const std::string key = name + "=";
  size_t at = text.rfind('\0' + key);
  return at == std::string::npos ? "" : std::string(text.c_str() + at + 1 + key.size());
}

void CoreFile::find_holes() {
  // A file system that cannot tell (EINVAL) or reports no hole: the core is not sparse.
  for (off_t at = 0; at < static_cast<off_t>(size_);) {
    off_t data = lseek(fd_, at, SEEK_DATA);
    if (data < 0) break;  // ENXIO: no data after `at`
    off_t hole = lseek(fd_, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(size_);
    data_extents_.emplace_back(data, hole);
    at = hole;
  }
  const bool all_data = data_extents_.size() == 1 && data_extents_[0] == std::make_pair(uint64_t{0}, uint64_t{size_});
  sparse_ = !data_extents_.empty() && !all_data;
  if (!sparse_) data_extents_.clear();
}

bool CoreFile::page_stored(uint64_t addr) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), addr,
                             [](uint64_t a, const CoreSegment& s) { return a < s.vaddr; });
  if (it == segments_.begin()) return false;
  const CoreSegment& s = *std::prev(it);
  if (addr - s.vaddr >= s.filesz) return false;
  if (!sparse_) return true;
  const uint64_t off = s.offset + (addr - s.vaddr);
  auto e = std::upper_bound(data_extents_.begin(), data_extents_.end(), std::make_pair(off, UINT64_MAX));
  return e != data_extents_.begin() && off < std::prev(e)->second;
}

Maps CoreFile::maps() const {
  std::vector<MapEntry> out;
  for (const auto& s : segments_) {
    MapEntry m;
    m.start = s.vaddr;
    m.end = s.vaddr + s.memsz;
    m.readable = s.readable;
    m.writable = s.writable;
    m.executable = s.executable;
    for (const auto& f : files_)
      if (f.start <= m.start && m.start < f.end) {
        m.path = f.path;
        m.offset = f.file_offset + (m.start - f.start);
        m.inode = 1;  // a core records no inode: any nonzero one says "a file"
        break;
      }
    out.push_back(std::move(m));
  }
  // Mapped files no segment covers (gcore leaves some out): read from the files themselves.
  for (const auto& f : files_) {
    uint64_t at = f.start;
    for (const auto& s : segments_) {
      if (s.vaddr + s.memsz <= at || s.vaddr >= f.end) continue;
      if (s.vaddr > at) out.push_back(file_entry(f, at, s.vaddr));
      at = std::max(at, s.vaddr + s.memsz);
    }
    if (at < f.end) out.push_back(file_entry(f, at, f.end));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
  name_anonymous(out);
  return Maps(std::move(out));
}

// A core names only the files mapped; /proc's names for three anonymous mappings follow from
// its other facts. [vdso]: AT_SYSINFO_EHDR. [stack]: the mapping the main thread's stack
// pointer is in. [heap]: the program break, which the kernel starts at a random page within
// 1 GiB (x86-64's arch_randomize_brk) after the executable's data and zero-filled data (its bss,
// the anonymous mapping right after the executable's last one).
void CoreFile::name_anonymous(std::vector<MapEntry>& maps) const {
  auto anon = [](const MapEntry& m) { return m.path.empty(); };
  auto at = [&](uint64_t a) -> MapEntry* {
    for (auto& m : maps)
      if (m.contains(a)) return &m;
    return nullptr;
  };
  if (auto v = auxv(AT_SYSINFO_EHDR))
    if (MapEntry* m = at(*v); m && anon(*m)) m->path = "[vdso]";
  for (const auto& t : threads_)
    if (t.tid == pid_)
      if (MapEntry* m = at(t.regs.sp); m && anon(*m)) m->path = "[stack]";
  const std::string exe = executable();
  if (exe.empty()) return;
  uint64_t data_end = 0;
  for (const auto& m : maps)
    if (m.path == exe) data_end = std::max(data_end, m.end);
  if (!data_end) return;
  auto next = std::find_if(maps.begin(), maps.end(), [&](const MapEntry& m) { return m.start >= data_end; });
  if (next != maps.end() && next->start == data_end && anon(*next) && next->writable) data_end = (next++)->end;  // bss
  constexpr uint64_t kBrkRandom = 1ull << 30;
  if (next != maps.end() && anon(*next) && next->writable && next->start <= data_end + kBrkRandom)
    next->path = "[heap]";
}

bool CoreFile::read_from_file(uint64_t addr, uint8_t* out, size_t len) const {
  auto it = std::upper_bound(files_.begin(), files_.end(), addr, [](uint64_t a, const CoreMappedFile& f) { return a < f.start; });
  if (it == files_.begin()) return false;
  const CoreMappedFile& f = *std::prev(it);
  if (addr < f.start || addr + len > f.end) return false;
  auto [slot, fresh] = open_files_.emplace(f.path, -1);
  if (fresh) {
    slot->second = open(host_path(f.path).c_str(), O_RDONLY | O_CLOEXEC);
    if (slot->second < 0) LOG_DEBUG("core: cannot open " << host_path(f.path) << " to read what the core left out");
  }
  if (slot->second < 0) return false;
  ssize_t n = pread(slot->second, out, len, static_cast<off_t>(f.file_offset + (addr - f.start)));
  return n == static_cast<ssize_t>(len);
}

bool CoreFile::read(uint64_t addr, void* out_v, size_t len) const {
  auto* out = static_cast<uint8_t*>(out_v);
  while (len > 0) {
    auto it = std::upper_bound(segments_.begin(), segments_.end(), addr,
                               [](uint64_t a, const CoreSegment& s) { return a < s.vaddr; });
    if (it == segments_.begin() || addr >= std::prev(it)->vaddr + std::prev(it)->memsz) {
      // In no segment (gcore leaves some file mappings out): the mapped file, up to the next one.
      size_t n = it == segments_.end() ? len : static_cast<size_t>(std::min<uint64_t>(len, it->vaddr - addr));
      if (!read_from_file(addr, out, n)) return false;
      addr += n;
      out += n;
      len -= n;
      continue;
    }
    const CoreSegment& s = *std::prev(it);
    uint64_t in_seg = addr - s.vaddr;
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, s.memsz - in_seg));
    if (in_seg < s.filesz) {
      n = static_cast<size_t>(std::min<uint64_t>(n, s.filesz - in_seg));
      std::memcpy(out, data_ + s.offset + in_seg, n);
    } else if (!read_from_file(addr, out, n)) {
      return false;
    }
    addr += n;
    out += n;
    len -= n;
  }
  return true;
}

const uint8_t* CoreFile::view(uint64_t addr, size_t len) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), addr,
                             [](uint64_t a, const CoreSegment& s) { return a < s.vaddr; });
  if (it == segments_.begin()) return nullptr;
  const CoreSegment& s = *std::prev(it);
  uint64_t in_seg = addr - s.vaddr;
  if (in_seg > s.filesz || len > s.filesz - in_seg) return nullptr;
  return data_ + s.offset + in_seg;
}

}  // namespace pyinspect
