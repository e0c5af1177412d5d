#pragma once
// Byte offset -> line number, for each line-table format CPython has used. Pure functions over
// bytes read from the target: bounded by the table's length, never trusting its contents.
#include <cstdint>
#include <span>

namespace pyinspect {

// co_lnotab (2.7-3.9): pairs (address increment, line increment). Line increments are signed
// from 3.6 (`signed_lines`), unsigned bytes before.
int lnotab_line(std::span<const uint8_t> table, int firstlineno, int addr, bool signed_lines);

// co_linetable of 3.10: pairs (address delta, signed line delta; -128 = no line).
// Returns -1 when the instruction has no line.
int linetable310_line(std::span<const uint8_t> table, int firstlineno, int addr);

// The location table of 3.11+ (co_linetable): variable-length entries, each covering 1-8 code
// units. Returns -1 when the instruction has no line.
int locations311_line(std::span<const uint8_t> table, int firstlineno, int addr);

}  // namespace pyinspect
