#pragma once
// Struct layouts from DWARF (libdw): the offset of a member path such as
// "PyThreadState" / "cframe" or "_PyRuntimeState" / "interpreters.head", and type sizes.
#include <elfutils/libdw.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "elf/elf_file.hpp"

namespace pyinspect {

class DwarfTypes {
 public:
  // Borrows the ElfFile, which must outlive this object. Throws Error if it has no DWARF.
  explicit DwarfTypes(const ElfFile& file);
  ~DwarfTypes();
  DwarfTypes(const DwarfTypes&) = delete;
  DwarfTypes& operator=(const DwarfTypes&) = delete;

  // `type` is a typedef name ("PyThreadState") or a struct/union tag ("_ts"); `path` is a
  // dot-separated member path; anonymous struct/union members are searched through.
  std::optional<int64_t> offset_of(const std::string& type, const std::string& path);
  // Byte size of the type a member path refers to.
  std::optional<int64_t> member_size(const std::string& type, const std::string& path);
  std::optional<int64_t> size_of(const std::string& type);
  // True if a struct/union/typedef of that name is defined.
  bool has_type(const std::string& type);
  // How many compilation units were read, of how many (start-up cost diagnostics).
  size_t units_read() const { return next_unit_; }
  size_t units_total() const { return units_.size(); }

 private:
  struct Member {
    int64_t offset;
    Dwarf_Die type;
  };
  // Indexes compilation units (the likeliest first) until `name` is defined or none are left.
  bool index_until(const std::string& name, bool struct_only = false);
  void list_units();
  std::optional<Dwarf_Die> find_type(const std::string& name);
  std::optional<Dwarf_Die> resolve(Dwarf_Die die);  // through typedef/const/volatile
  std::optional<Member> find_member(Dwarf_Die structure, const std::string& name);
  std::optional<Member> walk(const std::string& type, const std::string& path);

  Dwarf* dwarf_ = nullptr;
  bool listed_ = false;
  std::vector<Dwarf_Off> units_;  // CU DIE offsets, in the order they will be indexed
  size_t next_unit_ = 0;
  std::unordered_map<std::string, Dwarf_Off> defs_;     // complete struct/union/typedef DIEs
  std::unordered_map<std::string, Dwarf_Off> structs_;  // complete struct/union DIEs
};

}  // namespace pyinspect
