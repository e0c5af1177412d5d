#include "base/error.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace pyinspect {

namespace {
std::string ptrace_hint() {
  std::string hint =
      "run pyinspect as the target's user or as root, or grant it CAP_SYS_PTRACE "
      "(e.g. `sudo setcap cap_sys_ptrace+ep $(which pyinspect)`)";
  std::ifstream scope("/proc/sys/kernel/yama/ptrace_scope");
  int value = 0;
  if (scope >> value && value > 0) {
    hint += "; kernel.yama.ptrace_scope is " + std::to_string(value) +
            (value >= 3 ? " (tracing disabled until reboot)"
                        : ", `sudo sysctl kernel.yama.ptrace_scope=0` allows tracing siblings");
  }
  return hint;
}
}  // namespace

void throw_errno(int err, const std::string& what, int pid) {
  switch (err) {
    case ESRCH:
    case ENOENT:
      throw Error(ErrorCode::NoSuchProcess, pid ? "process " + std::to_string(pid) + " does not exist or has exited"
                                                : what + ": " + std::strerror(err));
    case EPERM:
    case EACCES:
      throw Error(ErrorCode::Permission, what + ": permission denied; " + ptrace_hint());
    case ENOMEM:
      throw Error(ErrorCode::Resources, what + ": out of memory");
    default:
      throw Error(ErrorCode::Internal, what + ": " + std::strerror(err));
  }
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::Ok:
      return "ok";
    case ErrorCode::Internal:
      return "internal";
    case ErrorCode::Usage:
      return "usage";
    case ErrorCode::NoSuchProcess:
      return "no-such-process";
    case ErrorCode::Permission:
      return "permission";
    case ErrorCode::NotPython:
      return "not-python";
    case ErrorCode::Unsupported:
      return "unsupported";
    case ErrorCode::TargetExited:
      return "target-exited";
    case ErrorCode::Corrupt:
      return "corrupt";
    case ErrorCode::Output:
      return "output";
    case ErrorCode::Resources:
      return "resources";
    case ErrorCode::NotFound:
      return "not-found";
    case ErrorCode::Interrupted:
      return "interrupted";
  }
  return "unknown";
}

}  // namespace pyinspect
