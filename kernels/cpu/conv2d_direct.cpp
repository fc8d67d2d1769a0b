// Direct NHWC convolution with AVX-512 for one group and out_channels a multiple of 8 (others padded to one; 16-lane zmm
// vectors for multiples of 16, 8-lane ymm vectors otherwise: channel-pruned networks have 8, 24, 40
// channels; on AMD Zen 4 both widths reach the same FLOP rate): the path conv2d_forward takes (and the stride-1 data gradient, which is a forward convolution of dy) when
// the CPU has AVX-512. It writes no patch matrix and packs nothing per call but the weights, so the
// im2col and GEMM-packing passes of the generic path disappear; on resnet20's shapes it runs at
// 90-118 GFLOP/s per core where im2col + sgemm reaches 55-89 (tools: a microbenchmark of this file).
//
//   weights repacked (r, s, c, k): for an input value x[ih, iw, c] the 16 * KV weights it meets
//   are KV vector loads; a block of P adjacent output pixels keeps P * KV accumulators in
//   registers and every weight vector feeds P FMAs with broadcast inputs.
//   Each image is first copied into a zero-padded buffer (per thread, cache-resident), so the inner
//   loops have no bounds checks and border pixels take the same path as interior ones. (Reading the
//   image in place instead, border pixels one at a time with clipped taps, measured 20-25% slower on
//   8x8 images and no faster on 32x32.)
//   Narrow layers: 8 output channels from 8 or 16 inputs take the quad kernel, other 8s and 24 the paired
//   kernel. (16 and 32 output channels took paired kernels too until the direct kernel, built without
//   predictive commoning, measured faster there: 16 -> 16 98 -> 101-106 GFLOP/s, 32 -> 32 104 -> 109-110;
//   a paired kernel with 8 or 16 input channels fixed at compile time, kept for 24 outputs, then
//   measured slower than the generic one: 16 -> 24 73 -> 82, 8 -> 24 stride 2 69 -> 73.)
// Summation order is fixed (r, s, c), so results do not depend on threading.
// The weight gradient reads the images in place: for each tap it visits only the output pixels whose
// input lies inside the image. It is vectorised over 16 output channels with one accumulator per input
// channel (blocks of 16 x 16), per-thread partials summed in thread order; 8-lane output blocks and
// leftover input channels of stride-1 kernels 3 wide take the three-column kernel (one broadcast per
// input value for the three kernel columns it meets).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/allocator.h"
#include "kernels/cpu/kernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace st::cpu {

bool conv2d_direct_supported(const Conv2dGeometry& g) {
#if defined(__AVX512F__)
  const bool pointwise = g.kernel_h == 1 && g.kernel_w == 1 && g.stride == 1 && g.pad == 0;
  // Rows narrower than a pixel block of 8 run as single pixels: each weight vector feeds one FMA, and
  // weights past the L2 cache are streamed again for every output row. vgg16's 512 -> 512 at 4x4 ran at
  // 50 GFLOP/s that way against about 390 at 8x8; im2col + sgemm takes those layers.
  constexpr int64_t kStreamedWeightBytes = 512 * 1024;
  const bool streamed = g.out_w() < 8 && g.weight_numel() * static_cast<int64_t>(sizeof(float)) > kStreamedWeightBytes;
  return g.groups == 1 && !pointwise && !streamed;
#else
  (void)g;
  return false;
#endif
}

bool conv2d_direct_weight_gradient_supported(const Conv2dGeometry& g) {
  return conv2d_direct_supported(g) && g.out_channels % 8 == 0;
}

#if defined(__AVX512F__)
namespace {

// A per-thread copy of one image at a time inside a zero border of `pad` pixels: the border is
// zeroed once, the interior rewritten per image.
class PaddedImage {
 public:
  explicit PaddedImage(const Conv2dGeometry& g)
      : g_(g), width_(g.in_w + 2 * g.pad),
        buffer_(static_cast<std::size_t>((g.in_h + 2 * g.pad) * width_ * g.in_channels)) {
    std::fill(buffer_.data(), buffer_.data() + (g.in_h + 2 * g.pad) * width_ * g.in_channels, 0.0f);
  }
  const float* load(const float* x, int64_t n) {
    const int64_t line = g_.in_w * g_.in_channels;
    const float* image = x + n * g_.in_h * line;
    for (int64_t h = 0; h < g_.in_h; ++h)
      std::copy(image + h * line, image + (h + 1) * line,
                buffer_.data() + ((h + g_.pad) * width_ + g_.pad) * g_.in_channels);
    return buffer_.data();
  }
  int64_t width() const { return width_; }

 private:
  const Conv2dGeometry& g_;
  int64_t width_;
  HostBuffer buffer_;
};

// The two vector widths the kernels are written for.
struct Zmm {
  using V = __m512;
  static constexpr int lanes = 16;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V broadcast(float x) { return _mm512_set1_ps(x); }
  static V zero() { return _mm512_setzero_ps(); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
};
struct Ymm {
  using V = __m256;
  static constexpr int lanes = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V broadcast(float x) { return _mm256_set1_ps(x); }
  static V zero() { return _mm256_setzero_ps(); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
};

struct DirectRow {
  const float* image;    // zero-padded image [padded_h, padded_w, C]
  int64_t padded_w;
  const float* weights;  // packed (r, s, c, k)
  const float* bias;     // or null
  float* y_row;          // output row [out_w, K]
  int64_t oh;
  bool accumulate;
};

// P output pixels starting at ow, output channels [kb, kb + lanes KV).
template <typename Vec, int P, int KV>
inline void direct_block(const Conv2dGeometry& g, const DirectRow& row, int64_t ow, int64_t kb) {
  constexpr int L = Vec::lanes;
  const int64_t k_count = g.out_channels, c_count = g.in_channels;
  const int64_t pixel_step = g.stride * c_count;
  typename Vec::V acc[P][KV];
  for (int j = 0; j < P; ++j)
    for (int v = 0; v < KV; ++v) {
      float* out = row.y_row + (ow + j) * k_count + kb + L * v;
      acc[j][v] = row.accumulate        ? Vec::load(out)
                  : row.bias != nullptr ? Vec::load(row.bias + kb + L * v)
                                        : Vec::zero();
    }
  for (int64_t r = 0; r < g.kernel_h; ++r) {
    const float* line = row.image + ((row.oh * g.stride + r) * row.padded_w + ow * g.stride) * c_count;
    for (int64_t s = 0; s < g.kernel_w; ++s) {
      const float* xp = line + s * c_count;
      const float* wp = row.weights + (r * g.kernel_w + s) * c_count * k_count + kb;
      for (int64_t c = 0; c < c_count; ++c) {
        typename Vec::V weights[KV];
        for (int v = 0; v < KV; ++v) weights[v] = Vec::load(wp + c * k_count + L * v);
#pragma GCC unroll 16
        for (int j = 0; j < P; ++j) {
          const typename Vec::V input = Vec::broadcast(xp[j * pixel_step + c]);
          for (int v = 0; v < KV; ++v) acc[j][v] = Vec::fma(input, weights[v], acc[j][v]);
        }
      }
    }
  }
  for (int j = 0; j < P; ++j)
    for (int v = 0; v < KV; ++v) Vec::store(row.y_row + (ow + j) * k_count + kb + L * v, acc[j][v]);
}

// Register blocking per channel width (measured on resnet20 shapes): 16 or 48 channels: 8 pixels x
// 1 vector; multiples of 32: 8 pixels x 2 vectors. Tails take single pixels.
template <typename Vec, int P, int KV>
void direct_row(const Conv2dGeometry& g, const DirectRow& row) {
  const int64_t ow_count = g.out_w();
  for (int64_t kb = 0; kb < g.out_channels; kb += Vec::lanes * KV) {
    int64_t ow = 0;
    for (; ow + P <= ow_count; ow += P) direct_block<Vec, P, KV>(g, row, ow, kb);
    for (; ow < ow_count; ++ow) direct_block<Vec, 1, KV>(g, row, ow, kb);
  }
}

// Paired input channels (even in_channels, out_channels 8 or 24): one 8-byte
// broadcast puts the input pair (x[c], x[c+1]) in every lane pair of a 16-lane vector, and the packed
// weights hold (w[k][c], w[k][c+1]) in lanes (2k, 2k+1) of 8 output channels. Each FMA then does 16
// useful products per broadcast load where the 8-lane kernel does 8: half the loads per FLOP, which
// is what bounds the narrow widths of channel-pruned networks. Lane pairs are summed at the end.
//   packed pairs: ((r * S + s) * C/2 + p) * 2K + 2k + j  =  w[k, r, s, 2p + j]
// The end of a paired block: sums the lane pairs of one accumulator into its 8 outputs (channels
// [k, k + 8) of the pixel at y) and stores them, added to y (accumulate) or to the bias.
inline void store_pair_sums(__m512 acc, const DirectRow& row, float* y, int64_t k) {
  const __m512i even = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 15, 13, 11, 9, 7, 5, 3, 1);
  // (maskz forms: the plain ones pass GCC 12 an "undefined" vector that -Werror=uninitialized rejects)
  __m512 out = _mm512_add_ps(_mm512_maskz_permutexvar_ps(0xFFFF, even, acc),
                             _mm512_maskz_permutexvar_ps(0xFFFF, odd, acc));  // the 8 outputs are its low lanes
  if (row.accumulate) {
    out = _mm512_add_ps(_mm512_maskz_loadu_ps(0x00FF, y), out);
  } else if (row.bias != nullptr) {
    out = _mm512_add_ps(_mm512_maskz_loadu_ps(0x00FF, row.bias + k), out);
  }
  _mm512_mask_storeu_ps(y, 0x00FF, out);
}

template <int P, int KV>
inline void paired_block(const Conv2dGeometry& g, const DirectRow& row, int64_t ow, int64_t kb) {
  const int64_t k_count = g.out_channels, c_count = g.in_channels, pairs = c_count / 2;
  const int64_t pixel_step = g.stride * c_count;
  __m512 acc[P][KV];
  for (int j = 0; j < P; ++j)
    for (int v = 0; v < KV; ++v) acc[j][v] = _mm512_setzero_ps();
  for (int64_t r = 0; r < g.kernel_h; ++r) {
    const float* line = row.image + ((row.oh * g.stride + r) * row.padded_w + ow * g.stride) * c_count;
    for (int64_t s = 0; s < g.kernel_w; ++s) {
      const float* xp = line + s * c_count;
      const float* wp = row.weights + ((r * g.kernel_w + s) * pairs) * 2 * k_count + 2 * kb;
      for (int64_t p = 0; p < pairs; ++p) {
        __m512 weights[KV];
        for (int v = 0; v < KV; ++v) weights[v] = _mm512_loadu_ps(wp + p * 2 * k_count + 16 * v);
#pragma GCC unroll 16
        for (int j = 0; j < P; ++j) {
          double pair;
          std::memcpy(&pair, xp + j * pixel_step + 2 * p, sizeof pair);
          const __m512 input = _mm512_castpd_ps(_mm512_set1_pd(pair));
          for (int v = 0; v < KV; ++v) acc[j][v] = _mm512_fmadd_ps(input, weights[v], acc[j][v]);
        }
      }
    }
  }
  for (int j = 0; j < P; ++j)
    for (int v = 0; v < KV; ++v) store_pair_sums(acc[j][v], row, row.y_row + (ow + j) * k_count + kb + 8 * v, kb + 8 * v);
}

template <int P>
void paired_row(const Conv2dGeometry& g, const DirectRow& row) {
  const int64_t ow_count = g.out_w();
  int64_t kb = 0;
  for (; kb + 16 <= g.out_channels; kb += 16) {
    int64_t ow = 0;
    for (; ow + P <= ow_count; ow += P) paired_block<P, 2>(g, row, ow, kb);
    for (; ow < ow_count; ++ow) paired_block<1, 2>(g, row, ow, kb);
  }
  if (kb < g.out_channels) {  // 8 channels left
    int64_t ow = 0;
    for (; ow + P <= ow_count; ow += P) paired_block<P, 1>(g, row, ow, kb);
    for (; ow < ow_count; ++ow) paired_block<1, 1>(g, row, ow, kb);
  }
}

// Quads of input channels for 8 output channels (pairs feed one FMA per input broadcast at 8 output
// channels, which held 8 -> 8 to about 60% of the FMA rate): one 16-byte broadcast puts (x[c], .., x[c+3])
// in every 4-lane group, and two weight vectors hold (w[k][c], .., w[k][c+3]) in lanes (4kk, .., 4kk+3)
// for k = kk and k = 4 + kk, so every broadcast feeds two FMAs, as at 16 output channels.
//   quads: (((b * R * S + t) * C/4 + q) * 2 + h) * 16 + 4 * kk + j  =  w[8b + 4h + kk, t, 4q + j]
// Each pixel's two accumulators fold to 16 pair sums (lane i < 8: lanes 2i and 2i + 1 of the first, lane
// 8 + i: of the second), which store_pair_sums folds to the 8 outputs.
// K > 0: a K x K kernel, its tap loops unrolled. With the tap loops left as loops (K = 0, any kernel size)
// GCC keeps the 16 accumulators on the stack across the kernel rows (stored and reloaded per row):
// 8 -> 8 channels ran at 84 GFLOP/s that way and at 97 with K = 3.
template <int P, int C, int STRIDE, int K>
inline void quad_block_fixed(const Conv2dGeometry& g, const DirectRow& row, int64_t ow, int64_t block) {
  constexpr int quads = C / 4, step = STRIDE * C;
  const int64_t k_count = g.out_channels, kernel_h = K > 0 ? K : g.kernel_h, kernel_w = K > 0 ? K : g.kernel_w;
  const int64_t taps = kernel_h * kernel_w;
  __m512 acc[P][2];
  for (int j = 0; j < P; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_ps();
  const float* weights = row.weights + block * taps * quads * 32;
#pragma GCC unroll 7
  for (int64_t r = 0; r < kernel_h; ++r) {
    const float* line = row.image + ((row.oh * STRIDE + r) * row.padded_w + ow * STRIDE) * C;
#pragma GCC unroll 7
    for (int64_t s = 0; s < kernel_w; ++s, weights += quads * 32) {
      const float* xp = line + s * C;
#pragma GCC unroll 16
      for (int q = 0; q < quads; ++q) {
        const __m512 low = _mm512_loadu_ps(weights + q * 32), high = _mm512_loadu_ps(weights + q * 32 + 16);
#pragma GCC unroll 16
        for (int j = 0; j < P; ++j) {
          const __m512 input = _mm512_maskz_broadcast_f32x4(0xFFFF, _mm_loadu_ps(xp + j * step + 4 * q));
          acc[j][0] = _mm512_fmadd_ps(input, low, acc[j][0]);
          acc[j][1] = _mm512_fmadd_ps(input, high, acc[j][1]);
        }
      }
    }
  }
  // lanes 0..7 from the first accumulator, 8..15 from the second
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  const int64_t kb = block * 8;
  const auto fold = [&](__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b));
  };
  int j = 0;
  if (k_count == 8) {  // two pixels' 8 outputs are 16 adjacent floats: fold them together, one full store
    for (; j + 2 <= P; j += 2) {
      float* y = row.y_row + (ow + j) * 8;
      __m512 out = fold(fold(acc[j][0], acc[j][1]), fold(acc[j + 1][0], acc[j + 1][1]));
      if (row.accumulate) {
        out = _mm512_add_ps(_mm512_loadu_ps(y), out);
      } else if (row.bias != nullptr) {
        out = _mm512_add_ps(_mm512_maskz_broadcast_f32x8(0xFFFF, _mm256_loadu_ps(row.bias)), out);
      }
      _mm512_storeu_ps(y, out);
    }
  }
  for (; j < P; ++j) store_pair_sums(fold(acc[j][0], acc[j][1]), row, row.y_row + (ow + j) * k_count + kb, kb);
}

template <int C, int STRIDE, int K>
void quad_row_fixed(const Conv2dGeometry& g, const DirectRow& row) {
  constexpr int P = 8;
  const int64_t ow_count = g.out_w(), blocks = g.out_channels / 8;
  for (int64_t block = 0; block < blocks; ++block) {
    int64_t ow = 0;
    for (; ow + P <= ow_count; ow += P) quad_block_fixed<P, C, STRIDE, K>(g, row, ow, block);
    for (; ow < ow_count; ++ow) quad_block_fixed<1, C, STRIDE, K>(g, row, ow, block);
  }
}

using RowKernel = void (*)(const Conv2dGeometry&, const DirectRow&);

// The quad kernel for 8 output channels at this input channel count and stride, or null.
template <int K>
RowKernel quad_row_kernel(const Conv2dGeometry& g) {
  if (g.stride == 1 && g.in_channels == 8) return quad_row_fixed<8, 1, K>;
  if (g.stride == 1 && g.in_channels == 16) return quad_row_fixed<16, 1, K>;
  if (g.stride == 2 && g.in_channels == 8) return quad_row_fixed<8, 2, K>;
  if (g.stride == 2 && g.in_channels == 16) return quad_row_fixed<16, 2, K>;
  return nullptr;
}

// The quad kernel for 8 output channels from 8 or 16 input channels at stride 1 or 2, or null.
RowKernel quad_kernel(const Conv2dGeometry& g) {
  if (g.out_channels != 8) return nullptr;
  return g.kernel_h == 3 && g.kernel_w == 3 ? quad_row_kernel<3>(g) : quad_row_kernel<0>(g);
}

}  // namespace

void conv2d_forward_direct(const Conv2dGeometry& g_out, const float* x, const float* w, const float* b_out, float* y,
                           bool accumulate) {
  // Output channels that are not a multiple of 8 (12 at a quarter of resnet's 16 pruned away) are computed
  // as the next multiple of 8 with zero weights, one output row at a time into a per-thread buffer whose
  // first out_channels values per pixel are then written (or added) to y.
  const int64_t k_out = g_out.out_channels, k_count = (k_out + 7) / 8 * 8;
  const bool padded_channels = k_count != k_out;
  Conv2dGeometry g = g_out;
  g.out_channels = k_count;
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), c_count = g.in_channels;
  std::vector<float> bias_padded;
  const float* b = b_out;
  if (padded_channels && b_out != nullptr) {
    bias_padded.assign(static_cast<std::size_t>(k_count), 0.0f);
    std::copy(b_out, b_out + k_out, bias_padded.begin());
    b = bias_padded.data();
  }
  // w[k, t] for t in (r, s, c), zero for the padding channels k >= k_out
  const int64_t rs = g.kernel_h * g.kernel_w, taps = rs * c_count;
  const auto weight = [&](int64_t k, int64_t t) { return k < k_out ? w[k * taps + t] : 0.0f; };
  HostBuffer packed(static_cast<std::size_t>(g.weight_numel()));
  const bool wide = k_count % 32 == 0, narrow = k_count % 16 != 0;
  const bool paired = narrow && c_count % 2 == 0 && k_count <= 32;
  const RowKernel quad = paired ? quad_kernel(g) : nullptr;
  if (!paired) {
    for (int64_t k = 0; k < k_count; ++k)
      for (int64_t t = 0; t < taps; ++t) packed.data()[t * k_count + k] = weight(k, t);
  } else if (quad != nullptr) {
    const int64_t quads = c_count / 4;
    for (int64_t k = 0; k < k_count; ++k)
      for (int64_t t = 0; t < rs; ++t)
        for (int64_t c = 0; c < c_count; ++c)
          packed.data()[((((k / 8) * rs + t) * quads + c / 4) * 2 + (k % 8) / 4) * 16 + 4 * (k % 4) + c % 4] =
              weight(k, t * c_count + c);
  } else {
    const int64_t pairs = c_count / 2;
    for (int64_t k = 0; k < k_count; ++k)
      for (int64_t t = 0; t < rs; ++t)
        for (int64_t c = 0; c < c_count; ++c)
          packed.data()[((t * pairs + c / 2) * k_count + k) * 2 + c % 2] = weight(k, t * c_count + c);
  }
#pragma omp parallel
  {
    PaddedImage padded(g);
    HostBuffer row_buffer(static_cast<std::size_t>(padded_channels ? ow_count * k_count : 0));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.batch; ++n) {
      const float* image = padded.load(x, n);
      for (int64_t oh = 0; oh < oh_count; ++oh) {
        float* y_row = y + (n * oh_count + oh) * ow_count * k_out;
        const DirectRow row{image, padded.width(), packed.data(), b,
                            padded_channels ? row_buffer.data() : y_row, oh, accumulate && !padded_channels};
        if (quad != nullptr) {
          quad(g, row);
        } else if (paired) {
          paired_row<8>(g, row);
        } else if (narrow) {
          direct_row<Ymm, 8, 1>(g, row);
        } else if (wide) {
          direct_row<Zmm, 8, 2>(g, row);
        } else {
          direct_row<Zmm, 8, 1>(g, row);
        }
        if (!padded_channels) continue;
        for (int64_t ow = 0; ow < ow_count; ++ow) {
          const float* from = row_buffer.data() + ow * k_count;
          float* to = y_row + ow * k_out;
          if (accumulate) {
            for (int64_t k = 0; k < k_out; ++k) to[k] += from[k];
          } else {
            for (int64_t k = 0; k < k_out; ++k) to[k] = from[k];
          }
        }
      }
    }
  }
}
namespace {

// The output pixels [lo, hi) of one dimension whose input coordinate o * stride - pad + tap lies inside
// [0, size): the others meet the zero padding and contribute nothing to the weight gradient.
struct TapRange {
  int64_t lo, hi;
  TapRange(int64_t tap, int64_t size, int64_t out, int64_t stride, int64_t pad) {
    const int64_t first = pad - tap;  // o * stride >= first
    lo = first > 0 ? (first + stride - 1) / stride : 0;
    const int64_t last = size - 1 + pad - tap;  // o * stride <= last
    hi = last < 0 ? 0 : std::min(out, last / stride + 1);
    hi = std::max(hi, lo);
  }
};

// dW (packed (r, s, c, k)) += sum over the pixels of one image of dy[pixel, k] * x[pixel * stride - pad + (r, s), c]
// for channel blocks [cb, cb + 16) x [kb, kb + lanes): 16 accumulators (one per input channel), one dy
// vector load and 16 broadcast FMAs per output pixel. Only the pixels whose tap (r, s) lands inside the
// image are visited, so x is read where it lies (no zero-padded copy).
// CH: the block's input channel count when it is 16 or 8 (accumulators in registers, unrolled), 0 for
// any other count (a runtime loop; its accumulators live in memory).
template <typename Vec, int CH>
void weight_gradient_block(const Conv2dGeometry& g, const float* x_image, const float* dy_image, int64_t r, int64_t s,
                           int64_t cb, int64_t kb, float* packed_dw) {
  const int64_t k_count = g.out_channels, c_count = g.in_channels, ow_count = g.out_w();
  const int64_t channels = CH > 0 ? CH : std::min<int64_t>(16, c_count - cb);
  const TapRange rows(r, g.in_h, g.out_h(), g.stride, g.pad), columns(s, g.in_w, ow_count, g.stride, g.pad);
  typename Vec::V acc[16];
  float* out = packed_dw + ((r * g.kernel_w + s) * c_count + cb) * k_count + kb;
  for (int64_t c = 0; c < channels; ++c) acc[c] = Vec::load(out + c * k_count);
  for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
    // the first visited pixel's input (a pointer to column s - pad could lie before the tensor)
    const float* x_line =
        x_image + ((oh * g.stride + r - g.pad) * g.in_w + columns.lo * g.stride + s - g.pad) * c_count + cb;
    const float* dy_line = dy_image + oh * ow_count * k_count + kb;
    for (int64_t ow = columns.lo; ow < columns.hi; ++ow) {
      const typename Vec::V grad = Vec::load(dy_line + ow * k_count);
      const float* xp = x_line + (ow - columns.lo) * g.stride * c_count;
      if constexpr (CH > 0) {
#pragma GCC unroll 16
        for (int c = 0; c < CH; ++c) acc[c] = Vec::fma(Vec::broadcast(xp[c]), grad, acc[c]);
      } else {
        for (int64_t c = 0; c < channels; ++c) acc[c] = Vec::fma(Vec::broadcast(xp[c]), grad, acc[c]);
      }
    }
  }
  for (int64_t c = 0; c < channels; ++c) Vec::store(out + c * k_count, acc[c]);
}

// dW[r, s, c, k] for the three kernel columns s = 0, 1, 2 at once (stride 1; CH input channels from cb,
// one vector of output channels from kb): each input value x[ih, q, c] is broadcast once for the three
// output pixels ow = q + pad - s it feeds.
//   CH = 8 (8-lane output blocks): 24 accumulators take 3 dy loads and 8 broadcasts per 24 FMAs where
//     the per-tap block takes 9 loads per 8 (8 -> 8 channels: 95 -> 120 GFLOP/s).
//   CH = 1 (a channel count the 8/16-channel blocks leave over, e.g. the 1-channel stem): three
//     independent FMA chains where the per-tap block has one (1 -> 8: 15 -> 45 GFLOP/s, 1 -> 16: 29 -> 60).
// For each (s, c) the pixels are still visited in increasing ow, so the sums equal the per-tap block's
// bit for bit.
// An x column at the image border: only the output pixels ow = ow0 - s that exist.
template <typename Vec, int CH>
__attribute__((always_inline)) inline void three_columns_edge(typename Vec::V (&acc)[3][CH], const float* xp,
                                                              const float* dy_line, int64_t ow0, int64_t ow_count,
                                                              int64_t k_count) {
  for (int s = 0; s < 3; ++s) {
    const int64_t ow = ow0 - s;
    if (ow < 0 || ow >= ow_count) continue;
    const typename Vec::V grad = Vec::load(dy_line + ow * k_count);
    for (int c = 0; c < CH; ++c) acc[s][c] = Vec::fma(Vec::broadcast(xp[c]), grad, acc[s][c]);
  }
}

template <typename Vec, int CH>
void weight_gradient_three_columns(const Conv2dGeometry& g, const float* x_image, const float* dy_image, int64_t r,
                                   int64_t cb, int64_t kb, float* packed_dw) {
  const int64_t k_count = g.out_channels, c_count = g.in_channels, ow_count = g.out_w(), pad = g.pad;
  const TapRange rows(r, g.in_h, g.out_h(), 1, pad);
  typename Vec::V acc[3][CH];
  float* out = packed_dw + (r * 3 * c_count + cb) * k_count + kb;
  for (int s = 0; s < 3; ++s)
    for (int c = 0; c < CH; ++c) acc[s][c] = Vec::load(out + (s * c_count + c) * k_count);
  // x columns whose three output pixels all exist
  const int64_t q_lo = std::max<int64_t>(0, 2 - pad), q_hi = std::max(q_lo, std::min(g.in_w, ow_count - pad));
  for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
    const float* x_line = x_image + (oh + r - pad) * g.in_w * c_count + cb;
    const float* dy_line = dy_image + oh * ow_count * k_count + kb;
    for (int64_t q = 0; q < std::min(q_lo, g.in_w); ++q)
      three_columns_edge<Vec, CH>(acc, x_line + q * c_count, dy_line, q + pad, ow_count, k_count);
    for (int64_t q = q_lo; q < q_hi; ++q) {
      const float* xp = x_line + q * c_count;
      const float* dp = dy_line + (q + pad) * k_count;
      const typename Vec::V grad0 = Vec::load(dp), grad1 = Vec::load(dp - k_count), grad2 = Vec::load(dp - 2 * k_count);
#pragma GCC unroll 8
      for (int c = 0; c < CH; ++c) {
        const typename Vec::V input = Vec::broadcast(xp[c]);
        acc[0][c] = Vec::fma(input, grad0, acc[0][c]);
        acc[1][c] = Vec::fma(input, grad1, acc[1][c]);
        acc[2][c] = Vec::fma(input, grad2, acc[2][c]);
      }
    }
    for (int64_t q = q_hi; q < g.in_w; ++q)
      three_columns_edge<Vec, CH>(acc, x_line + q * c_count, dy_line, q + pad, ow_count, k_count);
  }
  for (int s = 0; s < 3; ++s)
    for (int c = 0; c < CH; ++c) Vec::store(out + (s * c_count + c) * k_count, acc[s][c]);
}

template <typename Vec>
void weight_gradient_block_any(const Conv2dGeometry& g, const float* x_image, const float* dy_image, int64_t r,
                               int64_t s, int64_t cb, int64_t kb, float* packed_dw) {
  const int64_t channels = std::min<int64_t>(16, g.in_channels - cb);
  if (channels == 16) {
    weight_gradient_block<Vec, 16>(g, x_image, dy_image, r, s, cb, kb, packed_dw);
  } else if (channels == 8) {
    weight_gradient_block<Vec, 8>(g, x_image, dy_image, r, s, cb, kb, packed_dw);
  } else {
    weight_gradient_block<Vec, 0>(g, x_image, dy_image, r, s, cb, kb, packed_dw);
  }
}

}  // namespace

void conv2d_weight_gradient_direct(const Conv2dGeometry& g, const float* x, const float* dy, float* dw) {
  const int64_t k_count = g.out_channels, c_count = g.in_channels;
  const int64_t taps = g.kernel_h * g.kernel_w * c_count;
  const int threads = thread_count();
  const bool narrow = k_count % 16 != 0;
  // Input channels [0, c_taps) go through the per-tap blocks, [c_taps, c_count) through the three-column
  // kernels (stride 1, kernels 3 wide): all of them for 8-lane output blocks, else those the 16- and
  // 8-channel blocks leave over.
  int64_t c_taps = c_count;
  if (g.stride == 1 && g.kernel_w == 3) c_taps = narrow ? 0 : c_count % 16 == 8 ? c_count : c_count / 16 * 16;
  // Per-thread partials in the packed (r, s, c, k) layout, summed in thread order afterwards.
  const auto weight_floats = static_cast<std::size_t>(g.weight_numel());
  std::vector<std::unique_ptr<HostBuffer>> partials(static_cast<std::size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    auto& partial = partials[static_cast<std::size_t>(omp_get_thread_num())];
    partial = std::make_unique<HostBuffer>(weight_floats);
    float* packed_dw = partial->data();
    std::fill(packed_dw, packed_dw + weight_floats, 0.0f);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.batch; ++n) {
      const float* x_image = x + n * g.in_h * g.in_w * c_count;
      const float* dy_image = dy + n * g.out_h() * g.out_w() * k_count;
      for (int64_t r = 0; r < g.kernel_h; ++r) {
        for (int64_t s = 0; s < g.kernel_w; ++s)
          for (int64_t cb = 0; cb < c_taps; cb += 16)
            for (int64_t kb = 0; kb < k_count; kb += narrow ? 8 : 16) {
              if (narrow) {
                weight_gradient_block_any<Ymm>(g, x_image, dy_image, r, s, cb, kb, packed_dw);
              } else {
                weight_gradient_block_any<Zmm>(g, x_image, dy_image, r, s, cb, kb, packed_dw);
              }
            }
        for (int64_t cb = c_taps; cb < c_count;) {
          const bool eight = narrow && cb + 8 <= c_count;
          for (int64_t kb = 0; kb < k_count; kb += narrow ? 8 : 16) {
            if (eight) {
              weight_gradient_three_columns<Ymm, 8>(g, x_image, dy_image, r, cb, kb, packed_dw);
            } else if (narrow) {
              weight_gradient_three_columns<Ymm, 1>(g, x_image, dy_image, r, cb, kb, packed_dw);
            } else {
              weight_gradient_three_columns<Zmm, 1>(g, x_image, dy_image, r, cb, kb, packed_dw);
            }
          }
          cb += eight ? 8 : 1;
        }
      }
    }
  }
  for (const auto& partial : partials) {
    if (partial == nullptr) continue;
    const float* packed_dw = partial->data();
    for (int64_t k = 0; k < k_count; ++k)
      for (int64_t t = 0; t < taps; ++t) dw[k * taps + t] += packed_dw[t * k_count + k];
  }
}
#else
void conv2d_forward_direct(const Conv2dGeometry&, const float*, const float*, const float*, float*, bool) {}
void conv2d_weight_gradient_direct(const Conv2dGeometry&, const float*, const float*, float*) {}
#endif

}  // namespace st::cpu
