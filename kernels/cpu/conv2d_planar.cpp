// Planar convolution for first layers: at most 4 input channels (grayscale, RGB), stride 1, one group, an
// output channel count that is not a multiple of 8 (lenet5's conv1: 1 -> 6, 5x5 on 28 x 28). There the
// NHWC kernels vectorise over channels that do not exist: the direct kernel computes 8 outputs for 6,
// one input channel per broadcast, and im2col + sgemm multiplies a 6-column matrix (the weight gradient,
// 6 x 25 outputs over 100k pixels, ran at 24 GFLOP/s). Here each image is transposed to planes (one per
// channel, the input zero-padded) and the kernels vectorise over 16 adjacent output pixels of a row:
//   forward   y[k][oh][ow..+16]   += w[k, r, s, c] * x[c][oh + r][ow + s ..+16]
//   dW        dW[k, r, s, c]      += sum over oh, ow of dy[k][oh][ow..+16] * x[c][oh + r][ow + s ..+16]
// Summation orders are fixed ((c, r, s) per output; per-thread weight-gradient partials summed in thread
// order), so results do not depend on how images are split among threads of one count.
#include <omp.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "engine/allocator.h"
#include "kernels/cpu/kernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace st::cpu {

bool conv2d_planar_supported(const Conv2dGeometry& g) {
#if defined(__AVX512F__)
  return g.groups == 1 && g.stride == 1 && g.in_channels <= 4 && g.out_channels % 8 != 0 && g.kernel_w <= 7;
#else
  (void)g;
  return false;
#endif
}

#if defined(__AVX512F__)
// GCC 12's _mm512_reduce_add_ps halves its vector through an "undefined" one, which -Werror=maybe-uninitialized
// rejects.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {

inline __mmask16 tail_mask(int64_t remaining) {
  return static_cast<__mmask16>(remaining >= 16 ? 0xFFFF : (1u << remaining) - 1u);
}

// One image's input as zero-padded planes [c][in_h + 2 pad][in_w + 2 pad], per thread; the border is
// zeroed once, the interior rewritten per image.
class PaddedPlanes {
 public:
  explicit PaddedPlanes(const Conv2dGeometry& g)
      : g_(g), height_(g.in_h + 2 * g.pad), width_(g.in_w + 2 * g.pad),
        buffer_(static_cast<std::size_t>(g.in_channels * height_ * width_)) {
    std::fill(buffer_.data(), buffer_.data() + g.in_channels * height_ * width_, 0.0f);
  }
  const float* load(const float* x, int64_t n) {
    const int64_t c_count = g_.in_channels;
    const float* image = x + n * g_.in_h * g_.in_w * c_count;
    for (int64_t h = 0; h < g_.in_h; ++h)
      for (int64_t w = 0; w < g_.in_w; ++w)
        for (int64_t c = 0; c < c_count; ++c)
          buffer_.data()[(c * height_ + h + g_.pad) * width_ + w + g_.pad] = image[(h * g_.in_w + w) * c_count + c];
    return buffer_.data();
  }
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }

 private:
  const Conv2dGeometry& g_;
  int64_t height_, width_;
  HostBuffer buffer_;
};

}  // namespace

namespace {

// KB output channels [k0, k0 + KB) at ROWS output rows from oh and 16 output pixels from ow (masked): every
// input vector loaded feeds KB FMAs, every weight broadcast ROWS.
template <int KB, int ROWS>
void planar_forward_block(const Conv2dGeometry& g, const float* xp, int64_t plane_h, int64_t plane_w, const float* w,
                          const float* b, int64_t k0, int64_t oh, int64_t ow, float* out) {
  const int64_t c_count = g.in_channels, taps = g.kernel_h * g.kernel_w * c_count, ow_count = g.out_w();
  const int64_t plane = g.out_h() * ow_count;
  const __mmask16 mask = tail_mask(ow_count - ow);
  __m512 acc[ROWS][KB];
  for (int j = 0; j < ROWS; ++j)
    for (int k = 0; k < KB; ++k) acc[j][k] = _mm512_set1_ps(b != nullptr ? b[k0 + k] : 0.0f);
  for (int64_t c = 0; c < c_count; ++c)
    for (int64_t r = 0; r < g.kernel_h; ++r)
      for (int64_t s = 0; s < g.kernel_w; ++s) {
        const float* wt = w + k0 * taps + (r * g.kernel_w + s) * c_count + c;
        __m512 input[ROWS];
        for (int j = 0; j < ROWS; ++j)
          input[j] = _mm512_maskz_loadu_ps(mask, xp + (c * plane_h + oh + j + r) * plane_w + ow + s);
        for (int k = 0; k < KB; ++k) {
          const __m512 weight = _mm512_set1_ps(wt[k * taps]);
          for (int j = 0; j < ROWS; ++j) acc[j][k] = _mm512_fmadd_ps(weight, input[j], acc[j][k]);
        }
      }
  for (int j = 0; j < ROWS; ++j)
    for (int k = 0; k < KB; ++k)
      _mm512_mask_storeu_ps(out + (k0 + k) * plane + (oh + j) * ow_count + ow, mask, acc[j][k]);
}

template <int KB>
void planar_forward_channels(const Conv2dGeometry& g, const float* xp, int64_t plane_h, int64_t plane_w,
                             const float* w, const float* b, int64_t k0, float* out) {
  const int64_t oh_count = g.out_h(), ow_count = g.out_w();
  int64_t oh = 0;
  for (; oh + 2 <= oh_count; oh += 2)
    for (int64_t ow = 0; ow < ow_count; ow += 16) planar_forward_block<KB, 2>(g, xp, plane_h, plane_w, w, b, k0, oh, ow, out);
  for (; oh < oh_count; ++oh)
    for (int64_t ow = 0; ow < ow_count; ow += 16) planar_forward_block<KB, 1>(g, xp, plane_h, plane_w, w, b, k0, oh, ow, out);
}

}  // namespace

void conv2d_forward_planar(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y,
                           bool accumulate) {
  using Channels = void (*)(const Conv2dGeometry&, const float*, int64_t, int64_t, const float*, const float*, int64_t,
                            float*);
  static constexpr Channels kBlocks[] = {planar_forward_channels<1>, planar_forward_channels<2>,
                                         planar_forward_channels<3>, planar_forward_channels<4>,
                                         planar_forward_channels<5>, planar_forward_channels<6>,
                                         planar_forward_channels<7>, planar_forward_channels<8>};
  const int64_t k_count = g.out_channels, plane = g.out_h() * g.out_w();
#pragma omp parallel
  {
    PaddedPlanes planes(g);
    HostBuffer out(static_cast<std::size_t>(k_count * plane));  // [k][oh][ow]
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.batch; ++n) {
      const float* xp = planes.load(x, n);
      for (int64_t k0 = 0; k0 < k_count; k0 += 8)
        kBlocks[std::min<int64_t>(8, k_count - k0) - 1](g, xp, planes.height(), planes.width(), w, b, k0, out.data());
      float* y_image = y + n * plane * k_count;
      for (int64_t p = 0; p < plane; ++p)
        for (int64_t k = 0; k < k_count; ++k) {
          const float v = out.data()[k * plane + p];
          y_image[p * k_count + k] = accumulate ? y_image[p * k_count + k] + v : v;
        }
    }
  }
}

void conv2d_weight_gradient_planar(const Conv2dGeometry& g, const float* x, const float* dy, float* dw) {
  constexpr int kMaxWidth = 7;
  const int64_t k_count = g.out_channels, c_count = g.in_channels, oh_count = g.out_h(), ow_count = g.out_w();
  const int64_t plane = oh_count * ow_count, weight_floats = g.weight_numel();
  const int threads = thread_count();
  std::vector<std::unique_ptr<HostBuffer>> partials(static_cast<std::size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    auto& partial = partials[static_cast<std::size_t>(omp_get_thread_num())];
    partial = std::make_unique<HostBuffer>(static_cast<std::size_t>(weight_floats));
    float* dw_partial = partial->data();
    std::fill(dw_partial, dw_partial + weight_floats, 0.0f);
    PaddedPlanes planes(g);
    HostBuffer dy_planes(static_cast<std::size_t>(k_count * plane));  // [k][oh][ow]
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.batch; ++n) {
      const float* xp = planes.load(x, n);
      const float* dy_image = dy + n * plane * k_count;
      for (int64_t p = 0; p < plane; ++p)
        for (int64_t k = 0; k < k_count; ++k) dy_planes.data()[k * plane + p] = dy_image[p * k_count + k];
      for (int64_t k = 0; k < k_count; ++k)
        for (int64_t c = 0; c < c_count; ++c)
          for (int64_t r = 0; r < g.kernel_h; ++r) {
            __m512 acc[kMaxWidth];
            for (int s = 0; s < kMaxWidth; ++s) acc[s] = _mm512_setzero_ps();
            for (int64_t oh = 0; oh < oh_count; ++oh) {
              const float* line = xp + (c * planes.height() + oh + r) * planes.width();
              const float* d = dy_planes.data() + k * plane + oh * ow_count;
              for (int64_t ow = 0; ow < ow_count; ow += 16) {
                const __mmask16 mask = tail_mask(ow_count - ow);
                const __m512 grad = _mm512_maskz_loadu_ps(mask, d + ow);
#pragma GCC unroll 7
                for (int s = 0; s < kMaxWidth; ++s)
                  if (s < g.kernel_w) acc[s] = _mm512_fmadd_ps(grad, _mm512_maskz_loadu_ps(mask, line + ow + s), acc[s]);
              }
            }
            for (int64_t s = 0; s < g.kernel_w; ++s)
              dw_partial[((k * g.kernel_h + r) * g.kernel_w + s) * c_count + c] += _mm512_reduce_add_ps(acc[s]);
          }
    }
  }
  for (const auto& partial : partials) {
    if (partial == nullptr) continue;
    for (int64_t i = 0; i < weight_floats; ++i) dw[i] += partial->data()[i];
  }
}
#pragma GCC diagnostic pop
#else
void conv2d_forward_planar(const Conv2dGeometry&, const float*, const float*, const float*, float*, bool) {}
void conv2d_weight_gradient_planar(const Conv2dGeometry&, const float*, const float*, float*) {}
#endif

}  // namespace st::cpu
