// One tensor of a parameter group for the multi-tensor optimizer launch (kernels/cuda/optimizer.h), as
// device pointers. A plain struct without CUDA headers, so the engine's GPU facade
// (engine/ops/gpu_kernels.h) names the same type in builds without CUDA.
// state0/state1 by optimizer:
//   SGD: state0 = velocity (null or momentum == 0: plain SGD), state1 unused;
//   Adam: state0 = m, state1 = v (both required);
//   RMSProp: state0 = square_avg (required), state1 = momentum buffer (null or momentum == 0: none).
// mask null: dense tensor. n may be 0 (no blocks).
#pragma once

#include <cstdint>

namespace st::cuda {

struct TensorSlot {
  float* w = nullptr;
  const float* g = nullptr;
  float* state0 = nullptr;
  float* state1 = nullptr;
  const float* mask = nullptr;
  int64_t n = 0;
  // Written out: the .cu files compile as C++17, where a defaulted comparison is not allowed.
  bool operator==(const TensorSlot& o) const {
    return w == o.w && g == o.g && state0 == o.state0 && state1 == o.state1 && mask == o.mask && n == o.n;
  }
};

}  // namespace st::cuda
