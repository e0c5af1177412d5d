#pragma once
// A set of object addresses in a copy of the target's memory: one bit per 8-byte word of the
// copied ranges, so marking millions of objects costs a few MiB and no hashing. Once filled,
// rank() numbers the members densely in address order (the object graph's node ids).
//
// The bits are memory the kernel zero-fills on first touch: only the parts where objects lie
// take pyinspect's memory. The set covers the whole of every copied mapping, also the data
// buffers left out of the copy (an object found there is still counted once), and an 8 GiB
// buffer would otherwise cost 128 MiB of bits that stay zero.
#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

#include "heap/heap_types.hpp"
#include "proc/maps.hpp"

namespace pyinspect {

// n zeroed Ts, from anonymous memory: pages never written take no memory.
template <class T>
class ZeroedArray {
 public:
  ZeroedArray() = default;
  explicit ZeroedArray(size_t n) : n_(n) {
    if (!n) return;
    void* p = mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    p_ = static_cast<T*>(p);
  }
  ~ZeroedArray() {
    if (p_) munmap(p_, n_ * sizeof(T));
  }
  ZeroedArray(const ZeroedArray&) = delete;
  ZeroedArray& operator=(const ZeroedArray&) = delete;
  ZeroedArray& operator=(ZeroedArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

class AddressSet {
 public:
  explicit AddressSet(std::vector<std::pair<uint64_t, uint64_t>> ranges) : ranges_(std::move(ranges)) {
    size_t words = 0;
    for (auto& [a, b] : ranges_) {
      offsets_.push_back(words);
      words += ((b - a) / 8 + 63) / 64;
    }
    bits_ = ZeroedArray<uint64_t>(words);
  }
  // True if newly inserted; false if present before or outside the copied memory.
  bool insert(uint64_t addr) {
    auto [w, m] = locate(addr);
    if (!w || (*w & m)) return false;
    *w |= m;
    return true;
  }
  void erase(uint64_t addr) {
    auto [w, m] = locate(addr);
    if (w) *w &= ~m;
  }
  bool contains(uint64_t addr) const {
    auto [w, m] = const_cast<AddressSet*>(this)->locate(addr);
    return w && (*w & m);
  }
  // Numbers the members 0..size()-1 in address order; call once the set is complete.
  __attribute__((target_clones("popcnt", "default"))) void build_rank() {
    rank_ = ZeroedArray<uint32_t>(bits_.size());
    uint32_t n = 0;
    for (size_t i = 0; i < bits_.size(); ++i) {
      if (!bits_[i]) continue;  // rank() looks only at words with members: their pages stay untouched
      rank_[i] = n;
      n += static_cast<uint32_t>(std::popcount(bits_[i]));
    }
    size_ = n;
  }
  size_t size() const { return size_; }
  // The member's number (after build_rank); UINT32_MAX if addr is no member.
  __attribute__((target_clones("popcnt", "default"))) uint32_t rank(uint64_t addr) const {
    auto [w, m] = const_cast<AddressSet*>(this)->locate(addr);
    if (!w || !(*w & m)) return UINT32_MAX;
    size_t i = static_cast<size_t>(w - bits_.data());
    return rank_[i] + static_cast<uint32_t>(std::popcount(*w & (m - 1)));
  }
  // Every member, in address order.
  template <class F>
  void for_each(F&& f) const {
    for (size_t r = 0; r < ranges_.size(); ++r) {
      size_t end = r + 1 < ranges_.size() ? offsets_[r + 1] : bits_.size();
      for (size_t i = offsets_[r]; i < end; ++i)
        for (uint64_t w = bits_[i]; w; w &= w - 1)
          f(ranges_[r].first + ((i - offsets_[r]) * 64 + static_cast<uint64_t>(std::countr_zero(w))) * 8);
    }
  }

 private:
  std::pair<uint64_t*, uint64_t> locate(uint64_t addr) {
    size_t idx = last_;  // objects cluster: most lookups hit the range of the one before
    if (idx >= ranges_.size() || addr < ranges_[idx].first || addr >= ranges_[idx].second) {
      auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                                 [](uint64_t a, const auto& r) { return a < r.first; });
      if (it == ranges_.begin()) return {nullptr, 0};
      --it;
      if (addr >= it->second) return {nullptr, 0};
      idx = last_ = static_cast<size_t>(it - ranges_.begin());
    }
    uint64_t bit = (addr - ranges_[idx].first) / 8;
    return {&bits_[offsets_[idx] + bit / 64], uint64_t{1} << (bit % 64)};
  }
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
  std::vector<size_t> offsets_;
  ZeroedArray<uint64_t> bits_;
  ZeroedArray<uint32_t> rank_;
  size_t size_ = 0;
  size_t last_ = 0;
};

// A word guessed to be a reference (in a type pyinspect does not model) counts only if it looks
// like the start of a live object: a sane reference count, heap objects 16-byte aligned.
inline bool plausible_object(const HeapContext& ctx, const Maps& maps, RemoteAddr p) {
  auto refcnt = ctx.mem.read_as<int64_t>(p);
  if (!refcnt) return false;
  // An immortal object (3.12+) keeps a count of its own kind (abi/facts.hpp).
  if ((*refcnt <= 0 || *refcnt > (int64_t{1} << 40)) && !ctx.l.facts().immortal(*refcnt)) return false;
  const MapEntry* m = maps.find(p);
  if ((p.value() & 15) && !(m && m->is_file())) return false;
  return true;
}

}  // namespace pyinspect
