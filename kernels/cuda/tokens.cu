// Token plumbing of vision transformers on the GPU (as kernels/cpu/tokens.cpp), on [batch, tokens, dim]:
// prepend_token (class token), add_batch_broadcast (position embedding), select_token (class-token
// readout). Elementwise parts are grid-stride functors; the sums over the batch (the token's and the
// embedding's gradients) are deterministic column sums (launch.cuh).
#include <cuda_runtime.h>

#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/transformer.h"

namespace st::cuda {
namespace {

using detail::for_each;

struct PrependToken {  // over y [batch, tokens + 1, dim]
  int64_t tokens, dim;
  const float* x;
  const float* token;
  float* y;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % dim, row = i / dim, t = row % (tokens + 1), b = row / (tokens + 1);
    y[i] = t == 0 ? token[c] : x[(b * tokens + t - 1) * dim + c];
  }
};
struct PrependTokenBackward {  // over dx [batch, tokens, dim]
  int64_t tokens, dim;
  const float* dy;
  float* dx;
  __device__ void operator()(int64_t i) const {
    const int64_t c = i % dim, row = i / dim, t = row % tokens, b = row / tokens;
    dx[i] += dy[(b * (tokens + 1) + t + 1) * dim + c];
  }
};
struct TokenRowTerm {  // dy of token `index` of sample `row` ([batch, dim] view of a [batch, tokens, dim] array)
  int64_t tokens, dim, index;
  const float* dy;
  __device__ detail::Sums<1> operator()(int64_t i, int64_t c) const {
    return detail::Sums<1>{{dy[((i / dim) * tokens + index) * dim + c]}};
  }
};
struct AddBroadcast {
  int64_t per_sample;
  const float* x;
  const float* e;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] + e[i % per_sample]; }
};
struct SelectToken {  // over y [batch, dim]
  int64_t tokens, dim, index;
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[((i / dim) * tokens + index) * dim + i % dim]; }
};
struct SelectTokenBackward {  // over dy [batch, dim]
  int64_t tokens, dim, index;
  const float* dy;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[((i / dim) * tokens + index) * dim + i % dim] += dy[i]; }
};

void check_sizes(bool ok, const char* name) { require(ok, name, "sizes must be >= 0"); }

}  // namespace

void prepend_token_forward(int64_t batch, int64_t tokens, int64_t dim, const float* x, const float* token, float* y,
                           cudaStream_t stream) {
  constexpr const char* kName = "cuda::prepend_token_forward";
  check_sizes(batch >= 0 && tokens >= 0 && dim >= 0, kName);
  const int64_t n = batch * (tokens + 1) * dim;
  require(n == 0 || (token && y && (tokens == 0 || x)), kName, "null pointer argument");
  for_each(n, PrependToken{tokens, dim, x, token, y}, kName, stream);
}

void prepend_token_backward(int64_t batch, int64_t tokens, int64_t dim, const float* dy, float* dx, float* dtoken,
                            cudaStream_t stream) {
  constexpr const char* kName = "cuda::prepend_token_backward";
  check_sizes(batch >= 0 && tokens >= 0 && dim >= 0, kName);
  if (batch * dim == 0) return;
  require(dy != nullptr, kName, "null pointer argument");
  if (dx != nullptr) for_each(batch * tokens * dim, PrependTokenBackward{tokens, dim, dy, dx}, kName, stream);
  if (dtoken != nullptr)
    detail::accumulate_column_sums<1>(batch, dim, TokenRowTerm{tokens + 1, dim, 0, dy},
                                      detail::ColumnOutputs<1>{{dtoken}}, stream);
}

void add_batch_broadcast_forward(int64_t batch, int64_t per_sample, const float* x, const float* e, float* y,
                                 cudaStream_t stream) {
  constexpr const char* kName = "cuda::add_batch_broadcast_forward";
  check_sizes(batch >= 0 && per_sample >= 0, kName);
  require(batch * per_sample == 0 || (x && e && y), kName, "null pointer argument");
  for_each(batch * per_sample, AddBroadcast{per_sample, x, e, y}, kName, stream);
}

void add_batch_broadcast_backward(int64_t batch, int64_t per_sample, const float* dy, float* dx, float* de,
                                  cudaStream_t stream) {
  if (dx != nullptr) accumulate(batch * per_sample, dy, dx, stream);
  if (de != nullptr) column_sums(batch, per_sample, dy, de, stream);
}

void select_token_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* x, float* y,
                          cudaStream_t stream) {
  constexpr const char* kName = "cuda::select_token_forward";
  check_sizes(batch >= 0 && tokens >= 0 && dim >= 0, kName);
  require(batch * dim == 0 || (index >= 0 && index < tokens), kName, "token index out of range");
  require(batch * dim == 0 || (x && y), kName, "null pointer argument");
  for_each(batch * dim, SelectToken{tokens, dim, index, x, y}, kName, stream);
}

void select_token_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* dy, float* dx,
                           cudaStream_t stream) {
  constexpr const char* kName = "cuda::select_token_backward";
  check_sizes(batch >= 0 && tokens >= 0 && dim >= 0, kName);
  if (dx == nullptr || batch * dim == 0) return;
  require(index >= 0 && index < tokens, kName, "token index out of range");
  require(dy != nullptr, kName, "null pointer argument");
  for_each(batch * dim, SelectTokenBackward{tokens, dim, index, dy, dx}, kName, stream);
}

}  // namespace st::cuda
