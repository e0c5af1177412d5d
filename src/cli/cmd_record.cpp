// pyinspect record: sample a target's stacks for a while and write a profile (flame graph,
// folded stacks, speedscope, JSON).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "base/log.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/sampling.hpp"
#include "output/atomic_file.hpp"
#include "output/json_util.hpp"
#include "output/profile_output.hpp"
#include "proc/process.hpp"

namespace pyinspect {

namespace {

enum class Format { Flamegraph, Folded, Speedscope, Json };

Format parse_format(const std::string& name, const std::string& output) {
  if (name == "flamegraph" || name == "svg") return Format::Flamegraph;
  if (name == "folded" || name == "collapsed") return Format::Folded;
  if (name == "speedscope") return Format::Speedscope;
  if (name == "json") return Format::Json;
  if (!name.empty())
    throw Error(ErrorCode::Usage, "--format wants flamegraph, folded, speedscope or json, not '" + name + "'");
  auto ends = [&](const char* suffix) {
    size_t n = std::strlen(suffix);
    return output.size() >= n && output.compare(output.size() - n, n, suffix) == 0;
  };
  if (output == "-") return Format::Folded;
  if (ends(".svg")) return Format::Flamegraph;
  if (ends(".folded") || ends(".collapsed") || ends(".txt")) return Format::Folded;
  if (ends(".json")) return Format::Speedscope;
  throw Error(ErrorCode::Usage, "cannot tell the format from the name '" + output +
                                    "' (.svg, .folded, .txt, .json): give --format flamegraph, folded, speedscope or json");
}

std::string default_output() {
  char stamp[32];
  std::time_t t = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&t));
  return std::string("pyinspect-") + stamp + ".svg";
}

void write_profile(std::ostream& out, const Profile& p, Format f) {
  switch (f) {
    case Format::Flamegraph:
      write_flamegraph(out, p);
      break;
    case Format::Folded:
      write_folded(out, p);
      break;
    case Format::Speedscope:
      out << speedscope_json(p).dump() << "\n";
      break;
    case Format::Json:
      out << dump_json(profile_json(p)) << "\n";
      break;
  }
}

// The progress line: what has been taken, at what rate, and what went wrong.
std::string progress_text(const SamplerStats& s, size_t targets) {
  std::string t = fixed(s.duration_s, 1) + " s: " + std::to_string(s.taken) + " samples (" +
                  fixed(s.achieved_hz(), 1) + " Hz), " + std::to_string(s.thread_samples) + " stacks";
  if (s.missed) t += ", " + std::to_string(s.missed) + " missed";
  if (s.failed) t += ", " + std::to_string(s.failed) + " failed";
  if (targets > 1) t += ", " + std::to_string(targets) + " processes";
  return t;
}

}  // namespace

int cmd_record(const std::vector<std::string>& all_args, const GlobalOptions& g) {
  // record [options] PID | record [options] -- COMMAND ARGS...
  std::vector<std::string> args, command;
  for (size_t i = 0; i < all_args.size(); ++i)
    if (all_args[i] == "--") {
      command.assign(all_args.begin() + static_cast<long>(i) + 1, all_args.end());
      break;
    } else {
      args.push_back(all_args[i]);
    }

  po::options_description desc("Options");
  std::string pid_text, output, format_name;
  SamplingArgs sa;
  bool quiet = false;
  desc.add_options()("pid", po::value(&pid_text), "process to profile (or -- COMMAND ARGS to start one)")(
      "output,o", po::value(&output), "file to write (default pyinspect-DATE-TIME.svg; - for standard output)")(
      "format,f", po::value(&format_name),
      "flamegraph (SVG), folded (collapsed stacks), speedscope (JSON), json (pyinspect's own); "
      "default from the file name")(
      "duration,d", po::value(&sa.opts.duration_s), "seconds to sample (default: until Ctrl-C or the target exits)")(
      "quiet,q", po::bool_switch(&quiet), "no progress on stderr (the summary is still printed)");
  add_sampling_options(desc, sa);
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!parse_command("pyinspect record PID [options] | pyinspect record [options] -- COMMAND [ARGS...]", args, desc,
                     pos, vm))
    return 0;
  check_sampling_options(sa);
  if (sa.opts.duration_s < 0 || !std::isfinite(sa.opts.duration_s))
    throw Error(ErrorCode::Usage, "--duration wants a number of seconds (0: until Ctrl-C or the target exits)");
  if (pid_text.empty() == command.empty())
    throw Error(ErrorCode::Usage, pid_text.empty() ? "give a PID or -- COMMAND to profile (see --help)"
                                                   : "give a PID or -- COMMAND, not both");
  if (output.empty()) output = default_output();
  Format format = parse_format(format_name, output);
  if (output != "-") check_output_path("--output", output);

  Profile profile;
  StopFlag stop;
  std::unique_ptr<Sampler> sampler;
  int child = 0;
  if (!command.empty()) {
    child = start_command(command);
    sa.opts.child = child;
    profile.title = join_command(command);
    sampler = std::make_unique<Sampler>(sa.opts, profile);
    if (!attach_started(*sampler, child, stop)) return finish_command(child, sampler.get());
  } else {
    int pid = parse_pid(pid_text);
    Process proc(pid);
    profile.title = proc.cmdline();
    sampler = std::make_unique<Sampler>(sa.opts, profile);
    sampler->add_target(pid);
    profile.pid = pid;
  }
  if (child) profile.pid = child;
  sa.describe(profile);

  const bool tty = isatty(STDERR_FILENO);
  const bool show = !quiet && (tty || g.verbosity > 0);
  if (!quiet)
    std::cerr << "pyinspect: sampling process " << profile.pid << " (" << profile.python << ") at "
              << fixed(sa.opts.rate_hz, 0) << " Hz"
              << (sa.opts.duration_s > 0 ? " for " + fixed(sa.opts.duration_s, 1) + " s" : ", Ctrl-C to stop")
              << (sa.opts.blocking ? ", pausing it at each sample" : "") << "\n";
  enter_realtime(sa.realtime);
  sampler->run(stop.flag(), std::chrono::milliseconds(tty ? 250 : 5000), [&](bool last) {
    if (show && !last) {
      if (tty)
        std::cerr << "\r\033[K" << progress_text(sampler->stats(), sampler->targets()) << std::flush;
      else
        std::cerr << "pyinspect: " << progress_text(sampler->stats(), sampler->targets()) << "\n";
    }
    return true;
  });
  if (show && tty) std::cerr << "\r\033[K";
  profile.stats = sampler->stats();

  if (output == "-") {
    write_profile(std::cout, profile, format);
    std::cout.flush();
  } else {
    AtomicFile f(output, output);
    write_profile(f.out, profile, format);
    f.commit();
  }
  const SamplerStats& s = profile.stats;
  std::ostringstream summary;
  summary << "pyinspect: " << (output == "-" ? std::string("wrote the profile") : "wrote " + output) << ": "
          << s.taken << " samples in " << fixed(s.duration_s, 2) << " s (" << fixed(s.rate_hz, 0) << " Hz asked, "
          << fixed(s.achieved_hz(), 1) << " achieved), " << s.thread_samples << " thread stacks";
  if (!sa.opts.idle) summary << ", " << s.idle_samples << " idle left out";
  summary << "; " << s.missed << " missed, " << s.failed << " failed";
  if (s.torn) summary << " (" << s.torn << " stacks changed while read and were read again)";
  if (s.taken) summary << "; pyinspect's CPU " << fixed(s.cpu_s * 1e6 / static_cast<double>(s.taken), 0) << " us a sample";
  if (sa.opts.blocking && s.taken)
    summary << ", target paused " << fixed(s.pause_s * 1e6 / static_cast<double>(s.taken), 0) << " us a sample";
  if (sampler->seen_pids().size() > 1) summary << "; " << sampler->seen_pids().size() << " processes";
  std::cerr << summary.str() << "\n";
  if (s.taken > 0 && s.thread_samples == 0)
    std::cerr << "pyinspect: no Python stack was running"
              << (sa.opts.idle ? "" : " (every thread was idle; --idle includes them)") << "\n";
  if (child) return finish_command(child, sampler.get());
  return 0;
}

}  // namespace pyinspect
