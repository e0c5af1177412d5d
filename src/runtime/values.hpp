#pragma once
// Short, bounded reprs of objects read from the target (stack --locals): strings with their
// length and first characters, numbers, True/False/None, containers as their first items and
// length, functions and modules by name, instances as <module.Class at 0x...> with a few
// attributes. Every read is bounded; what cannot be read says so instead of guessing.
#include <cstddef>
#include <string>
#include <vector>

#include "runtime/frames.hpp"
#include "runtime/model.hpp"
#include "runtime/objects.hpp"

namespace pyinspect {

struct ReprLimits {
  size_t chars = 40;  // of a string or bytes
  size_t items = 3;   // of a container, and attributes of an instance
  int depth = 1;      // containers within containers
  // -l: the defaults; -ll and more: each step four times the characters and twice the items.
  static ReprLimits level(int n);
};

struct ValueRepr {
  std::string repr;
  std::string type;  // the type's name (module.qualname for classes defined in Python)
};
ValueRepr value_repr(const ObjectReader& r, RemoteAddr obj, const ReprLimits& limits);

// The variables of one frame as they are in the target: its code's variables, then cells and
// free variables (dereferenced); a null value is unbound.
struct FrameSlot {
  std::string name;
  RemoteAddr value;
  bool cell = false;
  bool argument = false;
};
std::vector<FrameSlot> frame_slots(const ObjectReader& r, const RawFrame& f);

// The arguments and locals of one frame (its code's variables, then cells and free variables,
// dereferenced), as they are now in the target.
std::vector<LocalVar> frame_locals(const ObjectReader& r, const RawFrame& f, const ReprLimits& limits);

}  // namespace pyinspect
