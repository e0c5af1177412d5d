// pyinspect top: a live view of where a target's time goes, by function, refreshed every second.
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "base/error.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/sampling.hpp"
#include "proc/process.hpp"

namespace pyinspect {

namespace {

struct Row {
  uint32_t frame;
  uint64_t own = 0, total = 0;          // samples in the last interval
  uint64_t own_all = 0, total_all = 0;  // since the start
};

enum class SortBy { Own = 1, Total, OwnTime, TotalTime };

// Per function: samples in which it was the innermost frame (own) and in which it was anywhere
// on the stack, once per stack (total).
class Table {
 public:
  void add_interval(const Profile& p) {
    for (auto& [f, r] : rows_) r.own = r.total = 0;
    std::vector<uint32_t> seen;
    for (const auto& s : p.stacks) {
      seen.clear();
      bool innermost = true;
      for (auto it = s.frames.rbegin(); it != s.frames.rend(); ++it) {
        if (p.frames[*it].is_root()) continue;
        Row& r = row(*it);
        if (innermost) {
          r.own += s.count;
          r.own_all += s.count;
          innermost = false;
        }
        if (std::find(seen.begin(), seen.end(), *it) != seen.end()) continue;  // recursion: once
        seen.push_back(*it);
        r.total += s.count;
        r.total_all += s.count;
      }
    }
  }
  std::vector<Row> sorted(SortBy by) const {
    std::vector<Row> out;
    for (const auto& [f, r] : rows_)
      if (r.total_all) out.push_back(r);
    auto key = [by](const Row& r) {
      switch (by) {
        case SortBy::Own: return std::make_pair(r.own, r.own_all);
        case SortBy::Total: return std::make_pair(r.total, r.total_all);
        case SortBy::OwnTime: return std::make_pair(r.own_all, r.own);
        case SortBy::TotalTime: return std::make_pair(r.total_all, r.total);
      }
      return std::make_pair(r.own, r.own_all);
    };
    std::stable_sort(out.begin(), out.end(), [&](const Row& a, const Row& b) { return key(a) > key(b); });
    return out;
  }

 private:
  Row& row(uint32_t f) {
    auto [it, added] = rows_.try_emplace(f);
    if (added) it->second.frame = f;
    return it->second;
  }
  std::map<uint32_t, Row> rows_;
};

std::string seconds_text(double s) {
  if (s < 60) return fixed(s, 2) + "s";
  return std::to_string(static_cast<int>(s / 60)) + "m" + fixed(std::fmod(s, 60), 0) + "s";
}

SamplerStats minus(const SamplerStats& a, const SamplerStats& b) {
  SamplerStats d = a;
  d.taken -= b.taken;
  d.missed -= b.missed;
  d.failed -= b.failed;
  d.thread_samples -= b.thread_samples;
  d.idle_samples -= b.idle_samples;
  d.gil_instants -= b.gil_instants;
  d.empty -= b.empty;
  d.duration_s -= b.duration_s;
  return d;
}

std::string pct(uint64_t part, uint64_t whole) {
  return whole ? fixed(100.0 * static_cast<double>(part) / static_cast<double>(whole), 1) + "%" : "-";
}

// The header and the table; `rows` at most (0: all).
std::string render(const Profile& p, const Table& t, const SamplerStats& all, const SamplerStats& last, SortBy by,
                   size_t rows, size_t width, bool keys) {
  std::ostringstream o;
  o << "pyinspect top: process " << p.pid << " (" << p.python << ")  " << p.title.substr(0, 60) << "\n";
  o << "Samples " << all.taken << " (" << fixed(last.achieved_hz(), 0) << " Hz)  GIL " << pct(last.gil_instants, last.taken)
    << "  Active " << pct(last.taken - last.empty, last.taken) << "  Threads " << (last.taken ? (last.thread_samples + last.idle_samples + last.taken / 2) / last.taken : 0)
    << "  Missed " << all.missed << "  Failed " << all.failed << "  Duration " << seconds_text(all.duration_s) << "\n";
  if (keys) o << "Sort: 1 %Own  2 %Total  3 OwnTime  4 TotalTime   q quit\n";
  o << "\n";
  const char* names[] = {"", "%Own", "%Total", "OwnTime", "TotalTime"};
  auto head = [&](SortBy c, int w) {
    std::string n = names[static_cast<int>(c)];
    if (c == by) n = (keys ? "*" : "") + n;
    std::string pad(static_cast<size_t>(std::max<int>(0, w - static_cast<int>(n.size()))), ' ');
    return pad + n;
  };
  o << head(SortBy::Own, 7) << head(SortBy::Total, 8) << head(SortBy::OwnTime, 10) << head(SortBy::TotalTime, 11)
    << "  Function (file:line)\n";
  uint64_t n = last.thread_samples;
  double per = 1.0 / p.stats.rate_hz;
  size_t shown = 0;
  for (const Row& r : t.sorted(by)) {
    if (rows && shown >= rows) break;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%7s%8s%10s%11s  ", pct(r.own, n).c_str(), pct(r.total, n).c_str(),
                  seconds_text(static_cast<double>(r.own_all) * per).c_str(),
                  seconds_text(static_cast<double>(r.total_all) * per).c_str());
    std::string line = buf + p.frames[r.frame].label();
    if (width && line.size() > width) line = line.substr(0, width);
    o << line << "\n";
    ++shown;
  }
  if (shown == 0) o << "  (no Python thread was running" << (p.idle ? "" : "; --idle includes the others") << ")\n";
  return o.str();
}

// The terminal in raw mode (keys without Enter, no echo) while this lives.
class RawTerminal {
 public:
  RawTerminal() {
    if (tcgetattr(STDIN_FILENO, &old_) != 0) return;
    termios raw = old_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    ok_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    std::cout << "\033[?25l" << std::flush;  // hide the cursor
  }
  ~RawTerminal() {
    if (ok_) tcsetattr(STDIN_FILENO, TCSANOW, &old_);
    std::cout << "\033[?25h" << std::flush;
  }
  // A key pressed since the last call, 0 if none.
  char key() const {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    if (!ok_ || poll(&p, 1, 0) <= 0) return 0;
    char c = 0;
    return read(STDIN_FILENO, &c, 1) == 1 ? c : 0;
  }

 private:
  termios old_{};
  bool ok_ = false;
};

}  // namespace

int cmd_top(const std::vector<std::string>& args, const GlobalOptions&) {
  po::options_description desc("Options");
  std::string pid_text, sort_name = "own";
  SamplingArgs sa;
  double interval_s = 1;
  bool once = false, lines = false;
  size_t rows = 0;
  desc.add_options()("pid", po::value(&pid_text)->required(), "process to watch")(
      "interval,i", po::value(&interval_s)->default_value(interval_s), "seconds between refreshes")(
      "once", po::bool_switch(&once), "sample one interval, print a plain table and exit (also when not on a terminal)")(
      "lines", po::bool_switch(&lines), "one row per line, not per function")(
      "sort", po::value(&sort_name)->default_value(sort_name), "own, total, own-time or total-time")(
      "rows", po::value(&rows), "at most N rows (default: what the terminal holds; all with --once)");
  add_sampling_options(desc, sa);
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect top PID [options]", args, desc, pos, vm)) return 0;
  check_sampling_options(sa);
  if (!(interval_s >= 0.05) || interval_s > 3600) throw Error(ErrorCode::Usage, "--interval wants 0.05 to 3600 seconds");
  SortBy by = sort_name == "own"          ? SortBy::Own
              : sort_name == "total"      ? SortBy::Total
              : sort_name == "own-time"   ? SortBy::OwnTime
              : sort_name == "total-time" ? SortBy::TotalTime
                                          : throw Error(ErrorCode::Usage,
                                                        "--sort wants own, total, own-time or total-time, not '" +
                                                            sort_name + "'");
  sa.opts.by_function = !lines;
  bool live = !once && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
  if (!live) sa.opts.duration_s = interval_s;

  int pid = parse_pid(pid_text);
  Process proc(pid);
  Profile profile;
  profile.title = proc.cmdline();
  profile.pid = pid;
  sa.describe(profile);
  profile.stats.rate_hz = sa.opts.rate_hz;
  Sampler sampler(sa.opts, profile);
  sampler.add_target(pid);
  enter_realtime(sa.realtime);  // once set up: reading the binaries needs no hurry
  StopFlag stop;
  Table table;
  SamplerStats before, last;

  auto take_interval = [&]() {
    table.add_interval(profile);
    last = minus(sampler.stats(), before);
    before = sampler.stats();
    profile.clear_stacks();
  };
  if (!live) {
    sampler.run(stop.flag(), std::chrono::milliseconds(1000), [](bool) { return true; });
    take_interval();
    std::cout << render(profile, table, sampler.stats(), last, by, rows, 0, false);
    return 0;
  }

  RawTerminal term;
  auto next = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval_s);
  auto draw = [&]() {
    winsize ws{};
    size_t height = 0, width = 0;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) height = ws.ws_row, width = ws.ws_col;
    size_t fit = height == 0 ? 0 : height > 7 ? height - 7 : 1;  // 0: the size is unknown, show all
    std::cout << "\033[H\033[2J" << render(profile, table, sampler.stats(), last, by, rows ? rows : fit, width, true)
              << std::flush;
  };
  std::cout << "\033[H\033[2Jpyinspect top: sampling process " << pid << "...\n" << std::flush;
  sampler.run(stop.flag(), std::chrono::milliseconds(50), [&](bool end) {
    if (end) return false;
    bool redraw = false;
    for (char k = term.key(); k; k = term.key()) {
      if (k == 'q' || k == 'Q') return false;
      if (k >= '1' && k <= '4') {
        by = static_cast<SortBy>(k - '0');
        redraw = true;
      }
    }
    if (std::chrono::steady_clock::now() >= next) {
      take_interval();
      next += std::chrono::duration<double>(interval_s);
      redraw = true;
    }
    if (redraw) draw();
    return true;
  });
  std::cout << "\n";
  return 0;
}

}  // namespace pyinspect
