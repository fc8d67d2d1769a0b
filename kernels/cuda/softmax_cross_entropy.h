// Fused softmax + label-smoothed cross entropy on the GPU: the contract of
// st::cpu::softmax_cross_entropy_* (kernels/cpu/kernels.h) with raw device pointers and a stream.
// Loss = mean over the batch of -sum_c q_c log softmax(z)_c, q = (1 - s) onehot(label) + s / classes.
//
// The forward does not return the loss to the host (that would synchronise the step and break graph
// capture): it writes the mean loss, in double as the CPU computes it, into the device scalar
// `mean_loss`; read_device_scalar() fetches it when the host needs it (e.g. at a logging step).
// Labels must lie in [0, classes) (not checked on the device; a label outside matches no class).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace st::cuda {

// probabilities[batch, classes] = softmax(logits); *mean_loss (device) = the mean loss. Scratch of
// batch doubles from the caching allocator; deterministic (fixed-order block and batch reductions).
void softmax_cross_entropy_forward(int64_t batch, int64_t classes, const float* logits, const int32_t* labels,
                                   float smoothing, float* probabilities, double* mean_loss, cudaStream_t stream);
// dlogits += (probabilities - q) * loss_grad / batch.
void softmax_cross_entropy_backward(int64_t batch, int64_t classes, const float* probabilities, const int32_t* labels,
                                    float smoothing, float loss_grad, float* dlogits, cudaStream_t stream);
// As softmax_cross_entropy_backward, with the loss gradient read from device memory (*loss_grad, one
// float: the engine's backward seeds it on the device, so no host read is needed).
void softmax_cross_entropy_backward_device_grad(int64_t batch, int64_t classes, const float* probabilities,
                                                const int32_t* labels, float smoothing, const float* loss_grad,
                                                float* dlogits, cudaStream_t stream);
// *loss (device float) = *mean_loss (device double) rounded to float, as the CPU op stores the loss.
void store_loss_as_float(const double* mean_loss, float* loss, cudaStream_t stream);
// *correct (device) += number of samples whose first maximal logit is at the label (ties: the lowest
// class index, as ops::count_correct). Integer atomics: exact. Zero the counter with cudaMemsetAsync.
void count_correct(int64_t batch, int64_t classes, const float* logits, const int32_t* labels,
                   unsigned long long* correct, cudaStream_t stream);

// Host reads of device scalars: wait for `stream`, then copy (synchronous; not inside a graph capture).
double read_device_scalar(const double* value, cudaStream_t stream);
unsigned long long read_device_scalar(const unsigned long long* value, cudaStream_t stream);

}  // namespace st::cuda
