#include "heap/walker.hpp"

#include <algorithm>

namespace pyinspect {

HeapWalk::HeapWalk(HeapContext& ctx, const HeapSnapshot& snap, AddressSet& seen, Progress* progress, const char* doing)
    : ctx_(ctx), snap_(snap), seen_(seen), maps_(snap.maps()), progress_(progress), doing_(doing) {}

void HeapWalk::defer_hidden(bool on) {
  deferring_ = on;
  if (on && !deferred_set_) deferred_set_ = std::make_unique<AddressSet>(snap_.ranges());
}

void HeapWalk::visit(RemoteAddr child, const Edge& edge) {
  if (child.null() || (child.value() & 7)) return;
  // A guessed reference into a range left out of the copy is none: that range was judged to hold
  // data, no objects, and reading it would only be a live read of data.
  if (edge.kind == EdgeKind::Guess && (snap_.left_out_at(child) || !plausible_object(ctx_, maps_, child))) return;
  const bool root = current_.null();
  if (deferring_ && !root && edge.hidden != Hidden::No) {
    if (!seen_.contains(child.value()) && deferred_set_->insert(child.value())) deferred_.push_back({child.value(), edge.hidden});
    return;
  }
  if (seen_.contains(child.value())) {
    if (root)
      on_root(child, edge, false);
    else
      on_reference(current_, child, edge);
    return;
  }
  const TypeInfo* ti = ctx_.type_of(child);
  if (!ti) return;                                // not an object after all (torn or stale pointer)
  if (!seen_.insert(child.value())) return;       // outside the copied memory
  stack_.emplace_back(child, ti);
  if (root) {
    on_root(child, edge, true);
    run();
  } else {
    on_reference(current_, child, edge);
  }
}

void HeapWalk::run() {
  if (running_) return;
  running_ = true;
  while (!stack_.empty()) {
    auto [obj, ti] = stack_.back();
    stack_.pop_back();
    current_ = obj;
    on_expand(obj, *ti);
    ReferentStatus status = for_each_referent(ctx_, obj, *ti, *this);
    if (status != ReferentStatus::Complete) {
      ++(status == ReferentStatus::Unreadable ? unreadable_ : missing_member_);
      auto it = std::find_if(unreadable_types_.begin(), unreadable_types_.end(),
                             [&](const auto& p) { return p.first == ti->id; });
      if (it == unreadable_types_.end())
        unreadable_types_.emplace_back(ti->id, 1);
      else
        ++it->second;
    }
    current_ = RemoteAddr();
    if ((++expanded_ & 0xfff) == 0) {
      snap_.check_target(doing_);
      if (progress_) progress_->update(expanded_);
    }
  }
  running_ = false;
}

}  // namespace pyinspect
