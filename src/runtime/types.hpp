#pragma once
// Addresses of CPython's static type objects in the target (PyCode_Type, ...), from the exported
// symbols. A zero address means the symbol was not found (not every version has every type).
#include "base/remote.hpp"

namespace pyinspect {

// clang-format off
#define PYINSPECT_TYPES(X)                                                            \
  X(type, "PyType_Type")               X(object, "PyBaseObject_Type")                 \
  X(code, "PyCode_Type")               X(frame, "PyFrame_Type")                       \
  X(unicode, "PyUnicode_Type")         X(str27, "PyString_Type")                      \
  X(bytes, "PyBytes_Type")             X(bytearray, "PyByteArray_Type")               \
  X(int27, "PyInt_Type")               X(long_, "PyLong_Type")                        \
  X(bool_, "PyBool_Type")              X(float_, "PyFloat_Type")                      \
  X(complex, "PyComplex_Type")         X(tuple, "PyTuple_Type")                       \
  X(list, "PyList_Type")               X(dict, "PyDict_Type")                         \
  X(set, "PySet_Type")                 X(frozenset, "PyFrozenSet_Type")               \
  X(module, "PyModule_Type")           X(function, "PyFunction_Type")                 \
  X(method, "PyMethod_Type")           X(cfunction, "PyCFunction_Type")               \
  X(cmethod, "PyCMethod_Type")         X(cell, "PyCell_Type")                         \
  X(gen, "PyGen_Type")                 X(coro, "PyCoro_Type")                         \
  X(asyncgen, "PyAsyncGen_Type")       X(instance27, "PyInstance_Type")               \
  X(class27, "PyClass_Type")           X(none, "_Py_NoneStruct")                      \
  X(none_type, "_PyNone_Type")         X(weakref, "_PyWeakref_RefType")               \
  X(weakproxy, "_PyWeakref_ProxyType") X(weakcallproxy, "_PyWeakref_CallableProxyType") \
  X(slice, "PySlice_Type")             X(range, "PyRange_Type")                       \
  X(property, "PyProperty_Type")       X(classmethod, "PyClassMethod_Type")           \
  X(staticmethod, "PyStaticMethod_Type") X(memoryview, "PyMemoryView_Type")           \
  X(super, "PySuper_Type")             X(enumerate, "PyEnum_Type")                    \
  X(mappingproxy, "PyDictProxy_Type")  X(method_descr, "PyMethodDescr_Type")          \
  X(wrapper_descr, "PyWrapperDescr_Type") X(getset_descr, "PyGetSetDescr_Type")       \
  X(member_descr, "PyMemberDescr_Type") X(classmethod_descr, "PyClassMethodDescr_Type") \
  X(traceback, "PyTraceBack_Type")     X(method_wrapper, "_PyMethodWrapper_Type")
// clang-format on

struct TypeAddrs {
#define PYINSPECT_TYPE_MEMBER(name, sym) RemoteAddr name;
  PYINSPECT_TYPES(PYINSPECT_TYPE_MEMBER)
#undef PYINSPECT_TYPE_MEMBER
};

}  // namespace pyinspect
