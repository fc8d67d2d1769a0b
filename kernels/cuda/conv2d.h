// Our 2-D convolution on the GPU: NHWC activations, KRSC weights, stride, padding, groups; raw device
// pointers and the contract of st::cpu::conv2d_forward / conv2d_backward (kernels/cpu/kernels.h):
//   forward:  y = conv(x, w) + b (b nullable);
//   backward: ACCUMULATES dx += dconv/dx, dw += dconv/dw, db += column sums of dy; a null gradient
//             pointer means "not needed" (so dgrad alone and wgrad alone are single calls).
// Implicit GEMM (kernels/cuda/implicit_gemm.cuh; no im2col buffer):
//   forward   (N*P*Q) x Kg  over R*S*Cg      per group
//   data grad (N*H*W) x Cg  over R*S*Kg      per group
//   wgrad     Kg x (R*S*Cg) over N*P*Q       per group, split-K with an ordered second-pass sum
// Depthwise convolutions (groups == in_channels == out_channels) use direct per-element kernels.
// TF32 tensor cores when st::cuda::tf32_enabled(), else fp32 FMA. Deterministic: the same inputs give the
// same bits. Work is enqueued on `stream`; nothing synchronises. Each tensor must have < 2^31 elements.
#pragma once

#include "kernels/cuda/common.h"
#include "kernels/geometry.h"

namespace st::cuda {

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y,
                    Stream stream = nullptr);
void conv2d_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, Stream stream = nullptr);

}  // namespace st::cuda
