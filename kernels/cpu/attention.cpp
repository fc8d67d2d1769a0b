// Multi-head self-attention (Vaswani et al. 2017), fused: the input is the output of one Linear
// D -> 3D per token, qkv[b, t, :] = [q | k | v] (PyTorch's order), each of width D split into H heads
// of d = D / H consecutive features. Per (batch b, head h), with Q, K, V the [T, d] slices:
//   P = softmax(Q K^T / sqrt(d))  (row-wise),   O = P V,   y[b, t, h*d:(h+1)*d] = O[t]
// The forward keeps P [B, H, T, T] for the backward:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),  dQ = dS K / sqrt(d),  dK = dS^T Q / sqrt(d)
// The (batch, head) pairs run in parallel (static schedule), each with single-threaded sgemm on
// strided views of qkv (leading dimension 3D) and of y (leading dimension D); every pair writes its
// own slices of y and dqkv, so no reduction crosses threads and results do not depend on the schedule.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/kernels.h"

namespace st::cpu {

void attention_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, float* y,
                       float* probabilities) {
  const int64_t head_dim = dim / heads, row = 3 * dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
#pragma omp parallel for schedule(static)
  for (int64_t pair = 0; pair < batch * heads; ++pair) {
    const int64_t b = pair / heads, h = pair % heads;
    const float* q = qkv + b * tokens * row + h * head_dim;
    const float* k = q + dim;
    const float* v = q + 2 * dim;
    float* p = probabilities + pair * tokens * tokens;
    gemm(false, true, tokens, tokens, head_dim, scale, q, row, k, row, 0.0f, p, tokens);
    for (int64_t t = 0; t < tokens; ++t) softmax_row_forward(tokens, p + t * tokens, p + t * tokens);
    gemm(false, false, tokens, head_dim, tokens, 1.0f, p, tokens, v, row, 0.0f, y + b * tokens * dim + h * head_dim,
         dim);
  }
}

void attention_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv,
                        const float* probabilities, const float* dy, float* dqkv) {
  const int64_t head_dim = dim / heads, row = 3 * dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const auto square = static_cast<std::size_t>(tokens * tokens);
#pragma omp parallel
  {
    std::vector<float> dp(square), ds(square);
#pragma omp for schedule(static)
    for (int64_t pair = 0; pair < batch * heads; ++pair) {
      const int64_t b = pair / heads, h = pair % heads;
      const float* q = qkv + b * tokens * row + h * head_dim;
      const float* k = q + dim;
      const float* v = q + 2 * dim;
      const float* p = probabilities + pair * tokens * tokens;
      const float* d_out = dy + b * tokens * dim + h * head_dim;
      float* dq = dqkv + b * tokens * row + h * head_dim;
      float* dk = dq + dim;
      float* dv = dq + 2 * dim;
      gemm(true, false, tokens, head_dim, tokens, 1.0f, p, tokens, d_out, dim, 1.0f, dv, row);
      gemm(false, true, tokens, tokens, head_dim, 1.0f, d_out, dim, v, row, 0.0f, dp.data(), tokens);
      std::fill(ds.begin(), ds.end(), 0.0f);
      for (int64_t t = 0; t < tokens; ++t)
        softmax_row_backward(tokens, p + t * tokens, dp.data() + t * tokens, ds.data() + t * tokens);
      gemm(false, false, tokens, head_dim, tokens, scale, ds.data(), tokens, k, row, 1.0f, dq, row);
      gemm(true, false, tokens, head_dim, tokens, scale, ds.data(), tokens, q, row, 1.0f, dk, row);
    }
  }
}

}  // namespace st::cpu
