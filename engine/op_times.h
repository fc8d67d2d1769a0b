// Op time profile (CPU): while an OpTimeScope is active on this thread, the ops that carry an OpTimer
// (conv2d, batchnorm, add_relu: nearly all of a CNN's CPU step) add the wall time of their forward
// and backward kernels under "<op> forward" and "<op> backward". `sparsetrain bench --op-times` prints
// it per step for the dense and the channel-pruned network, which shows where a structured-pruning
// speedup falls short of the FLOP ratio. GPU ops run asynchronously, so the bench takes it on CPU only.
// No scope, no cost beyond one thread-local read per op.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "engine/thread_scope.h"

namespace st {

using OpTimes = std::map<std::string, double>;  // seconds per "<op> <phase>"

using OpTimeScope = ThreadScope<OpTimes>;
inline OpTimes* active_op_times() { return OpTimeScope::active(); }

// Times its own lifetime into the active profile under `key` (a string literal).
class OpTimer {
 public:
  explicit OpTimer(const char* key) : times_(active_op_times()), key_(key) {
    if (times_ != nullptr) start_ = std::chrono::steady_clock::now();
  }
  ~OpTimer() {
    if (times_ != nullptr)
      (*times_)[key_] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

 private:
  OpTimes* times_;
  const char* key_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace st
