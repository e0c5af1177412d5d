#pragma once
// An ELF core file (x86-64) of a process: written by the kernel, by gdb's gcore or by
// `pyinspect dump`. Its PT_LOAD segments hold the memory that was dumped; its notes, every
// thread's registers (NT_PRSTATUS), the process's name and arguments (NT_PRPSINFO), the signal
// that killed it (NT_SIGINFO), its auxiliary vector (NT_AUXV) and the files it had mapped
// (NT_FILE). Memory a core leaves out (a kernel core skips the unmodified pages of mapped files)
// is read from those files. Everything in the file is checked before it is used: a truncated or
// corrupt core gives a clear error or a warning, never a read out of bounds.
// docs/architecture.md, "Core files".
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proc/maps.hpp"
#include "proc/pause.hpp"

namespace pyinspect {

struct CoreSegment {  // a PT_LOAD
  uint64_t vaddr = 0, memsz = 0;
  uint64_t offset = 0, filesz = 0;  // the bytes the core holds (filesz may be < memsz: left out)
  bool readable = false, writable = false, executable = false;
};

struct CoreMappedFile {  // one entry of NT_FILE
  uint64_t start = 0, end = 0;
  uint64_t file_offset = 0;  // in bytes
  std::string path;
};

struct CoreThread {  // one NT_PRSTATUS
  int tid = 0;
  int signal = 0;        // pr_cursig: the signal it was handling (the crashing thread's)
  ThreadRegisters regs;  // as ptrace gives them
  uint64_t fs_base = 0;  // its TLS base (pthread_self)
};

// Where to find the files a core names, for a core from another machine.
struct CoreSearch {
  std::string sysroot;                // prefixed to every path the core names
  std::string exe;                    // the executable, wherever it is here
  std::vector<std::string> lib_dirs;  // directories searched for a file by its name
};

struct CoreSignal {  // NT_SIGINFO: the signal that ended the process
  int signo = 0, code = 0;
  uint64_t addr = 0;  // the faulting address, for SIGSEGV/SIGBUS/SIGILL/SIGFPE
};

class CoreFile {
 public:
  // Opens and checks `path`; throws Error(Usage) if it is not an ELF core, Error(Corrupt) if its
  // headers or notes cannot be made sense of. `sysroot` is prefixed to the paths of the files it
  // names when they are opened (a core from another machine).
  explicit CoreFile(const std::string& path, CoreSearch search = {});
  ~CoreFile();
  CoreFile(const CoreFile&) = delete;
  CoreFile& operator=(const CoreFile&) = delete;

  // Whether `path` is a file that starts like an ELF core (for "PID or core file" arguments).
  static bool looks_like_core(const std::string& path);

  const std::string& path() const { return path_; }
  const CoreSearch& search() const { return search_; }
  int pid() const { return pid_; }
  const std::string& command_name() const { return fname_; }  // pr_fname: 15 characters
  const std::string& arguments() const { return psargs_; }    // pr_psargs: the first 80
  const std::vector<CoreThread>& threads() const { return threads_; }
  const std::vector<CoreSegment>& segments() const { return segments_; }
  const std::vector<CoreMappedFile>& files() const { return files_; }
  const std::optional<CoreSignal>& signal() const { return signal_; }
  std::optional<uint64_t> auxv(uint64_t type) const;
  // The executable: the mapped file that holds the program headers (AT_PHDR), else the one
  // named like pr_fname; empty if neither is known.
  std::string executable() const;
  // An environment variable as the process was started: from the strings at the top of its
  // stack, which the file name AT_EXECFN points to follows. Empty if it is not there.
  std::string environment(const std::string& name) const;
  // What was found wrong but could be read past (a truncated file: memory missing).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Where to open here a file the core names: --exe for the executable; the path under the
  // sysroot if it exists there, else a file of the same name in a library directory, else the
  // path under the sysroot.
  std::string host_path(const std::string& path) const;

  // The address space as a Maps: each PT_LOAD, with the path and offset of the file NT_FILE
  // says is mapped there.
  Maps maps() const;
  // Reads memory: from the core's bytes, else from the mapped file (the part of a file mapping
  // the core left out). False if any byte is in neither.
  bool read(uint64_t addr, void* out, size_t len) const;
  // The core's own bytes for [addr, addr+len), when one segment holds them all; nullptr
  // otherwise. Valid as long as the CoreFile lives (a heap snapshot of a core copies nothing).
  const uint8_t* view(uint64_t addr, size_t len) const;
  // Whether the file has holes (the kernel and `pyinspect dump` leave the pages that were not
  // in memory as holes; gdb's gcore writes every page, as does a copy that lost the holes).
  bool sparse() const { return sparse_; }
  // Whether the core holds the page at `addr` as data: inside a segment's bytes and, in a sparse
  // file, not in a hole.
  bool page_stored(uint64_t addr) const;

 private:
  void open_and_parse();
  void release();
  void parse_notes(const uint8_t* p, size_t n);
  bool read_from_file(uint64_t addr, uint8_t* out, size_t len) const;
  void name_anonymous(std::vector<MapEntry>& maps) const;
  void find_holes();
  std::string path_;
  CoreSearch search_;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  // The file's data, as (offset, end), when it has holes (SEEK_DATA, SEEK_HOLE).
  std::vector<std::pair<uint64_t, uint64_t>> data_extents_;
  bool sparse_ = false;
  int pid_ = 0;
  std::string fname_, psargs_;
  std::vector<CoreThread> threads_;
  std::vector<CoreSegment> segments_;  // sorted by vaddr
  std::vector<CoreMappedFile> files_;  // sorted by start
  std::optional<CoreSignal> signal_;
  std::vector<uint8_t> auxv_;
  std::vector<std::string> warnings_;
  mutable std::map<std::string, int> open_files_;  // path -> fd (-1: cannot be opened)
};

}  // namespace pyinspect
