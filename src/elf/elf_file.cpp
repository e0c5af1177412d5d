#include "elf/elf_file.hpp"

#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/error.hpp"

namespace pyinspect {

ElfFile::ElfFile(const std::string& path) : path_(path) {
  elf_version(EV_CURRENT);
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw_errno(errno, "open " + path);
  elf_ = elf_begin(fd_, ELF_C_READ_MMAP, nullptr);
  GElf_Ehdr ehdr;
  if (!elf_ || elf_kind(elf_) != ELF_K_ELF || !gelf_getehdr(elf_, &ehdr)) {
    if (elf_) elf_end(elf_);
    close(fd_);
    throw Error(ErrorCode::NotPython, path + " is not an ELF file");
  }
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64) {
    elf_end(elf_);
    close(fd_);
    throw Error(ErrorCode::Unsupported, path + " is not a 64-bit ELF file; only 64-bit targets are supported");
  }
  type_ = ehdr.e_type;

  size_t shstrndx = 0;
  elf_getshdrstrndx(elf_, &shstrndx);
  for (Elf_Scn* scn = elf_nextscn(elf_, nullptr); scn; scn = elf_nextscn(elf_, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    const char* name = elf_strptr(elf_, shstrndx, sh.sh_name);
    sections_.push_back({name ? name : "", sh.sh_addr, sh.sh_offset, sh.sh_size, sh.sh_type == SHT_NOBITS});
  }
  size_t phnum = 0;
  elf_getphdrnum(elf_, &phnum);
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf_, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
    segments_.push_back({ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz, (ph.p_flags & PF_W) != 0});
  }
  load_symbols();
}

ElfFile::~ElfFile() {
  if (elf_) elf_end(elf_);
  if (fd_ >= 0) close(fd_);
}

void ElfFile::load_symbols() {
  for (Elf_Scn* scn = elf_nextscn(elf_, nullptr); scn; scn = elf_nextscn(elf_, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM)) continue;
    if (sh.sh_type == SHT_SYMTAB) has_symtab_ = true;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || sh.sh_entsize == 0) continue;
    size_t count = sh.sh_size / sh.sh_entsize;
    for (size_t i = 0; i < count; ++i) {
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym) || sym.st_shndx == SHN_UNDEF || sym.st_value == 0)
        continue;
      int type = GELF_ST_TYPE(sym.st_info);
      if (type != STT_OBJECT && type != STT_FUNC && type != STT_TLS) continue;
      const char* name = elf_strptr(elf_, sh.sh_link, sym.st_name);
      if (!name || !*name) continue;
      ElfSymbol s{sym.st_value, sym.st_size, type == STT_FUNC, GELF_ST_BIND(sym.st_info) != STB_LOCAL};
      auto [it, inserted] = symbols_.emplace(name, s);
      // A global definition wins over a local one of the same name.
      if (!inserted && s.global && !it->second.global) it->second = s;
    }
  }
}

void ElfFile::merge_symbols(const ElfFile& other) {
  for (const auto& [name, sym] : other.symbols_) symbols_.emplace(name, sym);
  has_symtab_ = has_symtab_ || other.has_symtab_;
}

std::optional<ElfSymbol> ElfFile::symbol(const std::string& name) const {
  auto it = symbols_.find(name);
  if (it == symbols_.end()) return std::nullopt;
  return it->second;
}

bool ElfFile::has_symbol_prefix(const std::string& prefix) const {
  for (const auto& [name, sym] : symbols_)
    if (name.compare(0, prefix.size(), prefix) == 0) return true;
  return false;
}

std::optional<ElfSection> ElfFile::section(const std::string& name) const {
  for (const auto& s : sections_)
    if (s.name == name) return s;
  return std::nullopt;
}

std::string ElfFile::build_id() const {
  const void* id = nullptr;
  ssize_t n = dwelf_elf_gnu_build_id(elf_, &id);
  if (n <= 0) return {};
  std::string hex;
  const auto* b = static_cast<const uint8_t*>(id);
  char buf[3];
  for (ssize_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", b[i]);
    hex += buf;
  }
  return hex;
}

std::optional<std::string> ElfFile::debuglink() const {
  GElf_Word crc = 0;
  const char* name = dwelf_elf_gnu_debuglink(elf_, &crc);
  if (!name) return std::nullopt;
  return std::string(name);
}

std::optional<std::vector<uint8_t>> ElfFile::read_vaddr(uint64_t vaddr, size_t len) const {
  for (const auto& seg : segments_) {
    if (vaddr < seg.vaddr || vaddr + len > seg.vaddr + seg.filesz) continue;
    std::vector<uint8_t> out(len);
    ssize_t n = pread(fd_, out.data(), len, static_cast<off_t>(seg.offset + (vaddr - seg.vaddr)));
    if (n != static_cast<ssize_t>(len)) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

}  // namespace pyinspect
