// Layouts of structs that extension modules define (fields.def's OUTSIDE lines): libpython's DWARF
// does not describe them, so neither do the embedded tables. x86-64 offsets, per version, as the
// DWARF of each version's extension modules gives them (tests/abi/check_fixed_layouts.py compares
// this table with that DWARF on every interpreter found).
#include "abi/layout.hpp"

namespace pyinspect {

Layout fixed_layout(const PyVersion& v) {
  Layout l;
  l.set_version(v);
  l.origin = "fixed layouts of extension modules";
  auto field = [&](F f, int64_t off) { l.set(f, off, LayoutSource::Fixed); };
  const bool py2 = v.major == 2;

  // array.array (Modules/arraymodule.c): PyObject_VAR_HEAD, ob_item, allocated, ob_descr.
  field(F::array_item, 24);
  field(F::array_allocated, 32);
  field(F::array_descr, 40);
  field(F::arraydescr_itemsize, 4);  // after the typecode (an int in 2.7, a char in 3.x)

  // _struct.Struct (Modules/_struct.c): s_size, s_len, s_codes, s_format, weakreflist; a
  // formatcode is {fmtdef, offset, size} in 2.7 and gained `repeat` in 3.x.
  field(F::struct_len, 24);
  field(F::struct_codes, 32);
  field(F::formatcode_fmtdef, 0);
  l.set(S::sz_PyStructObject, 56);
  l.set(S::sz_formatcode, py2 ? 24 : 32);

  // ctypes' StgDict (Modules/_ctypes/ctypes.h), a dict subclass with type information after the
  // PyDictObject, up to 3.12 (3.13 keeps it in the type object instead).
  if (!v.at_least(3, 13)) {
    const int64_t dict = py2 ? 248 : 48;  // sizeof(PyDictObject): 2.7's holds its small table
    field(F::stgdict_length, dict + 16);
    field(F::stgdict_elements, dict + 24 + 16);  // ffi_type {size, alignment, type, elements}
    field(F::stgdict_format, dict + 120);
    field(F::stgdict_ndim, dict + 128);
    field(F::stgdict_proto, dict + 48);
    field(F::stgdict_argtypes, dict + 80);
    field(F::stgdict_converters, dict + 88);
    field(F::stgdict_restype, dict + 96);
    field(F::stgdict_checker, dict + 104);
    l.set(S::sz_StgDictObject, dict + 144);
  }

  // ctypes 3.13+: the type information of a ctypes type lives in the type object itself, after
  // its PyHeapTypeObject (PyObject_GetTypeData); 3.14 added pointer_type and dict_final.
  if (v.at_least(3, 13)) {
    field(F::stginfo_length, 24);
    field(F::stginfo_elements, 48);
    field(F::stginfo_format, v.at_least(3, 14) ? 144 : 136);
    field(F::stginfo_ndim, v.at_least(3, 14) ? 152 : 144);
  }

  // asyncio's C Task (Modules/_asynciomodule.c): FutureObj_HEAD(task), whose members grew over
  // the versions (callback0 and context0 3.7, cancel_msg 3.9, cancelled_exc 3.11, exception_tb
  // 3.12; 3.13 packed the flags into bit-fields and dropped the dict and weakref list), then
  // fut_waiter, coro, name (3.8+) and context. A FutureIter holds its future after the header.
  // 3.14 added awaited_by (a pointer, after cancelled_exc), is_task and awaited_by_is_set (chars
  // after the state) and task_node (a list link after the context); its _AsyncioDebug, when the
  // target has one, says the same (abi/asyncio_debug.cpp) and wins.
  if (v.at_least(3, 6)) {
    struct TaskOffsets {
      int minor, state, fut_waiter, coro, name;
    };
    static const TaskOffsets kTask[] = {{6, 56, 88, 96, -1},     {7, 72, 104, 112, -1},   {8, 72, 104, 112, 120},
                                        {9, 80, 144, 152, 160},  {10, 88, 152, 160, 168}, {11, 88, 128, 136, 144},
                                        {12, 88, 128, 136, 144}, {13, 96, 112, 120, 128}, {14, 104, 120, 128, 136}};
    for (const auto& t : kTask) {
      if (t.minor != v.minor || v.major != 3) continue;
      field(F::task_loop, 16);
      field(F::task_state, t.state);
      field(F::task_fut_waiter, t.fut_waiter);
      field(F::task_coro, t.coro);
      if (t.name >= 0) field(F::task_name, t.name);
      if (t.minor == 14) {
        field(F::task_awaited_by, 96);
        field(F::task_is_task, 108);
        field(F::task_awaited_by_is_set, 109);
        field(F::task_node, 152);
      }
    }
    field(F::futiter_future, 16);
  }

  // 3.8-3.10: sizeof(_PyOpcache), which the DWARF reader cannot size (its typedef has the name of
  // its tag).
  if (v.at_least(3, 8) && !v.at_least(3, 11)) l.set(S::sz_PyOpcache, 32);

  if (py2) {
    // 2.7's _collections: a deque keeps its length in `len`, and a block holds 62 items before
    // its links (3.x: 64 items between them, inside libpython).
    field(F::deque_leftblock, 16);
    field(F::deque_rightblock, 24);
    field(F::deque_leftindex, 32);
    field(F::deque_rightindex, 40);
    field(F::deque_len, 48);
    field(F::deque_maxlen, 64);
    l.set(S::sz_dequeobject, 80);
    field(F::block_data, 0);
    field(F::block_rightlink, 496);
    field(F::block_leftlink, 504);
    l.set(S::sz_block, 512);
    // 2.7's _io: the buffered reader's and writer's buffer.
    field(F::buffered_buffer, 56);
    field(F::buffered_buffer_size, 120);
  }
  return l;
}

}  // namespace pyinspect
