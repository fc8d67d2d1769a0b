// BatchNorm through cuDNN (legacy cudnnBatchNormalization* API, mode CUDNN_BATCHNORM_SPATIAL, NHWC
// descriptors): the same contract and signatures as st::cuda::batchnorm_* (kernels/cuda/batchnorm.h),
// for parity tests and A/B timing against our kernels. Backward functions ACCUMULATE into dx, dgamma,
// dbeta; a null output is not computed (cuDNN writes it to scratch).
// Differences from ours, by necessity:
//   - cuDNN has no fused ReLU in this mode: relu runs our relu kernel on y in place after cuDNN, and the
//     backward first gates dy by relu_output > 0 into a scratch array.
//   - cuDNN does not return the biased batch variance: the forward asks for the running variance with
//     averaging factor 1 (= the unbiased batch variance) and rescales it by (rows - 1) / rows; so rows >= 2.
//   - no evaluation-mode backward exists in cuDNN: use st::cuda::batchnorm_backward_eval.
// One cuDNN handle per (host thread, device), set to `stream` on every call.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace st::vendor {

void batchnorm_forward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                             float eps, bool relu, float* y, float* batch_mean, float* batch_invstd, float* batch_var,
                             cudaStream_t stream);
void batchnorm_forward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, float eps, bool relu, float* y,
                            cudaStream_t stream);
void batchnorm_backward_train(int64_t rows, int64_t channels, const float* x, const float* gamma,
                              const float* batch_mean, const float* batch_invstd, const float* relu_output,
                              const float* dy, float* dx, float* dgamma, float* dbeta, cudaStream_t stream);

}  // namespace st::vendor
