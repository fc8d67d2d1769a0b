// Batch normalisation (Ioffe & Szegedy 2015) over [rows, channels], rows = N*H*W (NHWC); the same
// formulas, in the same operation order, as kernels/cpu/batchnorm.cpp:
//   train: mean = sum x / M, var = sum (x - mean)^2 / M (biased, two passes), invstd = 1 / sqrt(var + eps),
//          scale = gamma * invstd, shift = beta - mean * scale, y = x * scale + shift (then max(0, .) if relu)
//   eval:  scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale
//   backward (train), g = dy gated by relu_output > 0, xhat = (x - mean) * invstd:
//          dbeta += sum g, dgamma += sum g * xhat,
//          dx += gamma * invstd * (g - (sum g) / M - xhat * (sum g * xhat) / M)
//   backward (eval): dx += g * gamma * invstd, dgamma += sum g * (x - running_mean) * invstd, dbeta += sum g
// Kernel sequence of a training forward: partial sums of x -> mean -> partial sums of (x - mean)^2 ->
// var/invstd/scale/shift -> affine. Per-channel sums use column_partials_kernel + column_total
// (kernels/cuda/launch.cuh): deterministic, no atomics.
#include <cuda_runtime.h>

#include "kernels/cuda/allocator.h"
#include "kernels/cuda/batchnorm.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/launch.cuh"

namespace st::cuda {
namespace {

using detail::ColumnPlan;
using detail::Sums;

__device__ __forceinline__ float gated(const float* relu_output, const float* dy, int64_t i) {
  return relu_output == nullptr || relu_output[i] > 0.0f ? dy[i] : 0.0f;
}

// ---- terms summed per channel (index = row * channels + c) ----------------------------------------
struct ValueTerm {
  const float* x;
  __device__ Sums<1> operator()(int64_t i, int64_t) const { return Sums<1>{{x[i]}}; }
};

struct SquaredDeviationTerm {
  const float* x;
  const float* mean;
  __device__ Sums<1> operator()(int64_t i, int64_t c) const {
    const float d = x[i] - mean[c];
    return Sums<1>{{d * d}};
  }
};

// {g, g * (x - center) * invstd}: the sums behind dbeta and dgamma (train: center = batch mean,
// eval: center = running mean).
struct GradientTerms {
  const float* x;
  const float* center;
  const float* invstd;
  const float* relu_output;
  const float* dy;
  __device__ Sums<2> operator()(int64_t i, int64_t c) const {
    const float g = gated(relu_output, dy, i);
    return Sums<2>{{g, g * (x[i] - center[c]) * invstd[c]}};
  }
};

// ---- finalize kernels: one warp per channel (detail::finalize_column) ------------------------------
__global__ void mean_kernel(const float* partials, int64_t chunks, int64_t channels, int64_t rows, float* mean) {
  const int64_t c = detail::finalize_column();
  if (c >= channels) return;  // whole warp
  const Sums<1> total = detail::column_total<1>(partials, chunks, channels, c);
  if (threadIdx.x % detail::kWarp == 0) mean[c] = total.v[0] / static_cast<float>(rows);
}

__global__ void variance_kernel(const float* partials, int64_t chunks, int64_t channels, int64_t rows, float eps,
                                const float* gamma, const float* beta, const float* mean, float* batch_var,
                                float* batch_invstd, float* scale, float* shift) {
  const int64_t c = detail::finalize_column();
  if (c >= channels) return;
  const Sums<1> total = detail::column_total<1>(partials, chunks, channels, c);
  if (threadIdx.x % detail::kWarp != 0) return;
  const float var = total.v[0] / static_cast<float>(rows);
  const float invstd = 1.0f / sqrtf(var + eps);
  batch_var[c] = var;
  batch_invstd[c] = invstd;
  scale[c] = gamma[c] * invstd;
  shift[c] = beta[c] - mean[c] * scale[c];
}

// Backward totals: dgamma/dbeta accumulate the totals; with mean_dy (train backward with dx) the
// per-channel dx coefficients go to scratch too (gamma and invstd are read only then). The eval
// backward calls it with mean_dy null.
__global__ void backward_totals_kernel(const float* partials, int64_t chunks, int64_t channels, float inv_rows,
                                       const float* gamma, const float* invstd, float* dgamma, float* dbeta,
                                       float* mean_dy, float* mean_dy_xhat, float* coefficient) {
  const int64_t c = detail::finalize_column();
  if (c >= channels) return;
  const Sums<2> total = detail::column_total<2>(partials, chunks, channels, c);
  if (threadIdx.x % detail::kWarp != 0) return;
  if (dbeta != nullptr) dbeta[c] += total.v[0];
  if (dgamma != nullptr) dgamma[c] += total.v[1];
  if (mean_dy != nullptr) {
    mean_dy[c] = total.v[0] * inv_rows;
    mean_dy_xhat[c] = total.v[1] * inv_rows;
    coefficient[c] = gamma[c] * invstd[c];
  }
}

// ---- per-channel coefficients of the eval paths: thread c -> channel c -----------------------------
__global__ void eval_forward_coefficients_kernel(int64_t channels, const float* gamma, const float* beta,
                                                 const float* running_mean, const float* running_var, float eps,
                                                 float* scale, float* shift) {
  const int64_t c = detail::first_index();
  if (c >= channels) return;
  scale[c] = gamma[c] / sqrtf(running_var[c] + eps);
  shift[c] = beta[c] - running_mean[c] * scale[c];
}

__global__ void eval_backward_coefficients_kernel(int64_t channels, const float* gamma, const float* running_var,
                                                  float eps, float* invstd, float* scale) {
  const int64_t c = detail::first_index();
  if (c >= channels) return;
  invstd[c] = 1.0f / sqrtf(running_var[c] + eps);
  scale[c] = gamma[c] * invstd[c];
}

// ---- elementwise passes over the n = rows * channels elements (grid-stride; c = i mod channels) ----
__global__ void affine_kernel(int64_t n, int64_t channels, const float* x, const float* scale, const float* shift,
                              bool relu, float* y) {
  for (int64_t i = detail::first_index(); i < n; i += detail::index_stride()) {
    const int64_t c = i % channels;
    const float v = x[i] * scale[c] + shift[c];
    y[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
  }
}

__global__ void train_backward_dx_kernel(int64_t n, int64_t channels, const float* x, const float* mean,
                                         const float* invstd, const float* relu_output, const float* dy,
                                         const float* mean_dy, const float* mean_dy_xhat, const float* coefficient,
                                         float* dx) {
  for (int64_t i = detail::first_index(); i < n; i += detail::index_stride()) {
    const int64_t c = i % channels;
    const float xhat = (x[i] - mean[c]) * invstd[c];
    dx[i] += coefficient[c] * (gated(relu_output, dy, i) - mean_dy[c] - xhat * mean_dy_xhat[c]);
  }
}

__global__ void eval_backward_dx_kernel(int64_t n, int64_t channels, const float* relu_output, const float* dy,
                                        const float* scale, float* dx) {
  for (int64_t i = detail::first_index(); i < n; i += detail::index_stride()) {
    dx[i] += gated(relu_output, dy, i) * scale[i % channels];
  }
}

// One thread per channel; __fmul_rn / __fadd_rn keep nvcc from fusing into an FMA.
__global__ void update_running_stats_kernel(int64_t channels, const float* batch_mean, const float* batch_var,
                                            float momentum, float unbiased, float* running_mean, float* running_var) {
  const int64_t c = detail::first_index();
  if (c >= channels) return;
  const float keep = 1.0f - momentum;
  running_mean[c] = __fadd_rn(__fmul_rn(keep, running_mean[c]), __fmul_rn(momentum, batch_mean[c]));
  running_var[c] =
      __fadd_rn(__fmul_rn(keep, running_var[c]), __fmul_rn(__fmul_rn(momentum, batch_var[c]), unbiased));
}

void require_shape(const char* function, int64_t rows, int64_t channels) {
  require(rows > 0, function, "rows (N*H*W) must be > 0");
  require(channels > 0, function, "channels must be > 0");
}

template <int K, typename Term>
void launch_partials(int64_t rows, int64_t channels, const ColumnPlan& plan, const Term& term, float* partials,
                     cudaStream_t stream) {
  detail::column_partials_kernel<K, Term>
      <<<detail::column_partials_grid(channels, plan), detail::column_partials_block(), 0, stream>>>(
          rows, channels, plan.rows_per_chunk, term, partials);
  ST_CUDA_CHECK_LAUNCH();
}

}  // namespace

void batchnorm_forward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                             float eps, bool relu, float* y, float* batch_mean, float* batch_invstd, float* batch_var,
                             cudaStream_t stream) {
  constexpr const char* kName = "cuda::batchnorm_forward_train";
  require_shape(kName, rows, channels);
  require(x && gamma && beta && y && batch_mean && batch_invstd && batch_var, kName, "null pointer argument");
  const ColumnPlan plan = detail::plan_columns(rows);
  // scratch: partials [chunks * channels] | scale [channels] | shift [channels]
  DeviceBuffer scratch = DeviceBuffer::of<float>(static_cast<std::size_t>((plan.chunks + 2) * channels), stream);
  float* partials = scratch.as<float>();
  float* scale = partials + plan.chunks * channels;
  float* shift = scale + channels;

  launch_partials<1>(rows, channels, plan, ValueTerm{x}, partials, stream);
  mean_kernel<<<detail::finalize_grid(channels), detail::kThreads, 0, stream>>>(partials, plan.chunks, channels, rows,
                                                                                batch_mean);
  ST_CUDA_CHECK_LAUNCH();
  launch_partials<1>(rows, channels, plan, SquaredDeviationTerm{x, batch_mean}, partials, stream);
  variance_kernel<<<detail::finalize_grid(channels), detail::kThreads, 0, stream>>>(
      partials, plan.chunks, channels, rows, eps, gamma, beta, batch_mean, batch_var, batch_invstd, scale, shift);
  ST_CUDA_CHECK_LAUNCH();
  const int64_t n = rows * channels;
  detail::launch_grid_stride(affine_kernel, n, stream, n, channels, x, scale, shift, relu, y);
}

void batchnorm_forward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, float eps, bool relu, float* y,
                            cudaStream_t stream) {
  constexpr const char* kName = "cuda::batchnorm_forward_eval";
  require_shape(kName, rows, channels);
  require(x && gamma && beta && running_mean && running_var && y, kName, "null pointer argument");
  DeviceBuffer scratch = DeviceBuffer::of<float>(static_cast<std::size_t>(2 * channels), stream);
  float* scale = scratch.as<float>();
  float* shift = scale + channels;
  detail::launch_grid_stride(eval_forward_coefficients_kernel, channels, stream,
                             channels, gamma, beta, running_mean, running_var, eps, scale, shift);
  const int64_t n = rows * channels;
  detail::launch_grid_stride(affine_kernel, n, stream, n, channels, x, scale, shift, relu, y);
}

void batchnorm_backward_train(int64_t rows, int64_t channels, const float* x, const float* gamma,
                              const float* batch_mean, const float* batch_invstd, const float* relu_output,
                              const float* dy, float* dx, float* dgamma, float* dbeta, cudaStream_t stream) {
  constexpr const char* kName = "cuda::batchnorm_backward_train";
  require_shape(kName, rows, channels);
  require(x && gamma && batch_mean && batch_invstd && dy, kName, "null pointer argument");
  if (dx == nullptr && dgamma == nullptr && dbeta == nullptr) return;
  const ColumnPlan plan = detail::plan_columns(rows);
  // scratch: partials [2 * chunks * channels] | mean_dy | mean_dy_xhat | coefficient [channels each]
  DeviceBuffer scratch = DeviceBuffer::of<float>(static_cast<std::size_t>((2 * plan.chunks + 3) * channels), stream);
  float* partials = scratch.as<float>();
  float* mean_dy = partials + 2 * plan.chunks * channels;
  float* mean_dy_xhat = mean_dy + channels;
  float* coefficient = mean_dy_xhat + channels;

  launch_partials<2>(rows, channels, plan, GradientTerms{x, batch_mean, batch_invstd, relu_output, dy}, partials,
                     stream);
  const float inv_rows = 1.0f / static_cast<float>(rows);
  backward_totals_kernel<<<detail::finalize_grid(channels), detail::kThreads, 0, stream>>>(
      partials, plan.chunks, channels, inv_rows, gamma, batch_invstd, dgamma, dbeta, dx ? mean_dy : nullptr,
      mean_dy_xhat, coefficient);
  ST_CUDA_CHECK_LAUNCH();
  if (dx == nullptr) return;
  const int64_t n = rows * channels;
  detail::launch_grid_stride(train_backward_dx_kernel, n, stream,
                             n, channels, x, batch_mean, batch_invstd, relu_output, dy, mean_dy, mean_dy_xhat, coefficient, dx);
}

void batchnorm_backward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma,
                             const float* running_mean, const float* running_var, float eps, const float* relu_output,
                             const float* dy, float* dx, float* dgamma, float* dbeta, cudaStream_t stream) {
  constexpr const char* kName = "cuda::batchnorm_backward_eval";
  require_shape(kName, rows, channels);
  require(x && gamma && running_mean && running_var && dy, kName, "null pointer argument");
  if (dx == nullptr && dgamma == nullptr && dbeta == nullptr) return;
  const bool want_sums = dgamma != nullptr || dbeta != nullptr;
  const ColumnPlan plan = detail::plan_columns(rows);
  // scratch: invstd | scale [channels each] | partials [2 * chunks * channels] (when sums are wanted)
  const int64_t floats = 2 * channels + (want_sums ? 2 * plan.chunks * channels : 0);
  DeviceBuffer scratch = DeviceBuffer::of<float>(static_cast<std::size_t>(floats), stream);
  float* invstd = scratch.as<float>();
  float* scale = invstd + channels;
  float* partials = scale + channels;

  detail::launch_grid_stride(eval_backward_coefficients_kernel, channels, stream,
                             channels, gamma, running_var, eps, invstd, scale);
  const int64_t n = rows * channels;
  if (dx != nullptr) {
    detail::launch_grid_stride(eval_backward_dx_kernel, n, stream, n, channels, relu_output, dy, scale, dx);
  }
  if (!want_sums) return;
  launch_partials<2>(rows, channels, plan, GradientTerms{x, running_mean, invstd, relu_output, dy}, partials, stream);
  backward_totals_kernel<<<detail::finalize_grid(channels), detail::kThreads, 0, stream>>>(
      partials, plan.chunks, channels, 0.0f, nullptr, nullptr, dgamma, dbeta, nullptr, nullptr, nullptr);
  ST_CUDA_CHECK_LAUNCH();
}

void batchnorm_update_running_stats(int64_t channels, const float* batch_mean, const float* batch_var, float momentum,
                                    float unbiased, float* running_mean, float* running_var, cudaStream_t stream) {
  constexpr const char* kName = "cuda::batchnorm_update_running_stats";
  require(channels >= 0, kName, "channels must be >= 0");
  if (channels == 0) return;
  require(batch_mean && batch_var && running_mean && running_var, kName, "null pointer argument");
  detail::launch_grid_stride(update_running_stats_kernel, channels, stream,
                             channels, batch_mean, batch_var, momentum, unbiased, running_mean, running_var);
}

}  // namespace st::cuda
