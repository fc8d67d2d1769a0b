// Softmax cross-entropy with label smoothing (Szegedy et al. 2016), fused; operation order as
// kernels/cpu/softmax_cross_entropy.cpp: p = exp(z - max z) in float, their sum and the loss in double,
// p /= sum in double then rounded to float; backward (p - q) * loss_grad / batch.
//
// Forward: one block of kSoftmaxThreads threads per sample (blockIdx.x = sample); thread t handles
// classes t, t + blockDim.x, ... (the same classes in every phase, so each thread rereads only what it
// wrote). Block max / sum in a fixed tree order (launch.cuh), then one block sums the per-sample losses
// in a fixed order: deterministic. count_correct: one warp per sample.
#include <cuda_runtime.h>

#include <cmath>
#include <limits>

#include "kernels/cuda/allocator.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/softmax_cross_entropy.h"

namespace st::cuda {
namespace {

constexpr int kSoftmaxThreads = 256;

__global__ void softmax_cross_entropy_forward_kernel(int64_t classes, const float* logits, const int32_t* labels,
                                                     float smoothing, float* probabilities, double* sample_loss) {
  __shared__ float max_scratch[detail::kWarp];
  __shared__ double sum_scratch[detail::kWarp];
  const int64_t n = blockIdx.x;
  const float* z = logits + n * classes;
  float* p = probabilities + n * classes;

  float local_max = -INFINITY;
  for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) local_max = z[c] > local_max ? z[c] : local_max;
  const float max_logit = detail::block_max(local_max, -INFINITY, max_scratch);

  double local_sum = 0.0;
  for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
    const float e = expf(z[c] - max_logit);
    p[c] = e;
    local_sum += static_cast<double>(e);
  }
  const double sum = detail::block_sum(local_sum, sum_scratch);
  const double log_sum = log(sum);

  const double off_target = static_cast<double>(smoothing) / static_cast<double>(classes);
  const int32_t label = labels[n];
  double local_loss = 0.0;
  for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
    const double log_p = static_cast<double>(z[c] - max_logit) - log_sum;
    const double q = off_target + (c == label ? 1.0 - static_cast<double>(smoothing) : 0.0);
    local_loss -= q * log_p;
    p[c] = static_cast<float>(static_cast<double>(p[c]) / sum);
  }
  const double loss = detail::block_sum(local_loss, sum_scratch);
  if (threadIdx.x == 0) sample_loss[n] = loss;
}

// One block: thread t sums samples t, t + blockDim.x, ... in order, then a fixed-order block sum.
__global__ void mean_loss_kernel(int64_t batch, const double* sample_loss, double* mean_loss) {
  __shared__ double scratch[detail::kWarp];
  double local = 0.0;
  for (int64_t n = threadIdx.x; n < batch; n += blockDim.x) local += sample_loss[n];
  const double total = detail::block_sum(local, scratch);
  if (threadIdx.x == 0) *mean_loss = total / static_cast<double>(batch);
}

// Thread -> element i of [batch, classes]: (n, c) = (i / classes, i mod classes).
__global__ void softmax_cross_entropy_backward_kernel(int64_t batch, int64_t classes, const float* probabilities,
                                                      const int32_t* labels, float off_target, float on_target_extra,
                                                      float scale, float* dlogits) {
  const int64_t total = batch * classes;
  for (int64_t i = detail::first_index(); i < total; i += detail::index_stride()) {
    const int64_t n = i / classes, c = i % classes;
    const float q = off_target + (c == labels[n] ? on_target_extra : 0.0f);
    dlogits[i] += (probabilities[i] - q) * scale;
  }
}

// As softmax_cross_entropy_backward_kernel; scale = *loss_grad / batch computed by every thread (the same
// single IEEE division as the host computes for the by-value variant).
__global__ void softmax_cross_entropy_backward_device_grad_kernel(int64_t batch, int64_t classes,
                                                                  const float* probabilities, const int32_t* labels,
                                                                  float off_target, float on_target_extra,
                                                                  const float* loss_grad, float* dlogits) {
  const float scale = *loss_grad / static_cast<float>(batch);
  const int64_t total = batch * classes;
  for (int64_t i = detail::first_index(); i < total; i += detail::index_stride()) {
    const int64_t n = i / classes, c = i % classes;
    const float q = off_target + (c == labels[n] ? on_target_extra : 0.0f);
    dlogits[i] += (probabilities[i] - q) * scale;
  }
}

__global__ void store_loss_as_float_kernel(const double* mean_loss, float* loss) {
  *loss = static_cast<float>(*mean_loss);
}

// Warp w of block b -> sample n = b * (blockDim.x / 32) + w; lane l scans classes l, l + 32, ...
__global__ void count_correct_kernel(int64_t batch, int64_t classes, const float* logits, const int32_t* labels,
                                     unsigned long long* correct) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (blockDim.x / detail::kWarp) + threadIdx.x / detail::kWarp;
  const int lane = threadIdx.x % detail::kWarp;
  if (n >= batch) return;  // whole warp
  const float* z = logits + n * classes;
  float best = -INFINITY;
  int64_t best_index = classes;  // "none yet": larger than every class index
  for (int64_t c = lane; c < classes; c += detail::kWarp) {
    if (best_index == classes || z[c] > best) {
      best = z[c];
      best_index = c;
    }
  }
  // Larger value wins; equal values: the lower index (the CPU's first maximum).
  for (int offset = detail::kWarp / 2; offset > 0; offset /= 2) {
    const float other = __shfl_down_sync(0xffffffffu, best, offset);
    const int64_t other_index = __shfl_down_sync(0xffffffffu, best_index, offset);
    if (other > best || (other == best && other_index < best_index)) {
      best = other;
      best_index = other_index;
    }
  }
  if (lane == 0 && best_index == static_cast<int64_t>(labels[n])) atomicAdd(correct, 1ull);
}

void require_batch(const char* name, int64_t batch, int64_t classes) {
  require(batch > 0 && classes > 0, name, "batch and classes must be > 0");
  require(batch <= std::numeric_limits<int32_t>::max(), name, "batch must be < 2^31 (one block per sample)");
}

}  // namespace

void softmax_cross_entropy_forward(int64_t batch, int64_t classes, const float* logits, const int32_t* labels,
                                   float smoothing, float* probabilities, double* mean_loss, cudaStream_t stream) {
  constexpr const char* kName = "cuda::softmax_cross_entropy_forward";
  require_batch(kName, batch, classes);
  require(logits && labels && probabilities && mean_loss, kName, "null pointer argument");
  DeviceBuffer sample_loss = DeviceBuffer::of<double>(static_cast<std::size_t>(batch), stream);
  softmax_cross_entropy_forward_kernel<<<static_cast<unsigned int>(batch), kSoftmaxThreads, 0, stream>>>(
      classes, logits, labels, smoothing, probabilities, sample_loss.as<double>());
  ST_CUDA_CHECK_LAUNCH();
  mean_loss_kernel<<<1, detail::kThreads, 0, stream>>>(batch, sample_loss.as<double>(), mean_loss);
  ST_CUDA_CHECK_LAUNCH();
}

void softmax_cross_entropy_backward(int64_t batch, int64_t classes, const float* probabilities, const int32_t* labels,
                                    float smoothing, float loss_grad, float* dlogits, cudaStream_t stream) {
  constexpr const char* kName = "cuda::softmax_cross_entropy_backward";
  require_batch(kName, batch, classes);
  require(probabilities && labels && dlogits, kName, "null pointer argument");
  const float scale = loss_grad / static_cast<float>(batch);
  const float off_target = smoothing / static_cast<float>(classes);
  const float on_target_extra = 1.0f - smoothing;
  detail::launch_grid_stride(softmax_cross_entropy_backward_kernel, batch * classes, stream,
                             batch, classes, probabilities, labels, off_target, on_target_extra, scale, dlogits);
}

void softmax_cross_entropy_backward_device_grad(int64_t batch, int64_t classes, const float* probabilities,
                                                const int32_t* labels, float smoothing, const float* loss_grad,
                                                float* dlogits, cudaStream_t stream) {
  constexpr const char* kName = "cuda::softmax_cross_entropy_backward_device_grad";
  require_batch(kName, batch, classes);
  require(probabilities && labels && loss_grad && dlogits, kName, "null pointer argument");
  const float off_target = smoothing / static_cast<float>(classes);
  const float on_target_extra = 1.0f - smoothing;
  softmax_cross_entropy_backward_device_grad_kernel<<<detail::grid_for(batch * classes), detail::kThreads, 0,
                                                      stream>>>(batch, classes, probabilities, labels, off_target,
                                                                on_target_extra, loss_grad, dlogits);
  ST_CUDA_CHECK_LAUNCH();
}

void store_loss_as_float(const double* mean_loss, float* loss, cudaStream_t stream) {
  require(mean_loss && loss, "cuda::store_loss_as_float", "null pointer argument");
  store_loss_as_float_kernel<<<1, 1, 0, stream>>>(mean_loss, loss);
  ST_CUDA_CHECK_LAUNCH();
}

void count_correct(int64_t batch, int64_t classes, const float* logits, const int32_t* labels,
                   unsigned long long* correct, cudaStream_t stream) {
  constexpr const char* kName = "cuda::count_correct";
  require_batch(kName, batch, classes);
  require(logits && labels && correct, kName, "null pointer argument");
  constexpr int64_t kSamplesPerBlock = detail::kThreads / detail::kWarp;
  const auto blocks = static_cast<unsigned int>((batch + kSamplesPerBlock - 1) / kSamplesPerBlock);
  count_correct_kernel<<<blocks, detail::kThreads, 0, stream>>>(batch, classes, logits, labels, correct);
  ST_CUDA_CHECK_LAUNCH();
}

double read_device_scalar(const double* value, cudaStream_t stream) {
  double host = 0.0;
  copy_to_host(&host, value, sizeof(host), stream);
  return host;
}

unsigned long long read_device_scalar(const unsigned long long* value, cudaStream_t stream) {
  unsigned long long host = 0;
  copy_to_host(&host, value, sizeof(host), stream);
  return host;
}

}  // namespace st::cuda
