#include "output/profile_output.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace pyinspect {

namespace {
using json = nlohmann::json;

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr uint32_t kNoFrame = UINT32_MAX;                  // the flame graph's root, "all"

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no
// surrogates, nothing past U+10FFFF), 0 if none starts there; its code point in *cp.
size_t utf8_sequence(std::string_view s, size_t i, uint32_t* cp) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  uint32_t v;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2, v = c & 0x1Fu;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3, v = c & 0x0Fu;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4, v = c & 0x07u;
  else
    return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    v = v << 6 | (byte(i + k) & 0x3Fu);
  }
  if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

// Target strings are bytes (2.7 byte strings, a torn read): JSON and XML need UTF-8, and XML
// also refuses most control characters. Each bad byte or character becomes U+FFFD.
std::string clean_text(std::string_view s, bool xml) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_sequence(s, i, &cp);
    bool control = cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r';
    bool bad = n == 0 || (xml && (control || cp == 0xFFFE || cp == 0xFFFF));
    if (bad) {
      out += kReplacement;
      i += n ? n : 1;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

std::string valid_utf8(std::string_view s) { return clean_text(s, false); }

// Escapes text already cleaned for XML, for an attribute value or character data alike.
void append_xml(std::string& out, std::string_view s) {
  for (char c : s) switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      // Kept as references: an attribute value's line breaks and tabs would otherwise be read as spaces.
      case '\n': out += "&#10;"; break;
      case '\r': out += "&#13;"; break;
      case '\t': out += "&#9;"; break;
      default: out += c;
    }
}

size_t code_points(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// The first `n` code points of valid UTF-8.
std::string_view first_code_points(std::string_view s, size_t n) {
  size_t i = 0;
  for (; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && n-- == 0) break;
  return s.substr(0, i);
}

// A label cut to the code points that fit, ending in ".." when cut: the script's fit() does the
// same after a zoom, with the same estimate of a character's width.
std::string fit_label(std::string_view label, double px, double char_px) {
  double room = (px - 6) / char_px;
  if (room < 3) return "";
  auto n = static_cast<size_t>(room);
  if (code_points(label) <= n) return std::string(label);
  return std::string(first_code_points(label, n - 2)) + "..";
}

std::string folded_label(const ProfileFrame& f) {
  std::string s = valid_utf8(f.label());
  for (char& c : s)
    if (c == ';')
      c = ':';
    else if (c == '\n' || c == '\r')
      c = ' ';
  return s;
}

// Stacks with samples in the order a flame graph lays them out: by their frames' labels, position
// by position, a stack before those it is a prefix of. Frames are compared by their rank among
// the labels, so sorting costs integer comparisons only.
std::vector<uint32_t> stacks_in_label_order(const Profile& p) {
  std::vector<std::string> labels(p.frames.size());
  for (size_t i = 0; i < p.frames.size(); ++i) labels[i] = p.frames[i].label();
  std::vector<uint32_t> by_label(p.frames.size());
  for (uint32_t i = 0; i < by_label.size(); ++i) by_label[i] = i;
  std::sort(by_label.begin(), by_label.end(), [&](uint32_t a, uint32_t b) {
    return labels[a] != labels[b] ? labels[a] < labels[b] : a < b;
  });
  std::vector<uint32_t> rank(p.frames.size());
  for (uint32_t i = 0; i < by_label.size(); ++i) rank[by_label[i]] = i;

  // Sorted as (frames, length, index) so that a comparison reaches a stack's frames in one step,
  // not through the Profile's table: on 100k stacks the sort is most of a writer's time.
  struct Entry {
    const uint32_t* frames;
    uint32_t size, index;
  };
  std::vector<Entry> entries;
  entries.reserve(p.stacks.size());
  for (uint32_t i = 0; i < p.stacks.size(); ++i)
    if (p.stacks[i].count)
      entries.push_back({p.stacks[i].frames.data(), static_cast<uint32_t>(p.stacks[i].frames.size()), i});
  std::sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
    uint32_t n = std::min(a.size, b.size);
    for (uint32_t i = 0; i < n; ++i)
      if (a.frames[i] != b.frames[i]) return rank[a.frames[i]] < rank[b.frames[i]];
    return a.size < b.size;
  });
  std::vector<uint32_t> order(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) order[i] = entries[i].index;
  return order;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

const char* kind_name(ProfileFrame::Kind k) {
  switch (k) {
    case ProfileFrame::Kind::Python: return "python";
    case ProfileFrame::Kind::Thread: return "thread";
    case ProfileFrame::Kind::Process: return "process";
    case ProfileFrame::Kind::Native: return "native";
  }
  return "";
}

// What the profile is of, for names: the command, else the pid.
std::string profile_name(const Profile& p) {
  if (!p.title.empty()) return p.title;
  if (p.pid) return "pid " + std::to_string(p.pid);
  return "pyinspect profile";
}
}  // namespace

void write_folded(std::ostream& out, const Profile& p) {
  std::vector<std::string> labels(p.frames.size());
  for (size_t i = 0; i < p.frames.size(); ++i) labels[i] = folded_label(p.frames[i]);
  // Written in blocks: a profile of 100k deep stacks is hundreds of MB of text, and an ostream
  // taking it a label at a time would be the slowest part of `record`.
  constexpr size_t kBlock = 1 << 20;
  std::string buf;
  buf.reserve(kBlock + 4096);
  char num[24];
  for (const auto& s : p.stacks) {
    if (!s.count) continue;
    // The sampler records no empty stack; a line needs a frame to parse, and the count must stay.
    if (s.frames.empty()) buf += "(no frames)";
    for (size_t i = 0; i < s.frames.size(); ++i) {
      if (i) buf += ';';
      buf += labels[s.frames[i]];
    }
    buf += ' ';
    buf.append(num, std::to_chars(num, num + sizeof num, s.count).ptr);
    buf += '\n';
    if (buf.size() >= kBlock) {
      out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      buf.clear();
    }
  }
  out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
}

json speedscope_json(const Profile& p) {
  json frames = json::array();
  for (const auto& f : p.frames) {
    // speedscope shows file and line beside the name: a Python frame's name is its function alone.
    json j = {{"name", valid_utf8(!f.is_root() ? f.function : f.label())}};
    if (!f.file.empty()) j["file"] = valid_utf8(f.file);
    if (f.line >= 0) j["line"] = f.line;
    frames.push_back(std::move(j));
  }

  // A profile per thread: the leading root frames up to the last Thread one (a Process root
  // before it, with --subprocesses) name the profile a stack belongs to, and are left out of its
  // samples. Without Thread roots every stack goes to one profile, its roots kept.
  struct Group {
    std::vector<uint32_t> key;
    std::vector<uint32_t> stacks;
    uint64_t total = 0;
    std::string name;
  };
  std::vector<Group> groups;
  std::map<std::vector<uint32_t>, size_t> group_of;
  for (uint32_t i : stacks_in_label_order(p)) {
    const auto& s = p.stacks[i];
    size_t k = 0;
    for (size_t d = 0; d < s.frames.size() && p.frames[s.frames[d]].is_root(); ++d)
      if (p.frames[s.frames[d]].kind == ProfileFrame::Kind::Thread) k = d + 1;
    std::vector<uint32_t> key(s.frames.begin(), s.frames.begin() + static_cast<long>(k));
    auto [it, added] = group_of.emplace(key, groups.size());
    if (added) groups.push_back(Group{std::move(key), {}, 0, {}});
    Group& g = groups[it->second];
    g.stacks.push_back(i);
    g.total += s.count;
  }
  for (auto& g : groups) {
    for (uint32_t f : g.key) g.name += (g.name.empty() ? "" : " / ") + p.frames[f].label();
    if (g.name.empty()) g.name = profile_name(p);
  }
  // The busiest thread first: speedscope opens the first profile.
  std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.total > b.total; });
  if (groups.empty()) groups.push_back(Group{{}, {}, 0, profile_name(p)});

  json profiles = json::array();
  for (const auto& g : groups) {
    json::array_t samples, weights;
    samples.reserve(g.stacks.size());
    weights.reserve(g.stacks.size());
    for (uint32_t i : g.stacks) {
      const auto& s = p.stacks[i];
      json::array_t sample;
      sample.reserve(s.frames.size() - g.key.size());
      for (size_t d = g.key.size(); d < s.frames.size(); ++d) sample.emplace_back(s.frames[d]);
      samples.emplace_back(std::move(sample));
      weights.emplace_back(s.count);
    }
    // Weighted in samples ("none"): counts stay exact, where seconds (count / rate) would round.
    profiles.push_back({{"type", "sampled"},
                        {"name", valid_utf8(g.name)},
                        {"unit", "none"},
                        {"startValue", 0},
                        {"endValue", g.total},
                        {"samples", std::move(samples)},
                        {"weights", std::move(weights)}});
  }
  return {{"$schema", "https://www.speedscope.app/file-format-schema.json"},
          {"shared", {{"frames", std::move(frames)}}},
          {"profiles", std::move(profiles)},
          {"name", valid_utf8(profile_name(p))},
          {"activeProfileIndex", 0},
          {"exporter", std::string("pyinspect ") + PYINSPECT_VERSION}};
}

json profile_json(const Profile& p) {
  const SamplerStats& s = p.stats;
  json stats = {{"rate_hz", s.rate_hz},
                {"achieved_hz", s.achieved_hz()},
                {"duration_s", s.duration_s},
                {"ticks", s.ticks},
                {"taken", s.taken},
                {"missed", s.missed},
                {"failed", s.failed},
                {"torn", s.torn},
                {"thread_samples", s.thread_samples},
                {"idle_samples", s.idle_samples},
                {"gil_samples", s.gil_samples},
                {"gil_instants", s.gil_instants},
                {"empty", s.empty},
                {"cpu_s", s.cpu_s},
                {"pause_s", s.pause_s}};
  json frames = json::array();
  for (const auto& f : p.frames)
    frames.push_back({{"kind", kind_name(f.kind)},
                      {"function", valid_utf8(f.function)},
                      {"file", f.file.empty() ? json(nullptr) : json(valid_utf8(f.file))},
                      {"line", f.line >= 0 ? json(f.line) : json(nullptr)}});
  json stacks = json::array();
  for (const auto& st : p.stacks) stacks.push_back({{"frames", st.frames}, {"count", st.count}});
  return {{"pyinspect_profile", 1},
          {"exporter", std::string("pyinspect ") + PYINSPECT_VERSION},
          {"pid", p.pid},
          {"title", valid_utf8(p.title)},
          {"python", valid_utf8(p.python)},
          {"blocking", p.blocking},
          {"idle", p.idle},
          {"gil_only", p.gil_only},
          {"by_function", p.by_function},
          {"total_samples", p.total()},
          {"stats", std::move(stats)},
          {"frames", std::move(frames)},
          {"stacks", std::move(stacks)}};
}

// ---- The flame graph -------------------------------------------------------------------------

namespace {

struct FlameNode {
  uint32_t frame;  // kNoFrame for the root
  uint32_t depth;  // 0: the root
  uint64_t x;      // samples left of it, from the root's start
  uint64_t total;  // samples at or under it
};

struct FlameTree {
  std::vector<FlameNode> nodes;  // those drawn, by depth then x
  uint64_t total = 0;
  uint64_t elided = 0;  // nodes too narrow to draw
  uint32_t depth = 0;   // the deepest drawn
};

// Merges the stacks into the tree a flame graph draws, keeping only the nodes wide enough to be
// drawn. The stacks are taken in label order, so a node is a run of consecutive stacks: it opens
// where a stack first has its prefix and closes, with its total known, when a stack no longer
// does. The open path is all that is held, however many nodes the whole tree has.
FlameTree flame_tree(const Profile& p) {
  FlameTree t;
  t.total = p.total();
  struct Open {
    uint32_t frame;
    uint64_t x, total, children;
  };
  std::vector<Open> path{{kNoFrame, 0, 0, 0}};
  auto close = [&] {
    Open e = path.back();
    path.pop_back();
    auto depth = static_cast<uint32_t>(path.size());
    path.back().total += e.total;
    path.back().children += e.total;
    if (e.total * kFlameMinShare >= t.total) {
      t.nodes.push_back({e.frame, depth, e.x, e.total});
      t.depth = std::max(t.depth, depth);
    } else {
      ++t.elided;
    }
  };
  for (uint32_t i : stacks_in_label_order(p)) {
    const auto& f = p.stacks[i].frames;
    size_t common = 0;
    while (common < f.size() && common + 1 < path.size() && path[common + 1].frame == f[common]) ++common;
    while (path.size() > common + 1) close();
    for (size_t d = common; d < f.size(); ++d) {
      // A child starts where its earlier siblings end; its parent's own samples go to the right.
      uint64_t x = path.back().x + path.back().children;
      path.push_back({f[d], x, 0, 0});
    }
    path.back().total += p.stacks[i].count;
  }
  while (path.size() > 1) close();
  if (t.total) t.nodes.push_back({kNoFrame, 0, 0, path[0].total});
  std::sort(t.nodes.begin(), t.nodes.end(), [](const FlameNode& a, const FlameNode& b) {
    return a.depth != b.depth ? a.depth < b.depth : a.x < b.x;
  });
  return t;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

// Warm hues from the function's name (not its line: a function keeps its colour wherever it is);
// the roots (all, threads, processes) in a pale blue-grey so they read as structure.
std::string frame_fill(const Profile& p, uint32_t frame) {
  uint64_t h = fnv1a(frame == kNoFrame ? std::string_view("all") : std::string_view(p.frames[frame].function));
  auto part = [&](int shift) { return static_cast<double>((h >> shift) & 0xFFFF) / 65535.0; };
  int r, g, b;
  if (frame == kNoFrame || p.frames[frame].is_root()) {
    r = 190 + static_cast<int>(20 * part(0));
    g = r + 5;
    b = 215 + static_cast<int>(25 * part(16));
  } else if (p.frames[frame].kind == ProfileFrame::Kind::Native) {
    // C frames in greens, apart from the Python frames' warm hues.
    r = 80 + static_cast<int>(60 * part(0));
    g = 170 + static_cast<int>(60 * part(16));
    b = 60 + static_cast<int>(40 * part(32));
  } else {
    r = 205 + static_cast<int>(50 * part(0));
    g = static_cast<int>(230 * part(16));
    b = static_cast<int>(55 * part(32));
  }
  return "rgb(" + std::to_string(r) + "," + std::to_string(g) + "," + std::to_string(b) + ")";
}

std::string samples_text(uint64_t n, uint64_t total) {
  return std::to_string(n) + (n == 1 ? " sample (" : " samples (") +
         fixed(total ? 100.0 * static_cast<double>(n) / static_cast<double>(total) : 0, 2) + "%)";
}

std::string flame_subtitle(const Profile& p, const FlameTree& t) {
  const SamplerStats& s = p.stats;
  std::vector<std::string> parts;
  if (p.pid) parts.push_back("pid " + std::to_string(p.pid));
  if (!p.python.empty()) parts.push_back(p.python);
  parts.push_back(fixed(s.duration_s, 2) + " s at " + fixed(s.rate_hz, 0) + " Hz asked, " + fixed(s.achieved_hz(), 1) +
                  " achieved");
  parts.push_back(std::to_string(s.taken) + " samples, " + std::to_string(t.total) + " thread stacks, " +
                  std::to_string(s.missed) + " missed, " + std::to_string(s.failed) + " failed");
  parts.push_back(p.blocking ? "blocking" : "nonblocking");
  parts.push_back(p.idle ? "idle threads included" : "idle threads left out");
  if (p.gil_only) parts.push_back("GIL holders only");
  if (p.by_function) parts.push_back("by function");
  if (t.elided)
    parts.push_back(std::to_string(t.elided) + (t.elided == 1 ? " tiny frame" : " tiny frames") + " not drawn");
  std::string out;
  for (const auto& x : parts) out += (out.empty() ? "" : " | ") + x;
  return out;
}

// The script and the style are fixed text; what varies is in the elements' attributes.
constexpr std::string_view kStyle = R"CSS(
text { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; fill: #000; }
#title { font: 17px sans-serif; text-anchor: middle; }
#subtitle { font: 12px sans-serif; text-anchor: middle; fill: #333; }
#details, #matched { font: 12px sans-serif; }
#matched { text-anchor: end; }
.control { font: 12px sans-serif; fill: #1a3d8f; cursor: pointer; }
.control:hover { text-decoration: underline; }
.frame { cursor: pointer; }
.frame text { pointer-events: none; }
.frame:hover rect { stroke: #000; stroke-width: 0.5; }
.frame.parent rect { opacity: 0.5; }
.frame.match rect { fill: rgb(230,0,230); }
.hide { display: none; }
)CSS";

constexpr std::string_view kScript = R"JS(
"use strict";
// pyinspect's flame graph. The names below are kept stable: tests drive the graph through them.
//   g.frame      one per drawn frame, with data-name (its label), data-samples (samples at or under
//                it), data-x (samples left of it, from the root's start), data-depth (0: the root,
//                "all"); a rect and a text inside
//   #frames      the group of frames; data-total (all samples), data-left and data-width (where the
//                full width lies, px), data-char (px per character, to cut labels)
//   #details     the line under the graph: the frame under the pointer, "label — N samples (P%)"
//   #matched     "Matched: P%" after a search: samples under matching frames (a match nested in
//                another counted once) over all samples
//   #unzoom      "Reset zoom", shown while zoomed; #search: "Search" (prompts for a regular
//                expression; Ctrl-F too), "Reset search" while one is shown; Escape resets both
//   zoom(g)      g fills the width, its ancestors stay (class "parent"), the rest get class "hide"
//   unzoom(), search(source) -> the matched percentage (null for a bad expression),
//   reset_search(), search_prompt(), fit(label, px)
//   The root element gets data-ready="1" once init() has run.
var frames_g, details, matched, unzoom_btn, search_btn;
var F = [];  // per drawn frame: {g, rect, text, name, x, n, d}
var TOTAL = 0, LEFT = 0, WIDTH = 0, CHAR = 7;
var searching = null;

function fit(label, px) {
  var room = Math.floor((px - 6) / CHAR);
  if (room < 3) return "";
  var chars = Array.from(label);
  if (chars.length <= room) return label;
  return chars.slice(0, room - 2).join("") + "..";
}

function place(f, x, w) {
  f.rect.setAttribute("x", x.toFixed(2));
  f.rect.setAttribute("width", w.toFixed(2));
  f.text.setAttribute("x", (x + 3).toFixed(2));
  f.text.textContent = fit(f.name, w);
}

function describe(f) {
  var pct = TOTAL ? 100 * f.n / TOTAL : 0;
  return f.name + " \u2014 " + f.n + (f.n == 1 ? " sample (" : " samples (") + pct.toFixed(2) + "%)";
}

function frame_of(el) {
  for (; el && el !== frames_g; el = el.parentNode)
    if (el.classList && el.classList.contains("frame")) return el;
  return null;
}

// At each depth the frames' spans are disjoint, so a frame above z whose span holds z's is one of
// its ancestors, and one at z's depth or below inside z's span is z or under it.
function zoom(g) {
  var z = F[g.fi];
  if (!z) return;
  var scale = WIDTH / z.n;
  for (var i = 0; i < F.length; ++i) {
    var f = F[i], c = f.g.classList;
    if (f.d < z.d && f.x <= z.x && f.x + f.n >= z.x + z.n) {
      place(f, LEFT, WIDTH);
      c.remove("hide");
      c.add("parent");
    } else if (f.d >= z.d && f.x >= z.x && f.x + f.n <= z.x + z.n) {
      place(f, LEFT + (f.x - z.x) * scale, f.n * scale);
      c.remove("hide", "parent");
    } else {
      c.add("hide");
      c.remove("parent");
    }
  }
  unzoom_btn.classList.remove("hide");
}

function unzoom() {
  var scale = TOTAL ? WIDTH / TOTAL : 0;
  for (var i = 0; i < F.length; ++i) {
    place(F[i], LEFT + F[i].x * scale, F[i].n * scale);
    F[i].g.classList.remove("hide", "parent");
  }
  unzoom_btn.classList.add("hide");
}

function search(source) {
  var re;
  try {
    re = new RegExp(source);
  } catch (e) {
    matched.textContent = "Not a regular expression: " + source;
    return null;
  }
  var spans = [];
  for (var i = 0; i < F.length; ++i) {
    if (re.test(F[i].name)) {
      F[i].g.classList.add("match");
      spans.push([F[i].x, F[i].x + F[i].n]);
    } else {
      F[i].g.classList.remove("match");
    }
  }
  // Spans nest or are disjoint: taken by start, a span that starts before the end of the last
  // one counted lies inside it (a match under a match) and is not counted again.
  spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
  var covered = 0, end = -1;
  for (var j = 0; j < spans.length; ++j)
    if (spans[j][0] >= end) {
      covered += spans[j][1] - spans[j][0];
      end = spans[j][1];
    }
  var pct = TOTAL ? 100 * covered / TOTAL : 0;
  searching = source;
  matched.textContent = "Matched: " + pct.toFixed(1) + "%";
  search_btn.textContent = "Reset search";
  return pct;
}

function reset_search() {
  for (var i = 0; i < F.length; ++i) F[i].g.classList.remove("match");
  searching = null;
  matched.textContent = "";
  search_btn.textContent = "Search";
}

function search_prompt() {
  var source = window.prompt("Search frames for (a regular expression):", searching === null ? "" : searching);
  if (source) search(source);
}

function init() {
  frames_g = document.getElementById("frames");
  details = document.getElementById("details");
  matched = document.getElementById("matched");
  unzoom_btn = document.getElementById("unzoom");
  search_btn = document.getElementById("search");
  TOTAL = +frames_g.getAttribute("data-total");
  LEFT = +frames_g.getAttribute("data-left");
  WIDTH = +frames_g.getAttribute("data-width");
  CHAR = +frames_g.getAttribute("data-char");
  var gs = frames_g.querySelectorAll("g.frame");
  for (var i = 0; i < gs.length; ++i) {
    var g = gs[i];
    g.fi = i;
    F.push({g: g, rect: g.querySelector("rect"), text: g.querySelector("text"), name: g.getAttribute("data-name"),
            x: +g.getAttribute("data-x"), n: +g.getAttribute("data-samples"), d: +g.getAttribute("data-depth")});
  }
  frames_g.addEventListener("click", function (e) {
    var g = frame_of(e.target);
    if (g) zoom(g);
  });
  frames_g.addEventListener("mouseover", function (e) {
    var g = frame_of(e.target);
    if (g) details.textContent = describe(F[g.fi]);
  });
  frames_g.addEventListener("mouseout", function (e) {
    if (frame_of(e.target)) details.textContent = " ";
  });
  unzoom_btn.addEventListener("click", unzoom);
  search_btn.addEventListener("click", function () {
    if (searching !== null) reset_search(); else search_prompt();
  });
  window.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && (e.key === "f" || e.key === "F")) {
      e.preventDefault();
      search_prompt();
    } else if (e.key === "Escape") {
      reset_search();
      unzoom();
    }
  });
  document.documentElement.setAttribute("data-ready", "1");
}

window.addEventListener("load", init);
)JS";

constexpr int kSvgWidth = 1200;
constexpr double kLeft = 10, kFrameWidth = 1180;
constexpr int kFrameHeight = 16, kTop = 60, kBottom = 36;
constexpr double kCharWidth = 7.3;  // 12px of a monospace font, a little over its 0.6 em advance
constexpr size_t kTitleChars = 140;
}  // namespace

void write_flamegraph(std::ostream& out, const Profile& p) {
  FlameTree t = flame_tree(p);
  // Frames, once each: a frame's label appears in as many nodes as call paths reach it.
  std::vector<std::string> labels(p.frames.size()), fills(p.frames.size());
  std::vector<bool> seen(p.frames.size());
  std::string all_fill = frame_fill(p, kNoFrame);
  for (const auto& n : t.nodes)
    if (n.frame != kNoFrame && !seen[n.frame]) {
      seen[n.frame] = true;
      labels[n.frame] = clean_text(p.frames[n.frame].label(), true);
      fills[n.frame] = frame_fill(p, n.frame);
    }

  const int levels = static_cast<int>(t.depth) + 1;
  const int height = kTop + levels * kFrameHeight + kBottom;
  std::string title = clean_text(profile_name(p), true);
  if (code_points(title) > kTitleChars) title = std::string(first_code_points(title, kTitleChars - 2)) + "..";
  const std::string h = std::to_string(height);

  std::string s;
  s.reserve(4096 + t.nodes.size() * 320);
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n";
  s += "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(kSvgWidth) +
       "\" height=\"" + h + "\" viewBox=\"0 0 " + std::to_string(kSvgWidth) + " " + h + "\">\n";
  s += "<title>";
  append_xml(s, title);
  s += "</title>\n<style type=\"text/css\"><![CDATA[";
  s += kStyle;
  s += "]]></style>\n<script type=\"text/ecmascript\"><![CDATA[";
  s += kScript;
  s += "]]></script>\n";
  s += "<defs><linearGradient id=\"background\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
       "<stop offset=\"5%\" stop-color=\"#eeeeee\"/><stop offset=\"95%\" stop-color=\"#eeeeb0\"/>"
       "</linearGradient></defs>\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + std::to_string(kSvgWidth) + "\" height=\"" + h +
       "\" fill=\"url(#background)\"/>\n";
  s += "<text id=\"title\" x=\"" + std::to_string(kSvgWidth / 2) + "\" y=\"24\">";
  append_xml(s, title);
  s += "</text>\n<text id=\"subtitle\" x=\"" + std::to_string(kSvgWidth / 2) + "\" y=\"44\">";
  append_xml(s, clean_text(flame_subtitle(p, t), true));
  s += "</text>\n";
  s += "<text id=\"unzoom\" class=\"control hide\" x=\"10\" y=\"24\">Reset zoom</text>\n";
  s += "<text id=\"search\" class=\"control\" x=\"" + fixed(kLeft + kFrameWidth, 0) +
       "\" y=\"24\" text-anchor=\"end\">Search</text>\n";
  std::string bottom = std::to_string(height - 14);
  s += "<text id=\"details\" x=\"10\" y=\"" + bottom + "\">" +
       (t.total ? std::string(" ") : std::string("No samples were recorded.")) + "</text>\n";
  s += "<text id=\"matched\" x=\"" + fixed(kLeft + kFrameWidth, 0) + "\" y=\"" + bottom + "\"></text>\n";
  s += "<g id=\"frames\" data-total=\"" + std::to_string(t.total) + "\" data-left=\"" + fixed(kLeft, 0) +
       "\" data-width=\"" + fixed(kFrameWidth, 0) + "\" data-char=\"" + fixed(kCharWidth, 1) + "\">\n";

  const double scale = t.total ? kFrameWidth / static_cast<double>(t.total) : 0;
  for (const auto& n : t.nodes) {
    const std::string& label = n.frame == kNoFrame ? std::string("all") : labels[n.frame];
    double x = kLeft + static_cast<double>(n.x) * scale, w = static_cast<double>(n.total) * scale;
    int y = kTop + (levels - 1 - static_cast<int>(n.depth)) * kFrameHeight;
    s += "<g class=\"frame\" data-name=\"";
    append_xml(s, label);
    s += "\" data-samples=\"" + std::to_string(n.total) + "\" data-x=\"" + std::to_string(n.x) + "\" data-depth=\"" +
         std::to_string(n.depth) + "\"><title>";
    append_xml(s, label);
    s += " \u2014 " + samples_text(n.total, t.total) + "</title><rect x=\"" + fixed(x, 2) + "\" y=\"" +
         std::to_string(y) + "\" width=\"" + fixed(w, 2) + "\" height=\"" + std::to_string(kFrameHeight - 1) +
         "\" fill=\"" + (n.frame == kNoFrame ? all_fill : fills[n.frame]) + "\" rx=\"2\" ry=\"2\"/><text x=\"" +
         fixed(x + 3, 2) + "\" y=\"" + fixed(y + 11.5, 1) + "\">";
    append_xml(s, fit_label(label, w, kCharWidth));
    s += "</text></g>\n";
  }
  s += "</g>\n</svg>\n";
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

}  // namespace pyinspect
