#include "proc/core_writer.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/procfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/emergency.hpp"
#include "base/error.hpp"

namespace pyinspect {

namespace {
constexpr uint64_t kPage = 4096;

uint64_t align(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void put_note(std::vector<uint8_t>& out, uint32_t type, const void* desc, size_t len) {
  static const char kName[] = "CORE";
  Elf64_Nhdr h{};
  h.n_namesz = sizeof kName;  // with its NUL
  h.n_descsz = static_cast<Elf64_Word>(len);
  h.n_type = type;
  auto add = [&out](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
    out.resize(align(out.size(), 4), 0);
  };
  add(&h, sizeof h);
  add(kName, sizeof kName);
  add(desc, len);
}

bool dumped(const MapEntry& m) {
  // What a reader of the core can make use of: every readable mapping but the kernel's
  // variable pages, which read differently in every process.
  return m.readable && m.size() > 0 && m.path != "[vvar]" && m.path != "[vsyscall]";
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(ErrorCode::Output, "cannot write " + path + ": " + what + ": " + std::strerror(errno));
}

void write_all(int fd, const uint8_t* p, uint64_t len, uint64_t offset, const std::string& path) {
  while (len > 0) {
    ssize_t n = pwrite(fd, p, std::min<uint64_t>(len, 1 << 30), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(path, "write");
    p += n;
    len -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

bool zero_page(const uint8_t* p) {
  uint64_t acc = 0;
  for (size_t i = 0; i < kPage; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc |= w;
  }
  return acc == 0;
}
}  // namespace

const uint8_t* CoreImage::all_zeros() {
  static const uint8_t marker = 0;
  return &marker;
}

CoreWritten write_core(const std::string& path, const CoreImage& image) {
  const Maps& maps = *image.maps;
  std::vector<const MapEntry*> segs;
  for (const auto& m : maps.entries())
    if (dumped(m)) segs.push_back(&m);

  // Notes.
  std::vector<uint8_t> notes;
  elf_prpsinfo ps{};
  ps.pr_sname = 'R';
  ps.pr_pid = image.pid;
  ps.pr_ppid = image.ppid;
  ps.pr_uid = image.uid;
  ps.pr_gid = image.gid;
  std::strncpy(ps.pr_fname, image.command_name.c_str(), sizeof ps.pr_fname - 1);
  std::strncpy(ps.pr_psargs, image.arguments.c_str(), sizeof ps.pr_psargs - 1);
  put_note(notes, NT_PRPSINFO, &ps, sizeof ps);
  // The main thread first: a reader takes the first NT_PRSTATUS for the current thread.
  std::vector<const CoreThreadState*> order;
  for (const auto& t : image.threads) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [&](auto* a, auto* b) { return (a->tid == image.pid) > (b->tid == image.pid); });
  for (const auto* t : order) {
    elf_prstatus st{};
    st.pr_pid = t->tid;
    st.pr_ppid = image.ppid;
    st.pr_pgrp = image.pid;
    static_assert(sizeof st.pr_reg % 8 == 0);
    std::memcpy(&st.pr_reg, t->user_regs.data(), std::min(sizeof st.pr_reg, t->user_regs.size() * 8));
    put_note(notes, NT_PRSTATUS, &st, sizeof st);
  }
  if (!image.auxv.empty()) put_note(notes, NT_AUXV, image.auxv.data(), image.auxv.size());
  {
    std::vector<uint64_t> words;
    std::string names;
    uint64_t count = 0;
    for (const auto& m : maps.entries()) {
      if (!m.is_file()) continue;
      words.insert(words.end(), {m.start, m.end, m.offset / kPage});
      names += m.path;
      names.push_back('\0');
      ++count;
    }
    std::vector<uint8_t> desc(16 + words.size() * 8 + names.size());
    uint64_t head[2] = {count, kPage};
    std::memcpy(desc.data(), head, 16);
    if (!words.empty()) std::memcpy(desc.data() + 16, words.data(), words.size() * 8);
    std::memcpy(desc.data() + 16 + words.size() * 8, names.data(), names.size());
    put_note(notes, NT_FILE, desc.data(), desc.size());
  }

  // Headers: the ELF header, one PT_NOTE, a PT_LOAD per mapping; then the notes; then each
  // segment's bytes, page-aligned.
  size_t phnum = 1 + segs.size();
  if (phnum >= PN_XNUM) throw Error(ErrorCode::Output, "cannot write " + path + ": too many mappings for one core");
  uint64_t notes_at = sizeof(Elf64_Ehdr) + phnum * sizeof(Elf64_Phdr);
  uint64_t data_at = align(notes_at + notes.size(), kPage);
  std::vector<Elf64_Phdr> ph(phnum);
  ph[0].p_type = PT_NOTE;
  ph[0].p_offset = notes_at;
  ph[0].p_filesz = notes.size();
  ph[0].p_align = 4;
  std::vector<const uint8_t*> bytes(segs.size());
  uint64_t at = data_at;
  for (size_t i = 0; i < segs.size(); ++i) {
    const MapEntry& m = *segs[i];
    Elf64_Phdr& p = ph[i + 1];
    bytes[i] = image.contents ? image.contents(m) : nullptr;
    p.p_type = PT_LOAD;
    p.p_vaddr = m.start;
    p.p_memsz = m.size();
    p.p_offset = at;
    p.p_filesz = bytes[i] ? m.size() : 0;
    if (bytes[i] && bytes[i] != CoreImage::all_zeros() && image.length)
      p.p_filesz = std::min<uint64_t>(p.p_filesz, image.length(m));
    p.p_flags = (m.readable ? PF_R : 0) | (m.writable ? PF_W : 0) | (m.executable ? PF_X : 0);
    p.p_align = kPage;
    at += align(p.p_filesz, kPage);
  }
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
  eh.e_type = ET_CORE;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<Elf64_Half>(phnum);

  std::string tmp = path + ".pyinspect-tmp";
  Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (fd.get() < 0) fail(path, "create " + tmp);
  emergency_add_file(tmp.c_str());  // unlinked if a signal ends pyinspect while it writes
  CoreWritten w;
  try {
    std::vector<uint8_t> head(data_at, 0);
    std::memcpy(head.data(), &eh, sizeof eh);
    std::memcpy(head.data() + sizeof eh, ph.data(), ph.size() * sizeof(Elf64_Phdr));
    std::memcpy(head.data() + notes_at, notes.data(), notes.size());
    write_all(fd.get(), head.data(), head.size(), 0, path);
    w.written_bytes = head.size();
    for (size_t i = 0; i < segs.size(); ++i) {
      if (!bytes[i] || bytes[i] == CoreImage::all_zeros()) continue;  // nothing, or holes only
      const uint8_t* b = bytes[i];
      uint64_t len = ph[i + 1].p_filesz, off = ph[i + 1].p_offset;
      // Runs of pages that hold anything or were in memory; the other pages of zeros stay holes
      // (they read as zeros), so that a reader can tell which pages were resident.
      auto hole = [&](uint64_t page) {
        return zero_page(b + page) && !(image.resident && image.resident(segs[i]->start + page));
      };
      uint64_t page = 0;
      while (page < len) {
        while (page < len && hole(page)) page += kPage;
        uint64_t run = page;
        while (run < len && !hole(run)) run += kPage;
        if (run > page) {
          write_all(fd.get(), b + page, run - page, off + page, path);
          w.written_bytes += run - page;
        }
        page = run;
      }
    }
    if (ftruncate(fd.get(), static_cast<off_t>(at)) != 0) fail(path, "set the size of " + tmp);
    if (close(fd.release()) != 0) fail(path, "close " + tmp);
    if (rename(tmp.c_str(), path.c_str()) != 0) fail(path, "rename " + tmp);
    emergency_remove_file(tmp.c_str());
  } catch (...) {
    unlink(tmp.c_str());
    emergency_remove_file(tmp.c_str());
    throw;
  }
  w.file_bytes = at;
  w.segments = segs.size();
  return w;
}

}  // namespace pyinspect
