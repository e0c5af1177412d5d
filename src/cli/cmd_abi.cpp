// `pyinspect abi dump BINARY`: the layout pyinspect reads from a binary's DWARF, as the JSON of
// pyabi/. `pyinspect abi check BINARY`: that layout against the embedded table of its version.
// `pyinspect abi fixed --python X.Y`: the layouts it uses for structs of extension modules.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "abi/debug_offsets.hpp"
#include "abi/facts.hpp"
#include "abi/layout.hpp"
#include "base/error.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "elf/debug_file.hpp"
#include "elf/dwarf_types.hpp"
#include "output/atomic_file.hpp"
#include "output/json_util.hpp"

namespace pyinspect {

namespace {
struct BinaryLayout {
  Layout layout;  // every type searched for
  Layout ranged;  // only the types fields.def expects in this version, as a target is read
  std::string dwarf_path;
  std::optional<Layout> debug_offsets;  // 3.13+: what the binary publishes about itself
};

BinaryLayout layout_of_binary(const std::string& path, const std::string& force_version) {
  ElfFile elf(path);
  std::unique_ptr<ElfFile> debug;
  const ElfFile* dwarf_elf = &elf;
  if (!elf.has_debug_info()) {
    debug = find_debug_file(elf, path, {""});
    if (!debug)
      throw Error(ErrorCode::Unsupported, path + " has no DWARF debug info and no separate debug file was found");
    dwarf_elf = debug.get();
  }
  std::optional<PyVersion> version;
  if (!force_version.empty()) {
    version = PyVersion::parse(force_version);
    if (!version) throw Error(ErrorCode::Usage, "--python wants a version like 3.11.7, not '" + force_version + "'");
  } else if (auto sym = elf.symbol("Py_Version")) {
    if (auto bytes = elf.read_vaddr(sym->value, 4)) {
      uint32_t hex;
      std::memcpy(&hex, bytes->data(), 4);
      version = PyVersion::from_hex(hex);
    }
  }
  if (!version) version = PyVersion::from_file_name(path.substr(path.rfind('/') + 1));
  if (!version) throw Error(ErrorCode::Usage, "cannot tell the CPython version of " + path + "; give --python X.Y.Z");
  DwarfTypes dwarf(*dwarf_elf);
  BinaryLayout out{layout_from_dwarf(dwarf, *version, true), layout_from_dwarf(dwarf, *version), dwarf_elf->path(), {}};
  // 3.13+: _Py_DebugOffsets is initialised data of _PyRuntime, so the file holds it too.
  if (auto rt = elf.symbol("_PyRuntime"))
    if (auto bytes = elf.read_vaddr(rt->value, kDebugOffsetsReadSize); bytes && debug_offsets_header(*bytes))
      out.debug_offsets = layout_from_debug_offsets(*bytes);
  out.layout.debug_build = elf.symbol("_Py_NegativeRefcount").has_value() || elf.symbol("_Py_RefTotal").has_value();
  std::string name = path.substr(path.rfind('/') + 1);
  out.layout.origin = "DWARF of " + name + " (CPython " + version->str() + ")";
  return out;
}
}  // namespace

namespace {
// One way BINARY's layout differs from what pyinspect would use for it.
struct Difference {
  std::string id;      // the fields.def / sizes id, as in pyabi/*.json
  std::string what;    // "PyCodeObject.co_code" or "sizeof(PyCodeObject)"
  std::string kind;    // "table", "debug_offsets" or "versions" (found only outside fields.def's range)
  int64_t dwarf = -1;  // -1: absent
  int64_t other = -1;
};

nlohmann::json offset_json(int64_t v) {
  return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v);
}

std::string difference_text(const Difference& d) {
  auto num = [](int64_t v) { return v < 0 ? std::string("absent") : std::to_string(v); };
  if (d.kind == "versions") return d.what + ": found only when searching all types; fix its VERSIONS line in fields.def";
  return d.what + ": DWARF " + num(d.dwarf) + (d.kind == "table" ? ", table " : ", as read from _Py_DebugOffsets ") +
         num(d.other);
}

// Every member and size where the binary's DWARF disagrees with the embedded table, its
// _Py_DebugOffsets, or the ranges of versions.def.
std::vector<Difference> differences(const BinaryLayout& bl, const Layout& emb) {
  const Layout& dw = bl.layout;
  std::vector<Difference> diffs;
  for (size_t i = 0; i < kFieldCount; ++i) {
    F f = static_cast<F>(i);
    std::string what = std::string(kFieldSpecs[i].type) + "." + kFieldSpecs[i].path;
    if (dw.off(f) != emb.off(f)) diffs.push_back({kFieldSpecs[i].id, what, "table", dw.off(f), emb.off(f)});
    if (bl.debug_offsets && bl.debug_offsets->has(f) && bl.debug_offsets->off(f) != dw.off(f))
      diffs.push_back({kFieldSpecs[i].id, what, "debug_offsets", dw.off(f), bl.debug_offsets->off(f)});
    if (bl.ranged.off(f) != dw.off(f)) diffs.push_back({kFieldSpecs[i].id, what, "versions", dw.off(f), bl.ranged.off(f)});
  }
  for (size_t i = 0; i < kSizeCount; ++i) {
    S s = static_cast<S>(i);
    std::string what = std::string("sizeof(") + kSizeSpecs[i].type + ")";
    if (bl.debug_offsets && bl.debug_offsets->has(s) && bl.debug_offsets->size(s) != dw.size(s))
      diffs.push_back({kSizeSpecs[i].id, what, "debug_offsets", dw.size(s), bl.debug_offsets->size(s)});
    if (dw.size(s) != emb.size(s)) diffs.push_back({kSizeSpecs[i].id, what, "table", dw.size(s), emb.size(s)});
  }
  return diffs;
}

// abi check: exit 0 when the DWARF matches the embedded table, 1 when it does not.
int abi_check(const std::string& binary, const BinaryLayout& bl, bool json) {
  const Layout& dw = bl.layout;
  nlohmann::json doc;
  doc["binary"] = binary;
  doc["version"] = dw.version.str();
  doc["debug_build"] = dw.debug_build;
  doc["members"] = dw.known_fields();
  if (dw.debug_build) {
    // A debug build is read through its DWARF only: no embedded table applies.
    doc["table"] = nullptr;
    doc["differences"] = nlohmann::json::array();
    doc["matches"] = nullptr;
    if (json)
      std::cout << dump_json(doc, 1) << "\n";
    else
      std::cout << binary << ": debug build; pyinspect reads it through DWARF only (no embedded table applies)\n";
    return 0;
  }
  auto emb = embedded_layout(dw.version);
  if (!emb) throw Error(ErrorCode::Unsupported, "no embedded table for CPython " + dw.version.short_str());
  std::vector<Difference> diffs = differences(bl, *emb);
  if (json) {
    doc["table"] = emb->origin;
    doc["debug_offsets_members"] = bl.debug_offsets ? nlohmann::json(bl.debug_offsets->known_fields()) : nlohmann::json(nullptr);
    auto& arr = doc["differences"] = nlohmann::json::array();
    for (const auto& d : diffs)
      arr.push_back({{"id", d.id}, {"member", d.what}, {"kind", d.kind}, {"dwarf", offset_json(d.dwarf)},
                     {"other", offset_json(d.other)}});
    doc["matches"] = diffs.empty();
    std::cout << dump_json(doc, 1) << "\n";
    return diffs.empty() ? 0 : 1;
  }
  for (const auto& d : diffs) std::cout << "  " << difference_text(d) << "\n";
  if (bl.debug_offsets)
    std::cout << "  (also checked the " << bl.debug_offsets->known_fields() << " members of its _Py_DebugOffsets)\n";
  std::cout << binary << " (CPython " << dw.version.str() << ", " << dw.known_fields()
            << " members): " << (diffs.empty() ? "matches " : std::to_string(diffs.size()) + " difference(s) from ")
            << emb->origin << "\n";
  return diffs.empty() ? 0 : 1;
}
}  // namespace

int cmd_abi(const std::vector<std::string>& args, const GlobalOptions&) {
  po::options_description desc("Options");
  std::string action, binary, force_version, out_path;
  bool json = false;
  desc.add_options()("action", po::value(&action)->required(), "dump or check")(
      "binary", po::value(&binary)->required(), "a CPython executable or libpython with DWARF")(
      "python", po::value(&force_version), "the binary's CPython version X.Y.Z, when it does not say")(
      "json", po::bool_switch(&json), "check: print one JSON document (dump always prints JSON)")(
      "output,o", po::value(&out_path), "write the JSON here instead of stdout");
  po::positional_options_description pos;
  pos.add("action", 1).add("binary", 1);
  po::variables_map vm;
  // `abi fixed --python X.Y` needs no binary: the layouts pyinspect uses for extension modules.
  bool fixed = !args.empty() && args[0] == "fixed";
  std::vector<std::string> rest = args;
  if (fixed) rest.insert(rest.begin() + 1, "-");
  if (!parse_command("pyinspect abi dump|check BINARY [options] | abi fixed --python X.Y", rest, desc, pos, vm))
    return 0;
  if (action == "fixed") {
    auto v = PyVersion::parse(force_version);
    if (!v) throw Error(ErrorCode::Usage, "abi fixed wants --python X.Y");
    if (!known_version(*v))
      throw Error(ErrorCode::Unsupported, "CPython " + v->short_str() + " is not supported (pyinspect knows " +
                                              known_versions_text() + ")");
    std::cout << dump_json(fixed_layout(*v).to_json(), 1) << "\n";
    return 0;
  }
  if (action != "dump" && action != "check")
    throw Error(ErrorCode::Usage, "abi wants 'dump', 'check' or 'fixed', not '" + action + "'");
  if (action == "check" && !out_path.empty()) throw Error(ErrorCode::Usage, "-o is for abi dump");
  if (!out_path.empty()) check_output_path("-o", out_path);
  if (access(binary.c_str(), R_OK) != 0)
    throw Error(ErrorCode::Usage, "cannot read " + binary + ": " + std::strerror(errno));

  BinaryLayout bl = layout_of_binary(binary, force_version);
  if (action == "check") return abi_check(binary, bl, json);
  std::string text = dump_json(bl.layout.to_json(), 1) + "\n";
  if (out_path.empty())
    std::cout << text;
  else
    write_file_atomically(out_path, text);
  return 0;
}

}  // namespace pyinspect
