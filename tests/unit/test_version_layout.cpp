// PyVersion (src/abi/version.hpp) from version strings and PY_VERSION_HEX (Include/patchlevel.h:
// major, minor, micro, release level 0xA/0xB/0xC/0xF, serial), and the Layout's JSON form
// (src/abi/layout.hpp) against the pyabi/ tables it is embedded from.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "abi/layout.hpp"
#include "abi/version.hpp"
#include "base/error.hpp"

using namespace pyinspect;

TEST_CASE("version: parse") {
  auto v = PyVersion::parse("3.11.7 (main, Jan 29 2024, 16:25:29) [GCC 12.2.0]");
  REQUIRE(v.has_value());
  CHECK(v->major == 3);
  CHECK(v->minor == 11);
  CHECK(v->micro == 7);
  CHECK(v->tail.empty());
  CHECK(v->str() == "3.11.7");
  CHECK(v->short_str() == "3.11");

  v = PyVersion::parse("2.7.18");
  REQUIRE(v.has_value());
  CHECK(v->str() == "2.7.18");

  v = PyVersion::parse("3.12");
  REQUIRE(v.has_value());
  CHECK(v->micro == -1);
  CHECK(v->str() == "3.12");

  v = PyVersion::parse("3.13.0rc2");
  REQUIRE(v.has_value());
  CHECK(v->micro == 0);
  CHECK(v->tail == "rc2");
  CHECK(v->str() == "3.13.0rc2");

  v = PyVersion::parse("3.14.0a1+");
  REQUIRE(v.has_value());
  CHECK(v->tail == "a1+");

  v = PyVersion::parse("  3.6.15");
  REQUIRE(v.has_value());
  CHECK(v->minor == 6);

  CHECK_FALSE(PyVersion::parse("").has_value());
  CHECK_FALSE(PyVersion::parse("Python 3.11.7").has_value());
  CHECK_FALSE(PyVersion::parse("three.eleven").has_value());
  CHECK_FALSE(PyVersion::parse("3").has_value());
}

TEST_CASE("version: from_hex") {
  PyVersion v = PyVersion::from_hex(0x030B07F0);  // 3.11.7 final
  CHECK(v.major == 3);
  CHECK(v.minor == 11);
  CHECK(v.micro == 7);
  CHECK(v.tail.empty());
  CHECK(v.str() == "3.11.7");
  CHECK(PyVersion::from_hex(0x030D00C2).str() == "3.13.0rc2");
  CHECK(PyVersion::from_hex(0x030C00A1).str() == "3.12.0a1");
  CHECK(PyVersion::from_hex(0x030E00B3).str() == "3.14.0b3");
  CHECK(PyVersion::from_hex(0x02070CF0).str() == "2.7.12");
}

TEST_CASE("version: from_file_name") {
  auto mm = [](const std::string& name) {
    auto v = PyVersion::from_file_name(name);
    return v ? v->short_str() : std::string("none");
  };
  CHECK(mm("libpython3.11.so.1.0") == "3.11");
  CHECK(mm("/opt/py/3.6.15/lib/libpython3.6m.so.1.0") == "3.6");
  CHECK(mm("python2.7") == "2.7");
  CHECK(mm("/usr/bin/python3.11d") == "3.11");
  CHECK(mm("libpython3.13t.so") == "3.13");
  CHECK(mm("python3") == "none");
  CHECK(mm("libpython.so") == "none");
  CHECK(mm("python3.123") == "none");
}

TEST_CASE("version: comparisons") {
  PyVersion v = PyVersion::from_hex(0x030A0DF0);
  CHECK(v.is(3, 10));
  CHECK_FALSE(v.is(3, 1));
  CHECK(v.at_least(3, 10));
  CHECK(v.at_least(3, 9));
  CHECK(v.at_least(2, 7));
  CHECK_FALSE(v.at_least(3, 11));
  CHECK_FALSE(v.at_least(4, 0));
  CHECK(v.known());
  CHECK_FALSE(PyVersion{}.known());
}

TEST_CASE("layout: facts follow the version") {
  auto traits = [](int ma, int mi) { return Facts::for_version(PyVersion{ma, mi, 0, ""}); };
  CHECK(traits(2, 7).strings == Facts::Strings::Bytes27);
  CHECK(traits(3, 6).strings == Facts::Strings::Pep393);
  CHECK_FALSE(traits(2, 7).lnotab_signed);
  CHECK(traits(3, 6).lnotab_signed);
  CHECK(traits(3, 9).lines == Facts::LineTable::Lnotab);
  CHECK(traits(3, 10).lines == Facts::LineTable::Linetable310);
  CHECK(traits(3, 10).lasti_in_code_units);
  CHECK_FALSE(traits(3, 9).lasti_in_code_units);
  CHECK(traits(3, 11).lines == Facts::LineTable::Locations311);
  CHECK(traits(3, 10).frames == Facts::Frames::FrameObjects);
  CHECK(traits(3, 11).frames == Facts::Frames::InterpreterFramesViaCFrame);
  CHECK(traits(3, 12).frames == Facts::Frames::InterpreterFramesViaCFrame);
  CHECK(traits(3, 13).frames == Facts::Frames::InterpreterFrames);
  CHECK(traits(3, 11).first_shim_owner == -1);  // FRAME_OWNED_BY_CSTACK (3) appeared in 3.12
  CHECK(traits(3, 12).first_shim_owner == 3);
  CHECK(traits(3, 13).first_shim_owner == 3);
  CHECK(traits(3, 11).unicode_state.ready_bit == 7);
  CHECK(traits(3, 12).unicode_state.ready_bit == -1);
  CHECK(traits(3, 11).long_size == Facts::LongSize::ObSize);
  CHECK(traits(3, 12).long_size == Facts::LongSize::Tag);
  // Immortal objects: their count, never a freed block's first word (a pointer).
  CHECK_FALSE(traits(3, 11).immortal(0xffffffff));
  CHECK(traits(3, 12).immortal(0xffffffff));
  CHECK_FALSE(traits(3, 12).immortal(0x7fc5cb895100));
  CHECK_FALSE(traits(3, 13).immortal(int64_t{0xc0000000} | (int64_t{5} << 48)));
  CHECK(traits(3, 14).immortal(int64_t{0xc0000000} | (int64_t{5} << 48)));
  CHECK_FALSE(traits(3, 14).immortal(0x7fc5cb895100));
  // 3.14's stack references: tag bits 3; a tagged int is no object.
  CHECK(traits(3, 13).untag(0x7f0000001001) == RemoteAddr(0x7f0000001001));
  CHECK(traits(3, 14).untag(0x7f0000001001) == RemoteAddr(0x7f0000001000));
  CHECK(traits(3, 14).untag(0x7f0000001003).null());
  CHECK(traits(2, 7).dict == Facts::Dict::Dict27);
  CHECK(traits(3, 10).dict == Facts::Dict::Dict36);
  CHECK(traits(3, 11).dict == Facts::Dict::Dict311);
}

namespace {
nlohmann::json pyabi_table(const std::string& minor) {
  std::ifstream in(std::string(PYINSPECT_PYABI_DIR) + "/cpython-" + minor + ".json");
  REQUIRE_MESSAGE(in.good(), "cannot open pyabi table for ", minor);
  return nlohmann::json::parse(in);
}
}  // namespace

TEST_CASE("layout: embedded tables equal the pyabi files and survive a JSON round trip") {
  for (const char* minor : {"2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"}) {
    INFO("CPython ", minor);
    nlohmann::json file = pyabi_table(minor);
    auto v = PyVersion::parse(file.at("version").get<std::string>());
    REQUIRE(v.has_value());
    auto emb = embedded_layout(*v);
    REQUIRE(emb.has_value());
    CHECK(emb->version.str() == v->str());
    // Every member the file names, and no other.
    size_t named = 0;
    for (size_t i = 0; i < kFieldCount; ++i) {
      const auto& fields = file.at("fields");
      auto it = fields.find(kFieldSpecs[i].id);
      INFO(kFieldSpecs[i].id);
      if (it == fields.end()) {
        CHECK_FALSE(emb->has(static_cast<F>(i)));
      } else {
        ++named;
        CHECK(emb->off(static_cast<F>(i)) == it->get<int64_t>());
        CHECK(emb->source(static_cast<F>(i)) == LayoutSource::Embedded);
      }
    }
    CHECK(named == emb->known_fields());
    for (size_t i = 0; i < kSizeCount; ++i) {
      const auto& sizes = file.at("sizes");
      auto it = sizes.find(kSizeSpecs[i].id);
      INFO(kSizeSpecs[i].id);
      CHECK(emb->size(static_cast<S>(i)) == (it == sizes.end() ? -1 : it->get<int64_t>()));
    }

    // to_json -> from_json gives the same layout.
    nlohmann::json j = emb->to_json();
    CHECK(j.at("python") == emb->version.short_str());
    Layout back = Layout::from_json(j, LayoutSource::Dwarf);
    CHECK(back.version.str() == emb->version.str());
    CHECK(back.debug_build == emb->debug_build);
    CHECK(back.origin == emb->origin);
    for (size_t i = 0; i < kFieldCount; ++i) {
      INFO(kFieldSpecs[i].id);
      CHECK(back.off(static_cast<F>(i)) == emb->off(static_cast<F>(i)));
      if (back.has(static_cast<F>(i))) CHECK(back.source(static_cast<F>(i)) == LayoutSource::Dwarf);
    }
    for (size_t i = 0; i < kSizeCount; ++i) CHECK(back.size(static_cast<S>(i)) == emb->size(static_cast<S>(i)));
  }
}

TEST_CASE("layout: from_json of a hand-written table") {
  auto j = nlohmann::json::parse(R"({
    "format": 1, "python": "3.12", "version": "3.12.1", "debug_build": true, "origin": "by hand",
    "fields": {"ob_type": 8, "ob_size": 16, "ts_cframe": 56, "no_such_member": 3},
    "sizes": {"sz_PyObject": 16}
  })");
  Layout l = Layout::from_json(j, LayoutSource::Embedded);
  CHECK(l.version.str() == "3.12.1");
  CHECK(l.debug_build);
  CHECK(l.origin == "by hand");
  CHECK(l.off(F::ob_type) == 8);
  CHECK(l.off(F::ob_size) == 16);
  CHECK(l.off(F::ts_cframe) == 56);
  CHECK(l.size(S::sz_PyObject) == 16);
  CHECK(l.known_fields() == 3);
  CHECK_FALSE(l.has(F::tp_name));
  CHECK(l.facts().long_size == Facts::LongSize::Tag);
  try {
    l.require(F::tp_name);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Unsupported);
  }
  try {
    Layout::from_json(nlohmann::json::parse(R"({"version": "not a version", "fields": {}, "sizes": {}})"),
                      LayoutSource::Embedded);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Internal);
  }
}

TEST_CASE("layout: fill_from fills only what is unknown") {
  Layout a, b;
  a.set(F::ob_type, 8, LayoutSource::DebugOffsets);
  b.set(F::ob_type, 99, LayoutSource::Embedded);
  b.set(F::ob_size, 16, LayoutSource::Embedded);
  b.set(S::sz_PyObject, 16);
  a.fill_from(b);
  CHECK(a.off(F::ob_type) == 8);
  CHECK(a.source(F::ob_type) == LayoutSource::DebugOffsets);
  CHECK(a.off(F::ob_size) == 16);
  CHECK(a.source(F::ob_size) == LayoutSource::Embedded);
  CHECK(a.size(S::sz_PyObject) == 16);
}

TEST_CASE("layout: no embedded table for unknown versions") {
  CHECK_FALSE(embedded_layout(PyVersion{3, 5, 0, ""}).has_value());
  CHECK_FALSE(embedded_layout(PyVersion{3, 99, 0, ""}).has_value());
  auto l = embedded_layout(PyVersion{3, 11, 2, ""});  // another micro release of a known minor
  REQUIRE(l.has_value());
  CHECK(l->version.str() == "3.11.2");
}
