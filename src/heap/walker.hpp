#pragma once
// The depth-first walk over the objects of a heap snapshot that the census and the object graph
// share: each object is expanded once (an AddressSet holds those seen), a reference that is only a
// guess (a word of a type pyinspect does not model) must look like a live object, and every few
// thousand objects the target is checked to still exist. What to do with each object and each
// reference is the subclass's.
#include <cstdint>
#include <memory>
#include <vector>

#include "base/progress.hpp"
#include "heap/address_set.hpp"
#include "heap/heap_types.hpp"
#include "heap/snapshot.hpp"

namespace pyinspect {

class HeapWalk : public ReferentVisitor {
 public:
  HeapWalk(HeapContext& ctx, const HeapSnapshot& snap, AddressSet& seen, Progress* progress, const char* doing);

  // A root (no object is being expanded) or a referent of the object being expanded. A root is
  // walked to its end at once, so that the stack never holds all the roots (the GC lists alone
  // can be millions of objects).
  void visit(RemoteAddr child, const Edge& edge) override;
  // Walks whatever is still queued.
  void run();

  // While deferring, references gc.get_referents() does not report (Edge::hidden) are not
  // followed but set aside, once each, for a later walk from them.
  struct Deferred {
    uint64_t addr;
    Hidden why;
  };
  void defer_hidden(bool on);
  std::vector<Deferred> take_deferred() { return std::move(deferred_); }

  uint64_t expanded() const { return expanded_; }
  // Objects whose references could not all be read (their walk stopped early), by reason.
  uint64_t referents_unreadable() const { return unreadable_; }
  uint64_t referents_missing_member() const { return missing_member_; }
  const std::vector<std::pair<uint32_t, uint64_t>>& unreadable_by_type() const { return unreadable_types_; }

 protected:
  // An object about to be expanded (once per object), before its references are visited.
  virtual void on_expand(RemoteAddr obj, const TypeInfo& ti) = 0;
  // A reference from the object being expanded to an object (seen before or not).
  virtual void on_reference(RemoteAddr /*from*/, RemoteAddr /*to*/, const Edge& /*edge*/) {}
  // A root that is an object; `fresh`: not seen before.
  virtual void on_root(RemoteAddr /*obj*/, const Edge& /*edge*/, bool /*fresh*/) {}

  HeapContext& ctx_;
  const HeapSnapshot& snap_;
  AddressSet& seen_;

 private:
  const Maps& maps_;
  Progress* progress_;
  const char* doing_;
  std::vector<std::pair<RemoteAddr, const TypeInfo*>> stack_;
  RemoteAddr current_;
  bool running_ = false;
  bool deferring_ = false;
  std::unique_ptr<AddressSet> deferred_set_;
  std::vector<Deferred> deferred_;
  uint64_t expanded_ = 0, unreadable_ = 0, missing_member_ = 0;
  std::vector<std::pair<uint32_t, uint64_t>> unreadable_types_;  // (type id, objects)
};

}  // namespace pyinspect
