#pragma once
// One ELF file on disk (libelf): its symbols, sections, loadable segments and debug links.
#include <libelf.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pyinspect {

struct ElfSymbol {
  uint64_t value = 0;  // link-time virtual address
  uint64_t size = 0;
  bool function = false;
  bool global = false;
};

struct ElfSection {
  std::string name;
  uint64_t addr = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  bool nobits = false;
};

struct ElfSegment {  // PT_LOAD
  uint64_t vaddr = 0;
  uint64_t memsz = 0;
  uint64_t offset = 0;
  uint64_t filesz = 0;
  bool writable = false;
};

// The build-id that the first bytes of an ELF file name (its header, its program headers and a
// PT_NOTE among them, as a core holds the first page of each mapped ELF file), in lower-case
// hex; empty if they hold none. Reads nothing outside [p, p + len).
std::string build_id_in_image(const uint8_t* p, size_t len);

class ElfFile {
 public:
  // Opens and parses `path`; throws Error if it is not a readable ELF file.
  explicit ElfFile(const std::string& path);
  ~ElfFile();
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  const std::string& path() const { return path_; }
  bool is_executable() const { return type_ == 2; }  // ET_EXEC: no load bias
  int fd() const { return fd_; }
  Elf* elf() const { return elf_; }

  // A defined symbol: exported ones (.dynsym, through its GNU hash table) first, then the
  // full symbol table (.symtab), indexed on first use.
  std::optional<ElfSymbol> symbol(const std::string& name) const;
  // Only the exported symbols (.dynsym): never builds the .symtab index.
  std::optional<ElfSymbol> exported_symbol(const std::string& name) const;
  bool has_symtab() const { return symtab_.section != nullptr; }
  // A file-local (static) symbol: `name` itself, or as link-time optimisation renames it
  // ("arenas.lto_priv.0").
  std::optional<ElfSymbol> static_symbol(const std::string& name) const;
  // Whether any symbol starts with `prefix` (build detection, e.g. PyUnicodeUCS4_).
  bool has_symbol_prefix(const std::string& prefix) const;

  std::optional<ElfSection> section(const std::string& name) const;
  const std::vector<ElfSection>& sections() const { return sections_; }
  const std::vector<ElfSegment>& segments() const { return segments_; }
  bool has_debug_info() const { return section(".debug_info").has_value(); }

  std::string build_id() const;  // lower-case hex, empty if none
  std::optional<std::string> debuglink() const;

  // Bytes of the file at link-time address `vaddr` (from PT_LOAD file contents).
  std::optional<std::vector<uint8_t>> read_vaddr(uint64_t vaddr, size_t len) const;

 private:
  struct SymbolTable {
    Elf_Scn* section = nullptr;
    Elf_Data* data = nullptr;
    size_t strtab = 0;  // section index of its string table
    size_t count = 0;
    // Sorted by name, built on first use; names point into the mapped string table.
    mutable std::vector<std::pair<std::string_view, ElfSymbol>> index;
    mutable bool indexed = false;
  };
  void find_symbol_tables();
  std::optional<ElfSymbol> read_symbol(const SymbolTable& t, size_t i, std::string_view* name) const;
  std::optional<ElfSymbol> gnu_hash_lookup(const std::string& name) const;
  std::optional<ElfSymbol> indexed_lookup(const SymbolTable& t, const std::string& name) const;
  const std::vector<std::pair<std::string_view, ElfSymbol>>& index_of(const SymbolTable& t) const;
  std::string path_;
  int fd_ = -1;
  Elf* elf_ = nullptr;
  int type_ = 0;
  std::vector<ElfSection> sections_;
  std::vector<ElfSegment> segments_;
  SymbolTable dynsym_, symtab_;
  Elf_Data* gnu_hash_ = nullptr;
};

}  // namespace pyinspect
