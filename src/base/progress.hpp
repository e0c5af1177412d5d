#pragma once
// A progress line on stderr for long scans, redrawn in place at most ten times a second: a bar
// when the total is known, a count with its rate otherwise. Only when enabled (stderr is a
// terminal and --no-progress was not given); cleared when done so that nothing stays behind.
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace pyinspect {

class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}
  ~Progress() { clear(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  bool enabled() const { return enabled_; }

  // Starts a phase: `what` names it ("walking the heap"), `unit` what is counted, `total` how
  // many there will be (0: unknown).
  void phase(const char* what, const char* unit = "", uint64_t total = 0) {
    if (!enabled_) return;
    what_ = what;
    unit_ = unit;
    total_ = total;
    start_ = std::chrono::steady_clock::now();
    last_ = {};
    update(0, true);
  }

  void update(uint64_t done, bool force = false) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    std::string line = "pyinspect: " + what_;
    char buf[160];
    if (total_) {
      int width = 30;
      uint64_t d = done < total_ ? done : total_;
      int filled = static_cast<int>(static_cast<double>(d) / static_cast<double>(total_) * width);
      line += " [" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '.') + "]";
      std::snprintf(buf, sizeof buf, " %3d%%", static_cast<int>(100.0 * static_cast<double>(d) / static_cast<double>(total_)));
      line += buf;
    } else if (*unit_) {
      std::snprintf(buf, sizeof buf, " %s %s", human(static_cast<double>(done)).c_str(), unit_);
      line += buf;
      if (secs > 0.2) {
        std::snprintf(buf, sizeof buf, " (%s/s)", human(static_cast<double>(done) / secs).c_str());
        line += buf;
      }
    }
    std::snprintf(buf, sizeof buf, "  %.1f s", secs);
    line += buf;
    size_t cols = columns();
    if (line.size() >= cols) line.resize(cols - 1);
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }

  void clear() {
    if (!enabled_ || !drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }

 private:
  static std::string human(double n) {
    char buf[32];
    if (n >= 1e6)
      std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
    else if (n >= 1e3)
      std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
    else
      std::snprintf(buf, sizeof buf, "%.0f", n);
    return buf;
  }
  static size_t columns() {
    winsize ws{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
    return 80;
  }

  bool enabled_;
  bool drawn_ = false;
  std::string what_;
  const char* unit_ = "";
  uint64_t total_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace pyinspect
