// A per-thread "current" object installed for a scope (the activation probe, the op-time profile): the
// ops look it up with one thread-local read and do nothing when none is installed. Scopes nest; each
// restores the one it replaced.
#pragma once

namespace st {

template <typename T>
class ThreadScope {
 public:
  explicit ThreadScope(T& value) : previous_(current_) { current_ = &value; }
  ~ThreadScope() { current_ = previous_; }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;
  static T* active() { return current_; }

 private:
  inline static thread_local T* current_ = nullptr;
  T* previous_;
};

}  // namespace st
