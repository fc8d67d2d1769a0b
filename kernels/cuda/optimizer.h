// Masked optimizer steps on the GPU: the math of st::cpu::sgd_step / adam_step / rmsprop_step
// (kernels/cpu/optimizer.cpp, same operation order), applied to a whole parameter group by ONE
// multi-tensor launch. Where mask == 0 the weight and its optimizer state are set to exactly 0 (a
// select, not a multiply), so a pruned weight is never resurrected.
//
// Multi-tensor launch: a TensorList holds, in device memory, one TensorSlot per tensor and a
// block -> (tensor, chunk) map: block b updates elements [chunk_start[b], min(chunk_start[b] + kChunk, n))
// of tensor block_tensor[b]; inside the block, thread t handles chunk_start + t, + blockDim.x, ...
// Build the list once per parameter group (it uploads synchronously); the tensors' storage must not
// move while the list is used.
//
// Per-step values (lr, and Adam's step count) and graphs: hyperparameters come by value in the
// st::cpu hyper structs. A captured CUDA graph bakes kernel arguments in, so for graph replay pass
// `scalars` = a device StepScalars that the host rewrites before each replay (e.g. cudaMemcpyAsync
// from pinned memory, or a kernel); when `scalars` is non-null, lr (and Adam's bias corrections) are
// read from it and h.lr / h.step are ignored. Build its value with step_scalars().
// All launches are asynchronous on `stream` and allocate nothing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/tensor_slot.h"

namespace st::cuda {

class TensorList {
 public:
  static constexpr int64_t kChunk = 4096;  // elements per block (256 threads x 16)

  TensorList() = default;
  // Validates (w and g non-null where n > 0), builds the block map and uploads it on `stream`.
  TensorList(std::vector<TensorSlot> tensors, cudaStream_t stream);

  const std::vector<TensorSlot>& tensors() const { return tensors_; }
  int64_t blocks() const { return blocks_; }
  const TensorSlot* device_slots() const { return slots_.as<const TensorSlot>(); }
  const int32_t* device_block_tensor() const { return block_tensor_.as<const int32_t>(); }
  const int64_t* device_chunk_start() const { return chunk_start_.as<const int64_t>(); }

 private:
  std::vector<TensorSlot> tensors_;
  int64_t blocks_ = 0;
  DeviceBuffer slots_, block_tensor_, chunk_start_;
};

// Values that change from step to step, read by the kernels from device memory when given.
struct StepScalars {
  float lr = 0.0f;
  float bias_correction1 = 1.0f;  // Adam: 1 - beta1^t, computed in double and rounded as cpu::adam_step
  float bias_correction2 = 1.0f;  // Adam: 1 - beta2^t
};
StepScalars step_scalars(float lr);                 // SGD, RMSProp
StepScalars step_scalars(const cpu::AdamHyper& h);  // Adam: h.lr and the corrections of h.step

void sgd_step(const TensorList& list, const cpu::SgdHyper& h, const StepScalars* scalars, cudaStream_t stream);
void adam_step(const TensorList& list, const cpu::AdamHyper& h, const StepScalars* scalars, cudaStream_t stream);
void rmsprop_step(const TensorList& list, const cpu::RmsPropHyper& h, const StepScalars* scalars, cudaStream_t stream);
// w = mask != 0 ? w : 0 for every tensor with a mask (state untouched, as cpu::apply_mask).
void apply_mask(const TensorList& list, cudaStream_t stream);

}  // namespace st::cuda
