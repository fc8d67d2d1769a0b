// Layer normalisation over the last dimension (Ba, Kiros & Hinton 2016), with a per-feature affine
// map, as torch.nn.LayerNorm: for each row x of `dim` features,
//   mean = sum(x) / dim,  var = sum((x - mean)^2) / dim (biased),  invstd = 1 / sqrt(var + eps)
//   xhat = (x - mean) invstd,  y = gamma xhat + beta
// Backward (g = gamma dy):  dx = invstd (g - mean(g) - xhat mean(g xhat)),
//   dgamma = sum over rows of dy xhat,  dbeta = sum over rows of dy.
// Rows are independent; the parameter gradients are summed per thread over fixed row ranges and the
// per-thread partials combined in thread order (deterministic for a given thread count).
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/kernels.h"

namespace st::cpu {

void layernorm_forward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* beta, float eps,
                       float* y, float* mean, float* invstd) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double sum = 0.0;
    for (int64_t c = 0; c < dim; ++c) sum += static_cast<double>(xr[c]);
    const auto m = static_cast<float>(sum / static_cast<double>(dim));
    double squares = 0.0;
    for (int64_t c = 0; c < dim; ++c) {
      const double d = static_cast<double>(xr[c] - m);
      squares += d * d;
    }
    const auto s = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(dim) + static_cast<double>(eps)));
    mean[r] = m;
    invstd[r] = s;
    for (int64_t c = 0; c < dim; ++c) yr[c] = (xr[c] - m) * s * gamma[c] + beta[c];
  }
}

void layernorm_backward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* mean,
                        const float* invstd, const float* dy, float* dx, float* dgamma, float* dbeta) {
  const int threads = thread_count();
  const bool parameters = dgamma != nullptr || dbeta != nullptr;
  // Each thread's partial [dgamma | dbeta] starts a cache line apart from the next (no false sharing).
  const int64_t stride = (2 * dim + 31) / 16 * 16;
  std::vector<float> partial(parameters ? static_cast<std::size_t>(threads * stride) : 0, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int team = omp_get_num_threads();
    const int64_t begin = rows * t / team, end = rows * (t + 1) / team;
    float* pg = parameters ? partial.data() + t * stride : nullptr;
    float* pb = parameters ? pg + dim : nullptr;
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * dim;
      const float* dyr = dy + r * dim;
      const float m = mean[r], s = invstd[r];
      if (parameters) {
        for (int64_t c = 0; c < dim; ++c) {
          pg[c] += dyr[c] * (xr[c] - m) * s;
          pb[c] += dyr[c];
        }
      }
      if (dx == nullptr) continue;
      float sum_g = 0.0f, sum_g_xhat = 0.0f;
      for (int64_t c = 0; c < dim; ++c) {
        const float g = dyr[c] * gamma[c];
        sum_g += g;
        sum_g_xhat += g * (xr[c] - m) * s;
      }
      const float inv_dim = 1.0f / static_cast<float>(dim);
      const float mean_g = sum_g * inv_dim, mean_g_xhat = sum_g_xhat * inv_dim;
      float* dxr = dx + r * dim;
      for (int64_t c = 0; c < dim; ++c) {
        const float xhat = (xr[c] - m) * s;
        dxr[c] += s * (dyr[c] * gamma[c] - mean_g - xhat * mean_g_xhat);
      }
    }
  }
  if (!parameters) return;
  for (int t = 0; t < threads; ++t) {
    const float* pg = partial.data() + t * stride;
    for (int64_t c = 0; c < dim; ++c) {
      if (dgamma != nullptr) dgamma[c] += pg[c];
      if (dbeta != nullptr) dbeta[c] += pg[dim + c];
    }
  }
}

}  // namespace st::cpu
