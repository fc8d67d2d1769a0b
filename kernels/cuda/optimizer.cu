// Masked multi-tensor optimizer steps (the math and operation order of kernels/cpu/optimizer.cpp):
//   SGD:     g += wd * w ; v = mu * v + (1 - dampening) * g ; d = nesterov ? g + mu * v : v ; w -= lr * d
//   Adam:    (AdamW: w -= lr * wd * w, else g += wd * w) ; m = b1 m + (1 - b1) g ; v = b2 v + (1 - b2) g^2 ;
//            w -= (lr / (1 - b1^t)) * m / (sqrt(v) * (1 / sqrt(1 - b2^t)) + eps)
//   RMSProp: g += wd * w ; s = a s + (1 - a) g^2 ; u = g / (sqrt(s) + eps) ; (b = mu b + u ; u = b) ; w -= lr u
// then, where mask == 0, the weight and its state are set to exactly 0.
// Launch: grid = TensorList::blocks(), block = kThreads; block b -> tensor block_tensor[b], elements
// [chunk_start[b], min(chunk_start[b] + kChunk, n)); thread t -> elements chunk_start + t, + kThreads, ...
// Branches on the slot (mask present, momentum present) are uniform across a block.
#include <cuda_runtime.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "kernels/cuda/common.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/optimizer.h"

namespace st::cuda {
namespace {

struct BlockRange {
  TensorSlot slot;
  int64_t begin, end;
};

__device__ __forceinline__ BlockRange block_range(const TensorSlot* slots, const int32_t* block_tensor,
                                                  const int64_t* chunk_start) {
  BlockRange range;
  range.slot = slots[block_tensor[blockIdx.x]];
  range.begin = chunk_start[blockIdx.x];
  const int64_t end = range.begin + TensorList::kChunk;
  range.end = end < range.slot.n ? end : range.slot.n;
  return range;
}

__device__ __forceinline__ StepScalars current(const StepScalars& by_value, const StepScalars* device) {
  return device != nullptr ? *device : by_value;
}

__global__ void sgd_kernel(const TensorSlot* slots, const int32_t* block_tensor, const int64_t* chunk_start,
                           cpu::SgdHyper h, StepScalars by_value, const StepScalars* device_scalars) {
  const BlockRange r = block_range(slots, block_tensor, chunk_start);
  const float lr = current(by_value, device_scalars).lr;
  const float mu = h.momentum, wd = h.weight_decay, damp = 1.0f - h.dampening;
  float* w = r.slot.w;
  const float* g = r.slot.g;
  float* velocity = r.slot.state0;
  const float* mask = r.slot.mask;
  const bool momentum = h.momentum != 0.0f && velocity != nullptr;
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) {
    const bool kept = mask == nullptr || mask[i] != 0.0f;
    float grad = g[i] + wd * w[i];
    if (momentum) {
      const float v = mu * velocity[i] + damp * grad;
      velocity[i] = kept ? v : 0.0f;
      grad = h.nesterov ? grad + mu * v : v;
    }
    const float updated = w[i] - lr * grad;
    w[i] = kept ? updated : 0.0f;
  }
}

__global__ void adam_kernel(const TensorSlot* slots, const int32_t* block_tensor, const int64_t* chunk_start,
                            cpu::AdamHyper h, StepScalars by_value, const StepScalars* device_scalars) {
  const BlockRange r = block_range(slots, block_tensor, chunk_start);
  const StepScalars s = current(by_value, device_scalars);
  const float lr = s.lr, b1 = h.beta1, b2 = h.beta2;
  const float step_size = lr / s.bias_correction1;
  const float inv_sqrt_correction2 = 1.0f / sqrtf(s.bias_correction2);
  float* w = r.slot.w;
  const float* g = r.slot.g;
  float* m = r.slot.state0;
  float* v = r.slot.state1;
  const float* mask = r.slot.mask;
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) {
    const bool kept = mask == nullptr || mask[i] != 0.0f;
    float weight = w[i];
    float grad = g[i];
    if (h.decoupled) {
      weight -= lr * h.weight_decay * weight;
    } else {
      grad += h.weight_decay * weight;
    }
    const float m_new = b1 * m[i] + (1.0f - b1) * grad;
    const float v_new = b2 * v[i] + (1.0f - b2) * grad * grad;
    weight -= step_size * m_new / (sqrtf(v_new) * inv_sqrt_correction2 + h.eps);
    m[i] = kept ? m_new : 0.0f;
    v[i] = kept ? v_new : 0.0f;
    w[i] = kept ? weight : 0.0f;
  }
}

__global__ void rmsprop_kernel(const TensorSlot* slots, const int32_t* block_tensor, const int64_t* chunk_start,
                               cpu::RmsPropHyper h, StepScalars by_value, const StepScalars* device_scalars) {
  const BlockRange r = block_range(slots, block_tensor, chunk_start);
  const float lr = current(by_value, device_scalars).lr;
  float* w = r.slot.w;
  const float* g = r.slot.g;
  float* square_avg = r.slot.state0;
  float* momentum_buffer = r.slot.state1;
  const float* mask = r.slot.mask;
  const bool use_momentum = h.momentum != 0.0f && momentum_buffer != nullptr;
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) {
    const bool kept = mask == nullptr || mask[i] != 0.0f;
    const float grad = g[i] + h.weight_decay * w[i];
    const float s = h.alpha * square_avg[i] + (1.0f - h.alpha) * grad * grad;
    float update = grad / (sqrtf(s) + h.eps);
    if (use_momentum) {
      const float b = h.momentum * momentum_buffer[i] + update;
      momentum_buffer[i] = kept ? b : 0.0f;
      update = b;
    }
    square_avg[i] = kept ? s : 0.0f;
    const float updated = w[i] - lr * update;
    w[i] = kept ? updated : 0.0f;
  }
}

__global__ void apply_mask_kernel(const TensorSlot* slots, const int32_t* block_tensor, const int64_t* chunk_start) {
  const BlockRange r = block_range(slots, block_tensor, chunk_start);
  if (r.slot.mask == nullptr) return;  // uniform across the block
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x)
    r.slot.w[i] = r.slot.mask[i] != 0.0f ? r.slot.w[i] : 0.0f;
}

// Host-side checks of what a step needs from every slot; names the offending tensor.
void require_slots(const TensorList& list, const char* name, bool need_state0, bool need_state1) {
  const auto& tensors = list.tensors();
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const TensorSlot& s = tensors[t];
    if (s.n == 0) continue;
    const char* missing = s.g == nullptr                       ? "gradient (g)"
                          : need_state0 && s.state0 == nullptr ? "state0 (required by this optimizer)"
                          : need_state1 && s.state1 == nullptr ? "state1 (required by this optimizer)"
                                                               : nullptr;
    if (missing != nullptr)
      require(false, name, join({"tensor ", std::to_string(t), " of the list has no ", missing}).c_str());
  }
}

}  // namespace

TensorList::TensorList(std::vector<TensorSlot> tensors, cudaStream_t stream) : tensors_(std::move(tensors)) {
  constexpr const char* kName = "cuda::TensorList";
  require(tensors_.size() <= static_cast<std::size_t>(std::numeric_limits<int32_t>::max()), kName,
          "too many tensors (the block map stores int32 tensor indices)");
  std::vector<int32_t> block_tensor;
  std::vector<int64_t> chunk_start;
  for (std::size_t t = 0; t < tensors_.size(); ++t) {
    const TensorSlot& s = tensors_[t];
    require(s.n >= 0, kName, join({"tensor ", std::to_string(t), " has n < 0"}).c_str());
    if (s.n == 0) continue;
    require(s.w != nullptr, kName,
            join({"tensor ", std::to_string(t), " has n > 0 but a null weight pointer"}).c_str());
    for (int64_t start = 0; start < s.n; start += kChunk) {
      block_tensor.push_back(static_cast<int32_t>(t));
      chunk_start.push_back(start);
    }
  }
  blocks_ = static_cast<int64_t>(block_tensor.size());
  require(blocks_ <= static_cast<int64_t>(std::numeric_limits<int32_t>::max()), kName, "too many blocks");
  if (blocks_ == 0) return;
  slots_ = DeviceBuffer::from_host(tensors_, stream);
  block_tensor_ = DeviceBuffer::from_host(block_tensor, stream);
  chunk_start_ = DeviceBuffer::from_host(chunk_start, stream);
}

StepScalars step_scalars(float lr) {
  StepScalars s;
  s.lr = lr;
  return s;
}

StepScalars step_scalars(const cpu::AdamHyper& h) {
  // Exactly as cpu::adam_step: 1 - beta^t in double, rounded to float.
  const auto t = static_cast<double>(h.step);
  StepScalars s;
  s.lr = h.lr;
  s.bias_correction1 = static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta1), t));
  s.bias_correction2 = static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta2), t));
  return s;
}

void sgd_step(const TensorList& list, const cpu::SgdHyper& h, const StepScalars* scalars, cudaStream_t stream) {
  require_slots(list, "cuda::sgd_step", false, false);
  if (list.blocks() == 0) return;
  sgd_kernel<<<static_cast<unsigned int>(list.blocks()), detail::kThreads, 0, stream>>>(
      list.device_slots(), list.device_block_tensor(), list.device_chunk_start(), h, step_scalars(h.lr), scalars);
  ST_CUDA_CHECK_LAUNCH();
}

void adam_step(const TensorList& list, const cpu::AdamHyper& h, const StepScalars* scalars, cudaStream_t stream) {
  require_slots(list, "cuda::adam_step", true, true);
  require(scalars != nullptr || h.step >= 1, "cuda::adam_step", "step (t) must be >= 1 (bias correction 1 - beta^t)");
  if (list.blocks() == 0) return;
  adam_kernel<<<static_cast<unsigned int>(list.blocks()), detail::kThreads, 0, stream>>>(
      list.device_slots(), list.device_block_tensor(), list.device_chunk_start(), h, step_scalars(h), scalars);
  ST_CUDA_CHECK_LAUNCH();
}

void rmsprop_step(const TensorList& list, const cpu::RmsPropHyper& h, const StepScalars* scalars, cudaStream_t stream) {
  require_slots(list, "cuda::rmsprop_step", true, false);
  if (list.blocks() == 0) return;
  rmsprop_kernel<<<static_cast<unsigned int>(list.blocks()), detail::kThreads, 0, stream>>>(
      list.device_slots(), list.device_block_tensor(), list.device_chunk_start(), h, step_scalars(h.lr), scalars);
  ST_CUDA_CHECK_LAUNCH();
}

void apply_mask(const TensorList& list, cudaStream_t stream) {
  if (list.blocks() == 0) return;
  apply_mask_kernel<<<static_cast<unsigned int>(list.blocks()), detail::kThreads, 0, stream>>>(
      list.device_slots(), list.device_block_tensor(), list.device_chunk_start());
  ST_CUDA_CHECK_LAUNCH();
}

}  // namespace st::cuda
