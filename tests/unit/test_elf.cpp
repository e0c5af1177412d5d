// ELF symbols, build-id, file contents and separate debug files (src/elf/elf_file.hpp,
// src/elf/debug_file.hpp) on a small shared library built with the tests
// (fixtures/elf_fixture.cpp). The expected values come from the dynamic loader: dlsym addresses,
// the load bias (dlinfo), the NT_GNU_BUILD_ID note and the bytes it mapped.
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "elf/debug_file.hpp"
#include "elf/elf_file.hpp"

using namespace pyinspect;
namespace fs = std::filesystem;

namespace {

// The fixture library as the loader sees it.
struct Loaded {
  void* handle = nullptr;
  uintptr_t bias = 0;  // link_map l_addr: run-time address minus link-time address
  std::string name;

  Loaded() {
    handle = dlopen(PYINSPECT_ELF_FIXTURE, RTLD_NOW | RTLD_LOCAL);
    REQUIRE_MESSAGE(handle != nullptr, dlerror());
    link_map* lm = nullptr;
    REQUIRE(dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0);
    bias = lm->l_addr;
    name = lm->l_name;
  }
  ~Loaded() { dlclose(handle); }
  Loaded(const Loaded&) = delete;
  Loaded& operator=(const Loaded&) = delete;

  uintptr_t sym(const char* n) const {
    void* p = dlsym(handle, n);
    REQUIRE_MESSAGE(p != nullptr, "dlsym ", n);
    return reinterpret_cast<uintptr_t>(p);
  }
};

// NT_GNU_BUILD_ID from the PT_NOTE segments the loader mapped (dl_iterate_phdr), as hex.
std::string loader_build_id(uintptr_t bias) {
  struct Ctx {
    uintptr_t bias;
    std::string hex;
  } ctx{bias, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* c = static_cast<Ctx*>(data);
        if (info->dlpi_addr != c->bias) return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_NOTE) continue;
          size_t align = ph.p_align > 4 ? ph.p_align : 4;
          auto round = [align](size_t n) { return (n + align - 1) / align * align; };
          const auto* p = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
          size_t off = 0;
          while (off + sizeof(ElfW(Nhdr)) <= ph.p_memsz) {
            ElfW(Nhdr) nh;
            std::memcpy(&nh, p + off, sizeof nh);
            const uint8_t* name = p + off + sizeof nh;
            const uint8_t* desc = name + round(nh.n_namesz);
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
              char buf[3];
              for (size_t k = 0; k < nh.n_descsz; ++k) {
                std::snprintf(buf, sizeof buf, "%02x", desc[k]);
                c->hex += buf;
              }
              return 1;
            }
            off += sizeof nh + round(nh.n_namesz) + round(nh.n_descsz);
          }
        }
        return 0;
      },
      &ctx);
  return ctx.hex;
}

// The PT_LOAD headers the loader used.
std::vector<ElfW(Phdr)> loader_loads(uintptr_t bias) {
  struct Ctx {
    uintptr_t bias;
    std::vector<ElfW(Phdr)> loads;
  } ctx{bias, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* c = static_cast<Ctx*>(data);
        if (info->dlpi_addr != c->bias) return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i)
          if (info->dlpi_phdr[i].p_type == PT_LOAD) c->loads.push_back(info->dlpi_phdr[i]);
        return 1;
      },
      &ctx);
  return ctx.loads;
}

// A temporary directory, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pyinspect-unit-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Puts `debug_file` where a build-id lookup under `root` looks for `build_id`.
fs::path place_by_build_id(const fs::path& root, const std::string& build_id, const fs::path& debug_file) {
  fs::path dir = root / "usr/lib/debug/.build-id" / build_id.substr(0, 2);
  fs::create_directories(dir);
  fs::path dest = dir / (build_id.substr(2) + ".debug");
  fs::copy_file(debug_file, dest, fs::copy_options::overwrite_existing);
  return dest;
}

}  // namespace

TEST_CASE("elf: exported symbols plus the load bias give the loader's addresses") {
  Loaded lib;
  ElfFile elf(PYINSPECT_ELF_FIXTURE);
  CHECK_FALSE(elf.is_executable());
  for (const char* name : {"pyinspect_fixture_function", "pyinspect_fixture_bump", "pyinspect_fixture_local_address",
                           "pyinspect_fixture_bytes", "pyinspect_fixture_counter", "pyinspect_fixture_bss"}) {
    INFO(name);
    auto s = elf.symbol(name);
    REQUIRE(s.has_value());
    CHECK(s->value + lib.bias == lib.sym(name));
    CHECK(s->global);
  }
  CHECK(elf.symbol("pyinspect_fixture_function")->function);
  CHECK_FALSE(elf.symbol("pyinspect_fixture_bytes")->function);
  CHECK(elf.symbol("pyinspect_fixture_bytes")->size == 64);
  CHECK(elf.symbol("pyinspect_fixture_bss")->size == 8192);
  CHECK(elf.symbol("pyinspect_fixture_counter")->size == sizeof(int));
  CHECK_FALSE(elf.symbol("no_such_symbol").has_value());
  CHECK(elf.has_symbol_prefix("pyinspect_fixture_"));
  CHECK_FALSE(elf.has_symbol_prefix("PyUnicodeUCS4_"));
}

TEST_CASE("elf: exported_symbol looks only at .dynsym") {
  // The fixture is linked with a GNU hash table, the other one with only the SysV one: both
  // lookups must find every exported symbol and nothing else.
  for (const char* path : {PYINSPECT_ELF_FIXTURE, PYINSPECT_ELF_FIXTURE_OTHER}) {
    INFO(path);
    ElfFile elf(path);
    void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    REQUIRE(h != nullptr);
    link_map* lm = nullptr;
    REQUIRE(dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0);
    bool gnu = elf.section(".gnu.hash").has_value();
    CHECK(gnu == (std::string(path) == PYINSPECT_ELF_FIXTURE));
    const char* names[] = {"pyinspect_fixture_function", "pyinspect_fixture_bump", "pyinspect_fixture_bytes",
                           "pyinspect_fixture_counter",  "pyinspect_fixture_bss",  "pyinspect_fixture_local_address",
                           "pyinspect_other_text",       "pyinspect_other_function"};
    int found = 0;
    for (const char* name : names) {
      void* p = dlsym(h, name);
      auto s = elf.exported_symbol(name);
      INFO(name);
      CHECK(s.has_value() == (p != nullptr));
      if (s && p) {
        ++found;
        CHECK(s->value + lm->l_addr == reinterpret_cast<uintptr_t>(p));
      }
    }
    CHECK(found >= 2);
    CHECK_FALSE(elf.exported_symbol("pyinspect_fixture_local").has_value());
    CHECK_FALSE(elf.exported_symbol("").has_value());
    CHECK_FALSE(elf.exported_symbol("pyinspect_fixture_functio").has_value());
    CHECK_FALSE(elf.exported_symbol("pyinspect_fixture_functionX").has_value());
    dlclose(h);
  }
}

TEST_CASE("elf: symbols of a separate debug file") {
  // objcopy --only-keep-debug leaves .dynsym and .gnu.hash as NOBITS sections: no contents.
  ElfFile dbg(std::string(PYINSPECT_ELF_FIXTURE) + ".debug");
  ElfFile elf(PYINSPECT_ELF_FIXTURE);
  CHECK(dbg.has_debug_info());
  CHECK(dbg.build_id() == elf.build_id());
  auto local = dbg.symbol("pyinspect_fixture_local");
  REQUIRE(local.has_value());
  CHECK(local->value == elf.symbol("pyinspect_fixture_local")->value);
  auto fn = dbg.symbol("pyinspect_fixture_function");
  REQUIRE(fn.has_value());
  CHECK(fn->value == elf.symbol("pyinspect_fixture_function")->value);
  CHECK_FALSE(dbg.symbol("no_such_symbol").has_value());
}

TEST_CASE("elf: a file-local variable is found in .symtab") {
  Loaded lib;
  ElfFile elf(PYINSPECT_ELF_FIXTURE);
  CHECK(elf.has_symtab());
  CHECK(dlsym(lib.handle, "pyinspect_fixture_local") == nullptr);  // not exported
  auto s = elf.symbol("pyinspect_fixture_local");
  REQUIRE(s.has_value());
  CHECK_FALSE(s->global);
  CHECK_FALSE(s->function);
  using AddrFn = int* (*)();
  auto fn = reinterpret_cast<AddrFn>(lib.sym("pyinspect_fixture_local_address"));
  CHECK(s->value + lib.bias == reinterpret_cast<uintptr_t>(fn()));
}

TEST_CASE("elf: build_id is the NT_GNU_BUILD_ID note the loader mapped") {
  Loaded lib;
  ElfFile elf(PYINSPECT_ELF_FIXTURE);
  std::string want = loader_build_id(lib.bias);
  REQUIRE(want.size() == 40);  // --build-id=sha1
  CHECK(elf.build_id() == want);
  ElfFile other(PYINSPECT_ELF_FIXTURE_OTHER);
  CHECK(other.build_id().size() == 40);
  CHECK(other.build_id() != want);
}

TEST_CASE("elf: read_vaddr returns the bytes the loader mapped") {
  Loaded lib;
  ElfFile elf(PYINSPECT_ELF_FIXTURE);
  for (const char* name : {"pyinspect_fixture_bytes", "pyinspect_fixture_counter"}) {
    INFO(name);
    auto s = elf.symbol(name);
    REQUIRE(s.has_value());
    auto bytes = elf.read_vaddr(s->value, s->size);
    REQUIRE(bytes.has_value());
    const auto* mapped = reinterpret_cast<const uint8_t*>(lib.sym(name));
    CHECK(*bytes == std::vector<uint8_t>(mapped, mapped + s->size));
  }
  // Code: the first bytes of a function.
  auto f = elf.symbol("pyinspect_fixture_function");
  auto code = elf.read_vaddr(f->value, 8);
  REQUIRE(code.has_value());
  const auto* fn = reinterpret_cast<const uint8_t*>(lib.sym("pyinspect_fixture_function"));
  CHECK(*code == std::vector<uint8_t>(fn, fn + 8));
  // .bss has no file contents; nothing lies at the end of the address space.
  auto bss = elf.symbol("pyinspect_fixture_bss");
  CHECK_FALSE(elf.read_vaddr(bss->value + 4096, 16).has_value());
  CHECK_FALSE(elf.read_vaddr(~0ull - 100, 16).has_value());
}

TEST_CASE("elf: loadable segments match the program headers the loader used") {
  Loaded lib;
  ElfFile elf(PYINSPECT_ELF_FIXTURE);
  auto loads = loader_loads(lib.bias);
  REQUIRE(loads.size() == elf.segments().size());
  for (size_t i = 0; i < loads.size(); ++i) {
    INFO("PT_LOAD ", i);
    CHECK(elf.segments()[i].vaddr == loads[i].p_vaddr);
    CHECK(elf.segments()[i].memsz == loads[i].p_memsz);
    CHECK(elf.segments()[i].filesz == loads[i].p_filesz);
    CHECK(elf.segments()[i].offset == loads[i].p_offset);
    CHECK(elf.segments()[i].writable == ((loads[i].p_flags & PF_W) != 0));
  }
  auto text = elf.section(".text");
  REQUIRE(text.has_value());
  auto fn = elf.symbol("pyinspect_fixture_function");
  CHECK(fn->value >= text->addr);
  CHECK(fn->value < text->addr + text->size);
  CHECK(elf.has_debug_info());
}

TEST_CASE("elf: files that are not ELF are refused") {
  auto code_of = [](const std::string& path) {
    try {
      ElfFile f(path);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::Ok;
  };
  CHECK(code_of(std::string(PYINSPECT_TEST_DATA_DIR) + "/linetables.json") == ErrorCode::NotPython);
  CHECK(code_of("/nonexistent/pyinspect/libnothing.so") != ErrorCode::Ok);
}

TEST_CASE("elf: debug file found by build-id under a root") {
  TempDir tmp;
  ElfFile elf(PYINSPECT_ELF_FIXTURE);
  std::string id = elf.build_id();
  REQUIRE(id.size() == 40);
  fs::path placed = place_by_build_id(tmp.path, id, std::string(PYINSPECT_ELF_FIXTURE) + ".debug");
  TempDir empty;
  auto dbg = find_debug_file(elf, "/usr/lib/libpyinspect_elf_fixture.so", {empty.path.string(), tmp.path.string()});
  REQUIRE(dbg != nullptr);
  CHECK(fs::equivalent(dbg->path(), placed));
  CHECK(dbg->has_debug_info());
  CHECK(dbg->build_id() == id);
  // The debug file's symbols are the binary's.
  CHECK(dbg->symbol("pyinspect_fixture_local").has_value());
  CHECK(dbg->symbol("pyinspect_fixture_local")->value == elf.symbol("pyinspect_fixture_local")->value);
}

TEST_CASE("elf: a debug file with another build-id is refused") {
  TempDir tmp;
  ElfFile elf(PYINSPECT_ELF_FIXTURE);
  ElfFile other(PYINSPECT_ELF_FIXTURE_OTHER);
  REQUIRE(elf.build_id() != other.build_id());
  // The other library's debug file, where this library's would be.
  place_by_build_id(tmp.path, elf.build_id(), std::string(PYINSPECT_ELF_FIXTURE_OTHER) + ".debug");
  CHECK(find_debug_file(elf, "/usr/lib/libpyinspect_elf_fixture.so", {tmp.path.string()}) == nullptr);
  // A file that is not ELF at all, likewise.
  fs::path dir = tmp.path / "usr/lib/debug/.build-id" / elf.build_id().substr(0, 2);
  fs::copy_file(std::string(PYINSPECT_TEST_DATA_DIR) + "/linetables.json", dir / (elf.build_id().substr(2) + ".debug"),
                fs::copy_options::overwrite_existing);
  CHECK(find_debug_file(elf, "/usr/lib/libpyinspect_elf_fixture.so", {tmp.path.string()}) == nullptr);
  // Nothing there at all.
  TempDir empty;
  CHECK(find_debug_file(elf, "/usr/lib/libpyinspect_elf_fixture.so", {empty.path.string()}) == nullptr);
}

TEST_CASE("elf: debug file found by .gnu_debuglink next to a stripped binary") {
  std::string stripped_path = std::string(PYINSPECT_ELF_FIXTURE) + ".stripped";
  ElfFile stripped(stripped_path);
  ElfFile elf(PYINSPECT_ELF_FIXTURE);
  CHECK_FALSE(stripped.has_debug_info());
  CHECK(stripped.build_id() == elf.build_id());  // stripping keeps the note
  auto link = stripped.debuglink();
  REQUIRE(link.has_value());
  CHECK(*link == fs::path(PYINSPECT_ELF_FIXTURE).filename().string() + ".debug");
  TempDir empty;
  auto dbg = find_debug_file(stripped, "/usr/lib/libpyinspect_elf_fixture.so", {empty.path.string()});
  REQUIRE(dbg != nullptr);
  CHECK(fs::equivalent(dbg->path(), std::string(PYINSPECT_ELF_FIXTURE) + ".debug"));
  // The stripped file kept only .dynsym; the local variable is in the debug file's .symtab.
  CHECK_FALSE(stripped.has_symtab());
  CHECK_FALSE(stripped.symbol("pyinspect_fixture_local").has_value());
  CHECK(stripped.symbol("pyinspect_fixture_function").has_value());
  REQUIRE(dbg->symbol("pyinspect_fixture_local").has_value());
  CHECK(dbg->symbol("pyinspect_fixture_local")->value == elf.symbol("pyinspect_fixture_local")->value);
}
