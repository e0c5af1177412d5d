// The C++ part of the native-frame tests' extension (_nativeext.c calls it): a template function
// and a class's static member, so that native frames are named by their demangled C++ names.
#include <unistd.h>

#include <cerrno>

namespace pyinspect_test {

struct Blocker {
  // Reads a pipe nobody writes: blocks in the kernel until the process ends.
  __attribute__((noinline)) static void wait(int fd) {
    char c;
    for (;;) {
      ssize_t n = read(fd, &c, 1);
      if (n < 0 && errno != EINTR) break;
    }
  }
};

template <typename T>
__attribute__((noinline)) void hold(T fd) {
  Blocker::wait(static_cast<int>(fd));
  asm volatile("" ::: "memory");  // work after the call: it stays a call, not a jump
}

}  // namespace pyinspect_test

extern "C" void nativeext_cpp_block(int fd) {
  pyinspect_test::hold<int>(fd);
  asm volatile("" ::: "memory");
}
