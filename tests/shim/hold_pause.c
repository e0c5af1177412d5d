/* A fault injector for the tests, never part of pyinspect: loaded into pyinspect with LD_PRELOAD,
 * it holds pyinspect at a chosen point until the test lets it go, so that a test can make an
 * event (a signal to pyinspect, the target's death) happen exactly there, with no timing.
 *
 *   PYINSPECT_SHIM_HOLD_FDS=W,R   two file descriptors pyinspect inherits from the test: at the
 *                                 point, the shim writes one line "held <where> <pid>" to W, then
 *                                 blocks reading R until it gets a byte or end of file.
 *   PYINSPECT_SHIM_HOLD_AT=       where (once per process):
 *     detach   (default) the first PTRACE_DETACH: pyinspect has every thread of the target stopped
 *              and has finished reading it paused; it is about to release it. <pid> is the thread
 *              about to be detached.
 *     read     the first process_vm_readv after the first PTRACE_INTERRUPT: every thread of the
 *              target is stopped and pyinspect is about to read it paused (the heap copy, or the
 *              stack's thread states and frames). <pid> is the target.
 *     recheck  the first time pyinspect opens /proc/<pid>/stat after its first PTRACE_DETACH: a
 *              heap or refs walk (on the copy, the target running) checking that the target is
 *              still alive.
 *
 * The hold happens once: a detach made while held (pyinspect's signal handlers release the target
 * before exiting) goes straight through. The shim removes LD_PRELOAD and its variables from the
 * environment and marks both descriptors close-on-exec, so children (Graphviz) get none of it.
 * Every call is passed to the next definition (libc's, or a sanitizer's interceptor). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

typedef long (*ptrace_fn)(enum __ptrace_request, pid_t, void*, void*);
typedef FILE* (*fopen_fn)(const char*, const char*);
typedef int (*open_fn)(const char*, int, ...);
typedef int (*openat_fn)(int, const char*, int, ...);
typedef ssize_t (*readv_fn)(pid_t, const struct iovec*, unsigned long, const struct iovec*, unsigned long,
                            unsigned long);

static ptrace_fn real_ptrace;
static fopen_fn real_fopen, real_fopen64;
static open_fn real_open, real_open64;
static openat_fn real_openat, real_openat64;
static readv_fn real_process_vm_readv;
static int held_fd = -1, release_fd = -1;
enum { AT_DETACH, AT_READ, AT_RECHECK };
static int at = AT_DETACH;
static atomic_int interrupted;
static atomic_int detached;
static atomic_int done;

static void die(const char* what) {
  static const char prefix[] = "hold_pause shim: ";
  if (write(2, prefix, sizeof prefix - 1) < 0 || write(2, what, strlen(what)) < 0 || write(2, "\n", 1) < 0) {
  }
  _exit(99);
}

__attribute__((constructor)) static void init(void) {
  real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
  real_fopen = (fopen_fn)dlsym(RTLD_NEXT, "fopen");
  real_fopen64 = (fopen_fn)dlsym(RTLD_NEXT, "fopen64");
  real_open = (open_fn)dlsym(RTLD_NEXT, "open");
  real_open64 = (open_fn)dlsym(RTLD_NEXT, "open64");
  real_openat = (openat_fn)dlsym(RTLD_NEXT, "openat");
  real_openat64 = (openat_fn)dlsym(RTLD_NEXT, "openat64");
  real_process_vm_readv = (readv_fn)dlsym(RTLD_NEXT, "process_vm_readv");
  if (!real_ptrace || !real_fopen || !real_open || !real_openat || !real_process_vm_readv)
    die("cannot find libc's ptrace/fopen/open/openat/process_vm_readv");
  const char* fds = getenv("PYINSPECT_SHIM_HOLD_FDS");
  const char* where = getenv("PYINSPECT_SHIM_HOLD_AT");
  if (fds) {
    if (sscanf(fds, "%d,%d", &held_fd, &release_fd) != 2 || fcntl(held_fd, F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(release_fd, F_SETFD, FD_CLOEXEC) != 0)
      die("PYINSPECT_SHIM_HOLD_FDS is not two open descriptors W,R");
  }
  if (!where || !*where || strcmp(where, "detach") == 0)
    at = AT_DETACH;
  else if (strcmp(where, "read") == 0)
    at = AT_READ;
  else if (strcmp(where, "recheck") == 0)
    at = AT_RECHECK;
  else
    die("PYINSPECT_SHIM_HOLD_AT is none of detach, read, recheck");
  unsetenv("PYINSPECT_SHIM_HOLD_FDS");
  unsetenv("PYINSPECT_SHIM_HOLD_AT");
  unsetenv("LD_PRELOAD");
}

static void hold(const char* where, long pid) {
  if (held_fd < 0 || atomic_exchange(&done, 1)) return;
  int saved = errno;
  char line[64];
  int n = snprintf(line, sizeof line, "held %s %ld\n", where, pid);
  if (write(held_fd, line, (size_t)n) != n) die("cannot tell the test it is held");
  char c;
  while (read(release_fd, &c, 1) < 0 && errno == EINTR) {
  }
  errno = saved;
}

long ptrace(enum __ptrace_request request, ...) {
  va_list ap;
  va_start(ap, request);
  pid_t pid = va_arg(ap, pid_t);
  void* addr = va_arg(ap, void*);
  void* data = va_arg(ap, void*);
  va_end(ap);
  if (request == PTRACE_INTERRUPT) atomic_store(&interrupted, 1);
  if (request == PTRACE_DETACH) {
    if (at == AT_DETACH) hold("detach", pid);
    atomic_store(&detached, 1);
  }
  return real_ptrace(request, pid, addr, data);
}

ssize_t process_vm_readv(pid_t pid, const struct iovec* local, unsigned long liovcnt, const struct iovec* remote,
                         unsigned long riovcnt, unsigned long flags) {
  if (at == AT_READ && atomic_load(&interrupted)) hold("read", pid);
  return real_process_vm_readv(pid, local, liovcnt, remote, riovcnt, flags);
}

/* "/proc/<digits>/stat" exactly. */
static long proc_stat_pid(const char* path) {
  if (at != AT_RECHECK || !atomic_load(&detached) || !path || strncmp(path, "/proc/", 6) != 0) return 0;
  const char* p = path + 6;
  long pid = 0;
  if (*p < '0' || *p > '9') return 0;
  while (*p >= '0' && *p <= '9') pid = pid * 10 + (*p++ - '0');
  return strcmp(p, "/stat") == 0 ? pid : 0;
}

static void maybe_hold(const char* path) {
  long pid = proc_stat_pid(path);
  if (pid) hold("recheck", pid);
}

FILE* fopen(const char* path, const char* mode) {
  maybe_hold(path);
  return real_fopen(path, mode);
}

FILE* fopen64(const char* path, const char* mode) {
  maybe_hold(path);
  return (real_fopen64 ? real_fopen64 : real_fopen)(path, mode);
}

#define MODE_ARG(flags, mode)                                          \
  mode_t mode = 0;                                                    \
  if ((flags) & (O_CREAT | __O_TMPFILE)) {                            \
    va_list ap;                                                       \
    va_start(ap, flags);                                              \
    mode = (mode_t)va_arg(ap, int);                                   \
    va_end(ap);                                                       \
  }

int open(const char* path, int flags, ...) {
  MODE_ARG(flags, mode)
  maybe_hold(path);
  return real_open(path, flags, mode);
}

int open64(const char* path, int flags, ...) {
  MODE_ARG(flags, mode)
  maybe_hold(path);
  return (real_open64 ? real_open64 : real_open)(path, flags, mode);
}

int openat(int dirfd, const char* path, int flags, ...) {
  MODE_ARG(flags, mode)
  maybe_hold(path);
  return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char* path, int flags, ...) {
  MODE_ARG(flags, mode)
  maybe_hold(path);
  return (real_openat64 ? real_openat64 : real_openat)(dirfd, path, flags, mode);
}
