#include "runtime/linetable.hpp"

#include <cstdint>

namespace pyinspect {

int lnotab_line(std::span<const uint8_t> table, int firstlineno, int addr, bool signed_lines) {
  int64_t line = firstlineno;
  int64_t at = 0;
  for (size_t i = 0; i + 1 < table.size(); i += 2) {
    at += table[i];
    if (at > addr) break;
    line += signed_lines ? static_cast<int8_t>(table[i + 1]) : table[i + 1];
  }
  return line < INT32_MIN || line > INT32_MAX ? -1 : static_cast<int>(line);
}

int linetable310_line(std::span<const uint8_t> table, int firstlineno, int addr) {
  if (addr < 0) return firstlineno;
  int64_t start = 0, end = 0, computed = firstlineno;
  int line = -1;
  for (size_t i = 0; i + 1 < table.size(); i += 2) {
    start = end;
    end += table[i];
    int ldelta = static_cast<int8_t>(table[i + 1]);
    if (ldelta == -128) {
      line = -1;
    } else {
      computed += ldelta;
      line = computed < INT32_MIN || computed > INT32_MAX ? -1 : static_cast<int>(computed);
    }
    if (start <= addr && addr < end) return line;
  }
  return -1;
}

namespace {
// Varints of the location table: 6 bits per byte, bit 6 = more follows.
struct Cursor {
  std::span<const uint8_t> t;
  size_t i;
  bool at_end() const { return i >= t.size(); }
  unsigned varint() {
    unsigned val = 0, shift = 0;
    for (int n = 0; n < 6 && i < t.size(); ++n) {
      uint8_t b = t[i++];
      val |= static_cast<unsigned>(b & 63) << shift;
      shift += 6;
      if (!(b & 64)) break;
    }
    return val;
  }
  int svarint() {
    unsigned u = varint();
    return (u & 1) ? -static_cast<int>(u >> 1) : static_cast<int>(u >> 1);
  }
};
}  // namespace

int locations311_line(std::span<const uint8_t> table, int firstlineno, int addr) {
  if (addr < 0) return firstlineno;
  // 64-bit sums: a corrupt table must not overflow (and a line outside int's range is -1).
  int64_t computed = firstlineno;
  int64_t end = 0;
  size_t i = 0;
  while (i < table.size()) {
    uint8_t first = table[i];
    if (!(first & 128)) {  // not an entry start: corrupt or torn table
      ++i;
      continue;
    }
    int code = (first >> 3) & 15;
    int delta = 0;
    if (code == 13 || code == 14) {
      Cursor c{table, i + 1};
      delta = c.svarint();
    } else if (code >= 10 && code <= 12) {
      delta = code - 10;
    }
    computed += delta;
    int line = code == 15 || computed < INT32_MIN || computed > INT32_MAX ? -1 : static_cast<int>(computed);
    int64_t start = end;
    end += ((first & 7) + 1) * 2;
    if (start <= addr && addr < end) return line;
    // Skip to the next entry start.
    do {
      ++i;
    } while (i < table.size() && !(table[i] & 128));
  }
  return -1;
}

}  // namespace pyinspect
