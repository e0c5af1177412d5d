#pragma once
// The project's one error type. Codes are grouped by layer; each maps to a documented exit code
// (docs/exit-codes.md). Expected, recoverable failures are values (std::optional / Result), not
// exceptions: an Error is for what ends the command.
#include <stdexcept>
#include <string>

namespace pyinspect {

enum class ErrorCode : int {
  Ok = 0,
  Internal = 1,       // a bug in pyinspect or an unexpected condition
  Usage = 2,          // bad command line
  NoSuchProcess = 3,  // PID does not exist (or is a zombie / kernel thread)
  Permission = 4,     // not allowed to trace or read the target
  NotPython = 5,      // target has no CPython interpreter we can find
  Unsupported = 6,    // CPython version or build we cannot read
  TargetExited = 7,   // target went away while we read it
  Corrupt = 8,        // target memory did not hold what the layout says
  Output = 9,         // cannot write an output file
  Resources = 10,     // the job exceeds a limit (memory, size)
  NotFound = 11,      // no object matches what was asked for (refs --type / --address)
  Interrupted = 130,  // pyinspect itself was interrupted (SIGINT, SIGTERM, ...)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
  int exit_code() const { return static_cast<int>(code_); }

 private:
  ErrorCode code_;
};

// The one place where errno becomes an Error. `what` names the operation ("attach to 4242").
[[noreturn]] void throw_errno(int err, const std::string& what, int pid = 0);

// Short name of a code, as printed in JSON errors and logs ("no-such-process").
const char* error_code_name(ErrorCode code);

}  // namespace pyinspect
