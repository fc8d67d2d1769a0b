// Token plumbing of vision transformers (Dosovitskiy et al. 2021), on [batch, tokens, dim] arrays:
//   prepend_token:       y[b] = [token; x[b]]          (the class token, one learned row for every sample)
//   add_batch_broadcast: y[b] = x[b] + e               (the learned position embedding, e of one sample's
//                                                       shape; its gradient sums over the batch)
//   select_token:        y[b] = x[b, index]            (the class token's output row, read by the head)
// Gradient sums over the batch run in sample order (deterministic).
#include <algorithm>

#include "kernels/cpu/kernels.h"

namespace st::cpu {

void prepend_token_forward(int64_t batch, int64_t tokens, int64_t dim, const float* x, const float* token, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    float* yb = y + b * (tokens + 1) * dim;
    std::copy(token, token + dim, yb);
    std::copy(x + b * tokens * dim, x + (b + 1) * tokens * dim, yb + dim);
  }
}

void prepend_token_backward(int64_t batch, int64_t tokens, int64_t dim, const float* dy, float* dx, float* dtoken) {
  if (dx != nullptr) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      const float* dyb = dy + b * (tokens + 1) * dim + dim;
      float* dxb = dx + b * tokens * dim;
      for (int64_t i = 0; i < tokens * dim; ++i) dxb[i] += dyb[i];
    }
  }
  if (dtoken != nullptr)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < dim; ++c) dtoken[c] += dy[b * (tokens + 1) * dim + c];
}

void add_batch_broadcast_forward(int64_t batch, int64_t per_sample, const float* x, const float* e, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < per_sample; ++i) y[b * per_sample + i] = x[b * per_sample + i] + e[i];
}

void add_batch_broadcast_backward(int64_t batch, int64_t per_sample, const float* dy, float* dx, float* de) {
  if (dx != nullptr) accumulate(batch * per_sample, dy, dx);
  if (de != nullptr) column_sums(batch, per_sample, dy, de);
}

void select_token_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* x, float* y) {
  for (int64_t b = 0; b < batch; ++b)
    std::copy(x + (b * tokens + index) * dim, x + (b * tokens + index + 1) * dim, y + b * dim);
}

void select_token_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* dy, float* dx) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < dim; ++c) dx[(b * tokens + index) * dim + c] += dy[b * dim + c];
}

}  // namespace st::cpu
