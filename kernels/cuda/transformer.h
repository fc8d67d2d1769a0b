// The vision-transformer ops on the GPU: the contracts of the st::cpu functions of the same names
// (kernels/cpu/kernels.h: layernorm.cpp, softmax.cpp, attention.cpp, tokens.cpp) with raw device
// pointers and an explicit stream (GELU is in elementwise.h). Backward functions ACCUMULATE (+=); a
// null gradient pointer is skipped. Every reduction has a fixed order (bit-identical on repeat); no
// floating-point atomics. None allocates except the parameter/token gradient sums and attention's
// row terms (scratch from the caching allocator), so all are capturable into a CUDA graph after a warm-up.
//
// Attention differs from the CPU contract in what the forward keeps for the backward: the CPU keeps the
// probabilities [B, H, T, T]; the GPU keeps one float per query row, the log-sum-exp of its scaled
// scores (lse [B, H, T]), and recomputes the probabilities tile by tile in the backward, as
// FlashAttention does (Dao et al. 2022; Dao 2023). Head dimensions up to 128 are supported.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace st::cuda {

// layernorm.cu: over the last dimension of [rows, dim]; keeps mean and 1/std per row.
void layernorm_forward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* beta, float eps,
                       float* y, float* mean, float* invstd, cudaStream_t stream);
void layernorm_backward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* mean,
                        const float* invstd, const float* dy, float* dx, float* dgamma, float* dbeta,
                        cudaStream_t stream);

// softmax.cu: over the last dimension of [rows, cols] (forward may run in place); backward reads y.
void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, cudaStream_t stream);
void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, cudaStream_t stream);

// attention.cu: fused multi-head self-attention. qkv [batch, tokens, 3 * dim] = [q | k | v]; y [batch,
// tokens, dim] = concat over heads of softmax(Q K^T / sqrt(dim / heads)) V; lse [batch, heads, tokens].
// The backward reads qkv, y, lse and dy and accumulates into dqkv.
constexpr int64_t kMaxAttentionHeadDim = 128;
void attention_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, float* y,
                       float* lse, cudaStream_t stream);
void attention_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, const float* y,
                        const float* lse, const float* dy, float* dqkv, cudaStream_t stream);

// tokens.cu: [batch, tokens, dim] plumbing (class token, position embedding, class-token readout).
void prepend_token_forward(int64_t batch, int64_t tokens, int64_t dim, const float* x, const float* token, float* y,
                           cudaStream_t stream);
void prepend_token_backward(int64_t batch, int64_t tokens, int64_t dim, const float* dy, float* dx, float* dtoken,
                            cudaStream_t stream);
void add_batch_broadcast_forward(int64_t batch, int64_t per_sample, const float* x, const float* e, float* y,
                                 cudaStream_t stream);
void add_batch_broadcast_backward(int64_t batch, int64_t per_sample, const float* dy, float* dx, float* de,
                                  cudaStream_t stream);
void select_token_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* x, float* y,
                          cudaStream_t stream);
void select_token_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* dy, float* dx,
                           cudaStream_t stream);

}  // namespace st::cuda
