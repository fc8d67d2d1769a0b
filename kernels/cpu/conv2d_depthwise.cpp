// Depthwise convolution (groups = in_channels = out_channels, MobileNet's 3x3 blocks), NHWC. The
// im2col path would run one tiny GEMM per channel; here the channels, contiguous in NHWC, are the
// vector lanes: y[n, oh, ow, c] = b[c] + sum_{r, s} x[n, ih, iw, c] w[c, r, s]. Weights are repacked
// (r, s, c). The weight gradient uses per-thread partials summed in thread order (deterministic).
#include <omp.h>

#include <vector>

#include "engine/allocator.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/window.h"

namespace st::cpu {
namespace {

// w[c, r, s] -> packed[(r, s), c]: the weights of one tap are contiguous over the channels.
std::vector<float> pack_taps_by_channel(const float* w, int64_t channels, int64_t taps) {
  std::vector<float> packed(static_cast<std::size_t>(taps * channels));
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t t = 0; t < taps; ++t) packed[static_cast<std::size_t>(t * channels + c)] = w[c * taps + t];
  return packed;
}

}  // namespace

bool conv2d_depthwise_supported(const Conv2dGeometry& g) {
  return g.groups > 1 && g.groups == g.in_channels && g.groups == g.out_channels;
}

void conv2d_depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) {
  const int64_t c_count = g.in_channels, taps = g.kernel_h * g.kernel_w, oh_count = g.out_h(), ow_count = g.out_w();
  const std::vector<float> packed = pack_taps_by_channel(w, c_count, taps);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      const float* image = x + n * g.in_h * g.in_w * c_count;
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        float* out = y + ((n * oh_count + oh) * ow_count + ow) * c_count;
#pragma omp simd
        for (int64_t c = 0; c < c_count; ++c) out[c] = b != nullptr ? b[c] : 0.0f;
        for_each_tap_in_image(oh, ow, g.kernel_h, g.kernel_w, g.stride, g.pad, g.in_h, g.in_w,
                              [&](int64_t tap, int64_t pixel) {
                                const float* in = image + pixel * c_count;
                                const float* wp = packed.data() + tap * c_count;
#pragma omp simd
                                for (int64_t c = 0; c < c_count; ++c) out[c] += in[c] * wp[c];
                              });
      }
    }
  }
}

void conv2d_depthwise_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx,
                               float* dw, float* db) {
  const int64_t c_count = g.in_channels, taps = g.kernel_h * g.kernel_w, oh_count = g.out_h(), ow_count = g.out_w();
  if (db != nullptr) column_sums(g.batch * oh_count * ow_count, c_count, dy, db);
  const std::vector<float> packed = pack_taps_by_channel(w, c_count, taps);
  const int threads = thread_count();
  const auto partial_floats = static_cast<std::size_t>(taps * c_count);
  std::vector<float> partials(dw != nullptr ? static_cast<std::size_t>(threads) * partial_floats : 0, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    float* partial = dw != nullptr ? partials.data() + static_cast<std::size_t>(omp_get_thread_num()) * partial_floats
                                   : nullptr;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.batch; ++n) {
      const float* image = x + n * g.in_h * g.in_w * c_count;
      float* image_grad = dx != nullptr ? dx + n * g.in_h * g.in_w * c_count : nullptr;
      for (int64_t oh = 0; oh < oh_count; ++oh) {
        for (int64_t ow = 0; ow < ow_count; ++ow) {
          const float* grad = dy + ((n * oh_count + oh) * ow_count + ow) * c_count;
          for_each_tap_in_image(oh, ow, g.kernel_h, g.kernel_w, g.stride, g.pad, g.in_h, g.in_w,
                                [&](int64_t tap, int64_t pixel) {
                                  const int64_t offset = pixel * c_count;
                                  if (image_grad != nullptr) {
                                    const float* wp = packed.data() + tap * c_count;
                                    float* out = image_grad + offset;
#pragma omp simd
                                    for (int64_t c = 0; c < c_count; ++c) out[c] += grad[c] * wp[c];
                                  }
                                  if (partial != nullptr) {
                                    const float* in = image + offset;
                                    float* acc = partial + tap * c_count;
#pragma omp simd
                                    for (int64_t c = 0; c < c_count; ++c) acc[c] += grad[c] * in[c];
                                  }
                                });
        }
      }
    }
  }
  if (dw == nullptr) return;
  for (int t = 0; t < threads; ++t) {
    const float* partial = partials.data() + static_cast<std::size_t>(t) * partial_floats;
    for (int64_t c = 0; c < c_count; ++c)
      for (int64_t tap = 0; tap < taps; ++tap) dw[c * taps + tap] += partial[tap * c_count + c];
  }
}

}  // namespace st::cpu
