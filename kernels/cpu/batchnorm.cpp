// Batch normalisation (Ioffe & Szegedy 2015) over [rows, channels], rows = N*H*W (NHWC).
//   train: mean, biased variance over the rows, y = (x - mean) * invstd * gamma + beta
//   eval:  the same with the running statistics
//   backward (train): with xhat = (x - mean) * invstd, M = rows,
//     dbeta = sum dy, dgamma = sum dy * xhat, dx = gamma * invstd * (dy - dbeta / M - xhat * dgamma / M)
//   fused ReLU: y = max(0, bn(x)); its backward gates dy by (y > 0) before the formulas above.
// The training forward reads x twice (statistics, then the affine map) and the backward reads it
// twice: these passes are memory-bound, and a channel-pruned network spends a large share of its step in them.
// Statistics in one pass: sums of d = x - shift and d^2 with shift = the first row (a value of the
// channel, so the variance E[d^2] - E[d]^2 does not cancel), in float over blocks of 32 lane rows and
// in double across blocks and threads. Per-thread partials over fixed row ranges, combined in thread
// order: results depend on the thread count only.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/kernels.h"

namespace st::cpu {
namespace {

// Rows of C channels are walked `group` rows at a time as lane rows of width = group * C floats, a
// multiple of 16, so the inner loops run over whole 16-lane vectors at 8 or 12 channels too (a loop
// over one 8-float row per iteration ran far below memory speed). Per-channel values are tiled over
// the width; the rows left over (rows % group) are walked one at a time over the first C lanes.
struct LaneRows {
  int64_t channels, group, width;
  explicit LaneRows(int64_t c)
      : channels(c), group(16 / std::gcd<int64_t>(c, 16)), width(16 / std::gcd<int64_t>(c, 16) * c) {}
  std::vector<float> tile(const float* per_channel) const {
    std::vector<float> tiled(static_cast<std::size_t>(width));
    for (int64_t i = 0; i < width; ++i) tiled[static_cast<std::size_t>(i)] = per_channel[i % channels];
    return tiled;
  }
  std::vector<float> tile(const std::vector<float>& per_channel) const { return tile(per_channel.data()); }
};

// Inside a parallel region: body(first float, width) over this thread's share of the rows, as whole
// lane rows, the last thread then taking the leftover single rows.
template <typename Body>
void for_lane_rows(const LaneRows& lanes, int64_t rows, Body&& body) {
  const int thread = omp_get_thread_num(), threads = omp_get_num_threads();
  const int64_t lane_rows = rows / lanes.group;
  for (int64_t r = lane_rows * thread / threads; r < lane_rows * (thread + 1) / threads; ++r)
    body(r * lanes.width, lanes.width);
  if (thread == threads - 1)
    for (int64_t row = lane_rows * lanes.group; row < rows; ++row) body(row * lanes.channels, lanes.channels);
}

// Two per-channel sums of terms(i, l) = {a, b} over every element i of the [rows, channels] array (l: its
// lane in the lane row, channel l % channels): float within blocks of 32 lane rows, double across blocks;
// per-thread totals added in thread order, then the lanes folded onto their channels. Within a block
// each 16-lane slice is summed over the block's rows in registers. (Adding each row into a per-lane array
// in memory put a store and a reload on every row's dependency chain; that ran at half memory speed.)
struct Terms2 {
  float a, b;
};
template <typename Terms>
void channel_sums(const LaneRows& lanes, int64_t rows, Terms&& terms, std::vector<double>& sum_a,
                  std::vector<double>& sum_b) {
  constexpr int64_t kBlock = 32, kSlice = 16;
  const int64_t width = lanes.width, lane_rows = rows / lanes.group;
  const int threads = thread_count();
  std::vector<double> partials(static_cast<std::size_t>(threads * 2 * width), 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num(), count = omp_get_num_threads();
    double* total_a = partials.data() + thread * 2 * width;
    double* total_b = total_a + width;
    const int64_t first = lane_rows * thread / count, last = lane_rows * (thread + 1) / count;
    for (int64_t block = first; block < last; block += kBlock) {
      const int64_t end = std::min(last, block + kBlock);
      for (int64_t slice = 0; slice < width; slice += kSlice) {  // width is a multiple of 16
        float a[kSlice] = {}, b[kSlice] = {};
        for (int64_t r = block; r < end; ++r) {
          const int64_t at = r * width + slice;
#pragma omp simd
          for (int64_t l = 0; l < kSlice; ++l) {
            const Terms2 t = terms(at + l, slice + l);
            a[l] += t.a;
            b[l] += t.b;
          }
        }
#pragma omp simd
        for (int64_t l = 0; l < kSlice; ++l) {  // (left to itself GCC folds these lane by lane in scalar code)
          total_a[slice + l] += a[l];
          total_b[slice + l] += b[l];
        }
      }
    }
    if (thread == count - 1)  // the rows left over, one at a time over the first `channels` lanes
      for (int64_t row = lane_rows * lanes.group; row < rows; ++row)
        for (int64_t l = 0; l < lanes.channels; ++l) {
          const Terms2 t = terms(row * lanes.channels + l, l);
          total_a[l] += t.a;
          total_b[l] += t.b;
        }
  }
  sum_a.assign(static_cast<std::size_t>(lanes.channels), 0.0);
  sum_b.assign(static_cast<std::size_t>(lanes.channels), 0.0);
  for (int t = 0; t < threads; ++t) {
    const double* total = partials.data() + static_cast<std::size_t>(t) * 2 * width;
    for (int64_t l = 0; l < width; ++l) {
      sum_a[static_cast<std::size_t>(l % lanes.channels)] += total[l];
      sum_b[static_cast<std::size_t>(l % lanes.channels)] += total[width + l];
    }
  }
}

// The training forward's per-channel affine map y = x * scale + shift, written with explicit fused
// multiply-adds so that the backward's recomputation of the ReLU gate (y > 0) is the forward's value to the
// bit, whatever the compiler contracts.
inline float train_scale(float gamma, float invstd) { return gamma * invstd; }
inline float train_shift(float beta, float mean, float scale) { return std::fma(-mean, scale, beta); }
inline float affine(float x, float scale, float shift) { return std::fma(x, scale, shift); }

// y = x * scale + shift per channel (then max(0, .) with relu).
void affine_rows(int64_t rows, int64_t channels, const float* x, const float* scale, const float* shift, bool relu,
                 float* y) {
  const LaneRows lanes(channels);
  const std::vector<float> scales = lanes.tile(scale), shifts = lanes.tile(shift);
  const float* sc = scales.data();
  const float* sh = shifts.data();
#pragma omp parallel num_threads(thread_count())
  for_lane_rows(lanes, rows, [&](int64_t at, int64_t count) {
    const float* in = x + at;
    float* out = y + at;
    if (relu) {
#pragma omp simd
      for (int64_t l = 0; l < count; ++l) {
        const float v = affine(in[l], sc[l], sh[l]);
        out[l] = v > 0.0f ? v : 0.0f;
      }
    } else {
#pragma omp simd
      for (int64_t l = 0; l < count; ++l) out[l] = affine(in[l], sc[l], sh[l]);
    }
  });
}

// dy gated by the fused ReLU's output (y > 0), or dy itself without ReLU. The training passes fix the
// choice at compile time (a null test per element kept their loops from vectorising).
inline float gated(const float* relu_output, const float* dy, int64_t i) {
  return relu_output == nullptr || relu_output[i] > 0.0f ? dy[i] : 0.0f;
}
// The training backward: the fused ReLU's gate recomputed from x with the forward's affine map (one
// stream fewer to read than y itself, in both passes: the backward is memory-bound).
template <bool Relu>
inline float gated_train(float x, float scale, float shift, const float* dy, int64_t i) {
  if constexpr (Relu) {
    const float grad = dy[i];  // loaded unconditionally: a load under the condition kept the loops scalar
    return affine(x, scale, shift) > 0.0f ? grad : 0.0f;
  } else {
    (void)x;
    (void)scale;
    (void)shift;
    return dy[i];
  }
}

// dx (=, or += unless Overwrite) coefficient * (dy - mean(dy) - xhat * mean(dy * xhat)), per channel;
// every per-channel array tiled over the lane width.
template <bool Overwrite, bool Relu>
void normalised_gradient_rows(const LaneRows& lanes, int64_t rows, const float* x, const float* mean,
                              const float* invstd, const float* scale, const float* shift, const float* dy,
                              const float* coefficient, const float* mean_dy, const float* mean_dy_xhat, float* dx) {
#pragma omp parallel num_threads(thread_count())
  for_lane_rows(lanes, rows, [&](int64_t at, int64_t count) {
    const float* in = x + at;
    float* out = dx + at;
#pragma omp simd
    for (int64_t l = 0; l < count; ++l) {
      const float xhat = (in[l] - mean[l]) * invstd[l];
      const float grad = gated_train<Relu>(in[l], scale[l], shift[l], dy, at + l);
      store_gradient<Overwrite>(out, l, coefficient[l] * (grad - mean_dy[l] - xhat * mean_dy_xhat[l]));
    }
  });
}

// batchnorm_backward_train with a fused ReLU (Relu) or none.
template <bool Relu>
void backward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                    const float* batch_mean, const float* batch_invstd, const float* dy, GradOut dx, float* dgamma,
                    float* dbeta) {
  const LaneRows lanes(channels);
  const std::vector<float> means = lanes.tile(batch_mean), invstds = lanes.tile(batch_invstd);
  const float* mean = means.data();
  const float* invstd = invstds.data();
  std::vector<float> scale_values(static_cast<std::size_t>(channels)), shift_values(scale_values.size());
  for (int64_t c = 0; c < channels; ++c) {
    scale_values[static_cast<std::size_t>(c)] = train_scale(gamma[c], batch_invstd[c]);
    shift_values[static_cast<std::size_t>(c)] = train_shift(beta[c], batch_mean[c], scale_values[static_cast<std::size_t>(c)]);
  }
  const std::vector<float> scales = lanes.tile(scale_values), shifts = lanes.tile(shift_values);
  const float* scale = scales.data();
  const float* shift = shifts.data();
  std::vector<double> total_dy, total_dy_xhat;
  channel_sums(
      lanes, rows,
      [&](int64_t i, int64_t l) {
        const float grad = gated_train<Relu>(x[i], scale[l], shift[l], dy, i);
        return Terms2{grad, grad * (x[i] - mean[l]) * invstd[l]};
      },
      total_dy, total_dy_xhat);
  const auto width = static_cast<std::size_t>(channels);
  if (dgamma != nullptr)
    for (std::size_t c = 0; c < width; ++c) dgamma[c] += static_cast<float>(total_dy_xhat[c]);
  if (dbeta != nullptr)
    for (std::size_t c = 0; c < width; ++c) dbeta[c] += static_cast<float>(total_dy[c]);
  if (!dx) return;
  std::vector<float> mean_dy(width), mean_dy_xhat(width), coefficient(width);
  for (std::size_t c = 0; c < width; ++c) {
    mean_dy[c] = static_cast<float>(total_dy[c] / static_cast<double>(rows));
    mean_dy_xhat[c] = static_cast<float>(total_dy_xhat[c] / static_cast<double>(rows));
    coefficient[c] = gamma[c] * batch_invstd[c];
  }
  const std::vector<float> mean_dys = lanes.tile(mean_dy), mean_dy_xhats = lanes.tile(mean_dy_xhat),
                           coefficients = lanes.tile(coefficient);
  if (dx.overwrite) {
    normalised_gradient_rows<true, Relu>(lanes, rows, x, mean, invstd, scale, shift, dy, coefficients.data(),
                                         mean_dys.data(), mean_dy_xhats.data(), dx.data);
  } else {
    normalised_gradient_rows<false, Relu>(lanes, rows, x, mean, invstd, scale, shift, dy, coefficients.data(),
                                          mean_dys.data(), mean_dy_xhats.data(), dx.data);
  }
}

}  // namespace

void batchnorm_forward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                             float eps, bool relu, float* y, float* batch_mean, float* batch_invstd, float* batch_var) {
  const LaneRows lanes(channels);
  const std::vector<float> shift = lanes.tile(x);  // the first row
  const float* s = shift.data();
  std::vector<double> sum, sum_squares;
  channel_sums(
      lanes, rows,
      [&](int64_t i, int64_t l) {
        const float d = x[i] - s[l];
        return Terms2{d, d * d};
      },
      sum, sum_squares);
  const auto width = static_cast<std::size_t>(channels);
  std::vector<float> scale(width), offset(width);
  for (std::size_t c = 0; c < width; ++c) {
    const double mean_shifted = sum[c] / static_cast<double>(rows);
    const double var = std::max(0.0, sum_squares[c] / static_cast<double>(rows) - mean_shifted * mean_shifted);
    const float invstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    batch_mean[c] = static_cast<float>(static_cast<double>(x[c]) + mean_shifted);
    batch_var[c] = static_cast<float>(var);
    batch_invstd[c] = invstd;
    scale[c] = train_scale(gamma[c], invstd);
    offset[c] = train_shift(beta[c], batch_mean[c], scale[c]);
  }
  affine_rows(rows, channels, x, scale.data(), offset.data(), relu, y);
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

void batchnorm_backward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                              const float* batch_mean, const float* batch_invstd, bool relu, const float* dy, GradOut dx,
                              float* dgamma, float* dbeta) {
  if (relu) {
    backward_train<true>(rows, channels, x, gamma, beta, batch_mean, batch_invstd, dy, dx, dgamma, dbeta);
  } else {
    backward_train<false>(rows, channels, x, gamma, beta, batch_mean, batch_invstd, dy, dx, dgamma, dbeta);
  }
}

void batchnorm_backward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma,
                             const float* running_mean, const float* running_var, float eps, const float* relu_output,
                             const float* dy, float* dx, float* dgamma, float* dbeta) {
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
