// Vendor implementations of the GPU convolution and GEMM contracts, for A/B comparison and parity with
// ours (kernels/cuda/conv2d.h, kernels/cuda/gemm.h): the same functions with the same signatures and
// semantics (backward ACCUMULATES; null gradient pointers mean "not needed"), through
//   cuDNN 9 (legacy convolution API, NHWC tensors and NHWC = KRSC filters; per shape, the fastest
//            deterministic algorithm found once by cudnnFind*Algorithm and cached) — cudnn_conv.cu;
//   cuBLAS  (cublasGemmEx with TF32 compute when st::cuda::tf32_enabled(), else fp32) — cublas_gemm.cu.
// Handles are created lazily, one per (device, stream); workspaces come from st::cuda::stream_workspace.
#pragma once

#include <cstdint>

#include "kernels/cuda/common.h"
#include "kernels/geometry.h"

namespace st::vendor {

using cuda::Stream;

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y,
                    Stream stream = nullptr);
void conv2d_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, Stream stream = nullptr);

// Multi-head self-attention through cuDNN (cudnn_attention.cu), the contract of st::cuda::attention_*
// (kernels/cuda/transformer.h) without the log-sum-exp: cuDNN's fused scaled-dot-product attention
// (graph API) takes only fp16/bf16/fp8 tensors, so the FP32 twin is cuDNN's multi-head attention API
// (cudnnMultiHeadAttnForward / BackwardData; deprecated in cuDNN 9 but shipped), projections off, one
// cuDNN head per (sample, head) pair, Q/K/V packed into [B*H, T, d] copies (its sequence data has no
// strides). The backward reruns the forward (cuDNN needs the forward's reserve space) and accumulates
// into dqkv. Math: FP32 FMA when TF32 is off (cuDNN's default if the API refuses FMA), default when on.
void attention_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, float* y,
                       Stream stream = nullptr);
void attention_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, const float* dy,
                        float* dqkv, Stream stream = nullptr);

void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Stream stream = nullptr);
void linear_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y,
                    Stream stream = nullptr);
void linear_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db, Stream stream = nullptr);

}  // namespace st::vendor
