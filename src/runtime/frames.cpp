#include "runtime/frames.hpp"

#include <unordered_set>

#include "base/log.hpp"
#include "runtime/linetable.hpp"

namespace pyinspect {

namespace {
constexpr int kOwnedByGenerator = 1;  // FRAME_OWNED_BY_GENERATOR (3.11+)
}

FrameWalk walk_frames(const ObjectReader& r, RemoteAddr tstate, size_t max_frames) {
  const Layout& l = r.layout();
  const Memory& mem = r.memory();
  FrameWalk out;
  std::unordered_set<RemoteAddr> seen;
  RemoteAddr f;
  using Frames = Traits::Frames;
  Frames model = l.traits().frames;

  if (model == Frames::FrameObjects) {
    auto p = mem.read_ptr(tstate + l.require(F::ts_frame));
    if (!p) return {{}, true, "thread state unreadable"};
    f = *p;
  } else if (model == Frames::InterpreterFramesViaCFrame) {
    auto cframe = mem.read_ptr(tstate + l.require(F::ts_cframe));
    if (!cframe) return {{}, true, "thread state unreadable"};
    if (cframe->null()) return out;
    auto p = mem.read_ptr(*cframe + l.require(F::cframe_current_frame));
    if (!p) return {{}, true, "cframe unreadable"};
    f = *p;
  } else {
    auto p = mem.read_ptr(tstate + l.require(F::ts_current_frame));
    if (!p) return {{}, true, "thread state unreadable"};
    f = *p;
  }

  if (model == Frames::FrameObjects) {
    int64_t back = l.require(F::fo_back), code = l.require(F::fo_code), lasti = l.require(F::fo_lasti);
    int64_t need = std::max({back, code, lasti}) + 8;
    while (f) {
      if (out.frames.size() >= max_frames) return out.truncated = true, out.problem = "frame limit reached", out;
      if (!seen.insert(f).second) return out.truncated = true, out.problem = "frame chain loops", out;
      auto s = r.read_struct(f, need);
      if (!s) return out.truncated = true, out.problem = "frame unreadable", out;
      RawFrame raw;
      raw.frame = f;
      raw.code = *s->ptr(code);
      raw.lasti = *s->get<int32_t>(lasti);
      out.frames.push_back(raw);
      f = *s->ptr(back);
    }
    return out;
  }

  int64_t prev = l.require(F::if_previous), code = l.require(F::if_code), instr = l.require(F::if_instr),
          owner = l.require(F::if_owner);
  int64_t entry = l.off(F::if_is_entry);
  int64_t need = std::max({prev, code, instr, owner, entry}) + 8;
  while (f) {
    if (out.frames.size() >= max_frames) return out.truncated = true, out.problem = "frame limit reached", out;
    if (!seen.insert(f).second) return out.truncated = true, out.problem = "frame chain loops", out;
    auto s = r.read_struct(f, need);
    if (!s) return out.truncated = true, out.problem = "frame unreadable", out;
    RawFrame raw;
    raw.frame = f;
    uint64_t c = s->get<uint64_t>(code).value_or(0);
    // 3.14+: f_executable is a _PyStackRef whose low bits are tags.
    if (l.traits().tagged_code_pointer) c &= ~uint64_t{7};
    raw.code = RemoteAddr(c);
    raw.instr = *s->ptr(instr);
    raw.owner = *s->get<int8_t>(owner);
    if (entry >= 0) raw.is_entry = *s->get<uint8_t>(entry) != 0;
    out.frames.push_back(raw);
    f = *s->ptr(prev);
  }
  return out;
}

std::optional<std::vector<uint8_t>> FrameDecoder::read_bytes_object(RemoteAddr obj, size_t max) const {
  const Layout& l = r_.layout();
  bool py2 = l.traits().python2;
  if (!r_.has_type(obj, py2 ? r_.types().str27 : r_.types().bytes)) return std::nullopt;
  auto size = r_.memory().read_as<int64_t>(obj + l.off(F::ob_size));
  if (!size || *size < 0 || static_cast<uint64_t>(*size) > max) return std::nullopt;
  return r_.memory().read_bytes(obj + l.require(py2 ? F::str_sval : F::bytes_sval), static_cast<size_t>(*size));
}

const CodeInfo& FrameDecoder::code(RemoteAddr addr) {
  auto it = cache_.find(addr);
  if (it != cache_.end()) return it->second;
  CodeInfo c;
  const Layout& l = r_.layout();
  if (r_.has_type(addr, r_.types().code)) {
    if (auto s = r_.read_struct(addr, l.require(S::sz_PyCodeObject))) {
      c.valid = true;
      c.first_line = s->get<int32_t>(l.require(F::co_firstlineno)).value_or(0);
      if (auto p = s->ptr(l.require(F::co_name))) c.name = r_.read_str(*p, 1024).value_or("<unknown>");
      if (l.has(F::co_qualname))
        if (auto p = s->ptr(l.off(F::co_qualname))) c.qualname = r_.read_str(*p, 1024).value_or("");
      if (auto p = s->ptr(l.require(F::co_filename))) c.file = r_.read_str(*p, 4096).value_or("<unknown>");
      F table = l.traits().lines == Traits::LineTable::Lnotab ? F::co_lnotab : F::co_linetable;
      if (auto p = s->ptr(l.require(table)))
        c.line_table = read_bytes_object(*p, 1 << 24).value_or(std::vector<uint8_t>{});
      if (l.has(F::co_firsttraceable)) c.first_traceable = s->get<int32_t>(l.off(F::co_firsttraceable)).value_or(0);
    }
  }
  return cache_.emplace(addr, std::move(c)).first->second;
}

int FrameDecoder::line_for(const CodeInfo& c, int64_t addr) const {
  const Traits& t = r_.layout().traits();
  int a = static_cast<int>(std::clamp<int64_t>(addr, -1, 1 << 30));
  switch (t.lines) {
    case Traits::LineTable::Lnotab:
      return lnotab_line(c.line_table, c.first_line, a, t.lnotab_signed);
    case Traits::LineTable::Linetable310:
      return linetable310_line(c.line_table, c.first_line, a);
    case Traits::LineTable::Locations311:
      return locations311_line(c.line_table, c.first_line, a);
  }
  return -1;
}

std::optional<FrameInfo> FrameDecoder::decode(const RawFrame& f) {
  const Layout& l = r_.layout();
  const Traits& t = l.traits();
  if (t.frames != Traits::Frames::FrameObjects) {
    if (t.first_shim_owner >= 0 && f.owner >= t.first_shim_owner) return std::nullopt;  // shim frames
  }
  FrameInfo out;
  out.code_address = f.code.value();
  out.is_entry = f.is_entry;
  const CodeInfo& c = code(f.code);
  if (!c.valid) {
    LOG_DEBUG("frame " << log::hex(f.frame.value()) << ": " << log::hex(f.code.value()) << " is not a code object");
    if (t.frames != Traits::Frames::FrameObjects) return std::nullopt;  // not a code object: not a Python frame
    out.function = out.name = "<unknown>";
    out.file = "<unknown>";
    return out;
  }
  out.name = c.name;
  out.function = c.qualname.empty() ? c.name : c.qualname;
  out.file = c.file;
  out.first_line = c.first_line;
  int64_t addr;
  if (t.frames == Traits::Frames::FrameObjects) {
    addr = t.lasti_in_code_units ? f.lasti * 2 : f.lasti;
    if (f.lasti < 0) addr = -1;
  } else {
    RemoteAddr start = f.code + l.require(F::co_code_adaptive);
    int64_t units = (f.instr - start) / 2;
    // A frame pushed but not yet past its RESUME has no line of its own (3.11+ "incomplete").
    if (f.owner != kOwnedByGenerator && units < c.first_traceable) {
      LOG_DEBUG("frame " << log::hex(f.frame.value()) << " of " << c.name << " not started yet (instruction " << units
                         << " < " << c.first_traceable << "): skipped");
      return std::nullopt;
    }
    addr = units * 2;
  }
  out.line = line_for(c, addr);
  return out;
}

}  // namespace pyinspect
