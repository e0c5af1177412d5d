// `pyinspect abi dump BINARY`: the layout pyinspect reads from a binary's DWARF, as the JSON of
// pyabi/. `pyinspect abi check BINARY`: that layout against the embedded table of its version.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "abi/debug_offsets.hpp"
#include "abi/layout.hpp"
#include "base/error.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "elf/debug_file.hpp"
#include "elf/dwarf_types.hpp"
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

int cmd_abi(const std::vector<std::string>& args, const GlobalOptions&) {
  po::options_description desc("Options");
  std::string action, binary, force_version, out_path;
  desc.add_options()("action", po::value(&action)->required(), "dump or check")(
      "binary", po::value(&binary)->required(), "a CPython executable or libpython with DWARF")(
      "python", po::value(&force_version), "the binary's CPython version X.Y.Z, when it does not say")(
      "output,o", po::value(&out_path), "write the JSON here instead of stdout");
  po::positional_options_description pos;
  pos.add("action", 1).add("binary", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect abi dump|check BINARY [options]", args, desc, pos, vm)) return 0;
  if (action != "dump" && action != "check")
    throw Error(ErrorCode::Usage, "abi wants 'dump' or 'check', not '" + action + "'");

  BinaryLayout bl = layout_of_binary(binary, force_version);
  if (action == "dump") {
    std::string text = dump_json(bl.layout.to_json(), 1) + "\n";
    if (out_path.empty()) {
      std::cout << text;
    } else {
      std::ofstream f(out_path);
      if (!(f << text)) throw Error(ErrorCode::Output, "cannot write " + out_path);
    }
    return 0;
  }
  const Layout& dw = bl.layout;
  if (dw.debug_build) {
    std::cout << binary << ": debug build; pyinspect reads it through DWARF only (no embedded table applies)\n";
    return 0;
  }
  auto emb = embedded_layout(dw.version);
  if (!emb) throw Error(ErrorCode::Unsupported, "no embedded table for CPython " + dw.version.short_str());
  int differences = 0;
  for (size_t i = 0; i < kFieldCount; ++i) {
    F f = static_cast<F>(i);
    if (dw.off(f) != emb->off(f)) {
      std::cout << "  " << kFieldSpecs[i].type << "." << kFieldSpecs[i].path << ": DWARF " << dw.off(f) << ", table "
                << emb->off(f) << "\n";
      ++differences;
    }
    if (bl.debug_offsets && bl.debug_offsets->has(f) && bl.debug_offsets->off(f) != dw.off(f)) {
      std::cout << "  " << kFieldSpecs[i].type << "." << kFieldSpecs[i].path << ": DWARF " << dw.off(f)
                << ", as read from _Py_DebugOffsets " << bl.debug_offsets->off(f) << "\n";
      ++differences;
    }
    if (bl.ranged.off(f) != dw.off(f)) {
      std::cout << "  " << kFieldSpecs[i].type << "." << kFieldSpecs[i].path
                << ": found only when searching all types; fix its VERSIONS line in fields.def\n";
      ++differences;
    }
  }
  for (size_t i = 0; i < kSizeCount; ++i) {
    S s = static_cast<S>(i);
    if (bl.debug_offsets && bl.debug_offsets->has(s) && bl.debug_offsets->size(s) != dw.size(s)) {
      std::cout << "  sizeof(" << kSizeSpecs[i].type << "): DWARF " << dw.size(s) << ", as read from _Py_DebugOffsets "
                << bl.debug_offsets->size(s) << "\n";
      ++differences;
    }
    if (dw.size(s) != emb->size(s)) {
      std::cout << "  sizeof(" << kSizeSpecs[i].type << "): DWARF " << dw.size(s) << ", table " << emb->size(s) << "\n";
      ++differences;
    }
  }
  if (bl.debug_offsets)
    std::cout << "  (also checked the " << bl.debug_offsets->known_fields() << " members of its _Py_DebugOffsets)\n";
  std::cout << binary << " (CPython " << dw.version.str() << ", " << dw.known_fields()
            << " members): " << (differences ? std::to_string(differences) + " difference(s) from " : "matches ")
            << emb->origin << "\n";
  return differences ? 1 : 0;
}

}  // namespace pyinspect
