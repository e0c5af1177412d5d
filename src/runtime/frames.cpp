#include "runtime/frames.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "base/log.hpp"
#include "runtime/linetable.hpp"

namespace pyinspect {

std::optional<RemoteAddr> interp_frame_code(const ObjectReader& r, RemoteAddr iframe) {
  const Layout& l = r.layout();
  auto code = r.memory().read_as<uint64_t>(iframe + l.require(F::if_code));
  if (!code) return std::nullopt;
  RemoteAddr c = l.facts().untag(*code);
  if (c.null()) return std::nullopt;
  return c;
}

std::string local_name(const ObjectReader& r, RemoteAddr code, int64_t i) {
  const Layout& l = r.layout();
  std::vector<F> tuples;
  if (l.has(F::co_localsplusnames))
    tuples = {F::co_localsplusnames};
  else
    tuples = {F::co_varnames, F::co_cellvars, F::co_freevars};
  for (F f : tuples) {
    if (!l.has(f)) continue;
    auto t = r.memory().read_ptr(code + l.off(f));
    if (!t || t->null()) continue;
    auto n = r.memory().read_as<int64_t>(*t + l.off(F::ob_size));
    if (!n || *n < 0) return "local " + std::to_string(i);
    if (i < *n) {
      auto item = r.memory().read_ptr(*t + l.require(F::tuple_item) + i * 8);
      auto name = item ? r.read_str(*item, 60) : std::nullopt;
      return name ? *name : "local " + std::to_string(i);
    }
    i -= *n;
  }
  return "stack";
}

std::optional<RemoteAddr> current_frame(const ObjectReader& r, RemoteAddr tstate, std::string* problem) {
  const Layout& l = r.layout();
  const Memory& mem = r.memory();
  using Frames = Facts::Frames;
  switch (l.facts().frames) {
    case Frames::FrameObjects:
      if (auto p = mem.read_ptr(tstate + l.require(F::ts_frame))) return p;
      break;
    case Frames::InterpreterFramesViaCFrame: {
      auto cframe = mem.read_ptr(tstate + l.require(F::ts_cframe));
      if (!cframe) break;
      if (cframe->null()) return RemoteAddr();
      if (auto p = mem.read_ptr(*cframe + l.require(F::cframe_current_frame))) return p;
      if (problem) *problem = "cframe unreadable";
      return std::nullopt;
    }
    case Frames::InterpreterFrames:
      if (auto p = mem.read_ptr(tstate + l.require(F::ts_current_frame))) return p;
      break;
  }
  if (problem) *problem = "thread state unreadable";
  return std::nullopt;
}

namespace {
// A frame's fields, read in one call into a fixed buffer: no allocation per frame (a profiler
// walks hundreds of frames at each instant).
struct FrameBytes {
  static constexpr int64_t kMax = 512;
  uint8_t b[kMax];
  template <class T>
  T get(int64_t off) const {
    T v;
    std::memcpy(&v, b + off, sizeof v);
    return v;
  }
  RemoteAddr ptr(int64_t off) const { return RemoteAddr(get<uint64_t>(off)); }
};

// A chain that loops, found without remembering every frame (Brent's cycle detection: compare
// each frame with one saved at power-of-two steps). Once found, the walk is cut where the first
// frame repeats, as if each frame had been checked against all before it.
class LoopCheck {
 public:
  bool repeats(RemoteAddr f) {
    if (f == saved_) return true;
    if (++steps_ == power_) {
      saved_ = f;
      power_ *= 2;
      steps_ = 0;
    }
    return false;
  }

 private:
  RemoteAddr saved_;
  size_t power_ = 1, steps_ = 0;
};

// Cuts the walk where a frame first repeats; false if none does.
bool cut_at_first_repeat(FrameWalk& out) {
  std::unordered_set<RemoteAddr> seen;
  for (size_t i = 0; i < out.frames.size(); ++i)
    if (!seen.insert(out.frames[i].frame).second) {
      out.frames.resize(i);
      out.truncated = true;
      out.at_limit = false;
      out.problem = "frame chain loops";
      return true;
    }
  return false;
}

// The walk met a frame it had seen (found late, perhaps: cut where the first one repeats).
FrameWalk& loops(FrameWalk& out) {
  cut_at_first_repeat(out);
  out.truncated = true;
  out.at_limit = false;
  out.problem = "frame chain loops";
  return out;
}

// The walk reached max_frames: a loop not yet found by LoopCheck, or a deep stack.
FrameWalk& at_limit(FrameWalk& out) {
  if (cut_at_first_repeat(out)) return out;
  out.truncated = out.at_limit = true;
  out.problem = "frame limit reached";
  return out;
}
}  // namespace

FrameWalk walk_frames(const ObjectReader& r, RemoteAddr tstate, size_t max_frames) {
  const Layout& l = r.layout();
  const Memory& mem = r.memory();
  FrameWalk out;
  LoopCheck loop;
  std::string problem;
  auto top = current_frame(r, tstate, &problem);
  if (!top) return {{}, true, false, problem};
  RemoteAddr f = *top;
  using Frames = Facts::Frames;
  Frames model = l.facts().frames;
  FrameBytes s;

  if (model == Frames::FrameObjects) {
    int64_t back = l.require(F::fo_back), code = l.require(F::fo_code), lasti = l.require(F::fo_lasti);
    int64_t refcnt = l.require(F::ob_refcnt);
    int64_t need = std::max({back, code, lasti, refcnt}) + 8;
    if (need > FrameBytes::kMax) return {{}, true, false, "frame layout larger than expected"};
    while (f) {
      if (out.frames.size() >= max_frames) return at_limit(out);
      if (loop.repeats(f)) return loops(out);
      if (!mem.read(f, s.b, static_cast<size_t>(need))) return out.truncated = true, out.problem = "frame unreadable", out;
      // A frame that returned keeps its f_code and, on the free list, links the next free frame
      // through f_back: a chain read while it changed can walk on into frames that are not
      // running. Every frame object that runs holds a reference to itself; a freed one has none.
      if (s.get<int64_t>(refcnt) <= 0) return out.truncated = true, out.problem = "a freed frame in the chain", out;
      RawFrame raw;
      raw.frame = f;
      raw.code = s.ptr(code);
      raw.lasti = s.get<int32_t>(lasti);
      out.frames.push_back(raw);
      f = s.ptr(back);
    }
    return out;
  }

  int64_t prev = l.require(F::if_previous), code = l.require(F::if_code), instr = l.require(F::if_instr),
          owner = l.require(F::if_owner);
  int64_t entry = l.off(F::if_is_entry);
  int64_t need = std::max({prev, code, instr, owner, entry}) + 8;
  if (need > FrameBytes::kMax) return {{}, true, false, "frame layout larger than expected"};
  while (f) {
    if (out.frames.size() >= max_frames) return at_limit(out);
    if (loop.repeats(f)) return loops(out);
    if (!mem.read(f, s.b, static_cast<size_t>(need))) return out.truncated = true, out.problem = "frame unreadable", out;
    RawFrame raw;
    raw.frame = f;
    raw.code = l.facts().untag(s.get<uint64_t>(code));
    raw.instr = s.ptr(instr);
    raw.owner = s.get<int8_t>(owner);
    if (entry >= 0) raw.is_entry = s.get<uint8_t>(entry) != 0;
    out.frames.push_back(raw);
    f = s.ptr(prev);
  }
  return out;
}

std::optional<RawFrame> read_frame(const ObjectReader& r, RemoteAddr f) {
  const Layout& l = r.layout();
  const Memory& mem = r.memory();
  RawFrame raw;
  raw.frame = f;
  if (l.facts().frames == Facts::Frames::FrameObjects) {
    auto code = mem.read_ptr(f + l.require(F::fo_code));
    auto lasti = mem.read_as<int32_t>(f + l.require(F::fo_lasti));
    if (!code || !lasti) return std::nullopt;
    raw.code = *code;
    raw.lasti = *lasti;
    return raw;
  }
  auto code = mem.read_as<uint64_t>(f + l.require(F::if_code));
  auto instr = mem.read_ptr(f + l.require(F::if_instr));
  auto owner = mem.read_as<int8_t>(f + l.require(F::if_owner));
  if (!code || !instr || !owner) return std::nullopt;
  raw.code = l.facts().untag(*code);
  raw.instr = *instr;
  raw.owner = *owner;
  return raw;
}

bool is_shim(const Facts& facts, const RawFrame& f) {
  return facts.frames != Facts::Frames::FrameObjects && facts.first_shim_owner >= 0 &&
         f.owner >= facts.first_shim_owner;
}

bool ends_eval_call(const Facts& facts, const std::vector<RawFrame>& frames, size_t i) {
  switch (facts.eval_calls) {
    case Facts::EvalCalls::PerFrame:
      return true;
    case Facts::EvalCalls::EntryFlag:
      return frames[i].is_entry;
    case Facts::EvalCalls::ShimFrames:
      return i + 1 == frames.size() || is_shim(facts, frames[i + 1]);
  }
  return true;
}

std::optional<uint64_t> FrameDecoder::fingerprint(RemoteAddr addr) const {
  const Layout& l = r_.layout();
  if (print_offsets_.empty()) {
    F table = l.facts().lines == Facts::LineTable::Lnotab ? F::co_lnotab : F::co_linetable;
    print_offsets_ = {l.require(F::ob_type), l.require(F::co_name), l.require(F::co_filename), l.require(table)};
    if (l.has(F::co_qualname)) print_offsets_.push_back(l.off(F::co_qualname));
  }
  int64_t first_line = l.require(F::co_firstlineno);
  int64_t need = std::max(*std::max_element(print_offsets_.begin(), print_offsets_.end()) + 8, first_line + 4);
  FrameBytes s;
  if (need > FrameBytes::kMax || !r_.memory().read(addr, s.b, static_cast<size_t>(need))) return std::nullopt;
  uint64_t h = static_cast<uint64_t>(s.get<int32_t>(first_line));
  for (int64_t o : print_offsets_) h = (h ^ s.get<uint64_t>(o)) * 0x100000001b3ull;
  return h;
}

CodeInfo FrameDecoder::decode_code(RemoteAddr addr) {
  CodeInfo c;
  c.serial = ++serial_;
  c.checked = generation_;
  const Layout& l = r_.layout();
  if (!r_.has_type(addr, r_.types().code)) return c;
  auto s = r_.read_struct(addr, l.require(S::sz_PyCodeObject));
  if (!s) return c;
  c.valid = true;
  c.first_line = s->get<int32_t>(l.require(F::co_firstlineno)).value_or(0);
  std::optional<std::string> name, qualname, file;
  std::optional<std::vector<uint8_t>> table_bytes;
  if (auto p = s->ptr(l.require(F::co_name))) name = r_.read_str(*p, 1024);
  c.name = name.value_or("<unknown>");
  bool qual_ok = true;
  if (l.has(F::co_qualname))
    if (auto p = s->ptr(l.off(F::co_qualname))) {
      qualname = r_.read_str(*p, 1024);
      qual_ok = qualname.has_value();
      c.qualname = qualname.value_or("");
    }
  if (auto p = s->ptr(l.require(F::co_filename))) file = r_.read_str(*p, 4096);
  c.file = file.value_or("<unknown>");
  F table = l.facts().lines == Facts::LineTable::Lnotab ? F::co_lnotab : F::co_linetable;
  if (auto p = s->ptr(l.require(table))) table_bytes = r_.read_bytes_object(*p, 1 << 24);
  c.line_table = table_bytes.value_or(std::vector<uint8_t>{});
  c.complete = name && qual_ok && file && table_bytes;
  if (l.has(F::co_firsttraceable)) c.first_traceable = s->get<int32_t>(l.off(F::co_firsttraceable)).value_or(0);
  if (generation_ > 0) c.fingerprint = fingerprint(addr).value_or(0);
  return c;
}

const CodeInfo& FrameDecoder::code(RemoteAddr addr) {
  auto it = cache_.find(addr);
  if (it != cache_.end()) {
    CodeInfo& c = it->second;
    if (c.checked == generation_) return c;
    // Revalidation (generation > 0 only): the same object still, or another at its address?
    auto now = fingerprint(addr);
    if (now && c.complete && *now == c.fingerprint) {
      c.checked = generation_;
      return c;
    }
    it->second = decode_code(addr);
    return it->second;
  }
  return cache_.emplace(addr, decode_code(addr)).first->second;
}

int FrameDecoder::line_for(const CodeInfo& c, int64_t addr) const {
  const Facts& t = r_.layout().facts();
  int a = static_cast<int>(std::clamp<int64_t>(addr, -1, 1 << 30));
  switch (t.lines) {
    case Facts::LineTable::Lnotab:
      return lnotab_line(c.line_table, c.first_line, a, t.lnotab_signed);
    case Facts::LineTable::Linetable310:
      return linetable310_line(c.line_table, c.first_line, a);
    case Facts::LineTable::Locations311:
      return locations311_line(c.line_table, c.first_line, a);
  }
  return -1;
}

std::optional<FrameDecoder::Location> FrameDecoder::locate(const RawFrame& f) {
  const Layout& l = r_.layout();
  const Facts& t = l.facts();
  const bool iframes = t.frames != Facts::Frames::FrameObjects;
  if (iframes && t.first_shim_owner >= 0 && f.owner >= t.first_shim_owner) return std::nullopt;  // shim frames
  const CodeInfo& c = code(f.code);
  if (!c.valid) return Location{&c, -1};
  int64_t addr;
  if (!iframes) {
    addr = t.lasti_in_code_units ? f.lasti * 2 : f.lasti;
    if (f.lasti < 0) addr = -1;
  } else {
    RemoteAddr start = f.code + l.require(F::co_code_adaptive);
    int64_t units = (f.instr - start) / 2;
    // A frame pushed but not yet past its RESUME has no line of its own (3.11+ "incomplete").
    if (f.owner != t.frame_owned_by_generator && units < c.first_traceable) {
      LOG_DEBUG("frame " << log::hex(f.frame.value()) << " of " << c.name << " not started yet (instruction " << units
                         << " < " << c.first_traceable << "): skipped");
      return std::nullopt;
    }
    addr = units * 2;
  }
  auto [it, added] = c.lines.try_emplace(addr, 0);
  if (added) it->second = line_for(c, addr);
  return Location{&c, it->second};
}

std::optional<FrameInfo> FrameDecoder::decode(const RawFrame& f) {
  auto where = locate(f);
  if (!where) return std::nullopt;
  const CodeInfo& c = *where->code;
  FrameInfo out;
  out.code_address = f.code.value();
  out.frame_address = f.frame.value();
  out.is_entry = f.is_entry;
  if (!c.valid) {
    // The frames around it are still right: keep its place, say it could not be read.
    LOG_DEBUG("frame " << log::hex(f.frame.value()) << ": " << log::hex(f.code.value()) << " is not a code object");
    out.unreadable = true;
    out.function = out.name = out.file = "???";
    return out;
  }
  out.name = c.name;
  out.function = c.qualname.empty() ? c.name : c.qualname;
  out.file = c.file;
  out.first_line = c.first_line;
  out.line = where->line;
  return out;
}

}  // namespace pyinspect
