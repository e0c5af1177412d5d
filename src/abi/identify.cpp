#include "abi/identify.hpp"

#include <vector>

#include "abi/debug_offsets.hpp"
#include "abi/layout_cache.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "elf/dwarf_types.hpp"

namespace pyinspect {

namespace {
std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

struct Version {
  PyVersion v;
  bool exact = false;
};

Version detect_version(const MappedBinary& bin, const Memory& mem, const std::string& exe_name,
                       const IdentifyOptions& opts) {
  Version out;
  if (!opts.force_version.empty()) {
    auto v = PyVersion::parse(opts.force_version);
    if (!v) throw Error(ErrorCode::Usage, "--python wants a version like 3.11, not '" + opts.force_version + "'");
    out.v = *v;
    out.exact = v->micro >= 0;
    return out;
  }
  if (auto pv = bin.api_symbol("Py_Version")) {  // 3.11+: PY_VERSION_HEX
    if (auto hex = mem.read_as<uint32_t>(*pv)) {
      out.v = PyVersion::from_hex(*hex);
      out.exact = true;
      return out;
    }
  }
  for (const std::string& name : {base_name(bin.target_path), exe_name})
    if (auto v = PyVersion::from_file_name(name)) {
      out.v = *v;
      return out;
    }
  throw Error(ErrorCode::Unsupported,
              "cannot tell which CPython version " + bin.target_path + " is; name it with --python X.Y");
}

std::string unsupported(const PyVersion& v, const char* why) {
  return "CPython " + v.str() + " is not supported" + why + " (pyinspect knows " + known_versions_text() + ")";
}

// 3.13+: the target describes its own layout at the start of _PyRuntime.
std::optional<Layout> from_debug_offsets(const Memory& mem, RemoteAddr runtime, const PyVersion& binary_version) {
  std::vector<uint8_t> bytes(kDebugOffsetsReadSize);
  if (!mem.read(runtime, bytes.data(), bytes.size())) return std::nullopt;
  auto hdr = debug_offsets_header(bytes);
  if (!hdr) return std::nullopt;
  if (hdr->free_threaded)
    throw Error(ErrorCode::Unsupported,
                "free-threaded CPython builds (" + binary_version.str() + "t) are not supported");
  Layout l = layout_from_debug_offsets(bytes);
  if (!l.version.is(binary_version.major, binary_version.minor))
    throw Error(ErrorCode::Corrupt,
                "_Py_DebugOffsets says CPython " + l.version.str() + " but the binary is " + binary_version.str());
  return l;
}

std::optional<Layout> from_dwarf(const MappedBinary& bin, const PyVersion& v, const IdentifyOptions& opts) {
  const ElfFile* dwarf_elf = bin.dwarf_file();
  if (!opts.use_dwarf || !dwarf_elf) return std::nullopt;
  std::string build_id = bin.elf->build_id();
  if (opts.use_cache)
    if (auto cached = load_cached_layout(build_id)) {
      LOG_INFO("layout of " << bin.target_path << " from DWARF, cached by build-id");
      return cached;
    }
  try {
    DwarfTypes dwarf(*dwarf_elf);
    Layout l = layout_from_dwarf(dwarf, v);
    LOG_INFO("DWARF of " << dwarf_elf->path() << ": read " << dwarf.units_read() << " of " << dwarf.units_total()
                         << " compilation units");
    if (!l.has(F::ob_type)) return std::nullopt;
    if (opts.use_cache) store_cached_layout(build_id, l);
    return l;
  } catch (const Error& e) {
    LOG_WARN("cannot use DWARF of " << dwarf_elf->path() << ": " << e.what());
    return std::nullopt;
  }
}
}  // namespace

Identified identify(const MappedBinary& bin, const Memory& mem, const std::string& exe_name,
                    const std::string& proc_root, const IdentifyOptions& opts) {
  Version ver = detect_version(bin, mem, exe_name, opts);
  PyVersion version = ver.v;
  if (!known_version(version) && !newer_than_known(version)) throw Error(ErrorCode::Unsupported, unsupported(version, ""));
  const Facts facts = Facts::for_version(version);
  Identified out;
  out.version_exact = ver.exact;
  bool debug_build = bin.api_symbol("_Py_NegativeRefcount") || bin.api_symbol("_Py_RefTotal");

  std::optional<RemoteAddr> rt;
  if (facts.runtime_symbol) rt = bin.api_symbol(facts.runtime_symbol);
  if (!rt)
    if (auto sec = bin.elf->section(".PyRuntime")) rt = bin.at(sec->addr);
  if (rt) out.runtime = *rt;

  Layout layout;
  layout.set_version(version);
  std::vector<std::string> origins;
  if (rt && facts.debug_offsets) {
    if (auto d = from_debug_offsets(mem, *rt, version)) {
      layout = std::move(*d);
      version = layout.version;
      out.version_exact = true;
      origins.push_back("_Py_DebugOffsets");
    }
  }
  // A version newer than the newest known is read only when it describes itself.
  if (newer_than_known(version) && origins.empty())
    throw Error(ErrorCode::Unsupported, unsupported(version, " yet: it publishes no _Py_DebugOffsets pyinspect can read"));
  if (newer_than_known(version))
    LOG_WARN("CPython " << version.str() << " is newer than the versions pyinspect knows (" << known_versions_text()
                        << "): reading it through its own _Py_DebugOffsets");
  layout.set_version(version);

  if (auto dw = from_dwarf(bin, version, opts)) {
    layout.fill_from(*dw);
    const ElfFile* dwarf_elf = bin.dwarf_file();
    // Where the DWARF is, as the user would find it: the binary itself, or a debug file (named
    // from our side, without the /proc/PID/root detour).
    out.dwarf_file = dwarf_elf == bin.elf.get() ? bin.target_path : dwarf_elf->path();
    if (!proc_root.empty() && out.dwarf_file.rfind(proc_root, 0) == 0) out.dwarf_file = out.dwarf_file.substr(proc_root.size());
    origins.push_back("DWARF");
  } else {
    if (debug_build)
      throw Error(ErrorCode::Unsupported, "CPython " + version.str() +
                                              " debug build without debug info: its layout differs from the "
                                              "release tables; install its debug symbols");
    if (auto emb = embedded_layout(version)) {
      layout.fill_from(*emb);
      origins.push_back("embedded table");
    } else if (origins.empty()) {
      throw Error(ErrorCode::Unsupported, "no layout for CPython " + version.str() +
                                              ": the binary has no debug info and pyinspect has tables for " +
                                              embedded_versions());
    }
  }
  layout.fill_from(fixed_layout(version));
  layout.debug_build = debug_build;
  std::string origin;
  for (const auto& o : origins) origin += (origin.empty() ? "" : " + ") + o;
  layout.origin = origin;
  layout.require(F::ob_type);
  out.layout = std::move(layout);
  return out;
}

std::optional<PyVersion> refine_version(const PyVersion& known, const std::string& sys_version) {
  auto parsed = PyVersion::parse(sys_version);
  if (!parsed || !parsed->is(known.major, known.minor)) return std::nullopt;
  return parsed;
}

}  // namespace pyinspect
