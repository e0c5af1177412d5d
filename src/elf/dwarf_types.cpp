#include "elf/dwarf_types.hpp"

#include <dwarf.h>

#include <algorithm>
#include <iterator>

#include "base/error.hpp"
#include "base/log.hpp"

namespace pyinspect {

DwarfTypes::DwarfTypes(const ElfFile& file) {
  dwarf_ = dwarf_begin_elf(file.elf(), DWARF_C_READ, nullptr);
  if (!dwarf_) throw Error(ErrorCode::Unsupported, file.path() + " has no usable DWARF debug info");
}

DwarfTypes::~DwarfTypes() {
  if (dwarf_) dwarf_end(dwarf_);
}

void DwarfTypes::list_units() {
  listed_ = true;
  // CPython's internal structs are defined in the units that use them; reading those first
  // finds every type after a handful of units instead of all of them (a 10x shorter start).
  static const char* const kFirst[] = {"pystate.c",     "typeobject.c",  "moduleobject.c",  "dictobject.c",
                                       "gcmodule.c",    "gc.c",          "ceval_gil.c",     "ceval.c",
                                       "frameobject.c", "codeobject.c",  "unicodeobject.c", "setobject.c",
                                       "longobject.c",  "classobject.c", "funcobject.c",    "bytearrayobject.c"};
  std::vector<std::pair<int, Dwarf_Off>> ranked;
  Dwarf_Off off = 0, next = 0;
  size_t header_size = 0;
  while (dwarf_nextcu(dwarf_, off, &next, &header_size, nullptr, nullptr, nullptr) == 0) {
    Dwarf_Off die_off = off + header_size;
    int rank = static_cast<int>(std::size(kFirst));
    Dwarf_Die cu;
    if (dwarf_offdie(dwarf_, die_off, &cu)) {
      if (const char* name = dwarf_diename(&cu)) {
        std::string n = name;
        for (size_t i = 0; i < std::size(kFirst); ++i) {
          std::string suffix = std::string("/") + kFirst[i];
          if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
            rank = static_cast<int>(i);
            break;
          }
        }
      }
    }
    ranked.emplace_back(rank, die_off);
    off = next;
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [rank, o] : ranked) units_.push_back(o);
}

bool DwarfTypes::index_until(const std::string& name, bool struct_only) {
  if (!listed_) list_units();
  size_t before = next_unit_;
  struct Report {
    const std::string& n;
    const size_t& b;
    const size_t& now;
    ~Report() {
      if (now != b) LOG_DEBUG("DWARF: looking for " << n << " read units " << b << ".." << now);
    }
  } report{name, before, next_unit_};
  auto& target = struct_only ? structs_ : defs_;
  while (!target.count(name)) {
    if (next_unit_ >= units_.size()) {
      LOG_DEBUG("DWARF: type " << name << " not defined anywhere");
      return false;
    }
    Dwarf_Die cu;
    if (!dwarf_offdie(dwarf_, units_[next_unit_++], &cu)) continue;
    Dwarf_Die child;
    if (dwarf_child(&cu, &child) != 0) continue;
    do {
      int tag = dwarf_tag(&child);
      if (tag != DW_TAG_structure_type && tag != DW_TAG_union_type && tag != DW_TAG_typedef) continue;
      const char* n = dwarf_diename(&child);
      if (!n) continue;
      bool decl = false;
      if (dwarf_hasattr(&child, DW_AT_declaration)) {
        Dwarf_Attribute a;
        dwarf_formflag(dwarf_attr(&child, DW_AT_declaration, &a), &decl);
      }
      if (decl) continue;
      // Tag names and typedef names share one index (CPython keeps them distinct, but for
      // `typedef struct X X`); complete structs also get one of their own.
      defs_.emplace(n, dwarf_dieoffset(&child));
      if (tag != DW_TAG_typedef) structs_.emplace(n, dwarf_dieoffset(&child));
    } while (dwarf_siblingof(&child, &child) == 0);
  }
  return true;
}

std::optional<Dwarf_Die> DwarfTypes::find_type(const std::string& name) {
  if (!index_until(name)) return std::nullopt;
  auto it = defs_.find(name);
  if (it == defs_.end()) return std::nullopt;
  Dwarf_Die die;
  if (!dwarf_offdie(dwarf_, it->second, &die)) return std::nullopt;
  return resolve(die);
}

std::optional<Dwarf_Die> DwarfTypes::resolve(Dwarf_Die die) {
  for (int depth = 0; depth < 16; ++depth) {
    int tag = dwarf_tag(&die);
    if (tag == DW_TAG_typedef || tag == DW_TAG_const_type || tag == DW_TAG_volatile_type || tag == DW_TAG_atomic_type) {
      Dwarf_Attribute attr;
      Dwarf_Die next;
      if (!dwarf_attr_integrate(&die, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &next)) return std::nullopt;
      die = next;
      continue;
    }
    if ((tag == DW_TAG_structure_type || tag == DW_TAG_union_type) && dwarf_hasattr(&die, DW_AT_declaration)) {
      // An incomplete type in this CU: find the complete definition by its tag name.
      const char* name = dwarf_diename(&die);
      if (!name) return std::nullopt;
      if (!index_until(name, true)) return std::nullopt;
      auto it = structs_.find(name);
      if (it == structs_.end() || !dwarf_offdie(dwarf_, it->second, &die)) return std::nullopt;
      continue;
    }
    return die;
  }
  return std::nullopt;
}

std::optional<DwarfTypes::Member> DwarfTypes::find_member(Dwarf_Die structure, const std::string& name) {
  Dwarf_Die child;
  if (dwarf_child(&structure, &child) != 0) return std::nullopt;
  do {
    if (dwarf_tag(&child) != DW_TAG_member) continue;
    Dwarf_Word loc = 0;
    Dwarf_Attribute attr;
    if (dwarf_attr(&child, DW_AT_data_member_location, &attr)) {
      if (dwarf_formudata(&attr, &loc) != 0) continue;
    }
    Dwarf_Attribute tattr;
    Dwarf_Die type;
    if (!dwarf_attr_integrate(&child, DW_AT_type, &tattr) || !dwarf_formref_die(&tattr, &type)) continue;
    const char* mname = dwarf_diename(&child);
    if (mname && name == mname) return Member{static_cast<int64_t>(loc), type};
    if (!mname) {
      // Anonymous struct or union: its members belong to the enclosing type.
      if (auto inner = resolve(type)) {
        if (auto m = find_member(*inner, name)) return Member{static_cast<int64_t>(loc) + m->offset, m->type};
      }
    }
  } while (dwarf_siblingof(&child, &child) == 0);
  return std::nullopt;
}

std::optional<DwarfTypes::Member> DwarfTypes::walk(const std::string& type, const std::string& path) {
  auto die = find_type(type);
  if (!die) return std::nullopt;
  Member current{0, *die};
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    auto structure = resolve(current.type);
    if (!structure) return std::nullopt;
    auto m = find_member(*structure, part);
    if (!m) return std::nullopt;
    current = Member{current.offset + m->offset, m->type};
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return current;
}

std::optional<int64_t> DwarfTypes::offset_of(const std::string& type, const std::string& path) {
  auto m = walk(type, path);
  if (!m) return std::nullopt;
  return m->offset;
}

std::optional<int64_t> DwarfTypes::member_size(const std::string& type, const std::string& path) {
  auto m = walk(type, path);
  if (!m) return std::nullopt;
  Dwarf_Word size = 0;
  Dwarf_Die t = m->type;
  int s = dwarf_aggregate_size(&t, &size);
  if (s != 0) return std::nullopt;
  return static_cast<int64_t>(size);
}

std::optional<int64_t> DwarfTypes::size_of(const std::string& type) {
  auto die = find_type(type);
  if (!die) return std::nullopt;
  Dwarf_Word size = 0;
  if (dwarf_aggregate_size(&*die, &size) != 0) return std::nullopt;
  return static_cast<int64_t>(size);
}

bool DwarfTypes::has_type(const std::string& type) {
  return find_type(type).has_value();
}

}  // namespace pyinspect
