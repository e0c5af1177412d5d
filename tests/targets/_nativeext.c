/* A C extension the native-frame tests build themselves, against each interpreter's own headers:
 * Python calling C calling Python (call), and a thread blocked in C with the GIL released
 * (block). Python 2.7 and 3.x alike. Built with the compiler's usual optimisation, so the
 * unwinder has only the call-frame information to go by. */
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

static int never_written[2] = {-1, -1};

/* Reads a pipe nobody writes: blocks in the kernel until the process ends. */
__attribute__((noinline)) static void nativeext_wait_forever(void) {
  char c;
  for (;;) {
    ssize_t n = read(never_written[0], &c, 1);
    if (n < 0 && errno != EINTR) break;
  }
}

void nativeext_cpp_block(int fd); /* _nativeext_cpp.cpp */

static PyObject* nativeext_block_cpp(PyObject* self, PyObject* args) {
  (void)self;
  (void)args;
  Py_BEGIN_ALLOW_THREADS
  nativeext_cpp_block(never_written[0]);
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

static PyObject* nativeext_block(PyObject* self, PyObject* args) {
  (void)self;
  (void)args;
  Py_BEGIN_ALLOW_THREADS
  nativeext_wait_forever();
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

/* start_c_thread(): a thread of C alone (no Python thread state) blocked in the same read;
 * returns its kernel thread id. */
static volatile long c_thread_tid = 0;

static void* nativeext_c_thread(void* arg) {
  (void)arg;
  c_thread_tid = syscall(SYS_gettid);
  nativeext_wait_forever();
  return NULL;
}

static PyObject* nativeext_start_c_thread(PyObject* self, PyObject* args) {
  pthread_t t;
  (void)self;
  (void)args;
  if (pthread_create(&t, NULL, nativeext_c_thread, NULL) != 0) {
    PyErr_SetString(PyExc_OSError, "pthread_create failed");
    return NULL;
  }
  pthread_detach(t);
  while (c_thread_tid == 0) usleep(1000);
  return PyLong_FromLong(c_thread_tid);
}

/* call(fn, *args): fn(*args), called from C. The reference dropped after the call keeps the
 * compiler from turning it into a tail call, so this frame stays on the stack. */
static PyObject* nativeext_call(PyObject* self, PyObject* args) {
  PyObject *fn, *rest, *result;
  (void)self;
  if (PyTuple_Size(args) < 1) {
    PyErr_SetString(PyExc_TypeError, "call(fn, *args)");
    return NULL;
  }
  fn = PyTuple_GetItem(args, 0);
  rest = PyTuple_GetSlice(args, 1, PyTuple_Size(args));
  if (!rest) return NULL;
  result = PyObject_Call(fn, rest, NULL);
  Py_DECREF(rest);
  return result;
}

static PyMethodDef methods[] = {
    {"block", nativeext_block, METH_NOARGS, "block in C, without the GIL, for good"},
    {"call", nativeext_call, METH_VARARGS, "call(fn, *args) from C"},
    {"block_cpp", nativeext_block_cpp, METH_NOARGS, "block in C++ code, without the GIL, for good"},
    {"start_c_thread", nativeext_start_c_thread, METH_NOARGS, "a thread without Python, blocked in C"},
    {NULL, NULL, 0, NULL},
};

#if PY_MAJOR_VERSION >= 3
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_nativeext", NULL, -1, methods,
                                    NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit__nativeext(void) {
  if (pipe(never_written) != 0) return PyErr_SetFromErrno(PyExc_OSError);
  return PyModule_Create(&module);
}
#else
PyMODINIT_FUNC init_nativeext(void) {
  if (pipe(never_written) != 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    return;
  }
  Py_InitModule("_nativeext", methods);
}
#endif
