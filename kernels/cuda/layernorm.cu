// Layer normalisation over the last dimension on the GPU (formulas as kernels/cpu/layernorm.cpp):
//   mean = sum(x) / dim, var = sum((x - mean)^2) / dim, invstd = 1 / sqrt(var + eps), y = gamma xhat + beta;
//   dx += invstd (g - mean(g) - xhat mean(g xhat)) with g = gamma dy; dgamma += sum dy xhat; dbeta += sum dy.
// One warp per row (lane l takes features l, l + 32, ...; the warp sums in a fixed tree order); the
// parameter gradients are deterministic column sums over rows (launch.cuh).
#include <cuda_runtime.h>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/transformer.h"

namespace st::cuda {
namespace {

constexpr int kRowsPerBlock = detail::kThreads / detail::kWarp;

__device__ __forceinline__ int64_t warp_row() {
  return static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / detail::kWarp;
}

__global__ void layernorm_forward_kernel(int64_t rows, int64_t dim, const float* x, const float* gamma,
                                         const float* beta, float eps, float* y, float* mean, float* invstd) {
  const int64_t row = warp_row();
  if (row >= rows) return;  // whole warp
  const int lane = threadIdx.x % detail::kWarp;
  const float* xr = x + row * dim;
  float sum = 0.0f;
  for (int64_t c = lane; c < dim; c += detail::kWarp) sum += xr[c];
  const float m = detail::warp_sum(sum) / static_cast<float>(dim);
  float squares = 0.0f;
  for (int64_t c = lane; c < dim; c += detail::kWarp) {
    const float d = xr[c] - m;
    squares += d * d;
  }
  const float s = 1.0f / sqrtf(detail::warp_sum(squares) / static_cast<float>(dim) + eps);
  if (lane == 0) {
    mean[row] = m;
    invstd[row] = s;
  }
  float* yr = y + row * dim;
  for (int64_t c = lane; c < dim; c += detail::kWarp) yr[c] = (xr[c] - m) * s * gamma[c] + beta[c];
}

__global__ void layernorm_backward_dx_kernel(int64_t rows, int64_t dim, const float* x, const float* gamma,
                                             const float* mean, const float* invstd, const float* dy, float* dx) {
  const int64_t row = warp_row();
  if (row >= rows) return;
  const int lane = threadIdx.x % detail::kWarp;
  const float* xr = x + row * dim;
  const float* dyr = dy + row * dim;
  const float m = mean[row], s = invstd[row];
  float sum_g = 0.0f, sum_g_xhat = 0.0f;
  for (int64_t c = lane; c < dim; c += detail::kWarp) {
    const float g = dyr[c] * gamma[c];
    sum_g += g;
    sum_g_xhat += g * (xr[c] - m) * s;
  }
  const float inv_dim = 1.0f / static_cast<float>(dim);
  const float mean_g = detail::warp_sum(sum_g) * inv_dim, mean_g_xhat = detail::warp_sum(sum_g_xhat) * inv_dim;
  float* dxr = dx + row * dim;
  for (int64_t c = lane; c < dim; c += detail::kWarp) {
    const float xhat = (xr[c] - m) * s;
    dxr[c] += s * (dyr[c] * gamma[c] - mean_g - xhat * mean_g_xhat);
  }
}

// (dy xhat, dy) of one element, for the column sums of dgamma and dbeta.
struct ParameterTerms {
  const float* x;
  const float* dy;
  const float* mean;
  const float* invstd;
  int64_t dim;
  __device__ detail::Sums<2> operator()(int64_t index, int64_t) const {
    const int64_t row = index / dim;
    const float xhat = (x[index] - mean[row]) * invstd[row];
    return detail::Sums<2>{{dy[index] * xhat, dy[index]}};
  }
};

unsigned int row_blocks(int64_t rows) { return static_cast<unsigned int>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

void layernorm_forward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* beta, float eps,
                       float* y, float* mean, float* invstd, cudaStream_t stream) {
  constexpr const char* kName = "cuda::layernorm_forward";
  require(rows >= 0 && dim > 0, kName, "rows must be >= 0 and dim > 0");
  if (rows == 0) return;
  require(x && gamma && beta && y && mean && invstd, kName, "null pointer argument");
  layernorm_forward_kernel<<<row_blocks(rows), detail::kThreads, 0, stream>>>(rows, dim, x, gamma, beta, eps, y, mean,
                                                                              invstd);
  ST_CUDA_CHECK_LAUNCH();
}

void layernorm_backward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* mean,
                        const float* invstd, const float* dy, float* dx, float* dgamma, float* dbeta,
                        cudaStream_t stream) {
  constexpr const char* kName = "cuda::layernorm_backward";
  require(rows >= 0 && dim > 0, kName, "rows must be >= 0 and dim > 0");
  if (rows == 0) return;
  require(x && gamma && mean && invstd && dy, kName, "null pointer argument");
  if (dx != nullptr) {
    layernorm_backward_dx_kernel<<<row_blocks(rows), detail::kThreads, 0, stream>>>(rows, dim, x, gamma, mean, invstd,
                                                                                    dy, dx);
    ST_CUDA_CHECK_LAUNCH();
  }
  if (dgamma != nullptr || dbeta != nullptr)
    detail::accumulate_column_sums<2>(rows, dim, ParameterTerms{x, dy, mean, invstd, dim},
                                      detail::ColumnOutputs<2>{{dgamma, dbeta}}, stream);
}

}  // namespace st::cuda
