// The CUDA side of the engine ops: each function has the contract of the st::cpu kernel of the same
// name (kernels/cpu/kernels.h) with device pointers, and runs the st::cuda kernel on the engine stream
// (engine/device.h); convolution, linear and BatchNorm go to st::vendor (cuDNN/cuBLAS) instead when
// kernel_source() is Vendor (attention too: cuDNN's multi-head attention). The op wrappers
// (engine/ops/*.cpp) call cpu::X for CPU tensors and gpu::X
// for CUDA tensors, so the CPU lines stay exactly as they were.
//
// Errors: a CUDA or argument error from kernels/cuda becomes an st::Error naming the engine function
// ("gpu::conv2d_forward: CUDA error ..."). Kernels fault asynchronously: the next synchronising call
// reports it; rerun with CUDA_LAUNCH_BLOCKING=1 to have the faulting kernel named. In a build without
// CUDA every function fails with "this build has no CUDA backend".
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/tensor_slot.h"
#include "kernels/geometry.h"

namespace st::ops::gpu {

// An int32 array in device memory (max-pool argmax, labels), from the caching allocator; move-only.
class DeviceInts {
 public:
  explicit DeviceInts(int64_t count);                       // uninitialised
  explicit DeviceInts(const std::vector<int32_t>& values);  // uploaded (synchronous)
  ~DeviceInts();
  DeviceInts(const DeviceInts&) = delete;
  DeviceInts& operator=(const DeviceInts&) = delete;
  int32_t* data() const { return data_; }
  int64_t size() const { return count_; }

 private:
  int32_t* data_ = nullptr;
  int64_t count_ = 0;
};

// ---- linear / conv2d (ours or vendor by kernel_source()) ----
void linear_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y);
void linear_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db);
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y);
void conv2d_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db);

// ---- batchnorm (train forward/backward and eval forward: ours or vendor; eval backward: ours) ----
void batchnorm_forward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                             float eps, bool relu, float* y, float* batch_mean, float* batch_invstd, float* batch_var);
void batchnorm_forward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, float eps, bool relu, float* y);
void batchnorm_backward_train(int64_t rows, int64_t channels, const float* x, const float* gamma,
                              const float* batch_mean, const float* batch_invstd, const float* relu_output,
                              const float* dy, float* dx, float* dgamma, float* dbeta);
void batchnorm_backward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma,
                             const float* running_mean, const float* running_var, float eps, const float* relu_output,
                             const float* dy, float* dx, float* dgamma, float* dbeta);
void batchnorm_update_running_stats(int64_t channels, const float* batch_mean, const float* batch_var, float momentum,
                                    float unbiased, float* running_mean, float* running_var);

// ---- elementwise, concat ----
void relu_forward(int64_t n, const float* x, float* y);
void relu_backward(int64_t n, const float* y, const float* dy, float* dx);
void relu6_forward(int64_t n, const float* x, float* y);
void relu6_backward(int64_t n, const float* y, const float* dy, float* dx);
void add_forward(int64_t n, const float* a, const float* b, float* y);
void add_relu_forward(int64_t n, const float* a, const float* b, float* y);
void add_relu_backward(int64_t n, const float* y, const float* dy, float* da, float* db);
void accumulate(int64_t n, const float* source, float* destination);
void scale_by_mask(int64_t n, const float* x, const float* scale, float* y);
void scale_forward(int64_t n, const float* x, float factor, float* y);
void scale_backward(int64_t n, const float* dy, float factor, float* dx);
void accumulate_scaled_by_mask(int64_t n, const float* dy, const float* scale, float* dx);
void concat_channels_forward(int64_t rows, const std::vector<const float*>& inputs, const std::vector<int64_t>& widths,
                             float* y);
void concat_channels_backward(int64_t rows, const std::vector<int64_t>& widths, const float* dy,
                              const std::vector<float*>& dx);

// ---- transformer ops (layernorm, gelu, softmax, tokens: ours; attention: ours or vendor) ----
void layernorm_forward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* beta, float eps,
                       float* y, float* mean, float* invstd);
void layernorm_backward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* mean,
                        const float* invstd, const float* dy, float* dx, float* dgamma, float* dbeta);
void gelu_forward(int64_t n, const float* x, float* y, float* derivative);
void gelu_backward(int64_t n, const float* derivative, const float* dy, float* dx);
void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y);
void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx);
// Unlike the CPU op, the forward keeps lse [batch, heads, tokens] (the log-sum-exp of each query row's
// scaled scores; unused by the vendor kernel) instead of the probabilities, and the backward reads y.
void attention_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, float* y,
                       float* lse);
void attention_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, const float* y,
                        const float* lse, const float* dy, float* dqkv);
void prepend_token_forward(int64_t batch, int64_t tokens, int64_t dim, const float* x, const float* token, float* y);
void prepend_token_backward(int64_t batch, int64_t tokens, int64_t dim, const float* dy, float* dx, float* dtoken);
void add_batch_broadcast_forward(int64_t batch, int64_t per_sample, const float* x, const float* e, float* y);
void add_batch_broadcast_backward(int64_t batch, int64_t per_sample, const float* dy, float* dx, float* de);
void select_token_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* x, float* y);
void select_token_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* dy, float* dx);

// ---- pooling ----
void max_pool_forward(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax);
void max_pool_backward(const Pool2dGeometry& g, const int32_t* argmax, const float* dy, float* dx);
void avg_pool_forward(const Pool2dGeometry& g, const float* x, float* y);
void avg_pool_backward(const Pool2dGeometry& g, const float* dy, float* dx);
void global_avg_pool_forward(int64_t batch, int64_t pixels, int64_t channels, const float* x, float* y);
void global_avg_pool_backward(int64_t batch, int64_t pixels, int64_t channels, const float* dy, float* dx);
void pad_shortcut_forward(const PadShortcutGeometry& g, const float* x, float* y);
void pad_shortcut_backward(const PadShortcutGeometry& g, const float* dy, float* dx);

// ---- softmax cross-entropy (labels in device memory) ----
// *loss (a device float) = the mean loss, computed in double and rounded as the CPU op does; no host read.
void softmax_cross_entropy_forward(int64_t batch, int64_t classes, const float* logits, const int32_t* labels,
                                   float smoothing, float* probabilities, float* loss);
// dlogits += (probabilities - q) * (*loss_grad) / batch, loss_grad a device float.
void softmax_cross_entropy_backward(int64_t batch, int64_t classes, const float* probabilities, const int32_t* labels,
                                    float smoothing, const float* loss_grad, float* dlogits);
// Rows whose first maximal logit is at the label; synchronises to return the count.
int64_t count_correct(int64_t batch, int64_t classes, const float* logits, const int32_t* labels);

// ---- masked optimizer steps: one multi-tensor launch per parameter group ----
// One tensor of a group (device pointers): kernels/cuda/tensor_slot.h.
using OptimizerSlot = cuda::TensorSlot;

// The device-side block map of one parameter group, built on the first step and rebuilt only when a
// tensor's pointer or size changes (a model moved between devices, a structural shrink, new masks).
class OptimizerGroup {
 public:
  OptimizerGroup();
  ~OptimizerGroup();
  OptimizerGroup(const OptimizerGroup&) = delete;
  OptimizerGroup& operator=(const OptimizerGroup&) = delete;
  void sgd_step(const std::vector<OptimizerSlot>& slots, const cpu::SgdHyper& h);
  void adam_step(const std::vector<OptimizerSlot>& slots, const cpu::AdamHyper& h);
  void rmsprop_step(const std::vector<OptimizerSlot>& slots, const cpu::RmsPropHyper& h);
  int64_t rebuilds() const;  // how often the block map was (re)built (tests: once in the steady state)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// w = mask != 0 ? w : 0 (exactly as cpu::apply_mask) for one device tensor; builds a one-tensor list
// (a cold path: pruning events).
void apply_mask(int64_t n, float* w, const float* mask);

}  // namespace st::ops::gpu
