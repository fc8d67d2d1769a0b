// Softmax over the last dimension on the GPU (formulas as kernels/cpu/softmax.cpp):
//   y = exp(x - max x) / sum exp(x - max x);   dx += y (dy - sum(dy y)).
// One warp per row (lane l takes columns l, l + 32, ...; fixed-order warp reductions). The forward
// may run in place: each element is read before its own lane writes it.
#include <cuda_runtime.h>

#include <cfloat>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/transformer.h"

namespace st::cuda {
namespace {

constexpr int kRowsPerBlock = detail::kThreads / detail::kWarp;

__global__ void softmax_forward_kernel(int64_t rows, int64_t cols, const float* x, float* y) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / detail::kWarp;
  if (row >= rows) return;  // whole warp
  const int lane = threadIdx.x % detail::kWarp;
  const float* xr = x + row * cols;
  float* yr = y + row * cols;
  float best = -FLT_MAX;
  for (int64_t c = lane; c < cols; c += detail::kWarp) best = fmaxf(best, xr[c]);
  best = detail::warp_max(best);
  float sum = 0.0f;
  for (int64_t c = lane; c < cols; c += detail::kWarp) {
    const float e = expf(xr[c] - best);
    yr[c] = e;
    sum += e;
  }
  const float inv = 1.0f / detail::warp_sum(sum);
  for (int64_t c = lane; c < cols; c += detail::kWarp) yr[c] *= inv;
}

__global__ void softmax_backward_kernel(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / detail::kWarp;
  if (row >= rows) return;
  const int lane = threadIdx.x % detail::kWarp;
  const float* yr = y + row * cols;
  const float* dyr = dy + row * cols;
  float dot = 0.0f;
  for (int64_t c = lane; c < cols; c += detail::kWarp) dot += dyr[c] * yr[c];
  dot = detail::warp_sum(dot);
  float* dxr = dx + row * cols;
  for (int64_t c = lane; c < cols; c += detail::kWarp) dxr[c] += yr[c] * (dyr[c] - dot);
}

unsigned int row_blocks(int64_t rows) { return static_cast<unsigned int>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, cudaStream_t stream) {
  constexpr const char* kName = "cuda::softmax_forward";
  require(rows >= 0 && cols > 0, kName, "rows must be >= 0 and cols > 0");
  if (rows == 0) return;
  require(x && y, kName, "null pointer argument");
  softmax_forward_kernel<<<row_blocks(rows), detail::kThreads, 0, stream>>>(rows, cols, x, y);
  ST_CUDA_CHECK_LAUNCH();
}

void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, cudaStream_t stream) {
  constexpr const char* kName = "cuda::softmax_backward";
  require(rows >= 0 && cols > 0, kName, "rows must be >= 0 and cols > 0");
  if (rows == 0 || dx == nullptr) return;
  require(y && dy, kName, "null pointer argument");
  softmax_backward_kernel<<<row_blocks(rows), detail::kThreads, 0, stream>>>(rows, cols, y, dy, dx);
  ST_CUDA_CHECK_LAUNCH();
}

}  // namespace st::cuda
