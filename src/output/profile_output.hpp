#pragma once
// The files `pyinspect record` writes from a Profile: folded (collapsed) stacks, speedscope's JSON,
// pyinspect's own JSON (docs/json.md) and a self-contained interactive flame graph (SVG).
#include <nlohmann/json_fwd.hpp>
#include <ostream>

#include "profile/profile.hpp"

namespace pyinspect {

// One line per stack: the frames' labels outermost first, joined by ';', a space and the count;
// ';' in a label becomes ':' and line breaks become spaces, so that every line parses back.
void write_folded(std::ostream& out, const Profile& p);

// speedscope's file format (https://www.speedscope.app/file-format-schema.json): "sampled"
// profiles weighted in samples, one per thread when the stacks have thread roots. Strings are
// valid UTF-8 (invalid bytes replaced), so dump() does not throw.
nlohmann::json speedscope_json(const Profile& p);

// pyinspect's own: the header, the sampler's figures, the frames table and the stacks by index.
nlohmann::json profile_json(const Profile& p);

// A flame graph: one SVG file with its script and style inside (no network, no fonts to fetch).
// Frames narrower than 1/kFlameMinShare of all samples are not drawn (the subtitle says how
// many); the script's names, for tests that drive it, are listed at the top of the script.
constexpr uint64_t kFlameMinShare = 1000;
void write_flamegraph(std::ostream& out, const Profile& p);

}  // namespace pyinspect
