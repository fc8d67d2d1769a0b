// GELU, the exact form (Hendrycks & Gimpel 2016; torch.nn.GELU's default, approximate='none'):
//   y = x Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))
//   dy/dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// When training, the forward also writes dy/dx (it has Phi(x) at hand), so the backward is one
// multiply instead of a second erf.
#include <cmath>

#include "kernels/cpu/kernels.h"

namespace st::cpu {

void gelu_forward(int64_t n, const float* x, float* y, float* derivative) {
  constexpr float inv_sqrt2 = 0.70710678118654752440f;
  constexpr float inv_sqrt_2pi = 0.39894228040143267794f;
  if (derivative == nullptr) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * inv_sqrt2));
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float cdf = 0.5f * (1.0f + std::erf(x[i] * inv_sqrt2));
    y[i] = x[i] * cdf;
    derivative[i] = cdf + x[i] * inv_sqrt_2pi * std::exp(-0.5f * x[i] * x[i]);
  }
}

void gelu_backward(int64_t n, const float* derivative, const float* dy, float* dx) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * derivative[i];
}

}  // namespace st::cpu
