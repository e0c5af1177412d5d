/* Built by the d-state test and loaded by targets/dstate.py through ctypes: holds the calling
 * thread in the kernel, in uninterruptible sleep (state D), for `seconds`. A vfork child that
 * sleeps before it exits keeps its parent waiting in vfork; a ptrace stop cannot reach the parent
 * until the child is gone. */
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int hold_in_vfork(int seconds) {
  pid_t pid = vfork();
  if (pid == 0) {
    struct timespec ts = {seconds, 0};
    nanosleep(&ts, 0);
    _exit(0);
  }
  int status;
  if (pid > 0) waitpid(pid, &status, 0);
  return pid > 0 ? 0 : -1;
}
