// The sparse convolution (formulas in kernels/cpu/sparse.h).
//
// Blocked layout: 16 images are the 16 lanes of one AVX-512 register (two AVX2 registers: vec16.h), so a stored weight
// w[k, r, s, c] scales, for a row of output pixels, the input vectors x[c, oh*st + r, ow*st + s, 0..16) of one input
// plane: contiguous loads (stride 1) or every other vector (stride 2), no gathers, and no product ever
// touches a pruned weight. Per block of 16 images:
//   x  -> xb  [C][H + 2p][W + 2p][16]   zeros in the padding and in the lanes past the batch
//   dy -> dyb [K][Hq][Wq][16]           dy with a zero border wide enough for every tap
// Each thread owns whole image blocks: it transposes the block's x (and dy) into its own buffers (a
// megabyte or less, so they stay in its caches), computes every output row of the block into a small
// tile and writes the tile straight to the NHWC result. Nothing blocked is kept between the passes: the
// backward transposes x again, which costs what reading a stored copy would, and the step's memory
// traffic is that of the dense kernels (x and y forward; dy, x and dx backward).
//
// Data gradient (stride st): input row ih receives the taps r with (ih + p - r) % st == 0, i.e. the
// classes r % st == (ih + p) % st (the same in w). Each input channel's entries are grouped by class
// (counting sort; within a group in CSR order), so every dx element sums a fixed list in a fixed order.
// Weight gradient: bands of output rows, every stored weight's dot over the band added to the thread's
// partial sum, the partials summed in thread order (deterministic for a given thread count, as the
// dense kernels).
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/sparse.h"
#include "kernels/cpu/vec16.h"

namespace st::cpu {
namespace {

constexpr int64_t kLanes = 16;  // images per block
#if defined(ST_VEC16)
// Output pixels per register tile (accumulators; a broadcast and a load beside them), and stored weights
// per weight-gradient pass (accumulators beside the output gradient's vector).
constexpr int kMaxTile = kVec16Registers - 2 >= 16 ? 16 : kVec16Registers - 2;
constexpr int64_t kEntriesPerPass = kVec16Registers - 2 >= 8 ? 8 : kVec16Registers - 2;
#else
constexpr int kMaxTile = 16;
constexpr int64_t kEntriesPerPass = 8;
#endif

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Grow-only arrays of the calling thread (slot) or of a worker thread (task tiles).
template <typename T>
T* grow(std::vector<T>& buffer, int64_t count) {
  if (buffer.size() < static_cast<std::size_t>(count)) buffer.resize(static_cast<std::size_t>(count));
  return buffer.data();
}
float* scratch(int slot, int64_t count) {
  thread_local std::vector<float> buffers[4];  // 0 xb, 1 dyb, 2 the output tile, 3 grouped values or partials
  return grow(buffers[slot], count);
}

// The shapes of the blocked arrays of one geometry.
struct Blocked {
  int64_t blocks, h_pad, w_pad, plane_x;         // xb
  int64_t border_h, border_w, hq, wq, plane_dy;  // dyb: border_* zeros before, hq x wq in all
  explicit Blocked(const Conv2dGeometry& g) {
    blocks = (g.batch + kLanes - 1) / kLanes;
    h_pad = g.in_h + 2 * g.pad;
    w_pad = g.in_w + 2 * g.pad;
    plane_x = h_pad * w_pad * kLanes;
    border_h = (g.kernel_h - 1) / g.stride;
    border_w = (g.kernel_w - 1) / g.stride;
    const int64_t after_h = std::max<int64_t>(0, (g.in_h - 1 + g.pad) / g.stride - (g.out_h() - 1));
    const int64_t after_w = std::max<int64_t>(0, (g.in_w - 1 + g.pad) / g.stride - (g.out_w() - 1));
    hq = border_h + g.out_h() + after_h;
    wq = border_w + g.out_w() + after_w;
    plane_dy = hq * wq * kLanes;
  }
};

// out[j * out_stride + i] (+)= in[i * in_stride + j] for i < rows, j < cols (both at most 16); with
// `pad`, out[j * out_stride + i] = 0 for rows <= i < 16 (a whole 16-float output row is written).
template <bool Accumulate>
__attribute__((always_inline)) inline void transpose_block(const float* in, int64_t in_stride, int64_t rows,
                                                           int64_t cols, float* out, int64_t out_stride, bool pad) {
#if defined(ST_VEC16)
  Vec16 row[16];
  if (rows == 16 && cols == 16) {  // the common full tile: no masks
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) row[i] = vload(in + i * in_stride);
    transpose16(row);
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) {
      float* dst = out + j * out_stride;
      if constexpr (Accumulate) {
        vstore(dst, vadd(row[j], vload(dst)));
      } else {
        vstore(dst, row[j]);
      }
    }
    return;
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) row[i] = i < rows ? vload_first(in + i * in_stride, cols) : vzero();
  transpose16(row);
  const int64_t stored = pad ? 16 : rows;
  for (int64_t j = 0; j < cols; ++j) {
    float* dst = out + j * out_stride;
    if constexpr (Accumulate) {
      vstore_first(dst, vadd(row[j], vload_first(dst, stored)), stored);
    } else {
      vstore_first(dst, row[j], stored);
    }
  }
#else
  for (int64_t j = 0; j < cols; ++j) {
    float* dst = out + j * out_stride;
    for (int64_t i = 0; i < rows; ++i) {
      if constexpr (Accumulate) {
        dst[i] += in[i * in_stride + j];
      } else {
        dst[i] = in[i * in_stride + j];
      }
    }
    if (pad)
      for (int64_t i = rows; i < 16; ++i) dst[i] = 0.0f;
  }
#endif
}

// dst[c][top + y][left + x][lane] = src[b * 16 + lane][y][x][c] for image block b of an NHWC src
// [batch, h, w, c] and planes of rows x cols; every other element of dst (borders, lanes past the
// batch) is set to 0. Runs on the calling thread.
void block_to_blocked(int64_t batch, int64_t b, int64_t h, int64_t w, int64_t c, int64_t top, int64_t left,
                      int64_t rows, int64_t cols, const float* src, float* dst) {
  const int64_t plane = rows * cols * kLanes;
  const int64_t lanes = std::min(kLanes, batch - b * kLanes);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t y = row - top;
    float* out = dst + row * cols * kLanes;
    if (y < 0 || y >= h) {
      for (int64_t ch = 0; ch < c; ++ch) std::memset(out + ch * plane, 0, sizeof(float) * cols * kLanes);
      continue;
    }
    for (int64_t ch = 0; ch < c; ++ch) {
      float* line = out + ch * plane;
      std::memset(line, 0, sizeof(float) * left * kLanes);
      const int64_t right = cols - left - w;
      std::memset(line + (left + w) * kLanes, 0, sizeof(float) * right * kLanes);
    }
    for (int64_t x = 0; x < w; ++x) {
      const float* in = src + ((b * kLanes * h + y) * w + x) * c;
      for (int64_t ch = 0; ch < c; ch += 16)
        transpose_block<false>(in + ch, h * w * c, lanes, std::min<int64_t>(16, c - ch),
                               out + ch * plane + (left + x) * kLanes, plane, true);
    }
  }
}

#if defined(ST_VEC16)
// out[t * out_step + lane] = sum_j values[j] * base[offset[j] + t * in_step + lane], t < T: T
// accumulator registers, one broadcast and T fused multiply-adds per stored weight.
template <int T>
inline void tile_sum(const float* values, const int64_t* offset, int64_t begin, int64_t end, const float* base,
                     int64_t in_step, float* out, int64_t out_step) {
  Vec16 acc[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = vzero();
  for (int64_t j = begin; j < end; ++j) {
    const Vec16 w = vset1(values[j]);
    const float* src = base + offset[j];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[t] = vfmadd(w, vload(src + t * in_step), acc[t]);
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) vstore(out + t * out_step, acc[t]);
}

// sums[e] = sum over images, rows and columns of dy * x_e (E stored weights of one output channel).
template <int E>
inline void entry_dots(const float* dy, const float* const* x, int64_t blocks, int64_t rows, int64_t cols,
                       int64_t dy_block, int64_t dy_row, int64_t x_block, int64_t x_row, int64_t x_step, float* sums) {
  Vec16 acc[E];
#pragma GCC unroll 8
  for (int e = 0; e < E; ++e) acc[e] = vzero();
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t y = 0; y < rows; ++y) {
      const float* g = dy + b * dy_block + y * dy_row;
      const int64_t xo = b * x_block + y * x_row;
      for (int64_t xc = 0; xc < cols; ++xc) {
        const Vec16 d = vload(g + xc * kLanes);
#pragma GCC unroll 8
        for (int e = 0; e < E; ++e) acc[e] = vfmadd(d, vload(x[e] + xo + xc * x_step), acc[e]);
      }
    }
  alignas(64) float lanes[kLanes];
  for (int e = 0; e < E; ++e) {
    vstore(lanes, acc[e]);
    float sum = 0.0f;
    for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
    sums[e] = sum;
  }
}
#else
template <int T>
inline void tile_sum(const float* values, const int64_t* offset, int64_t begin, int64_t end, const float* base,
                     int64_t in_step, float* out, int64_t out_step) {
  float acc[T][kLanes] = {};
  for (int64_t j = begin; j < end; ++j) {
    const float w = values[j];
    const float* src = base + offset[j];
    for (int t = 0; t < T; ++t)
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) acc[t][l] += w * src[t * in_step + l];
  }
  for (int t = 0; t < T; ++t)
    for (int64_t l = 0; l < kLanes; ++l) out[t * out_step + l] = acc[t][l];
}

template <int E>
inline void entry_dots(const float* dy, const float* const* x, int64_t blocks, int64_t rows, int64_t cols,
                       int64_t dy_block, int64_t dy_row, int64_t x_block, int64_t x_row, int64_t x_step, float* sums) {
  float acc[E][kLanes] = {};
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t y = 0; y < rows; ++y) {
      const float* g = dy + b * dy_block + y * dy_row;
      const int64_t xo = b * x_block + y * x_row;
      for (int64_t xc = 0; xc < cols; ++xc)
        for (int e = 0; e < E; ++e)
#pragma omp simd
          for (int64_t l = 0; l < kLanes; ++l) acc[e][l] += g[xc * kLanes + l] * x[e][xo + xc * x_step + l];
    }
  for (int e = 0; e < E; ++e) {
    float sum = 0.0f;
    for (int64_t l = 0; l < kLanes; ++l) sum += acc[e][l];
    sums[e] = sum;
  }
}
#endif

using TileFn = void (*)(const float*, const int64_t*, int64_t, int64_t, const float*, int64_t, float*, int64_t);
template <int... T>
constexpr auto make_tiles(std::integer_sequence<int, T...>) {
  return std::array<TileFn, sizeof...(T)>{&tile_sum<T + 1>...};
}
constexpr auto kTiles = make_tiles(std::make_integer_sequence<int, kMaxTile>{});

// Tiles of at most 16 pixels over a row of `count`, as even as possible (28 -> 14 + 14).
template <typename Body>
inline void for_each_tile(int64_t count, Body&& body) {
  if (count <= 0) return;
  const int64_t tiles = (count + kMaxTile - 1) / kMaxTile, width = (count + tiles - 1) / tiles;
  for (int64_t first = 0; first < count; first += width) body(first, std::min(width, count - first));
}

// Offset of the tap (r, s, c) of every CSR entry in xb (within one block).
void input_offsets(const Conv2dGeometry& g, const SparsePattern& p, const Blocked& shape, int64_t* offset) {
  const int64_t c_count = g.in_channels, rs = g.kernel_w * c_count;
  for (int64_t i = 0; i < p.nnz(); ++i) {
    const int64_t col = p.col_index[static_cast<std::size_t>(i)];
    const int64_t r = col / rs, s = (col % rs) / c_count, c = col % c_count;
    offset[i] = ((c * shape.h_pad + r) * shape.w_pad + s) * kLanes;
  }
}

}  // namespace

void sparse_conv_forward(const Conv2dGeometry& g, const SparsePattern& p, const float* values, const float* x,
                         const float* b, float* y) {
  const Blocked shape(g);
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), k_count = g.out_channels, st = g.stride;
  thread_local std::vector<int64_t> offsets;
  int64_t* offset = grow(offsets, p.nnz());
  input_offsets(g, p, shape, offset);
  const int64_t pixels = g.batch * oh_count * ow_count;
  const bool parallel = (p.nnz() + k_count + g.in_channels) * pixels > kSparseSerialWork;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < shape.blocks; ++blk) {
    float* xb = scratch(0, g.in_channels * shape.plane_x);
    block_to_blocked(g.batch, blk, g.in_h, g.in_w, g.in_channels, g.pad, g.pad, shape.h_pad, shape.w_pad, x, xb);
    float* tile = scratch(2, k_count * ow_count * kLanes);  // [K][OW][16]
    const int64_t lanes = std::min(kLanes, g.batch - blk * kLanes);
    for (int64_t oh = 0; oh < oh_count; ++oh) {
      const float* row = xb + oh * st * shape.w_pad * kLanes;
      for (int64_t k = 0; k < k_count; ++k) {
        const int64_t begin = p.row_start[static_cast<std::size_t>(k)];
        const int64_t end = p.row_start[static_cast<std::size_t>(k + 1)];
        for_each_tile(ow_count, [&](int64_t ow0, int64_t width) {
          kTiles[static_cast<std::size_t>(width - 1)](values, offset, begin, end, row + ow0 * st * kLanes, st * kLanes,
                                                      tile + (k * ow_count + ow0) * kLanes, kLanes);
        });
      }
      if (b != nullptr)  // the bias joins the tile, then one transpose per 16 channels of a pixel
        for (int64_t k = 0; k < k_count; ++k)
          for (int64_t i = 0; i < ow_count * kLanes; ++i) tile[k * ow_count * kLanes + i] += b[k];
      float* out = y + (blk * kLanes * oh_count + oh) * ow_count * k_count;  // image blk * 16, row oh
      for (int64_t ow = 0; ow < ow_count; ++ow)
        for (int64_t k = 0; k < k_count; k += 16)
          transpose_block<false>(tile + (k * ow_count + ow) * kLanes, ow_count * kLanes,
                                 std::min<int64_t>(16, k_count - k), lanes, out + ow * k_count + k,
                                 oh_count * ow_count * k_count, false);
    }
  }
}

void sparse_conv_backward(const Conv2dGeometry& g, const SparsePattern& p, const float* values, const float* x,
                          const float* dy, GradOut dx, float* dw, float* db) {
  const Blocked shape(g);
  const int64_t oh_count = g.out_h(), ow_count = g.out_w(), k_count = g.out_channels, c_count = g.in_channels;
  const int64_t st = g.stride, pad = g.pad, rs = g.kernel_w * c_count;
  const int64_t pixels = g.batch * oh_count * ow_count;
  const bool parallel = (p.nnz() + k_count + c_count) * pixels > kSparseSerialWork;

  // Data gradient: the entries grouped by (input channel, class of r, class of s), each with its
  // offset in dyb.
  const int64_t classes = st * st, groups = c_count * classes;
  thread_local std::vector<int64_t> starts, dy_offsets, slots, x_offsets;
  thread_local std::vector<float> grouped_values;
  int64_t* start = grow(starts, groups + 1);
  int64_t* dy_offset = grow(dy_offsets, p.nnz());
  float* grouped = grow(grouped_values, p.nnz());
  if (dx) {
    int64_t* slot = grow(slots, groups);
    std::fill(start, start + groups + 1, 0);
    auto group_of = [&](int64_t col) {
      const int64_t r = col / rs, s = (col % rs) / c_count, c = col % c_count;
      return (c * st + r % st) * st + s % st;
    };
    for (int64_t i = 0; i < p.nnz(); ++i) ++start[group_of(p.col_index[static_cast<std::size_t>(i)]) + 1];
    for (int64_t q = 0; q < groups; ++q) start[q + 1] += start[q];
    std::copy(start, start + groups, slot);
    for (int64_t k = 0; k < k_count; ++k)
      for (int64_t i = p.row_start[static_cast<std::size_t>(k)]; i < p.row_start[static_cast<std::size_t>(k + 1)];
           ++i) {
        const int64_t col = p.col_index[static_cast<std::size_t>(i)];
        const int64_t r = col / rs, s = (col % rs) / c_count;
        const int64_t at = slot[group_of(col)]++;
        grouped[at] = values[i];
        dy_offset[at] = ((k * shape.hq + shape.border_h - r / st) * shape.wq + shape.border_w - s / st) * kLanes;
      }
  }
  // Weight gradient: each entry's tap in xb, and the per-thread partial sums.
  int64_t* x_offset = grow(x_offsets, p.nnz());
  const int threads = parallel ? omp_get_max_threads() : 1;
  float* partial = nullptr;
  if (dw != nullptr) {
    input_offsets(g, p, shape, x_offset);
    partial = scratch(3, threads * p.nnz());
    std::fill(partial, partial + threads * p.nnz(), 0.0f);
  }
  const int64_t band = 4;  // output rows per weight-gradient band (their dy and x rows stay in L1/L2)

#pragma omp parallel num_threads(threads) if (parallel)
  {
    float* mine = dw != nullptr ? partial + omp_get_thread_num() * p.nnz() : nullptr;
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < shape.blocks; ++blk) {
      float* dyb = scratch(1, k_count * shape.plane_dy);
      block_to_blocked(g.batch, blk, oh_count, ow_count, k_count, shape.border_h, shape.border_w, shape.hq, shape.wq,
                       dy, dyb);
      const int64_t lanes = std::min(kLanes, g.batch - blk * kLanes);
      if (dx) {
        float* tile = scratch(2, c_count * g.in_w * kLanes);  // [C][W][16]
        const int64_t image_stride = g.in_h * g.in_w * c_count;
        for (int64_t ih = 0; ih < g.in_h; ++ih) {
          const int64_t class_h = (ih + pad) % st, q_h = (ih + pad) / st;
          const float* row = dyb + q_h * shape.wq * kLanes;
          for (int64_t c = 0; c < c_count; ++c)
            for (int64_t class_w = 0; class_w < st; ++class_w) {
              // input columns iw = st * q + class_w - pad, q in [q_first, q_last]
              const int64_t q_first = floor_div(pad - class_w + st - 1, st);
              const int64_t q_last = floor_div(g.in_w - 1 + pad - class_w, st);
              const int64_t q0 = (c * st + class_h) * st + class_w;
              for_each_tile(q_last - q_first + 1, [&](int64_t first, int64_t width) {
                const int64_t q = q_first + first, iw = st * q + class_w - pad;
                kTiles[static_cast<std::size_t>(width - 1)](grouped, dy_offset, start[q0], start[q0 + 1],
                                                            row + q * kLanes, kLanes, tile + (c * g.in_w + iw) * kLanes,
                                                            st * kLanes);
              });
            }
          float* out = dx.data + (blk * kLanes * g.in_h + ih) * g.in_w * c_count;  // image blk * 16, row ih
          for (int64_t iw = 0; iw < g.in_w; ++iw)
            for (int64_t c = 0; c < c_count; c += 16) {
              const float* in = tile + (c * g.in_w + iw) * kLanes;
              const int64_t channels = std::min<int64_t>(16, c_count - c);
              if (dx.overwrite) {
                transpose_block<false>(in, g.in_w * kLanes, channels, lanes, out + iw * c_count + c, image_stride,
                                       false);
              } else {
                transpose_block<true>(in, g.in_w * kLanes, channels, lanes, out + iw * c_count + c, image_stride,
                                      false);
              }
            }
        }
      }
      if (dw != nullptr) {
        float* xb = scratch(0, c_count * shape.plane_x);
        block_to_blocked(g.batch, blk, g.in_h, g.in_w, c_count, pad, pad, shape.h_pad, shape.w_pad, x, xb);
        for (int64_t oh0 = 0; oh0 < oh_count; oh0 += band) {
          const int64_t rows = std::min(band, oh_count - oh0);
          const float* x_rows = xb + oh0 * st * shape.w_pad * kLanes;
          for (int64_t k = 0; k < k_count; ++k) {
            const float* g_rows = dyb + ((k * shape.hq + shape.border_h + oh0) * shape.wq + shape.border_w) * kLanes;
            const int64_t end = p.row_start[static_cast<std::size_t>(k + 1)];
            for (int64_t i = p.row_start[static_cast<std::size_t>(k)]; i < end; i += kEntriesPerPass) {
              const int64_t count = std::min<int64_t>(kEntriesPerPass, end - i);
              const float* taps[8];
              float sums[8];
              for (int64_t e = 0; e < count; ++e) taps[e] = x_rows + x_offset[i + e];
              auto dots = [&]<int E>() {
                entry_dots<E>(g_rows, taps, 1, rows, ow_count, 0, shape.wq * kLanes, 0, st * shape.w_pad * kLanes,
                              st * kLanes, sums);
              };
              switch (count) {
                case 1:
                  dots.template operator()<1>();
                  break;
                case 2:
                  dots.template operator()<2>();
                  break;
                case 3:
                  dots.template operator()<3>();
                  break;
                case 4:
                  dots.template operator()<4>();
                  break;
                case 5:
                  dots.template operator()<5>();
                  break;
                case 6:
                  dots.template operator()<6>();
                  break;
                case 7:
                  dots.template operator()<7>();
                  break;
                default:
                  dots.template operator()<8>();
                  break;
              }
              for (int64_t e = 0; e < count; ++e) mine[i + e] += sums[e];
            }
          }
        }
      }
    }
  }
  if (dw != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t k = 0; k < k_count; ++k)
      for (int64_t i = p.row_start[static_cast<std::size_t>(k)]; i < p.row_start[static_cast<std::size_t>(k + 1)];
           ++i) {
        float sum = 0.0f;
        for (int t = 0; t < threads; ++t) sum += partial[t * p.nnz() + i];
        dw[k * p.cols + p.col_index[static_cast<std::size_t>(i)]] += sum;
      }
  }

  if (db != nullptr) column_sums(pixels, k_count, dy, db);  // pixels in thread order, as the dense kernels
}

}  // namespace st::cpu
