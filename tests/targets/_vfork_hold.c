/* Built by the d-state test and loaded by targets/dstate.py through ctypes: holds the calling
 * thread in the kernel, in uninterruptible sleep (state D), for `seconds`. A vfork child that
 * sleeps before it exits keeps its parent waiting in vfork; a ptrace stop cannot reach the parent
 * until the child is gone. The child closes its descriptors and dies with its parent, so that
 * it holds none of the test's pipes open after the target is gone. */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int hold_in_vfork(int seconds) {
  pid_t pid = vfork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int fd = 0; fd < 1024; fd++) close(fd);
    struct timespec ts = {seconds, 0};
    nanosleep(&ts, 0);
    _exit(0);
  }
  int status;
  if (pid > 0) waitpid(pid, &status, 0);
  return pid > 0 ? 0 : -1;
}
