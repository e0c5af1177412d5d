#include "output/stack_output.hpp"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "base/log.hpp"

namespace pyinspect {

namespace {
struct Colors {
  bool on;
  std::string bold() const { return on ? "\033[1m" : ""; }
  std::string dim() const { return on ? "\033[2m" : ""; }
  std::string green() const { return on ? "\033[32m" : ""; }
  std::string yellow() const { return on ? "\033[33m" : ""; }
  std::string red() const { return on ? "\033[31m" : ""; }
  std::string cyan() const { return on ? "\033[36m" : ""; }
  std::string reset() const { return on ? "\033[0m" : ""; }
};

std::string base_name(const std::string& p) {
  size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

std::string thread_label(const StackSnapshot& snap, int tid) {
  for (const auto& t : snap.threads)
    if (t.native_id == tid) return "\"" + t.name + "\" (" + std::to_string(tid) + ")";
  return "thread " + std::to_string(tid);
}

// "Lock 0x7f3a... (__main__.ledger_lock)"
std::string waited_object(const WaitInfo& w) {
  std::string s = w.kind;
  if (!w.type.empty() && w.type != w.kind && w.kind != "Lock" && w.kind != "RLock") s += " (" + w.type + ")";
  if (w.address) s += " " + log::hex(w.address);
  if (!w.name.empty()) s += " " + w.name;
  if (w.kind == "futex") s += " " + log::hex(w.futex);
  return s;
}

}  // namespace

// "Deadlock: "a" (1) waits for Lock 0x... x held by "b" (2), which waits for Lock 0x... y held by "a" (1)"
std::string deadlock_text(const StackSnapshot& snap, const std::vector<int>& cycle) {
  std::string s = "Deadlock: ";
  for (size_t i = 0; i < cycle.size(); ++i) {
    const ThreadInfo* t = nullptr;
    for (const auto& x : snap.threads)
      if (x.native_id == cycle[i]) t = &x;
    if (!t || !t->waiting_for) return s + "(incomplete)";
    s += (i ? ", which waits for " : thread_label(snap, cycle[i]) + " waits for ") + waited_object(*t->waiting_for) +
         " held by " + thread_label(snap, t->waiting_for->held_by);
  }
  return s;
}

// "(C) name (file.c:123)", "(C) name (libfoo.so)", "(C) ?? (libfoo.so+0x1234)".
std::string native_frame_text(const FrameInfo& f) {
  std::string s = "(C) " + (f.function.empty() ? std::string("??") : f.function);
  if (f.inlined) s += " [inlined]";
  if (f.function.empty())
    s += " (" + (f.library.empty() ? log::hex(f.address) : base_name(f.library) + "+" + log::hex(f.offset)) + ")";
  else if (f.line > 0 && !f.file.empty())
    s += " (" + base_name(f.file) + ":" + std::to_string(f.line) + ")";
  else if (!f.library.empty())
    s += " (" + base_name(f.library) + ")";
  return s;
}

void print_stack_text(std::ostream& out, const StackSnapshot& snap, const TextStyle& style) {
  Colors c{style.color};
  std::string cmd = snap.command.empty() ? base_name(snap.python.executable) : snap.command;
  if (cmd.size() > 100) cmd = cmd.substr(0, 97) + "...";
  out << c.bold() << "Process " << snap.pid << ": " << cmd << c.reset() << " — CPython " << snap.python.version
      << (snap.python.debug_build ? " (debug build)" : "") << " (layout from " << snap.python.layout_source << ")\n";
  if (snap.core) {
    out << "Core file " << snap.core->path;
    if (snap.core->signal) {
      out << ": " << c.bold() << c.red() << "killed by " << snap.core->signal_name;
      if (snap.core->address) out << " at " << log::hex(*snap.core->address);
      if (snap.core->thread) out << " in thread " << snap.core->thread;
      out << c.reset();
    } else {
      out << " (taken of a running process: no signal ended it)";
    }
    out << "\n";
  } else if (!snap.paused) {
    out << c.yellow() << "(read without pausing the target: the stacks may be inconsistent)" << c.reset() << "\n";
  }
  for (const auto& cycle : snap.deadlocks) out << c.bold() << c.yellow() << deadlock_text(snap, cycle) << c.reset() << "\n";
  int64_t last_interp = snap.threads.empty() ? 0 : snap.threads.front().interpreter_id;
  for (const auto& t : snap.threads) {
    if (snap.interpreters > 1 && t.interpreter_id != last_interp) {
      out << c.bold() << "Interpreter " << t.interpreter_id << c.reset() << "\n";
      last_interp = t.interpreter_id;
    }
    out << c.bold() << "Thread " << (t.native_id ? std::to_string(t.native_id) : std::string("?")) << c.reset();
    if (!t.name.empty()) out << " \"" << t.name << "\"";
    std::string state;
    if (t.holds_gil) state = c.green() + "holds GIL" + c.reset() + ", ";
    state += t.state;
    out << " (" << state;
    if (snap.interpreters > 1 && t.python) out << ", interpreter " << t.interpreter_id;
    if (!t.python) out << ", no Python";
    if (t.stopped == false) out << ", " << c.yellow() << "not stopped" << c.reset();
    if (snap.core && snap.core->thread && snap.core->thread == t.native_id)
      out << ", " << c.red() << "received " << snap.core->signal_name << c.reset();
    out << ")";
    if (style.show_addresses) out << " tstate=" << log::hex(t.tstate_address) << " ident=" << log::hex(t.thread_id);
    out << "\n";
    if (const auto& w = t.waiting_for) {
      out << "    " << c.yellow() << "Waiting for " << waited_object(*w) << c.reset();
      if (w->held_by) out << ", held by " << thread_label(snap, w->held_by);
      if (!w->how.empty()) out << c.dim() << " (" << (w->certainty == "likely" ? "likely: " : "") << w->how << ")" << c.reset();
      out << "\n";
    }
    for (const auto& h : t.holds) {
      out << "    " << c.dim() << "Holding " << h.kind << " " << log::hex(h.address) << (h.name.empty() ? "" : " " + h.name);
      if (!h.file.empty()) out << " (with-block at " << base_name(h.file) << ":" << h.line << ")";
      out << c.reset() << "\n";
    }
    if (t.frames.empty()) out << c.dim() << (snap.native ? "    (no frames)" : "    (no Python frames)") << c.reset() << "\n";
    for (const auto& f : t.frames) {
      if (f.is_native()) {
        out << "    " << c.dim() << native_frame_text(f) << c.reset();
        if (style.show_addresses) out << " pc=" << log::hex(f.address);
        out << "\n";
        continue;
      }
      if (f.unreadable) {
        out << "    " << c.yellow() << "??? (frame " << log::hex(f.frame_address) << ": its code object "
            << log::hex(f.code_address) << " could not be read)" << c.reset() << "\n";
        continue;
      }
      out << "    " << c.cyan() << f.function << c.reset() << " (" << f.file << ":"
          << (f.line >= 0 ? std::to_string(f.line) : std::string("?")) << ")";
      if (style.show_addresses) out << " code=" << log::hex(f.code_address);
      out << "\n";
      for (const auto& v : f.locals)
        out << "        " << c.dim() << (v.cell ? "(cell) " : "") << v.name << c.reset() << " = " << v.repr << "\n";
      if (!f.locals_problem.empty())
        out << "        " << c.yellow() << "[locals unavailable: " << f.locals_problem << "]" << c.reset() << "\n";
    }
    if (snap.native && !t.native_problem.empty())
      out << c.yellow() << "    [native stack " << (t.native ? "ends early: " : "unavailable: ") << t.native_problem << "]"
          << c.reset() << "\n";
    for (const auto& w : t.warnings) out << c.yellow() << "    [stack incomplete: " << w << "]" << c.reset() << "\n";
    if (t.torn) out << c.yellow() << "    [stack changed while it was read: it may be inconsistent]" << c.reset() << "\n";
  }
  if (snap.threads_not_stopped)
    out << c.yellow() << snap.threads_not_stopped
        << (snap.threads_not_stopped == 1 ? " thread" : " threads")
        << " did not stop (in uninterruptible sleep): read while running" << c.reset() << "\n";
  for (const auto& w : snap.warnings) out << c.yellow() << "warning: " << w << c.reset() << "\n";
}

nlohmann::json python_json(const PythonInfo& p) {
  return {{"implementation", p.implementation},
          {"version", p.version},
          {"binary", p.binary},
          {"shared_library", p.shared_library},
          {"executable", p.executable},
          {"layout_source", p.layout_source},
          {"debug_file", p.debug_file.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.debug_file)},
          {"interpreter_head", p.interpreter_head},
          {"debug_build", p.debug_build}};
}

nlohmann::json snapshot_json_header(int pid, const std::string& command, const PythonInfo& python, bool paused,
                                    int64_t pause_ns, int64_t elapsed_ns) {
  return {{"pid", pid},
          {"command", command},
          {"python", python_json(python)},
          {"paused", paused},
          {"pause_us", pause_ns / 1000.0},
          {"elapsed_us", elapsed_ns / 1000.0}};
}

nlohmann::json stack_json(const StackSnapshot& snap) {
  nlohmann::json threads = nlohmann::json::array();
  for (const auto& t : snap.threads) {
    nlohmann::json frames = nlohmann::json::array();
    for (const auto& f : t.frames) {
      if (f.is_native()) {
        nlohmann::json jf = {{"kind", "native"},
                             {"symbol", f.function.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.function)},
                             {"library", f.library.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.library)},
                             {"address", f.address},
                             {"offset", f.offset},
                             {"file", f.file.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.file)},
                             {"line", f.line > 0 ? nlohmann::json(f.line) : nlohmann::json(nullptr)},
                             {"inlined", f.inlined}};
        frames.push_back(jf);
        continue;
      }
      nlohmann::json jf = {{"kind", "python"},
                           {"function", f.function},
                           {"name", f.name},
                           {"file", f.file},
                           {"line", f.line >= 0 ? nlohmann::json(f.line) : nlohmann::json(nullptr)},
                           {"first_line", f.first_line}};
      if (f.unreadable) jf.update({{"unreadable", true}, {"frame_address", f.frame_address}, {"code_address", f.code_address}});
      if (f.locals_read) {
        nlohmann::json locals = nlohmann::json::array();
        for (const auto& v : f.locals)
          locals.push_back({{"name", v.name},
                            {"repr", v.repr},
                            {"type", v.type.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.type)},
                            {"address", v.address ? nlohmann::json(v.address) : nlohmann::json(nullptr)},
                            {"argument", v.argument},
                            {"cell", v.cell}});
        jf["locals"] = locals;
      }
      if (!f.locals_problem.empty()) jf["locals_problem"] = f.locals_problem;
      frames.push_back(jf);
    }
    threads.push_back({{"native_id", t.native_id ? nlohmann::json(t.native_id) : nlohmann::json(nullptr)},
                       {"thread_id", t.python ? nlohmann::json(t.thread_id) : nlohmann::json(nullptr)},
                       {"name", t.name},
                       {"name_source", t.name_from_threading ? "threading" : "kernel"},
                       {"holds_gil", t.holds_gil},
                       {"state", t.state},
                       {"interpreter_id", t.interpreter_id},
                       {"stopped", t.stopped ? nlohmann::json(*t.stopped) : nlohmann::json(nullptr)},
                       {"torn", t.torn},
                       {"truncated", t.truncated},
                       {"warnings", t.warnings},
                       {"frames", frames}});
    if (snap.waits_read) {
      auto& jt = threads.back();
      if (const auto& w = t.waiting_for) {
        auto opt = [](const std::string& x) { return x.empty() ? nlohmann::json(nullptr) : nlohmann::json(x); };
        jt["waiting_for"] = {{"kind", w->kind},
                             {"type", opt(w->type)},
                             {"address", w->address ? nlohmann::json(w->address) : nlohmann::json(nullptr)},
                             {"futex", w->futex ? nlohmann::json(w->futex) : nlohmann::json(nullptr)},
                             {"name", opt(w->name)},
                             {"held_by", w->held_by ? nlohmann::json(w->held_by) : nlohmann::json(nullptr)},
                             {"certainty", w->certainty},
                             {"how", w->how}};
      } else {
        jt["waiting_for"] = nullptr;
      }
      nlohmann::json holds = nlohmann::json::array();
      for (const auto& h : t.holds)
        holds.push_back({{"kind", h.kind},
                         {"address", h.address},
                         {"name", h.name.empty() ? nlohmann::json(nullptr) : nlohmann::json(h.name)},
                         {"file", h.file.empty() ? nlohmann::json(nullptr) : nlohmann::json(h.file)},
                         {"line", h.line > 0 ? nlohmann::json(h.line) : nlohmann::json(nullptr)}});
      jt["holds"] = holds;
    }
    if (snap.native) {
      threads.back()["python"] = t.python;
      threads.back()["native"] = t.native;
      threads.back()["native_problem"] = t.native_problem.empty() ? nlohmann::json(nullptr) : nlohmann::json(t.native_problem);
      threads.back()["python_frames_unplaced"] = t.python_frames_unplaced;
    }
  }
  nlohmann::json out = snapshot_json_header(snap.pid, snap.command, snap.python, snap.paused, snap.pause_ns,
                                            snap.elapsed_ns);
  out.update({{"interpreters", snap.interpreters},
              {"threads_not_stopped", snap.threads_not_stopped},
              {"torn", snap.torn},
              {"native", snap.native},
              {"deadlocks", snap.deadlocks},
              {"warnings", snap.warnings},
              {"threads", threads}});
  out["core"] = nullptr;
  if (const auto& c = snap.core) {
    out["core"] = {{"path", c->path},
                   {"signal", c->signal ? nlohmann::json(c->signal) : nlohmann::json(nullptr)},
                   {"signal_name", c->signal ? nlohmann::json(c->signal_name) : nlohmann::json(nullptr)},
                   {"signal_code", c->signal ? nlohmann::json(c->signal_code) : nlohmann::json(nullptr)},
                   {"thread", c->thread ? nlohmann::json(c->thread) : nlohmann::json(nullptr)},
                   {"address", c->address ? nlohmann::json(*c->address) : nlohmann::json(nullptr)}};
  }
  return out;
}

}  // namespace pyinspect
