// The profile writers of `pyinspect record` (src/output/profile_output.hpp) on profiles built by
// hand: folded stacks parse back to the same stacks and counts, speedscope's samples and weights
// add up and index real frames, pyinspect's JSON holds the profile, and the flame graph is
// well-formed XML with one frame group per tree node wide enough to draw. Its script is exercised
// in a browser by tests/integration/svg_check.py.
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "output/profile_output.hpp"

using namespace pyinspect;
using Kind = ProfileFrame::Kind;

namespace {

uint32_t py(Profile& p, const std::string& function, const std::string& file, int line) {
  return p.intern({Kind::Python, function, file, line});
}
uint32_t thread(Profile& p, const std::string& label) { return p.intern({Kind::Thread, label, "", -1}); }

// Two threads; names with the characters each format must take care of.
Profile sample_profile() {
  Profile p;
  p.title = "python3 app.py --flag <x> & \"y\"";
  p.pid = 4242;
  p.python = "CPython 3.11.7";
  p.stats.rate_hz = 100;
  p.stats.duration_s = 2;
  p.stats.taken = 199;
  p.stats.ticks = 200;
  p.stats.missed = 1;
  p.stats.failed = 2;
  p.stats.thread_samples = 398;
  uint32_t t1 = thread(p, "Thread 100 \"MainThread\""), t2 = thread(p, "Thread 101 \"worker; 1\"");
  uint32_t main_ = py(p, "<module>", "/srv/app.py", 10);
  uint32_t run = py(p, "run", "/srv/app.py", 20);
  uint32_t semi = py(p, "odd;name", "/srv/we;ird.py", 3);
  uint32_t nl = py(p, "multi\nline", "/srv/app.py", 4);
  uint32_t esc = py(p, "<lambda> & \"q\" 'a'", "/srv/<gen>.py", 5);
  uint32_t byfn = py(p, "by_function", "/srv/app.py", -1);
  p.add({t1, main_, run}, 150);
  p.add({t1, main_, run, semi}, 40);
  p.add({t1, main_, nl}, 8);
  p.add({t2, esc}, 100);
  p.add({t2, esc, byfn}, 99);
  p.add({t2, esc, byfn, esc}, 1);  // a frame under itself
  return p;
}

std::string folded_label(const ProfileFrame& f) {
  std::string s = f.label();
  for (char& c : s)
    if (c == ';') c = ':';
    else if (c == '\n') c = ' ';
  return s;
}

std::map<std::vector<std::string>, uint64_t> parse_folded(const std::string& text) {
  std::map<std::vector<std::string>, uint64_t> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t sp = line.rfind(' ');
    REQUIRE(sp != std::string::npos);
    std::vector<std::string> frames;
    std::string stack = line.substr(0, sp);
    for (size_t at = 0;;) {
      size_t semi = stack.find(';', at);
      frames.push_back(stack.substr(at, semi - at));
      if (semi == std::string::npos) break;
      at = semi + 1;
    }
    out[frames] += std::stoull(line.substr(sp + 1));
  }
  return out;
}

// A small check of what an XML parser refuses: tags that do not nest, attribute values not
// quoted or holding '<', a repeated attribute, '&' that starts no reference, text after the root.
std::string xml_problem(const std::string& s) {
  auto refs_ok = [](const std::string& text) {
    for (size_t a = text.find('&'); a != std::string::npos; a = text.find('&', a + 1)) {
      size_t semi = text.find(';', a);
      if (semi == std::string::npos) return false;
      std::string name = text.substr(a + 1, semi - a - 1);
      bool hex = name.size() > 2 && name.compare(0, 2, "#x") == 0 &&
                 name.find_first_not_of("0123456789abcdefABCDEF", 2) == std::string::npos;
      bool decimal = name.size() > 1 && name[0] == '#' && name.find_first_not_of("0123456789", 1) == std::string::npos;
      bool digits = hex || decimal;
      if (!digits && name != "amp" && name != "lt" && name != "gt" && name != "quot" && name != "apos") return false;
    }
    return true;
  };
  std::vector<std::string> open;
  bool root_done = false;
  size_t i = 0;
  if (s.compare(0, 5, "<?xml") == 0) i = s.find("?>") + 2;
  while (i < s.size()) {
    size_t lt = s.find('<', i);
    std::string text = s.substr(i, lt == std::string::npos ? std::string::npos : lt - i);
    if (!refs_ok(text)) return "bad reference in text near " + std::to_string(i);
    if (root_done && text.find_first_not_of(" \n\t\r") != std::string::npos) return "text after the root";
    if (lt == std::string::npos) break;
    if (s.compare(lt, 4, "<!--") == 0) {
      i = s.find("-->", lt);
      if (i == std::string::npos) return "unclosed comment";
      i += 3;
      continue;
    }
    if (s.compare(lt, 9, "<![CDATA[") == 0) {
      i = s.find("]]>", lt);
      if (i == std::string::npos) return "unclosed CDATA";
      i += 3;
      continue;
    }
    if (root_done) return "a second root element";
    size_t j = lt + 1;
    bool closing = s[j] == '/';
    if (closing) ++j;
    size_t name_end = s.find_first_of(" \t\n/>", j);
    if (name_end == std::string::npos) return "unclosed tag";
    std::string name = s.substr(j, name_end - j);
    if (name.empty()) return "raw '<' at " + std::to_string(lt);
    j = name_end;
    if (closing) {
      if (s[j] != '>') return "bad end tag " + name;
      if (open.empty() || open.back() != name)
        return "end tag " + name + " does not close " + (open.empty() ? "" : open.back());
      open.pop_back();
      if (open.empty()) root_done = true;
      i = j + 1;
      continue;
    }
    std::set<std::string> attrs;
    for (;;) {
      j = s.find_first_not_of(" \t\n", j);
      if (j == std::string::npos) return "unclosed tag " + name;
      if (s.compare(j, 2, "/>") == 0) {
        i = j + 2;
        if (open.empty()) root_done = true;
        break;
      }
      if (s[j] == '>') {
        open.push_back(name);
        i = j + 1;
        break;
      }
      size_t eq = s.find('=', j);
      if (eq == std::string::npos) return "attribute without value in " + name;
      std::string attr = s.substr(j, eq - j);
      if (attr.find_first_of(" \t\n<>\"'") != std::string::npos) return "bad attribute name '" + attr + "'";
      if (!attrs.insert(attr).second) return "repeated attribute " + attr + " in " + name;
      char q = s[eq + 1];
      if (q != '"' && q != '\'') return "unquoted attribute " + attr;
      size_t end = s.find(q, eq + 2);
      if (end == std::string::npos) return "unclosed attribute " + attr;
      std::string value = s.substr(eq + 2, end - eq - 2);
      if (value.find('<') != std::string::npos) return "'<' in attribute " + attr;
      if (!refs_ok(value)) return "bad reference in attribute " + attr;
      j = end + 1;
    }
  }
  if (!open.empty()) return "unclosed element " + open.back();
  if (!root_done) return "no root element";
  return "";
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!n || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

std::string unescape(const std::string& s) {
  static const std::map<std::string, std::string> named = {
      {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"#39", "'"}, {"#10", "\n"}, {"#13", "\r"}, {"#9", "\t"}};
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    size_t semi = s[i] == '&' ? s.find(';', i) : std::string::npos;
    if (semi != std::string::npos && named.count(s.substr(i + 1, semi - i - 1))) {
      out += named.at(s.substr(i + 1, semi - i - 1));
      i = semi;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct SvgFrame {
  std::string name;
  uint64_t samples, x;
  unsigned depth;
};

// The value of attribute `name` in the tag that starts at `at`.
std::string attribute(const std::string& s, size_t at, const std::string& name) {
  size_t end = s.find('>', at);
  size_t a = s.find(" " + name + "=\"", at);
  REQUIRE(a < end);
  a += name.size() + 3;
  return s.substr(a, s.find('"', a) - a);
}

std::vector<SvgFrame> svg_frames(const std::string& svg) {
  std::vector<SvgFrame> out;
  const std::string tag = "<g class=\"frame\"";
  for (size_t at = svg.find(tag); at != std::string::npos; at = svg.find(tag, at + 1))
    out.push_back({unescape(attribute(svg, at, "data-name")), std::stoull(attribute(svg, at, "data-samples")),
                   std::stoull(attribute(svg, at, "data-x")),
                   static_cast<unsigned>(std::stoul(attribute(svg, at, "data-depth")))});
  return out;
}

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// The tree a flame graph draws, from its definition: every distinct stack prefix is a node.
std::map<std::vector<uint32_t>, uint64_t> prefix_totals(const Profile& p) {
  std::map<std::vector<uint32_t>, uint64_t> totals;
  for (const auto& s : p.stacks)
    for (size_t d = 1; d <= s.frames.size(); ++d)
      totals[std::vector<uint32_t>(s.frames.begin(), s.frames.begin() + static_cast<long>(d))] += s.count;
  return totals;
}

std::string svg_of(const Profile& p) {
  std::ostringstream out;
  write_flamegraph(out, p);
  return out.str();
}

}  // namespace

TEST_CASE("profile output: folded stacks parse back to every stack and count") {
  Profile p = sample_profile();
  std::ostringstream out;
  write_folded(out, p);
  std::string text = out.str();
  CHECK(text.find("multi\nline") == std::string::npos);
  auto parsed = parse_folded(text);
  std::map<std::vector<std::string>, uint64_t> want;
  uint64_t sum = 0;
  for (const auto& s : p.stacks) {
    std::vector<std::string> labels;
    for (uint32_t f : s.frames) labels.push_back(folded_label(p.frames[f]));
    want[labels] += s.count;
  }
  for (const auto& [frames, count] : parsed) sum += count;
  CHECK(parsed == want);
  CHECK(sum == p.total());
  // ';' and the line break replaced, the rest of the label kept.
  CHECK(text.find("odd:name (/srv/we:ird.py:3)") != std::string::npos);
  CHECK(text.find("multi line (/srv/app.py:4) 8\n") != std::string::npos);
  CHECK(text.find("Thread 101 \"worker: 1\";") != std::string::npos);
  CHECK(text.find("by_function (/srv/app.py);") != std::string::npos);
}

TEST_CASE("profile output: folded replaces bytes that are not UTF-8 and keeps zero-frame stacks' counts") {
  Profile p;
  p.add({p.intern({Kind::Python, "f\xff\xfe", "/a.py", 1})}, 3);
  p.add({}, 2);
  std::ostringstream out;
  write_folded(out, p);
  CHECK(valid_utf8(out.str()));
  uint64_t sum = 0;
  for (const auto& [frames, count] : parse_folded(out.str())) sum += count;
  CHECK(sum == 5);
}

TEST_CASE("profile output: speedscope has a profile per thread whose weights add up to the total") {
  Profile p = sample_profile();
  nlohmann::json j = speedscope_json(p);
  CHECK(j["$schema"] == "https://www.speedscope.app/file-format-schema.json");
  CHECK(j["exporter"].get<std::string>().rfind("pyinspect ", 0) == 0);
  const auto& frames = j["shared"]["frames"];
  REQUIRE(frames.size() == p.frames.size());
  CHECK(frames[2]["name"] == "<module>");
  CHECK(frames[2]["file"] == "/srv/app.py");
  CHECK(frames[2]["line"] == 10);
  CHECK(!frames[0].contains("file"));
  CHECK(!frames[7].contains("line"));  // by function: no line
  REQUIRE(j["profiles"].size() == 2);
  uint64_t sum = 0;
  std::set<std::string> names;
  for (const auto& prof : j["profiles"]) {
    CHECK(prof["type"] == "sampled");
    CHECK(prof["unit"] == "none");
    REQUIRE(prof["samples"].size() == prof["weights"].size());
    uint64_t here = 0;
    for (size_t i = 0; i < prof["samples"].size(); ++i) {
      for (const auto& f : prof["samples"][i]) {
        CHECK(f.get<size_t>() < frames.size());
        CHECK(p.frames[f.get<size_t>()].kind == Kind::Python);  // the thread root names the profile
      }
      here += prof["weights"][i].get<uint64_t>();
    }
    CHECK(prof["startValue"] == 0);
    CHECK(prof["endValue"] == here);
    sum += here;
    names.insert(prof["name"].get<std::string>());
  }
  CHECK(sum == p.total());
  CHECK(names == std::set<std::string>{"Thread 100 \"MainThread\"", "Thread 101 \"worker; 1\""});
  CHECK(j["profiles"][0]["name"] == "Thread 101 \"worker; 1\"");  // the busiest first: 200 samples against 198
  CHECK(j["activeProfileIndex"] == 0);
  CHECK_NOTHROW(j.dump());
}

TEST_CASE("profile output: speedscope without thread roots is one profile, process roots kept") {
  Profile p;
  p.title = "python3 x.py";
  uint32_t proc = p.intern({Kind::Process, "Process 7: python3 x.py", "", -1});
  uint32_t f = py(p, "f\xc3(", "/x\x80.py", 2);  // not UTF-8: replaced, so dump() cannot throw
  p.add({proc, f}, 5);
  p.add({f}, 1);
  nlohmann::json j = speedscope_json(p);
  REQUIRE(j["profiles"].size() == 1);
  CHECK(j["profiles"][0]["name"] == "python3 x.py");
  uint64_t sum = 0;
  for (const auto& w : j["profiles"][0]["weights"]) sum += w.get<uint64_t>();
  CHECK(sum == 6);
  CHECK(j["profiles"][0]["samples"][0][0] == proc);
  CHECK_NOTHROW(j.dump());

  Profile empty;
  nlohmann::json e = speedscope_json(empty);
  REQUIRE(e["profiles"].size() == 1);  // speedscope wants a profile to open
  CHECK(e["profiles"][0]["samples"].empty());
}

TEST_CASE("profile output: pyinspect's JSON holds the header, the figures, the frames and the stacks") {
  Profile p = sample_profile();
  p.blocking = true;
  p.stats.cpu_s = 0.5;
  nlohmann::json j = profile_json(p);
  CHECK(j["pyinspect_profile"] == 1);
  CHECK(j["pid"] == 4242);
  CHECK(j["title"] == p.title);
  CHECK(j["python"] == "CPython 3.11.7");
  CHECK(j["blocking"] == true);
  CHECK(j["idle"] == false);
  CHECK(j["gil_only"] == false);
  CHECK(j["by_function"] == false);
  CHECK(j["total_samples"] == p.total());
  for (const char* k : {"rate_hz", "achieved_hz", "duration_s", "ticks", "taken", "missed", "failed", "torn",
                        "thread_samples", "idle_samples", "gil_samples", "gil_instants", "empty", "cpu_s", "pause_s"})
    CHECK_MESSAGE(j["stats"].contains(k), k);
  CHECK(j["stats"]["achieved_hz"].get<double>() == doctest::Approx(99.5));
  CHECK(j["stats"]["missed"] == 1);
  REQUIRE(j["frames"].size() == p.frames.size());
  CHECK(j["frames"][0]["kind"] == "thread");
  CHECK(j["frames"][0]["file"].is_null());
  CHECK(j["frames"][2]["kind"] == "python");
  CHECK(j["frames"][2]["line"] == 10);
  CHECK(j["frames"][7]["line"].is_null());
  uint64_t sum = 0;
  for (const auto& s : j["stacks"]) {
    for (const auto& f : s["frames"]) CHECK(f.get<size_t>() < p.frames.size());
    sum += s["count"].get<uint64_t>();
  }
  CHECK(sum == p.total());
}

TEST_CASE("profile output: the XML check of these tests refuses what a parser would") {
  CHECK(xml_problem("<a><b x=\"1\"/>t &amp; &#60; &#x3c;<![CDATA[<&]]></a>\n") == "");
  for (const char* bad : {"<a><b></a></b>", "<a x=1/>", "<a>&foo;</a>", "<a>x & y</a>", "<a x=\"<\"/>", "<a>x<y</a>",
                          "<a x=\"1\" x=\"2\"/>", "<a/><b/>", "<a>", "<a><![CDATA[x</a>"})
    CHECK_MESSAGE(xml_problem(bad) != "", bad);
}

TEST_CASE("profile output: the flame graph is well-formed XML with every name escaped") {
  Profile p = sample_profile();
  p.intern({Kind::Python, "bad\x01\xff", "/z.py", 1});
  p.add({p.intern({Kind::Python, "bad\x01\xff", "/z.py", 1})}, 1);
  std::string svg = svg_of(p);
  CHECK(xml_problem(svg) == "");
  CHECK(valid_utf8(svg));
  CHECK(svg.find("\x01") == std::string::npos);
  // The names with <, & and quotes: escaped in the attribute, the tooltip and the label.
  CHECK(svg.find("<lambda>") == std::string::npos);
  CHECK(svg.find("<gen>") == std::string::npos);
  CHECK(count_of(svg, "data-name=\"&lt;lambda&gt; &amp; &quot;q&quot; &#39;a&#39; (/srv/&lt;gen&gt;.py:5)\"") == 2);
  CHECK(count_of(svg, "<title>&lt;lambda&gt; &amp; &quot;q&quot; &#39;a&#39; (/srv/&lt;gen&gt;.py:5) \xE2\x80\x94 ") ==
        2);
  CHECK(svg.find("data-name=\"multi&#10;line (/srv/app.py:4)\"") != std::string::npos);
  CHECK(svg.find("<text id=\"title\" x=\"600\" y=\"24\">python3 app.py --flag &lt;x&gt; &amp; &quot;y&quot;</text>") !=
        std::string::npos);
  // The subtitle: where, what, how fast, what went wrong, the mode.
  CHECK(svg.find("pid 4242 | CPython 3.11.7 | 2.00 s at 100 Hz asked, 99.5 achieved | 199 samples, 399 thread "
                 "stacks, 1 missed, 2 failed | nonblocking | idle threads left out") != std::string::npos);
  // The names the script and its tests rely on.
  for (const char* id : {"id=\"frames\"", "id=\"details\"", "id=\"matched\"", "id=\"unzoom\"", "id=\"search\"",
                         "function zoom(", "function unzoom(", "function search(", "function reset_search(",
                         "function search_prompt(", "data-ready"})
    CHECK_MESSAGE(svg.find(id) != std::string::npos, id);
  CHECK(svg.find("http://www.w3.org/2000/svg") != std::string::npos);
  CHECK(count_of(svg, "http") == 1);  // nothing fetched: the namespace is the only address
}

TEST_CASE("profile output: the flame graph draws one frame per tree node above the threshold, laid out as a tree") {
  Profile p;
  p.stats.taken = 1;
  std::mt19937 rng(7);
  std::vector<uint32_t> fs;
  for (int i = 0; i < 40; ++i) fs.push_back(py(p, "f" + std::to_string(i), "/m.py", i));
  // Stacks whose counts spread over four orders of magnitude: many nodes fall under 0.1%.
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint32_t> s;
    size_t depth = 1 + rng() % 12;
    for (size_t d = 0; d < depth; ++d) s.push_back(fs[rng() % (d < 2 ? 3 : fs.size())]);
    uint64_t count = uint64_t{1} << (rng() % 14);
    p.add(s, count);
  }
  uint64_t total = p.total();
  auto totals = prefix_totals(p);
  size_t drawn = 1, elided = 0;  // the root, "all"
  for (const auto& [prefix, n] : totals) (n * kFlameMinShare >= total ? drawn : elided) += 1;
  REQUIRE(elided > 0);

  std::string svg = svg_of(p);
  CHECK(xml_problem(svg) == "");
  CHECK(count_of(svg, "<g class=\"frame\"") == drawn);
  CHECK(svg.find(std::to_string(elided) + " tiny frames not drawn") != std::string::npos);
  auto frames = svg_frames(svg);
  REQUIRE(frames.size() == drawn);
  REQUIRE(frames[0].depth == 0);
  CHECK(frames[0].name == "all");
  CHECK(frames[0].samples == total);
  // Every frame lies inside one parent one level down; siblings do not overlap, are in label
  // order from the left, and leave their parent's own samples at its right.
  std::map<size_t, std::vector<size_t>> children;
  for (size_t i = 1; i < frames.size(); ++i) {
    const auto& f = frames[i];
    size_t parents = 0, parent = 0;
    for (size_t k = 0; k < frames.size(); ++k)
      if (frames[k].depth + 1 == f.depth && frames[k].x <= f.x && f.x + f.samples <= frames[k].x + frames[k].samples)
        ++parents, parent = k;
    REQUIRE(parents == 1);
    children[parent].push_back(i);
  }
  for (const auto& [parent, kids] : children) {
    uint64_t at = frames[parent].x;
    for (size_t k = 0; k < kids.size(); ++k) {
      const auto& c = frames[kids[k]];
      if (k) CHECK(frames[kids[k - 1]].name < c.name);
      CHECK(c.x >= at);
      at = c.x + c.samples;
    }
    CHECK(at <= frames[parent].x + frames[parent].samples);
  }
  // The same totals as the definition's for the drawn nodes.
  std::map<std::string, uint64_t> want, got;
  for (const auto& [prefix, n] : totals)
    if (n * kFlameMinShare >= total) want[p.frames[prefix.back()].label() + "@" + std::to_string(prefix.size())] += n;
  for (size_t i = 1; i < frames.size(); ++i)
    got[frames[i].name + "@" + std::to_string(frames[i].depth)] += frames[i].samples;
  CHECK(got == want);
}

TEST_CASE("profile output: labels are cut to fit their frame") {
  Profile p;
  std::string long_name(300, 'a');
  uint32_t a = py(p, "short", "/s.py", 1), b = py(p, long_name, "/l.py", 1), c = py(p, "tiny", "/t.py", 1);
  p.add({a, b}, 500);
  p.add({c}, 4);  // about 9 px wide: no label at all
  std::string svg = svg_of(p);
  CHECK(xml_problem(svg) == "");
  size_t cut = svg.find("aaa..</text>");
  REQUIRE(cut != std::string::npos);
  CHECK(svg[svg.find_last_not_of('a', cut)] == '>');  // the label's start, then "..": cut, not replaced
  CHECK(svg.find(">" + long_name + " (/l.py:1)</text>") == std::string::npos);
  CHECK(svg.find("data-name=\"" + long_name + " (/l.py:1)\"") != std::string::npos);  // the whole label kept for search
  size_t tiny = svg.find("data-name=\"tiny (/t.py:1)\"");
  REQUIRE(tiny != std::string::npos);
  CHECK(svg.substr(tiny, svg.find('\n', tiny) - tiny).find("\"></text></g>") != std::string::npos);
  CHECK(svg.find("<title>tiny (/t.py:1) \xE2\x80\x94 4 samples (0.79%)</title>") != std::string::npos);
}

TEST_CASE("profile output: an empty profile still makes every file") {
  Profile p;
  std::ostringstream folded;
  write_folded(folded, p);
  CHECK(folded.str().empty());
  std::string svg = svg_of(p);
  CHECK(xml_problem(svg) == "");
  CHECK(count_of(svg, "<g class=\"frame\"") == 0);
  CHECK(svg.find("No samples were recorded.") != std::string::npos);
  CHECK(profile_json(p)["stacks"].empty());
}

TEST_CASE("profile output: 100k stacks of 50 frames are written quickly, and correctly") {
  Profile p;
  std::mt19937 rng(1);
  std::vector<uint32_t> fs;
  for (int i = 0; i < 2000; ++i) {
    std::string file = "/usr/lib/python3/pkg/mod" + std::to_string(i % 50) + ".py";
    fs.push_back(py(p, "module.Class.function_" + std::to_string(i), file, i));
  }
  uint32_t t = thread(p, "Thread 1 \"MainThread\"");
  std::vector<uint32_t> s(51);
  s[0] = t;
  for (int i = 0; i < 100000; ++i) {
    // Shared roots, then paths that part ways: a tree with millions of nodes, most too narrow to draw.
    for (size_t d = 1; d < s.size(); ++d) s[d] = fs[d < 5 ? d : rng() % (d < 10 ? 20 : fs.size())];
    p.add(s, 1 + rng() % 3);
  }
  REQUIRE(p.stacks.size() > 99000);
  using Clock = std::chrono::steady_clock;
  std::ostringstream folded, svg;
  auto t0 = Clock::now();
  write_folded(folded, p);
  auto t1 = Clock::now();
  write_flamegraph(svg, p);
  auto t2 = Clock::now();
  std::string speedscope = speedscope_json(p).dump();
  auto t3 = Clock::now();
  std::string own = profile_json(p).dump();
  auto t4 = Clock::now();
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  MESSAGE("folded " << ms(t1 - t0) << " ms (" << folded.str().size() / 1e6 << " MB), flame graph " << ms(t2 - t1)
                    << " ms (" << svg.str().size() / 1e6 << " MB), speedscope " << ms(t3 - t2) << " ms, json "
                    << ms(t4 - t3) << " ms");
  // Generous bounds (sanitizer builds, a busy machine): what they catch is a writer gone quadratic.
  CHECK(ms(t1 - t0) < 5000);
  CHECK(ms(t2 - t1) < 5000);
  uint64_t sum = 0;
  for (const auto& [frames, count] : parse_folded(folded.str())) sum += count;
  CHECK(sum == p.total());
  std::string out = svg.str();
  CHECK(xml_problem(out) == "");
  CHECK(count_of(out, "<g class=\"frame\"") < 20000);
}
