// Batch normalisation (Ioffe & Szegedy 2015) over [rows, channels], rows = N*H*W (NHWC).
//   train: mean, biased variance over the rows (two passes for accuracy), y = (x - mean) * invstd * gamma + beta
//   eval:  the same with the running statistics
//   backward (train): with xhat = (x - mean) * invstd, M = rows,
//     dbeta = sum dy, dgamma = sum dy * xhat, dx = gamma * invstd * (dy - dbeta / M - xhat * dgamma / M)
//   fused ReLU: y = max(0, bn(x)); its backward gates dy by (y > 0) before the formulas above.
// Per-channel sums use per-thread partials over fixed row ranges, combined in thread order.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/kernels.h"

namespace st::cpu {
namespace {

// Per-thread partial sums live in rows of this stride (floats): at least one cache line apart, so two
// threads never write the same line (false sharing made BatchNorm scale badly on 2 cores).
std::size_t partial_stride(std::size_t width) { return (width + 31) / 16 * 16; }

void row_range(int64_t rows, int64_t& begin, int64_t& end) {
  const int thread = omp_get_thread_num(), threads = omp_get_num_threads();
  begin = rows * thread / threads;
  end = rows * (thread + 1) / threads;
}

void affine_rows(int64_t rows, int64_t channels, const float* x, const float* scale, const float* shift, bool relu,
                 float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const float* in = x + row * channels;
    float* out = y + row * channels;
    if (relu) {
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        const float v = in[c] * scale[c] + shift[c];
        out[c] = v > 0.0f ? v : 0.0f;
      }
    } else {
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) out[c] = in[c] * scale[c] + shift[c];
    }
  }
}

// dy gated by the fused ReLU's output (y > 0), or dy itself without ReLU.
inline float gated(const float* relu_output, const float* dy, int64_t i) {
  return relu_output == nullptr || relu_output[i] > 0.0f ? dy[i] : 0.0f;
}

// dx (=, or += unless Overwrite) coefficient * (dy - mean(dy) - xhat * mean(dy * xhat)), per channel.
template <bool Overwrite>
void normalised_gradient_rows(int64_t rows, int64_t channels, const float* x, const float* mean, const float* invstd,
                              const float* relu_output, const float* dy, const float* coefficient,
                              const float* mean_dy, const float* mean_dy_xhat, float* dx) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const float* in = x + row * channels;
    float* out = dx + row * channels;
#pragma omp simd
    for (int64_t c = 0; c < channels; ++c) {
      const float xhat = (in[c] - mean[c]) * invstd[c];
      store_gradient<Overwrite>(
          out, c, coefficient[c] * (gated(relu_output, dy, row * channels + c) - mean_dy[c] - xhat * mean_dy_xhat[c]));
    }
  }
}

}  // namespace

void batchnorm_forward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                             float eps, bool relu, float* y, float* batch_mean, float* batch_invstd,
                             float* batch_var) {
  const int threads = thread_count();
  const auto width = static_cast<std::size_t>(channels);
  const std::size_t stride = partial_stride(width);
  std::vector<float> partials(static_cast<std::size_t>(threads) * stride);
  std::vector<float> mean(width, 0.0f), var(width, 0.0f);
  // pass 1: mean
  std::fill(partials.begin(), partials.end(), 0.0f);
#pragma omp parallel num_threads(threads)
  {
    int64_t begin = 0, end = 0;
    row_range(rows, begin, end);
    float* partial = partials.data() + static_cast<std::size_t>(omp_get_thread_num()) * stride;
    for (int64_t row = begin; row < end; ++row) {
      const float* in = x + row * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) partial[c] += in[c];
    }
  }
  for (int t = 0; t < threads; ++t)
    for (std::size_t c = 0; c < width; ++c) mean[c] += partials[static_cast<std::size_t>(t) * stride + c];
  for (auto& m : mean) m /= static_cast<float>(rows);
  // pass 2: biased variance
  std::fill(partials.begin(), partials.end(), 0.0f);
#pragma omp parallel num_threads(threads)
  {
    int64_t begin = 0, end = 0;
    row_range(rows, begin, end);
    float* partial = partials.data() + static_cast<std::size_t>(omp_get_thread_num()) * stride;
    const float* mu = mean.data();
    for (int64_t row = begin; row < end; ++row) {
      const float* in = x + row * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        const float d = in[c] - mu[c];
        partial[c] += d * d;
      }
    }
  }
  for (int t = 0; t < threads; ++t)
    for (std::size_t c = 0; c < width; ++c) var[c] += partials[static_cast<std::size_t>(t) * stride + c];
  std::vector<float> scale(width), shift(width);
  for (std::size_t c = 0; c < width; ++c) {
    var[c] /= static_cast<float>(rows);
    const float invstd = 1.0f / std::sqrt(var[c] + eps);
    batch_mean[c] = mean[c];
    batch_var[c] = var[c];
    batch_invstd[c] = invstd;
    scale[c] = gamma[c] * invstd;
    shift[c] = beta[c] - mean[c] * scale[c];
  }
  affine_rows(rows, channels, x, scale.data(), shift.data(), relu, y);
}

void batchnorm_forward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, float eps, bool relu, float* y) {
  const auto width = static_cast<std::size_t>(channels);
  std::vector<float> scale(width), shift(width);
  for (std::size_t c = 0; c < width; ++c) {
    scale[c] = gamma[c] / std::sqrt(running_var[c] + eps);
    shift[c] = beta[c] - running_mean[c] * scale[c];
  }
  affine_rows(rows, channels, x, scale.data(), shift.data(), relu, y);
}

void batchnorm_backward_train(int64_t rows, int64_t channels, const float* x, const float* gamma,
                              const float* batch_mean, const float* batch_invstd, const float* relu_output,
                              const float* dy, GradOut dx, float* dgamma, float* dbeta) {
  const int threads = thread_count();
  const auto width = static_cast<std::size_t>(channels);
  const std::size_t stride = partial_stride(width);
  std::vector<float> partial_dy(static_cast<std::size_t>(threads) * stride, 0.0f);
  std::vector<float> partial_dy_xhat(static_cast<std::size_t>(threads) * stride, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    int64_t begin = 0, end = 0;
    row_range(rows, begin, end);
    const std::size_t offset = static_cast<std::size_t>(omp_get_thread_num()) * stride;
    float* sum_dy = partial_dy.data() + offset;
    float* sum_dy_xhat = partial_dy_xhat.data() + offset;
    for (int64_t row = begin; row < end; ++row) {
      const float* in = x + row * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        const float grad = gated(relu_output, dy, row * channels + c);
        sum_dy[c] += grad;
        sum_dy_xhat[c] += grad * (in[c] - batch_mean[c]) * batch_invstd[c];
      }
    }
  }
  std::vector<float> total_dy(width, 0.0f), total_dy_xhat(width, 0.0f);
  for (int t = 0; t < threads; ++t)
    for (std::size_t c = 0; c < width; ++c) {
      total_dy[c] += partial_dy[static_cast<std::size_t>(t) * stride + c];
      total_dy_xhat[c] += partial_dy_xhat[static_cast<std::size_t>(t) * stride + c];
    }
  if (dgamma != nullptr)
    for (std::size_t c = 0; c < width; ++c) dgamma[c] += total_dy_xhat[c];
  if (dbeta != nullptr)
    for (std::size_t c = 0; c < width; ++c) dbeta[c] += total_dy[c];
  if (!dx) return;
  const float inv_rows = 1.0f / static_cast<float>(rows);
  std::vector<float> mean_dy(width), mean_dy_xhat(width), coefficient(width);
  for (std::size_t c = 0; c < width; ++c) {
    mean_dy[c] = total_dy[c] * inv_rows;
    mean_dy_xhat[c] = total_dy_xhat[c] * inv_rows;
    coefficient[c] = gamma[c] * batch_invstd[c];
  }
  if (dx.overwrite) {
    normalised_gradient_rows<true>(rows, channels, x, batch_mean, batch_invstd, relu_output, dy, coefficient.data(),
                                   mean_dy.data(), mean_dy_xhat.data(), dx.data);
  } else {
    normalised_gradient_rows<false>(rows, channels, x, batch_mean, batch_invstd, relu_output, dy, coefficient.data(),
                                    mean_dy.data(), mean_dy_xhat.data(), dx.data);
  }
}

void batchnorm_backward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma,
                             const float* running_mean, const float* running_var, float eps,
                             const float* relu_output, const float* dy, float* dx, float* dgamma, float* dbeta) {
  const auto width = static_cast<std::size_t>(channels);
  std::vector<float> invstd(width), scale(width);
  for (std::size_t c = 0; c < width; ++c) {
    invstd[c] = 1.0f / std::sqrt(running_var[c] + eps);
    scale[c] = gamma[c] * invstd[c];
  }
  std::vector<float> grad(static_cast<std::size_t>(rows * channels)), grad_xhat(grad.size());
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t i = row * channels + c;
      const float g = gated(relu_output, dy, i);
      grad[static_cast<std::size_t>(i)] = g;
      grad_xhat[static_cast<std::size_t>(i)] = g * (x[i] - running_mean[c]) * invstd[c];
      if (dx != nullptr) dx[i] += g * scale[c];
    }
  if (dgamma != nullptr) column_sums(rows, channels, grad_xhat.data(), dgamma);
  if (dbeta != nullptr) column_sums(rows, channels, grad.data(), dbeta);
}

}  // namespace st::cpu
