// Core files (src/proc/core_file.hpp, core_writer.hpp): a core written from values the test
// makes is read back as made (threads, registers, memory, mapped files, the signal of a core
// built by hand as the kernel writes it); files that are not cores, and cores truncated or with
// bytes flipped, give a clear error or warnings, never a crash or a read out of bounds (the
// sanitizer pass runs these).
#include <doctest/doctest.h>

#include <elf.h>
#include <fcntl.h>
#include <sys/procfs.h>
#include <sys/user.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "elf/elf_file.hpp"
#include "proc/core_file.hpp"
#include "proc/core_writer.hpp"
#include "proc/pagemap.hpp"

using namespace pyinspect;

namespace {
constexpr uint64_t kPage = 4096;

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/pyinspect-core-test-XXXXXX";
    REQUIRE(mkdtemp(t) != nullptr);
    path = t;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

std::vector<uint8_t> slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void spit(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<uint64_t> regs(uint64_t rip, uint64_t rsp, uint64_t fs_base, int64_t orig_rax) {
  std::vector<uint64_t> r(sizeof(user_regs_struct) / 8, 0);
  r[offsetof(user_regs_struct, rip) / 8] = rip;
  r[offsetof(user_regs_struct, rsp) / 8] = rsp;
  r[offsetof(user_regs_struct, fs_base) / 8] = fs_base;
  r[offsetof(user_regs_struct, orig_rax) / 8] = static_cast<uint64_t>(orig_rax);
  return r;
}

// A process image the test makes: an anonymous mapping with a pattern, a read-only mapping of a
// file (not in the core: read from the file), a writable mapping never touched, two threads.
struct Made {
  TempDir dir;
  std::string exe, core;
  std::vector<uint8_t> anon, file_bytes;
  Maps maps;
  static constexpr uint64_t kAnon = 0x10000, kFile = 0x40000, kZero = 0x80000, kPhdr = kFile + 64;

  Made() {
    exe = dir.path + "/prog";
    core = dir.path + "/prog.core";
    file_bytes.resize(3 * kPage);
    for (size_t i = 0; i < file_bytes.size(); ++i) file_bytes[i] = static_cast<uint8_t>(i * 7 + 3);
    spit(exe, file_bytes);
    anon.resize(2 * kPage);
    for (size_t i = 0; i < anon.size(); ++i) anon[i] = static_cast<uint8_t>(i ^ 0x5a);
    std::vector<MapEntry> e(3);
    e[0].start = kAnon, e[0].end = kAnon + anon.size(), e[0].readable = e[0].writable = true;
    e[1].start = kFile, e[1].end = kFile + 2 * kPage, e[1].readable = e[1].executable = true;
    e[1].offset = kPage, e[1].inode = 42, e[1].path = exe;
    e[2].start = kZero, e[2].end = kZero + 16 * kPage, e[2].readable = e[2].writable = true;
    maps = Maps(e);
    CoreImage img;
    img.pid = 4242;
    img.ppid = 1;
    img.command_name = "prog";
    img.arguments = exe + " --flag";
    img.threads.push_back({4243, regs(0x40100, 0x10100, 0x7000, -1)});
    img.threads.push_back({4242, regs(0x40200, 0x10200, 0x8000, 202)});  // the main thread, in futex()
    uint64_t auxv[] = {AT_PHDR, kPhdr, AT_PAGESZ, kPage, AT_NULL, 0};
    img.auxv.assign(reinterpret_cast<uint8_t*>(auxv), reinterpret_cast<uint8_t*>(auxv) + sizeof auxv);
    img.maps = &maps;
    img.contents = [this](const MapEntry& m) -> const uint8_t* {
      if (m.start == kAnon) return anon.data();
      if (m.start == kZero) return CoreImage::all_zeros();
      return nullptr;
    };
    write_core(core, img);
  }
};

void exercise(const CoreFile& c) {
  // Whatever a damaged core parsed into, reading all of it stays in bounds.
  std::vector<uint8_t> buf(3 * kPage);
  for (const auto& s : c.segments()) {
    c.read(s.vaddr, buf.data(), std::min<uint64_t>(s.memsz, buf.size()));
    c.read(s.vaddr + s.memsz - 1, buf.data(), 2);
    c.view(s.vaddr, s.memsz);
  }
  (void)c.maps();
  (void)c.executable();
  (void)c.auxv(AT_PHDR);
  for (const auto& f : c.files()) c.read(f.start, buf.data(), 16);
}
}  // namespace

TEST_CASE("core file: what dump writes is read back as made") {
  Made m;
  CHECK(CoreFile::looks_like_core(m.core));
  CoreFile c(m.core);
  CHECK(c.warnings().empty());
  CHECK(c.pid() == 4242);
  CHECK(c.command_name() == "prog");
  CHECK(c.arguments() == m.exe + " --flag");
  REQUIRE(c.threads().size() == 2);
  CHECK(c.threads()[0].tid == 4242);  // the main thread first
  CHECK(c.threads()[0].regs.pc == 0x40200);
  CHECK(c.threads()[0].regs.sp == 0x10200);
  CHECK(c.threads()[0].fs_base == 0x8000);
  CHECK(c.threads()[0].regs.syscall == 202);
  CHECK(c.threads()[1].tid == 4243);
  CHECK(c.threads()[1].regs.pc == 0x40100);
  CHECK(c.threads()[1].regs.syscall == -1);
  CHECK(!c.signal());
  CHECK(c.auxv(AT_PHDR) == Made::kPhdr);
  CHECK(c.executable() == m.exe);

  // The anonymous mapping: its bytes, from the core; view() points into it.
  std::vector<uint8_t> got(m.anon.size());
  REQUIRE(c.read(Made::kAnon, got.data(), got.size()));
  CHECK(got == m.anon);
  const uint8_t* v = c.view(Made::kAnon + 100, 50);
  REQUIRE(v != nullptr);
  CHECK(std::memcmp(v, m.anon.data() + 100, 50) == 0);
  // The file mapping: not in the core, read from the file at the mapping's offset.
  std::vector<uint8_t> f(2 * kPage);
  REQUIRE(c.read(Made::kFile, f.data(), f.size()));
  CHECK(std::equal(f.begin(), f.end(), m.file_bytes.begin() + kPage));
  CHECK(c.view(Made::kFile, 8) == nullptr);
  // The untouched mapping: zeros, though the file holds none of its pages (a hole).
  std::vector<uint8_t> z(16 * kPage, 0xff);
  REQUIRE(c.read(Made::kZero, z.data(), z.size()));
  CHECK(std::all_of(z.begin(), z.end(), [](uint8_t b) { return b == 0; }));
  CHECK(slurp(m.core).size() > 16 * kPage);
  // Outside every mapping, and across the end of one: nothing.
  uint64_t w = 0;
  CHECK(!c.read(0x1000, &w, 8));
  CHECK(!c.read(Made::kAnon + m.anon.size() - 4, &w, 8));
  // The maps: the three mappings, the file one with its path and offset.
  Maps maps = c.maps();
  const MapEntry* fe = maps.find(RemoteAddr(Made::kFile + 10));
  REQUIRE(fe != nullptr);
  CHECK(fe->path == m.exe);
  CHECK(fe->offset == kPage);
  CHECK(maps.find(RemoteAddr(Made::kAnon))->writable);
}

TEST_CASE("core file: --exe and --lib-search-path find the files of a core from elsewhere") {
  Made m;
  TempDir other;
  std::string moved = other.path + "/prog";
  REQUIRE(rename(m.exe.c_str(), moved.c_str()) == 0);
  CoreFile plain(m.core);
  std::vector<uint8_t> f(16);
  CHECK(!plain.read(Made::kFile, f.data(), f.size()));  // the file is gone from where it was
  CoreFile by_dir(m.core, CoreSearch{"", "", {other.path}});
  CHECK(by_dir.host_path(m.exe) == moved);
  REQUIRE(by_dir.read(Made::kFile, f.data(), f.size()));
  CHECK(std::equal(f.begin(), f.end(), m.file_bytes.begin() + kPage));
  CoreFile by_exe(m.core, CoreSearch{"", moved, {}});
  CHECK(by_exe.host_path(m.exe) == moved);
  CoreFile under(m.core, CoreSearch{other.path + "/sysroot/", "", {}});
  CHECK(under.host_path(m.exe) == other.path + "/sysroot" + m.exe);  // the sysroot's '/' not doubled
}

TEST_CASE("core file: the signal of a crash, from a core built as the kernel writes one") {
  // ELF header, a PT_NOTE (NT_PRSTATUS with pr_cursig, NT_SIGINFO), one PT_LOAD of one page.
  std::vector<uint8_t> notes;
  auto note = [&notes](uint32_t type, const void* d, size_t n) {
    Elf64_Nhdr h{5, static_cast<Elf64_Word>(n), type};
    const uint8_t* hb = reinterpret_cast<const uint8_t*>(&h);
    notes.insert(notes.end(), hb, hb + sizeof h);
    const char name[8] = "CORE";
    notes.insert(notes.end(), name, name + 8);
    const uint8_t* db = static_cast<const uint8_t*>(d);
    notes.insert(notes.end(), db, db + n);
    notes.resize((notes.size() + 3) & ~size_t(3), 0);
  };
  elf_prstatus st{};
  st.pr_pid = 777;
  st.pr_cursig = 11;
  note(NT_PRSTATUS, &st, sizeof st);
  uint8_t si[128] = {};
  int32_t signo = 11, code = 1;
  uint64_t addr = 0xdeadbeef;
  std::memcpy(si, &signo, 4);
  std::memcpy(si + 8, &code, 4);
  std::memcpy(si + 16, &addr, 8);
  note(0x53494749, si, sizeof si);  // NT_SIGINFO
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_CORE;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = sizeof eh;
  eh.e_ehsize = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 2;
  Elf64_Phdr ph[2] = {};
  ph[0].p_type = PT_NOTE;
  ph[0].p_offset = sizeof eh + sizeof ph;
  ph[0].p_filesz = notes.size();
  ph[1].p_type = PT_LOAD;
  ph[1].p_vaddr = 0x5000;
  ph[1].p_memsz = ph[1].p_filesz = kPage;
  ph[1].p_offset = kPage;
  ph[1].p_flags = PF_R | PF_W;
  std::vector<uint8_t> file(2 * kPage, 0);
  std::memcpy(file.data(), &eh, sizeof eh);
  std::memcpy(file.data() + sizeof eh, ph, sizeof ph);
  std::memcpy(file.data() + ph[0].p_offset, notes.data(), notes.size());
  file[kPage + 8] = 0x99;
  TempDir d;
  std::string p = d.path + "/core";
  spit(p, file);
  CoreFile c(p);
  REQUIRE(c.signal());
  CHECK(c.signal()->signo == 11);
  CHECK(c.signal()->code == 1);
  CHECK(c.signal()->addr == 0xdeadbeef);
  REQUIRE(c.threads().size() == 1);
  CHECK(c.threads()[0].tid == 777);
  CHECK(c.threads()[0].signal == 11);
  CHECK(c.pid() == 777);  // no NT_PRPSINFO: the first thread's
  uint8_t b = 0;
  REQUIRE(c.read(0x5008, &b, 1));
  CHECK(b == 0x99);

  // Cut short inside the memory: read, with a warning that says so; the missing bytes are not.
  file.resize(kPage + 100);
  spit(p, file);
  CoreFile cut(p);
  REQUIRE(cut.warnings().size() == 1);
  CHECK(cut.warnings()[0].find("truncated") != std::string::npos);
  CHECK(cut.read(0x5008, &b, 1));
  CHECK(!cut.read(0x5000 + 200, &b, 1));
}

TEST_CASE("core file: what is not a core, and a core cut short anywhere or with bytes flipped") {
  TempDir d;
  std::string p = d.path + "/x";
  auto code_of = [&](const std::vector<uint8_t>& bytes) {
    spit(p, bytes);
    try {
      CoreFile c(p);
      exercise(c);
      return ErrorCode::Ok;
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find('\n') == std::string::npos);  // one line
      return e.code();
    }
  };
  CHECK(code_of({}) == ErrorCode::Usage);
  CHECK(code_of(std::vector<uint8_t>(200, 'x')) == ErrorCode::Usage);
  CHECK(!CoreFile::looks_like_core(p));
  CHECK(code_of(slurp("/proc/self/exe")) == ErrorCode::Usage);  // an ELF file, not a core
  CHECK_THROWS_AS(CoreFile(d.path + "/none"), Error);

  Made m;
  std::vector<uint8_t> good = slurp(m.core);
  REQUIRE(good.size() > kPage);
  // Cut at every length through the headers and notes, then every page after: an error
  // (Usage, Corrupt) or a core read with what remains.
  size_t errors = 0, read = 0;
  for (size_t n = 0; n < good.size(); n += (n < kPage ? 1 : kPage)) {
    ErrorCode c = code_of(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(n)));
    CHECK((c == ErrorCode::Ok || c == ErrorCode::Usage || c == ErrorCode::Corrupt));
    (c == ErrorCode::Ok ? read : errors)++;
  }
  CHECK(errors > 0);
  CHECK(read > 0);  // cut inside the memory: the threads are still there
  // Bytes flipped in the headers and notes.
  std::mt19937 rng(1234);
  size_t notes_end = 0;
  {
    Elf64_Ehdr eh;
    std::memcpy(&eh, good.data(), sizeof eh);
    Elf64_Phdr ph;
    std::memcpy(&ph, good.data() + eh.e_phoff, sizeof ph);
    notes_end = ph.p_offset + ph.p_filesz;
  }
  REQUIRE(notes_end < good.size());
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> bad(good.begin(), good.begin() + static_cast<long>(notes_end + 64));
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < flips; ++k) {
      size_t at = rng() % notes_end;
      bad[at] = (rng() % 4 == 0) ? 0xff : static_cast<uint8_t>(rng());
    }
    ErrorCode c = code_of(bad);
    CHECK((c == ErrorCode::Ok || c == ErrorCode::Usage || c == ErrorCode::Corrupt || c == ErrorCode::Unsupported));
  }
}

TEST_CASE("core file: the build-id in an ELF file's first page, as a core keeps it") {
  std::vector<uint8_t> exe = slurp("/proc/self/exe");
  REQUIRE(exe.size() > kPage);
  std::string want = ElfFile("/proc/self/exe").build_id();
  REQUIRE(!want.empty());  // the test binary is linked with a build-id (Debian's default)
  CHECK(build_id_in_image(exe.data(), kPage) == want);
  CHECK(build_id_in_image(exe.data(), 32).empty());  // too short for the header
  CHECK(build_id_in_image(nullptr, 0).empty());
  std::mt19937 rng(99);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> bad(exe.begin(), exe.begin() + static_cast<long>(kPage));
    for (int k = 0; k < 4; ++k) bad[rng() % 1024] = static_cast<uint8_t>(rng());
    std::string got = build_id_in_image(bad.data(), bad.size());
    CHECK(got.size() % 2 == 0);
  }
}

TEST_CASE("core file: the names /proc gives anonymous mappings, the environment, and which pages were in memory") {
  TempDir dir;
  const std::string exe = dir.path + "/python", core = dir.path + "/python.core";
  spit(exe, std::vector<uint8_t>(kPage, 1));
  // The executable, its bss right after it, the program break 300 MiB further (x86-64 randomizes
  // it within 1 GiB), an mmapped region far away, the vDSO, the main thread's stack.
  constexpr uint64_t kExe = 0x400000, kBss = kExe + kPage, kBrk = kBss + (300ull << 20), kMmap = 0x7f0000000000,
                     kVdso = 0x7ffff7fc0000, kStack = 0x7ffffffde000;
  std::vector<MapEntry> e(6);
  e[0].start = kExe, e[0].end = kExe + kPage, e[0].readable = e[0].executable = true, e[0].inode = 7, e[0].path = exe;
  e[1].start = kBss, e[1].end = kBss + kPage, e[1].readable = e[1].writable = true;
  e[2].start = kBrk, e[2].end = kBrk + 4 * kPage, e[2].readable = e[2].writable = true;
  e[3].start = kMmap, e[3].end = kMmap + kPage, e[3].readable = e[3].writable = true;
  e[4].start = kVdso, e[4].end = kVdso + kPage, e[4].readable = e[4].executable = true;
  e[5].start = kStack, e[5].end = kStack + 2 * kPage, e[5].readable = e[5].writable = true;
  Maps maps(e);
  // The top of the stack as the kernel lays it out: arguments, environment, then the file name
  // AT_EXECFN points to.
  std::vector<uint8_t> stack(2 * kPage, 0), brk(4 * kPage, 0), other(kPage, 9), vdso(kPage, 0x7f);
  static const char kStrings[] = "python\0-c\0USER=someone\0PYTHONMALLOC=malloc\0LANG=C\0";
  const std::string strings = std::string(kStrings, sizeof kStrings - 1) + exe + '\0';
  const uint64_t strings_at = 2 * kPage - 64 - strings.size();
  std::memcpy(stack.data() + strings_at, strings.data(), strings.size());
  const uint64_t execfn = kStack + strings_at + strings.size() - exe.size() - 1;
  // The heap's pages: data, zeros that were in memory, zeros never touched, data.
  brk[10] = 1, brk[3 * kPage + 5] = 2;
  CoreImage img;
  img.pid = 100;
  img.command_name = "python";
  img.threads.push_back({100, regs(kExe + 16, kStack + kPage + 8, 0, -1)});
  uint64_t auxv[] = {AT_EXECFN, execfn, AT_SYSINFO_EHDR, kVdso, AT_NULL, 0};
  img.auxv.assign(reinterpret_cast<uint8_t*>(auxv), reinterpret_cast<uint8_t*>(auxv) + sizeof auxv);
  img.maps = &maps;
  img.contents = [&](const MapEntry& m) -> const uint8_t* {
    if (m.start == kBrk) return brk.data();
    if (m.start == kStack) return stack.data();
    if (m.start == kMmap) return other.data();
    if (m.start == kVdso) return vdso.data();
    if (m.start == kBss) return CoreImage::all_zeros();
    return nullptr;
  };
  img.resident = [&](uint64_t addr) { return addr != kBrk + 2 * kPage; };
  write_core(core, img);

  CoreFile c(core);
  Maps got = c.maps();
  auto name = [&](uint64_t a) { return got.find(RemoteAddr(a)) ? got.find(RemoteAddr(a))->path : "(none)"; };
  CHECK(name(kExe) == exe);
  CHECK(name(kBss) == "");
  CHECK(name(kBrk) == "[heap]");
  CHECK(name(kMmap) == "");
  CHECK(name(kVdso) == "[vdso]");
  CHECK(name(kStack) == "[stack]");
  CHECK(c.environment("PYTHONMALLOC") == "malloc");
  CHECK(c.environment("USER") == "someone");
  CHECK(c.environment("LANG") == "C");
  CHECK(c.environment("MALLOC") == "");  // not a suffix of another name
  CHECK(c.environment("PYTHONPATH") == "");

  // The pages of the heap in memory: all but the third. The file keeps that one as a hole where
  // the file system has holes; one that has none keeps every page, and then every page counts.
  const uint64_t pages_in_memory = c.sparse() ? 3 : 4;
  const std::string fs = c.sparse() ? "the test's file system keeps holes" : "the test's file system has no holes";
  MESSAGE(fs);
  CHECK(c.page_stored(kBrk));
  CHECK(c.page_stored(kBrk + kPage));
  CHECK(c.page_stored(kBrk + 2 * kPage) == !c.sparse());
  CHECK(c.page_stored(kBrk + 3 * kPage));
  CHECK(!c.page_stored(kExe));  // a file's code: not in the core
  uint64_t heap_rss = 0;
  for (const auto& s : core_smaps(c))
    if (s.start == kBrk) heap_rss = s.rss;
  CHECK(heap_rss == pages_in_memory * kPage);
  PageMap pm(c);
  CHECK(pm.count(kBrk, kBrk + 4 * kPage).resident == pages_in_memory * kPage);
  CHECK(pm.count(kBrk + 2 * kPage + 100, kBrk + 2 * kPage + 200).resident == (c.sparse() ? 0 : 100));
  // What reads back: the bytes written, and zeros in the hole.
  std::vector<uint8_t> back(4 * kPage, 0xff);
  REQUIRE(c.read(kBrk, back.data(), back.size()));
  CHECK(back == brk);
}
