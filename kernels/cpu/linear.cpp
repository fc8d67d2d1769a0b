// Fully connected layer: y = x W^T + b with W stored (out, in) as in PyTorch.
// Backward: dx += dy W, dW += dy^T x, db += sum over the batch of dy.
#include "kernels/cpu/kernels.h"

namespace st::cpu {

void linear_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y) {
  if (b != nullptr) {
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < batch; ++row)
      for (int64_t j = 0; j < out; ++j) y[row * out + j] = b[j];
  }
  parallel_gemm(false, true, batch, out, in, 1.0f, x, in, w, in, b != nullptr ? 1.0f : 0.0f, y, out);
}

void linear_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* dy,
                     float* dx, float* dw, float* db) {
  if (dx != nullptr) parallel_gemm(false, false, batch, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
  if (dw != nullptr) parallel_gemm(true, false, out, in, batch, 1.0f, dy, out, x, in, 1.0f, dw, in);
  if (db != nullptr) {
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < out; ++j) {
      float sum = 0.0f;
      for (int64_t row = 0; row < batch; ++row) sum += dy[row * out + j];
      db[j] += sum;
    }
  }
}

}  // namespace st::cpu
