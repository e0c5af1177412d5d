#include "profile/profile.hpp"

#include <functional>

namespace pyinspect {

std::string ProfileFrame::label() const {
  if (is_root()) return function;
  std::string f = kind == Kind::Native ? "(C) " + function : function;
  if (file.empty()) return f;
  if (line < 0) return f + " (" + file + ")";
  return f + " (" + file + ":" + std::to_string(line) + ")";
}

uint64_t Profile::total() const {
  uint64_t n = 0;
  for (const auto& s : stacks) n += s.count;
  return n;
}

size_t Profile::FrameHash::operator()(const ProfileFrame& f) const {
  size_t h = std::hash<std::string>()(f.function);
  h = h * 1000003u ^ std::hash<std::string>()(f.file);
  h = h * 1000003u ^ static_cast<size_t>(f.line);
  return h * 31u + static_cast<size_t>(f.kind);
}

size_t Profile::StackHash::operator()(const std::vector<uint32_t>& s) const {
  size_t h = s.size();
  for (uint32_t x : s) h = h * 0x9e3779b97f4a7c15ull ^ x;
  return h;
}

uint32_t Profile::intern(const ProfileFrame& f) {
  auto [it, added] = frame_index_.emplace(f, static_cast<uint32_t>(frames.size()));
  if (added) frames.push_back(f);
  return it->second;
}

void Profile::add(const std::vector<uint32_t>& stack, uint64_t n) {
  auto [it, added] = stack_index_.emplace(stack, stacks.size());
  if (added) stacks.push_back(ProfileStack{stack, 0});
  stacks[it->second].count += n;
}

}  // namespace pyinspect
