// Pooling on the GPU over NHWC: the contract of st::cpu's pooling.cpp (kernels/cpu/kernels.h) with raw
// device pointers and an explicit stream. Max pooling saves the argmax (index within the sample's
// [H, W, C] image, -1 where a window holds no input) for the backward; average pooling counts padded
// zeros (PyTorch's count_include_pad=True); pad_shortcut is the option-A ResNet shortcut.
// Backward functions ACCUMULATE into dx. Every backward is a gather (each thread owns one dx element
// and adds its contributions in the CPU's order): deterministic, no atomics. Nothing allocates.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/geometry.h"

namespace st::cuda {

void max_pool_forward(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax, cudaStream_t stream);
void max_pool_backward(const Pool2dGeometry& g, const int32_t* argmax, const float* dy, float* dx, cudaStream_t stream);
void avg_pool_forward(const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream);
void avg_pool_backward(const Pool2dGeometry& g, const float* dy, float* dx, cudaStream_t stream);
void global_avg_pool_forward(int64_t batch, int64_t pixels, int64_t channels, const float* x, float* y,
                             cudaStream_t stream);
void global_avg_pool_backward(int64_t batch, int64_t pixels, int64_t channels, const float* dy, float* dx,
                              cudaStream_t stream);
void pad_shortcut_forward(const PadShortcutGeometry& g, const float* x, float* y, cudaStream_t stream);
void pad_shortcut_backward(const PadShortcutGeometry& g, const float* dy, float* dx, cudaStream_t stream);

}  // namespace st::cuda
