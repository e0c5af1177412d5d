// pyinspect dump PID -o FILE: an ELF core of the target, taken in one short pause.
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "base/log.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "heap/snapshot.hpp"
#include "output/json_util.hpp"
#include "proc/core_writer.hpp"
#include "proc/pagemap.hpp"
#include "proc/pause.hpp"

namespace pyinspect {

namespace {
// The fields of /proc/PID/status a core's NT_PRPSINFO holds.
void read_status(int pid, CoreImage& image) {
  auto status = read_proc_file("/proc/" + std::to_string(pid) + "/status");
  if (!status) return;
  std::istringstream in(*status);
  std::string line;
  while (std::getline(in, line)) {
    unsigned v = 0;
    if (std::sscanf(line.c_str(), "PPid: %u", &v) == 1) image.ppid = static_cast<int>(v);
    if (std::sscanf(line.c_str(), "Uid: %u", &v) == 1) image.uid = v;
    if (std::sscanf(line.c_str(), "Gid: %u", &v) == 1) image.gid = v;
  }
}

std::string mib_text(uint64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return b;
}
}  // namespace

int cmd_dump(const std::vector<std::string>& args, const GlobalOptions&) {
  po::options_description desc("Options");
  std::string pid_text, out_path;
  uint64_t max_copy_mib = 0;
  bool json = false;
  desc.add_options()("pid", po::value(&pid_text)->required(), "process to dump")(
      "output,o", po::value(&out_path)->required(), "the core file to write")(
      "json", po::bool_switch(&json), "print what was written as one JSON document on stdout (docs/json.md)")(
      "max-copy", po::value(&max_copy_mib),
      "refuse to copy more than this many MiB of the target's memory (default: what the available memory allows)");
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect dump PID -o FILE [options]", args, desc, pos, vm)) return 0;
  check_output_path("--output", out_path);
  auto t0 = std::chrono::steady_clock::now();

  Process proc(parse_pid(pid_text));
  ProcessMemory mem(proc.pid(), Maps::read(proc.pid()));
  CoreImage image;
  image.pid = proc.pid();
  read_status(proc.pid(), image);
  image.arguments = proc.cmdline();
  if (auto comm = read_proc_file("/proc/" + std::to_string(proc.pid()) + "/comm")) {
    image.command_name = *comm;
    while (!image.command_name.empty() && image.command_name.back() == '\n') image.command_name.pop_back();
  }
  if (auto auxv = read_proc_file("/proc/" + std::to_string(proc.pid()) + "/auxv"))
    image.auxv.assign(auxv->begin(), auxv->end());

  // Planned while the target runs (which pages it has), copied while it is paused: the pause
  // lasts as long as the copy of its resident writable memory, as heap's does.
  SnapshotLimits limits;
  limits.max_bytes = max_copy_mib << 20;
  limits.need_factor = 1.1;
  limits.leave_out_data = false;
  auto snap = HeapSnapshot::plan(mem, limits);
  auto ms_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
  };
  LOG_INFO("dump: planned the copy in " << ms_since(t0) << " ms");
  // Read-only file mappings the process wrote before making them read-only (RELRO: the dynamic
  // section whose DT_DEBUG leads a debugger to the list of loaded libraries, the GOT): their
  // bytes are no longer the file's, so the core holds them.
  std::set<uint64_t> relocated;
  for (const auto& e : read_smaps(proc.pid()))
    if (e.private_dirty) relocated.insert(e.start);
  std::map<uint64_t, std::vector<uint8_t>> small;  // readable memory the snapshot does not copy
  int64_t pause_ns = 0;
  size_t unstopped = 0;
  {
    ProcessPause pause(proc.pid());
    snap->copy();
    for (const auto& t : pause.threads()) {
      if (!t->stopped()) continue;
      auto regs = t->user_registers();
      if (!regs.empty()) image.threads.push_back({t->tid(), std::move(regs)});
    }
    unstopped = pause.unstopped().size();
    // Anonymous read-only memory (and the vDSO), and the relocated read-only file mappings:
    // small, and not in the snapshot.
    for (const auto& m : mem.maps().entries()) {
      if (!m.readable || m.writable || m.path == "[vvar]" || m.path == "[vsyscall]") continue;
      if (m.is_file() && !relocated.count(m.start)) continue;
      if (m.size() > (64u << 20)) continue;
      std::vector<uint8_t> b(m.size());
      if (mem.read(RemoteAddr(m.start), b.data(), b.size())) small[m.start] = std::move(b);
    }
    pause.resume();
    pause_ns = pause.duration().count();
  }
  if (image.threads.empty()) throw Error(ErrorCode::Internal, "no thread of process " + pid_text + " stopped: no core written");
  image.maps = &mem.maps();
  // The first page of each mapped ELF file: its header and build-id, so that a reader can tell
  // whether the file it finds is the one the process ran (as a kernel core keeps it).
  std::map<uint64_t, std::vector<uint8_t>> heads;
  for (const auto& m : mem.maps().entries()) {
    if (!m.is_file() || m.offset != 0 || m.writable || !m.readable || relocated.count(m.start)) continue;
    std::vector<uint8_t> b(std::min<uint64_t>(m.size(), 4096));
    if (mem.read(RemoteAddr(m.start), b.data(), b.size()) && b.size() >= 4 && std::memcmp(b.data(), "\177ELF", 4) == 0)
      heads[m.start] = std::move(b);
  }
  image.length = [&](const MapEntry& m) -> uint64_t {
    auto it = heads.find(m.start);
    return it != heads.end() ? it->second.size() : m.size();
  };
  image.contents = [&](const MapEntry& m) -> const uint8_t* {
    if (auto it = heads.find(m.start); it != heads.end()) return it->second.data();
    if (auto it = small.find(m.start); it != small.end() && it->second.size() == m.size()) return it->second.data();
    if (!m.writable || m.shared) return nullptr;  // a file's bytes, or memory shared with others
    if (const uint8_t* p = snap->view(RemoteAddr(m.start), m.size())) return p;
    // Writable, yet not copied: the snapshot keeps no region of mappings without a page.
    if (!snap->contains(RemoteAddr(m.start))) return CoreImage::all_zeros();
    return nullptr;
  };
  image.resident = [&](uint64_t addr) { return snap->page_copied(addr); };
  auto t_write = std::chrono::steady_clock::now();
  CoreWritten w = write_core(out_path, image);
  LOG_INFO("dump: wrote the file in " << ms_since(t_write) << " ms");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string unstopped_text;
  if (unstopped)
    unstopped_text = std::to_string(unstopped) +
                     " threads did not stop (in uninterruptible sleep): they are not in the core, and what they "
                     "changed meanwhile may be torn";
  if (json) {
    nlohmann::json j = {{"pid", proc.pid()},
                        {"core", out_path},
                        {"file_bytes", w.file_bytes},
                        {"written_bytes", w.written_bytes},
                        {"threads", image.threads.size()},
                        {"mappings", w.segments},
                        {"pause_us", pause_ns / 1000.0},
                        {"elapsed_us", secs * 1e6},
                        {"warnings", unstopped ? nlohmann::json::array({unstopped_text}) : nlohmann::json::array()}};
    std::cout << dump_json(j) << "\n";
    return 0;
  }
  std::cerr << "pyinspect: wrote " << out_path << ": " << mib_text(w.file_bytes) << " (" << mib_text(w.written_bytes)
            << " of it written, the rest holes: pages not in memory), " << image.threads.size()
            << (image.threads.size() == 1 ? " thread, " : " threads, ") << w.segments << " mappings; the target was paused "
            << pause_ns / 1000000.0 << " ms; " << secs << " s in all\n";
  if (unstopped) std::cerr << "pyinspect: warning: " << unstopped_text << "\n";
  return 0;
}

}  // namespace pyinspect
