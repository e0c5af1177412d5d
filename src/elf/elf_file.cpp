#include "elf/elf_file.hpp"

#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <algorithm>
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
  find_symbol_tables();
}

ElfFile::~ElfFile() {
  if (elf_) elf_end(elf_);
  if (fd_ >= 0) close(fd_);
}

void ElfFile::find_symbol_tables() {
  for (Elf_Scn* scn = elf_nextscn(elf_, nullptr); scn; scn = elf_nextscn(elf_, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    if (sh.sh_type == SHT_GNU_HASH) {
      gnu_hash_ = elf_getdata(scn, nullptr);
      continue;
    }
    if (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) continue;
    SymbolTable& t = sh.sh_type == SHT_SYMTAB ? symtab_ : dynsym_;
    t.section = scn;
    t.data = elf_getdata(scn, nullptr);
    t.strtab = sh.sh_link;
    t.count = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
    if (!t.data) t.count = 0;
  }
}

std::optional<ElfSymbol> ElfFile::read_symbol(const SymbolTable& t, size_t i, std::string_view* name) const {
  GElf_Sym sym;
  if (i >= t.count || !gelf_getsym(t.data, static_cast<int>(i), &sym) || sym.st_shndx == SHN_UNDEF || sym.st_value == 0)
    return std::nullopt;
  int type = GELF_ST_TYPE(sym.st_info);
  if (type != STT_OBJECT && type != STT_FUNC && type != STT_TLS) return std::nullopt;
  const char* n = elf_strptr(elf_, t.strtab, sym.st_name);
  if (!n || !*n) return std::nullopt;
  if (name) *name = n;
  return ElfSymbol{sym.st_value, sym.st_size, type == STT_FUNC, GELF_ST_BIND(sym.st_info) != STB_LOCAL};
}

const std::vector<std::pair<std::string_view, ElfSymbol>>& ElfFile::index_of(const SymbolTable& t) const {
  if (t.indexed) return t.index;
  t.indexed = true;
  t.index.reserve(t.count);
  for (size_t i = 0; i < t.count; ++i) {
    std::string_view name;
    if (auto s = read_symbol(t, i, &name)) t.index.emplace_back(name, *s);
  }
  // By name; among equal names a global definition first, so lookups prefer it.
  std::stable_sort(t.index.begin(), t.index.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return a.second.global && !b.second.global;
  });
  return t.index;
}

std::optional<ElfSymbol> ElfFile::indexed_lookup(const SymbolTable& t, const std::string& name) const {
  const auto& index = index_of(t);
  auto it = std::lower_bound(index.begin(), index.end(), std::string_view(name),
                             [](const auto& e, std::string_view n) { return e.first < n; });
  if (it == index.end() || it->first != name) return std::nullopt;
  return it->second;
}

// The GNU hash table of .dynsym (as the dynamic loader uses it): a bucket per hash, then a run
// of symbols whose hash values (low bit cleared) follow in a chain; the low bit ends the chain.
std::optional<ElfSymbol> ElfFile::gnu_hash_lookup(const std::string& name) const {
  const auto* words = static_cast<const uint32_t*>(gnu_hash_->d_buf);
  size_t nwords = gnu_hash_->d_size / 4;
  if (nwords < 4) return std::nullopt;
  uint32_t nbuckets = words[0], symoffset = words[1], bloom_size = words[2];
  size_t buckets_at = 4 + static_cast<size_t>(bloom_size) * 2;  // 64-bit bloom words
  size_t chain_at = buckets_at + nbuckets;
  if (nbuckets == 0 || chain_at > nwords) return std::nullopt;
  uint32_t h = 5381;
  for (unsigned char c : name) h = h * 33 + c;
  uint32_t i = words[buckets_at + h % nbuckets];
  if (i < symoffset) return std::nullopt;
  for (; chain_at + (i - symoffset) < nwords && i < dynsym_.count; ++i) {
    uint32_t ch = words[chain_at + (i - symoffset)];
    if ((ch | 1) == (h | 1)) {
      std::string_view n;
      if (auto s = read_symbol(dynsym_, i, &n); s && n == name) return s;
    }
    if (ch & 1) break;
  }
  return std::nullopt;
}

std::optional<ElfSymbol> ElfFile::exported_symbol(const std::string& name) const {
  if (!dynsym_.section) return std::nullopt;
  if (gnu_hash_) return gnu_hash_lookup(name);
  return indexed_lookup(dynsym_, name);
}

std::optional<ElfSymbol> ElfFile::symbol(const std::string& name) const {
  if (auto s = exported_symbol(name)) return s;
  if (symtab_.section) return indexed_lookup(symtab_, name);
  return std::nullopt;
}

std::optional<ElfSymbol> ElfFile::static_symbol(const std::string& name) const {
  if (auto s = symbol(name)) return s;
  if (!symtab_.section) return std::nullopt;
  const auto& index = index_of(symtab_);
  std::string prefix = name + ".";
  auto it = std::lower_bound(index.begin(), index.end(), std::string_view(prefix),
                             [](const auto& e, std::string_view n) { return e.first < n; });
  if (it != index.end() && it->first.substr(0, prefix.size()) == prefix) return it->second;
  return std::nullopt;
}

bool ElfFile::has_symbol_prefix(const std::string& prefix) const {
  for (const SymbolTable* t : {&dynsym_, &symtab_}) {
    if (!t->section) continue;
    const auto& index = index_of(*t);
    auto it = std::lower_bound(index.begin(), index.end(), std::string_view(prefix),
                               [](const auto& e, std::string_view n) { return e.first < n; });
    if (it != index.end() && it->first.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

std::optional<ElfSection> ElfFile::section(const std::string& name) const {
  for (const auto& s : sections_)
    if (s.name == name) return s;
  return std::nullopt;
}

std::string build_id_in_image(const uint8_t* p, size_t len) {
  Elf64_Ehdr eh;
  if (!p || len < sizeof eh) return {};
  std::memcpy(&eh, p, sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) return {};
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > len) return {};
  for (size_t i = 0; i < eh.e_phnum && eh.e_phoff + (i + 1) * sizeof(Elf64_Phdr) <= len; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, p + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type != PT_NOTE || ph.p_offset > len || ph.p_filesz > len - ph.p_offset) continue;
    size_t off = ph.p_offset, end = ph.p_offset + ph.p_filesz;
    while (off + sizeof(Elf64_Nhdr) <= end) {
      Elf64_Nhdr nh;
      std::memcpy(&nh, p + off, sizeof nh);
      size_t name_at = off + sizeof nh;
      size_t desc_at = name_at + ((static_cast<size_t>(nh.n_namesz) + 3) & ~size_t(3));
      size_t next = desc_at + ((static_cast<size_t>(nh.n_descsz) + 3) & ~size_t(3));
      if (desc_at > end || next > end || next <= off) break;
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(p + name_at, "GNU", 4) == 0 &&
          nh.n_descsz > 0 && desc_at + nh.n_descsz <= end) {
        std::string hex;
        char buf[3];
        for (size_t k = 0; k < nh.n_descsz; ++k) {
          std::snprintf(buf, sizeof buf, "%02x", p[desc_at + k]);
          hex += buf;
        }
        return hex;
      }
      off = next;
    }
  }
  return {};
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
