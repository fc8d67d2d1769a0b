// BatchNorm on the GPU: the contract of st::cpu::batchnorm_* (kernels/cpu/kernels.h) with raw device
// pointers and an explicit stream. [rows, channels] channels-last, rows = N*H*W; statistics are biased
// (divide by rows) and two-pass (mean, then the mean of squared deviations), as on the CPU.
// relu: ReLU fused into the forward; the backward gates dy by relu_output > 0 (null: no ReLU).
// Backward functions ACCUMULATE into dx, dgamma, dbeta; a null output is not computed.
// Reductions are deterministic (kernels/cuda/launch.cuh): per-block partials, then a fixed-order
// second pass. Scratch space comes from the caching allocator (kernels/cuda/allocator.h) on `stream`.
// All calls are asynchronous on `stream` and capturable into a CUDA graph once the allocator is warm.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace st::cuda {

void batchnorm_forward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                             float eps, bool relu, float* y, float* batch_mean, float* batch_invstd, float* batch_var,
                             cudaStream_t stream);
void batchnorm_forward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, float eps, bool relu, float* y,
                            cudaStream_t stream);
void batchnorm_backward_train(int64_t rows, int64_t channels, const float* x, const float* gamma,
                              const float* batch_mean, const float* batch_invstd, const float* relu_output,
                              const float* dy, float* dx, float* dgamma, float* dbeta, cudaStream_t stream);
void batchnorm_backward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma,
                             const float* running_mean, const float* running_var, float eps, const float* relu_output,
                             const float* dy, float* dx, float* dgamma, float* dbeta, cudaStream_t stream);


// The running statistics of a training step (engine/ops/batchnorm.cpp's CPU loop, PyTorch's convention):
//   running_mean = (1 - momentum) * running_mean + momentum * batch_mean
//   running_var  = (1 - momentum) * running_var + momentum * batch_var * unbiased   (unbiased = M / (M - 1))
// Each product and sum is rounded separately (no FMA contraction), as the CPU loop computes it.
void batchnorm_update_running_stats(int64_t channels, const float* batch_mean, const float* batch_var, float momentum,
                                    float unbiased, float* running_mean, float* running_var, cudaStream_t stream);

}  // namespace st::cuda
