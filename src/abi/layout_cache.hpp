#pragma once
// Layouts read from DWARF, kept on disk by build-id: reading a libpython's DWARF takes tens of
// milliseconds, a cached layout well under one. A build-id names one exact build, so an entry
// never goes stale; entries also carry a digest of fields.def, so a pyinspect that reads more
// members ignores older ones.
//
// Directory: $PYINSPECT_CACHE_DIR, else $XDG_CACHE_HOME/pyinspect, else ~/.cache/pyinspect.
// Failures to read or write the cache are silent: it only saves time. A directory or file that
// is not owned by this user, or that others may write, is not used.
#include <optional>
#include <string>

#include "abi/layout.hpp"

namespace pyinspect {

std::string layout_cache_dir();
// Any other file of that directory (the native frames' names, by build-id), with the same checks:
// its text, nullopt if absent or not to be trusted; and storing one (atomically, 0600).
std::optional<std::string> load_cache_file(const std::string& name);
void store_cache_file(const std::string& name, const std::string& text);
std::optional<Layout> load_cached_layout(const std::string& build_id);
void store_cached_layout(const std::string& build_id, const Layout& layout);

}  // namespace pyinspect
