// Our GEMM and the fully connected layer on the GPU (raw device pointers, the contracts of
// st::cpu::gemm / linear_forward / linear_backward in kernels/cpu/kernels.h):
//   gemm:   row-major C = alpha * op(A) * op(B) + beta * C (beta == 0: C is not read, as in BLAS);
//   linear: y[batch, out] = x[batch, in] W[out, in]^T + b; backward ACCUMULATES dx += dy W,
//           dW += dy^T x, db += column sums of dy; a null gradient pointer means "not needed".
// Tiled shared-memory kernel (kernels/cuda/implicit_gemm.cuh): TF32 tensor cores when
// st::cuda::tf32_enabled(), else fp32 FMA. Deterministic: the same inputs give the same bits.
// Work is enqueued on `stream`; nothing synchronises. Every matrix must have < 2^31 elements.
#pragma once

#include <cstdint>

#include "kernels/cuda/common.h"

namespace st::cuda {

void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Stream stream = nullptr);

void linear_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y,
                    Stream stream = nullptr);
void linear_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db, Stream stream = nullptr);

}  // namespace st::cuda
