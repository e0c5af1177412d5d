#include "heap/buffers.hpp"

#include <cstdlib>

#include "heap/roots.hpp"

namespace pyinspect {

namespace {

// numpy's PyArrayObject_fields (ndarraytypes.h), the same in numpy 1.x and 2.x:
// PyObject_HEAD, data, nd, dimensions, strides, base, descr, flags, ...
constexpr int64_t kNdData = 16, kNdNd = 24, kNdDims = 32, kNdDescr = 56, kNdFlags = 64;
constexpr int32_t kNdOwnData = 0x0004;  // NPY_ARRAY_OWNDATA
constexpr int kNdMaxDims = 64;          // NPY_MAXDIMS is 32 (64 from numpy 2.0)
// PyArray_Descr's elsize: an int at 32 in numpy 1.x; an npy_intp at 40 from 2.0 (after a 64-bit
// flags word).
constexpr int64_t kDescrElsize1 = 32, kDescrElsize2 = 40;
// mmap.mmap (Modules/mmapmodule.c): PyObject_HEAD, data, size.
constexpr int64_t kMmapData = 16, kMmapSize = 24;
constexpr uint64_t kMaxBytes = uint64_t{1} << 46;

std::optional<uint64_t> ndarray_data_bytes(HeapContext& ctx, RemoteAddr obj) {
  const Memory& m = ctx.mem;
  if (ctx.numpy_major != 1 && ctx.numpy_major != 2) return std::nullopt;
  auto nd = m.read_as<int32_t>(obj + kNdNd);
  auto dims = m.read_ptr(obj + kNdDims);
  auto descr = m.read_ptr(obj + kNdDescr);
  if (!nd || *nd < 0 || *nd > kNdMaxDims || !dims || !descr || descr->null()) return std::nullopt;
  int64_t elsize = 0;
  if (ctx.numpy_major == 1) {
    auto e = m.read_as<int32_t>(*descr + kDescrElsize1);
    if (!e) return std::nullopt;
    elsize = *e;
  } else {
    auto e = m.read_as<int64_t>(*descr + kDescrElsize2);
    if (!e) return std::nullopt;
    elsize = *e;
  }
  if (elsize < 0 || static_cast<uint64_t>(elsize) > kMaxBytes) return std::nullopt;
  uint64_t n = static_cast<uint64_t>(elsize);
  if (*nd > 0) {
    int64_t d[kNdMaxDims];
    if (!m.read(*dims, d, sizeof(int64_t) * static_cast<size_t>(*nd))) return std::nullopt;
    for (int i = 0; i < *nd; ++i) {
      if (d[i] < 0 || static_cast<uint64_t>(d[i]) > kMaxBytes) return std::nullopt;
      if (d[i] == 0) return 0;
      if (n > kMaxBytes / static_cast<uint64_t>(d[i])) return std::nullopt;
      n *= static_cast<uint64_t>(d[i]);
    }
  }
  return n;
}

}  // namespace

std::optional<int64_t> ndarray_sizeof(HeapContext& ctx, RemoteAddr obj, const TypeInfo& ti) {
  auto nd = ctx.mem.read_as<int32_t>(obj + kNdNd);
  auto flags = ctx.mem.read_as<int32_t>(obj + kNdFlags);
  if (!nd || *nd < 0 || *nd > kNdMaxDims || !flags) return std::nullopt;
  int64_t size = ti.basicsize + int64_t{*nd} * 2 * 8;
  if (*flags & kNdOwnData) {
    auto data = ndarray_data_bytes(ctx, obj);
    if (!data) return std::nullopt;
    size += static_cast<int64_t>(*data);
  }
  return size;
}

std::optional<OwnedBuffer> owned_buffer(HeapContext& ctx, RemoteAddr obj, const TypeInfo& ti) {
  const Layout& l = ctx.l;
  const Memory& m = ctx.mem;
  auto make = [](std::optional<RemoteAddr> p, std::optional<int64_t> n, bool in_sizeof) -> std::optional<OwnedBuffer> {
    if (!p || p->null() || !n || *n <= 0 || static_cast<uint64_t>(*n) > kMaxBytes) return std::nullopt;
    return OwnedBuffer{p->value(), static_cast<uint64_t>(*n), in_sizeof};
  };
  switch (ti.cat) {
    case Cat::ByteArray:
      if (!l.has(F::bytearray_bytes) || !l.has(F::bytearray_alloc)) return std::nullopt;
      return make(m.read_ptr(obj + l.off(F::bytearray_bytes)), m.read_as<int64_t>(obj + l.off(F::bytearray_alloc)), true);
    case Cat::Array: {
      if (!l.has(F::array_item) || !l.has(F::array_allocated) || !l.has(F::array_descr)) return std::nullopt;
      auto descr = m.read_ptr(obj + l.off(F::array_descr));
      auto itemsize = descr ? m.read_as<int32_t>(*descr + l.require(F::arraydescr_itemsize)) : std::nullopt;
      auto allocated = m.read_as<int64_t>(obj + l.off(F::array_allocated));
      if (!itemsize || !allocated || *itemsize <= 0 || *itemsize > 64 || *allocated < 0) return std::nullopt;
      return make(m.read_ptr(obj + l.off(F::array_item)), *allocated * *itemsize, true);
    }
    case Cat::Buffered:
      if (!l.has(F::buffered_buffer) || !l.has(F::buffered_buffer_size)) return std::nullopt;
      return make(m.read_ptr(obj + l.off(F::buffered_buffer)), m.read_as<int64_t>(obj + l.off(F::buffered_buffer_size)),
                  true);
    case Cat::NdArray: {
      auto flags = m.read_as<int32_t>(obj + kNdFlags);
      if (!flags || !(*flags & kNdOwnData)) return std::nullopt;  // a view: its base owns the data
      auto bytes = ndarray_data_bytes(ctx, obj);
      if (!bytes) return std::nullopt;
      return make(m.read_ptr(obj + kNdData), static_cast<int64_t>(*bytes), true);
    }
    case Cat::Mmap:
      return make(m.read_ptr(obj + kMmapData), m.read_as<int64_t>(obj + kMmapSize), false);
    default: return std::nullopt;
  }
}

int numpy_major_version(HeapContext& ctx, const PythonProcess& py) {
  auto v = module_attr(ctx, py, "numpy", "__version__");
  auto text = v ? ctx.reader.read_str(*v, 32) : std::nullopt;
  if (!text || text->empty()) return 0;
  return std::atoi(text->c_str());
}

}  // namespace pyinspect
