// Softmax over the last dimension of [rows, cols]:  y = exp(x - max x) / sum exp(x - max x).
// Backward (Jacobian diag(y) - y y^T per row):  dx = y (dy - sum(dy y)).
// softmax_forward may run in place (x == y). The attention kernel calls the one-row helpers per
// (batch, head) inside its own parallel loop.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/kernels.h"

namespace st::cpu {

void softmax_row_forward(int64_t cols, const float* x, float* y) {
  const float max_value = *std::max_element(x, x + cols);
  float sum = 0.0f;
  for (int64_t c = 0; c < cols; ++c) {
    y[c] = std::exp(x[c] - max_value);
    sum += y[c];
  }
  const float inv = 1.0f / sum;
  for (int64_t c = 0; c < cols; ++c) y[c] *= inv;
}

void softmax_row_backward(int64_t cols, const float* y, const float* dy, float* dx) {
  float dot = 0.0f;
  for (int64_t c = 0; c < cols; ++c) dot += dy[c] * y[c];
  for (int64_t c = 0; c < cols; ++c) dx[c] += y[c] * (dy[c] - dot);
}

void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) softmax_row_forward(cols, x + r * cols, y + r * cols);
}

void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) softmax_row_backward(cols, y + r * cols, dy + r * cols, dx + r * cols);
}

}  // namespace st::cpu
