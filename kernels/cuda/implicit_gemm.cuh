// The tiled GEMM engine behind our convolution and GEMM kernels (device code: included by conv2d.cu and
// gemm.cu only). One kernel computes, per group g and split s of the contraction,
//     C_g[row, col] = sum over kk in split s of A_g[row, kk] * B_g[kk, col]
// where A and B are never materialised: a "problem" supplies loaders that fetch element (row, kk) of A
// and (kk, col) of B straight from the tensors (the implicit GEMM of a convolution: A is the im2col
// matrix of the input), and a finish(value, g, row, col) that writes the result (with bias, +=, alpha
// and beta, as the op needs).
//
// Block tile kBM x kBN x kTileK (64x64, 128x32 or 32x128; x16), 256 threads, 16 accumulators a thread:
//   - loads: every thread fetches kBM/16 elements of the A tile and kBN/16 of the B tile into registers
//     (TileMap says which), so the fetch of tile t+1 is in flight while tile t is multiplied from shared
//     memory; each operand is fetched with its contiguous memory dimension across consecutive threads;
//   - shared memory holds both tiles k-major: tile[kk][row or col], rows padded by kPad floats;
//   - FP32 path (SIMT): thread (ty, tx) = (tid / 16, tid % 16) owns rows ty + 16 i, columns tx + 16 j;
//   - TF32 path: mma.sync.m16n8k8 (fp32 accumulate); 8 warps in a (kBM/32) x (kBN/16) grid, each warp a
//     32x16 tile = 2 x 2 mma tiles; values are rounded to TF32 (cvt.rna) once, when stored to shared memory.
// Split-K (when the output alone gives too few blocks, e.g. weight gradients, whose contraction runs over
// every pixel of the batch): each split writes its partial tile to a workspace and a second kernel sums the
// splits in split order and calls finish, so results are bit-reproducible (no atomics). The split count
// depends on the shape only, never on the device.
//
// Index arithmetic is 32-bit: the entry points check that every tensor has fewer than 2^31 elements.
// Everything a thread computes about indices is __host__ __device__ so it can be emulated on the CPU.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <type_traits>

#include "kernels/cuda/common.h"

// `#pragma unroll` for the device pass only (the host pass of nvcc and g++ warn about it).
#ifdef __CUDA_ARCH__
#define ST_UNROLL _Pragma("unroll")
#else
#define ST_UNROLL
#endif

namespace st::cuda::igemm {

constexpr int kThreads = 256;
constexpr int kTileK = 16;
constexpr int kPad = 8;           // row stride = tile + 8 = 8 (mod 32 banks): the mma fragment loads are conflict-free
constexpr int kFar = -(1 << 29);  // a coordinate far outside any image: bounds checks fail, no overflow

__host__ __device__ inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Which elements of a kTile x kTileK operand tile thread `tid` fetches: element i of the thread is
// (mn(tid, i), k(tid, i)) with mn the row (A) or column (B) inside the tile and k the contraction index.
//   kKFastest: 16 consecutive threads fetch 16 consecutive k of one row (operand contiguous along k);
//   otherwise kTile consecutive threads fetch kTile consecutive rows of one k (contiguous along mn).
// Both cover every element of the tile exactly once (256 threads x kTile/16 elements).
template <int kTile, bool kKFastest>
struct TileMap {
  static constexpr int kCount = kTile * kTileK / kThreads;
  static_assert(kThreads % kTile == 0 && kTile % kTileK == 0 && kCount >= 1, "tile extent must divide 256");
  __host__ __device__ static int mn(int tid, int i) {
    return kKFastest ? tid / kTileK + (kThreads / kTileK) * i : tid % kTile;
  }
  __host__ __device__ static int k(int tid, int i) {
    return kKFastest ? tid % kTileK : tid / kTile + (kThreads / kTile) * i;
  }
};

// ---- operand loaders ------------------------------------------------------------------------------
// A loader is built once per thread at the start of its block's contraction range [k_begin, k_end),
// load() fetches the thread's elements of the current tile (zero outside the matrix or the range), and
// advance() moves to the next tile (k + 16). Built for kTile = kBM (operand A) or kBN (operand B).

// Element (mn, kk) = base[mn * ld + kk] (stored with kk contiguous), mn < limit.
template <int kTile>
struct DenseKContiguous {
  using Map = TileMap<kTile, true>;
  const float* base;
  int row_offset[Map::kCount];  // mn * ld, or -1 outside the matrix
  int kk, k_end;
  __host__ __device__ DenseKContiguous(const float* base_, int ld, int limit, int tile0, int k_begin, int k_end_,
                                       int tid)
      : base(base_), kk(k_begin + Map::k(tid, 0)), k_end(k_end_) {
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      const int mn = tile0 + Map::mn(tid, i);
      row_offset[i] = mn < limit ? mn * ld : -1;
    }
  }
  __host__ __device__ void load(float (&v)[Map::kCount]) const {
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) v[i] = (row_offset[i] >= 0 && kk < k_end) ? base[row_offset[i] + kk] : 0.0f;
  }
  __host__ __device__ void advance() { kk += kTileK; }
};

// Element (mn, kk) = base[kk * ld + mn] (stored with mn contiguous), mn < limit.
template <int kTile>
struct DenseMnContiguous {
  using Map = TileMap<kTile, false>;
  const float* base;
  int ld, mn, k_end, k0, tid;  // mn = -1 outside the matrix; k0 = start of the current tile
  __host__ __device__ DenseMnContiguous(const float* base_, int ld_, int limit, int tile0, int k_begin, int k_end_,
                                        int tid_)
      : base(base_), ld(ld_), mn(tile0 + Map::mn(tid_, 0)), k_end(k_end_), k0(k_begin), tid(tid_) {
    if (mn >= limit) mn = -1;
  }
  __host__ __device__ void load(float (&v)[Map::kCount]) const {
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      const int kk = k0 + Map::k(tid, i);
      v[i] = (mn >= 0 && kk < k_end) ? base[kk * ld + mn] : 0.0f;
    }
  }
  __host__ __device__ void advance() { k0 += kTileK; }
};

// ---- convolution shapes ---------------------------------------------------------------------------
// NHWC input x[N][H][W][C], KRSC weights w[K][R][S][C/G], NHWC output y[N][P][Q][K]; group g owns input
// channels [g*Cg, (g+1)*Cg) and output channels [g*Kg, (g+1)*Kg).
struct ConvShape {
  int batch, in_h, in_w, in_c, out_c, kernel_h, kernel_w, out_h, out_w, stride, pad, groups, in_per_group,
      out_per_group;
  __host__ __device__ int patch() const { return kernel_h * kernel_w * in_per_group; }  // R*S*Cg
};

// Forward operand A: the im2col matrix, row m = output pixel (n, p, q) (m = (n*P + p)*Q + q), column
// kk = (r, s, c) (kk = (r*S + s)*Cg + c): A[m, kk] = x[n, p*stride - pad + r, q*stride - pad + s, g*Cg + c],
// zero where that falls in the padding. k-contiguous (c runs along memory).
template <int kTile>
struct ConvForwardPatches {
  using Map = TileMap<kTile, true>;
  const float* x;  // already offset by g*Cg
  int in_h, in_w, in_c, kernel_w, cg, k_end;
  int image[Map::kCount], h0[Map::kCount], w0[Map::kCount];  // per row: n*H*W*C, p*stride - pad, q*stride - pad
  int kk, r, s, c;                                           // this thread's column, decomposed
  __host__ __device__ ConvForwardPatches(const ConvShape& sh, const float* x_group, int tile0, int k_begin, int k_end_,
                                         int tid)
      : x(x_group),
        in_h(sh.in_h),
        in_w(sh.in_w),
        in_c(sh.in_c),
        kernel_w(sh.kernel_w),
        cg(sh.in_per_group),
        k_end(k_end_) {
    const int pixels = sh.out_h * sh.out_w, rows = sh.batch * pixels;
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      const int m = tile0 + Map::mn(tid, i);
      if (m < rows) {
        const int n = m / pixels, pq = m - n * pixels, p = pq / sh.out_w, q = pq - p * sh.out_w;
        image[i] = n * sh.in_h * sh.in_w * sh.in_c;
        h0[i] = p * sh.stride - sh.pad;
        w0[i] = q * sh.stride - sh.pad;
      } else {
        image[i] = 0;
        h0[i] = kFar;
        w0[i] = kFar;
      }
    }
    kk = k_begin + Map::k(tid, 0);
    const int taps_row = kernel_w * cg;  // S*Cg
    r = kk / taps_row;
    const int rest = kk - r * taps_row;
    s = rest / cg;
    c = rest - s * cg;
  }
  __host__ __device__ void load(float (&v)[Map::kCount]) const {
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      const int ih = h0[i] + r, iw = w0[i] + s;
      const bool inside = kk < k_end && ih >= 0 && ih < in_h && iw >= 0 && iw < in_w;
      v[i] = inside ? x[image[i] + (ih * in_w + iw) * in_c + c] : 0.0f;
    }
  }
  __host__ __device__ void advance() {  // kk += 16, carried into (r, s, c)
    kk += kTileK;
    c += kTileK;
    while (c >= cg) {
      c -= cg;
      if (++s == kernel_w) {
        s = 0;
        ++r;
      }
    }
  }
};

// Data-gradient operand A: row m = input pixel (n, h, w) (m = (n*H + h)*W + w), column kk = (r, s, k)
// (kk = (r*S + s)*Kg + k): A[m, kk] = dy[n, p, q, g*Kg + k] where h = p*stride - pad + r and
// w = q*stride - pad + s, i.e. p = (h + pad - r) / stride when that divides exactly and 0 <= p < P
// (else zero). k-contiguous (k runs along memory).
template <int kTile>
struct ConvDataGradientRows {
  using Map = TileMap<kTile, true>;
  const float* dy;  // already offset by g*Kg
  int out_h, out_w, out_c, kernel_w, kg, stride, k_end;
  int image[Map::kCount], hp[Map::kCount], wp[Map::kCount];  // per row: n*P*Q*K, h + pad, w + pad
  int kk, r, s, k;
  __host__ __device__ ConvDataGradientRows(const ConvShape& sh, const float* dy_group, int tile0, int k_begin,
                                           int k_end_, int tid)
      : dy(dy_group),
        out_h(sh.out_h),
        out_w(sh.out_w),
        out_c(sh.out_c),
        kernel_w(sh.kernel_w),
        kg(sh.out_per_group),
        stride(sh.stride),
        k_end(k_end_) {
    const int pixels = sh.in_h * sh.in_w, rows = sh.batch * pixels;
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      const int m = tile0 + Map::mn(tid, i);
      if (m < rows) {
        const int n = m / pixels, hw = m - n * pixels, h = hw / sh.in_w, w = hw - h * sh.in_w;
        image[i] = n * sh.out_h * sh.out_w * sh.out_c;
        hp[i] = h + sh.pad;
        wp[i] = w + sh.pad;
      } else {
        image[i] = 0;
        hp[i] = kFar;
        wp[i] = kFar;
      }
    }
    kk = k_begin + Map::k(tid, 0);
    const int taps_row = kernel_w * kg;  // S*Kg
    r = kk / taps_row;
    const int rest = kk - r * taps_row;
    s = rest / kg;
    k = rest - s * kg;
  }
  __host__ __device__ void load(float (&v)[Map::kCount]) const {
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      const int ph = hp[i] - r, pw = wp[i] - s;
      bool inside = kk < k_end && ph >= 0 && pw >= 0;
      int p = ph, q = pw;
      if (stride != 1) {
        p = ph / stride;
        q = pw / stride;
        inside = inside && p * stride == ph && q * stride == pw;
      }
      inside = inside && p < out_h && q < out_w;
      v[i] = inside ? dy[image[i] + (p * out_w + q) * out_c + k] : 0.0f;
    }
  }
  __host__ __device__ void advance() {
    kk += kTileK;
    k += kTileK;
    while (k >= kg) {
      k -= kg;
      if (++s == kernel_w) {
        s = 0;
        ++r;
      }
    }
  }
};

// Data-gradient operand B: B[kk, c] = w[g*Kg + k, r, s, c] with kk = (r*S + s)*Kg + k as above, column c
// < Cg: offset (g*Kg + k)*R*S*Cg + (r*S + s)*Cg + c. c-contiguous, so fetched with c across threads.
template <int kTile>
struct ConvDataGradientWeights {
  using Map = TileMap<kTile, false>;
  const float* w;               // already offset by g*Kg*R*S*Cg
  int patch, cg, kg, c, k_end;  // c = -1 outside the matrix
  int kk[Map::kCount], rs[Map::kCount], k[Map::kCount];
  __host__ __device__ ConvDataGradientWeights(const ConvShape& sh, const float* w_group, int tile0, int k_begin,
                                              int k_end_, int tid)
      : w(w_group),
        patch(sh.patch()),
        cg(sh.in_per_group),
        kg(sh.out_per_group),
        c(tile0 + Map::mn(tid, 0)),
        k_end(k_end_) {
    if (c >= cg) c = -1;
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      kk[i] = k_begin + Map::k(tid, i);
      rs[i] = kk[i] / kg;
      k[i] = kk[i] - rs[i] * kg;
    }
  }
  __host__ __device__ void load(float (&v)[Map::kCount]) const {
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) v[i] = (c >= 0 && kk[i] < k_end) ? w[k[i] * patch + rs[i] * cg + c] : 0.0f;
  }
  __host__ __device__ void advance() {
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      kk[i] += kTileK;
      k[i] += kTileK;
      while (k[i] >= kg) {
        k[i] -= kg;
        ++rs[i];
      }
    }
  }
};

// Weight-gradient operand B: B[m, kk] = A_forward[m, kk] (the im2col matrix) with the pixel m as the
// contraction index and the patch column kk = (r, s, c) as the output column. Fetched with kk across
// threads (c contiguous); each thread keeps its column fixed and walks its pixels (n, p, q).
template <int kTile>
struct ConvWeightGradientPatches {
  using Map = TileMap<kTile, false>;
  const float* x;  // already offset by g*Cg
  int in_h, in_w, in_c, out_h, out_w, stride, k_end;
  int dh, dw, c;  // r - pad, s - pad and c of this thread's column (dh = kFar outside the matrix)
  int pixel[Map::kCount], n[Map::kCount], p[Map::kCount], q[Map::kCount];
  __host__ __device__ ConvWeightGradientPatches(const ConvShape& sh, const float* x_group, int tile0, int k_begin,
                                                int k_end_, int tid)
      : x(x_group),
        in_h(sh.in_h),
        in_w(sh.in_w),
        in_c(sh.in_c),
        out_h(sh.out_h),
        out_w(sh.out_w),
        stride(sh.stride),
        k_end(k_end_) {
    const int column = tile0 + Map::mn(tid, 0);
    if (column < sh.patch()) {
      const int taps_row = sh.kernel_w * sh.in_per_group;
      const int r = column / taps_row, rest = column - r * taps_row, s = rest / sh.in_per_group;
      c = rest - s * sh.in_per_group;
      dh = r - sh.pad;
      dw = s - sh.pad;
    } else {
      c = 0;
      dh = kFar;
      dw = kFar;
    }
    const int pixels = out_h * out_w;
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      pixel[i] = k_begin + Map::k(tid, i);
      n[i] = pixel[i] / pixels;
      const int pq = pixel[i] - n[i] * pixels;
      p[i] = pq / out_w;
      q[i] = pq - p[i] * out_w;
    }
  }
  __host__ __device__ void load(float (&v)[Map::kCount]) const {
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      const int ih = p[i] * stride + dh, iw = q[i] * stride + dw;
      const bool inside = pixel[i] < k_end && ih >= 0 && ih < in_h && iw >= 0 && iw < in_w;
      v[i] = inside ? x[((n[i] * in_h + ih) * in_w + iw) * in_c + c] : 0.0f;
    }
  }
  __host__ __device__ void advance() {
    ST_UNROLL
    for (int i = 0; i < Map::kCount; ++i) {
      pixel[i] += kTileK;
      q[i] += kTileK;
      while (q[i] >= out_w) {
        q[i] -= out_w;
        if (++p[i] == out_h) {
          p[i] = 0;
          ++n[i];
        }
      }
    }
  }
};

// ---- problems: the three convolution passes and GEMM ---------------------------------------------
// A problem provides a_loader<kBM>, b_loader<kBN> (for group g, tile origin, contraction range) and
// finish(value, g, row, col). The GEMM view of each is written above it.

// Forward: rows = N*P*Q output pixels, cols = Kg, contraction = R*S*Cg.
//   y[m, g*Kg + j] = sum_kk A[m, kk] * w[g*Kg + j, kk] + b[g*Kg + j]
struct ConvForwardProblem {
  ConvShape sh;
  const float* x;
  const float* w;
  const float* bias;  // nullable
  float* y;
  template <int kTile>
  __host__ __device__ ConvForwardPatches<kTile> a_loader(int g, int tile0, int k_begin, int k_end, int tid) const {
    return ConvForwardPatches<kTile>(sh, x + g * sh.in_per_group, tile0, k_begin, k_end, tid);
  }
  template <int kTile>  // B[kk, j] = w[(g*Kg + j)*patch + kk]
  __host__ __device__ DenseKContiguous<kTile> b_loader(int g, int tile0, int k_begin, int k_end, int tid) const {
    return DenseKContiguous<kTile>(w + g * sh.out_per_group * sh.patch(), sh.patch(), sh.out_per_group, tile0, k_begin,
                                   k_end, tid);
  }
  __host__ __device__ void finish(float value, int g, int row, int col) const {
    const int channel = g * sh.out_per_group + col;
    y[row * sh.out_c + channel] = bias != nullptr ? value + bias[channel] : value;
  }
};

// Data gradient: rows = N*H*W input pixels, cols = Cg, contraction = R*S*Kg.
//   dx[m, g*Cg + c] += sum_kk A[m, kk] * B[kk, c]
struct ConvDataGradientProblem {
  ConvShape sh;
  const float* dy;
  const float* w;
  float* dx;
  template <int kTile>
  __host__ __device__ ConvDataGradientRows<kTile> a_loader(int g, int tile0, int k_begin, int k_end, int tid) const {
    return ConvDataGradientRows<kTile>(sh, dy + g * sh.out_per_group, tile0, k_begin, k_end, tid);
  }
  template <int kTile>
  __host__ __device__ ConvDataGradientWeights<kTile> b_loader(int g, int tile0, int k_begin, int k_end, int tid) const {
    return ConvDataGradientWeights<kTile>(sh, w + g * sh.out_per_group * sh.patch(), tile0, k_begin, k_end, tid);
  }
  __host__ __device__ void finish(float value, int g, int row, int col) const {
    dx[row * sh.in_c + g * sh.in_per_group + col] += value;
  }
};

// Weight gradient: rows = Kg, cols = R*S*Cg, contraction = N*P*Q output pixels.
//   dw[g*Kg + j, kk] += sum_m dy[m, g*Kg + j] * A_forward[m, kk]
struct ConvWeightGradientProblem {
  ConvShape sh;
  const float* x;
  const float* dy;
  float* dw;
  template <int kTile>  // A[j, m] = dy[m*K + g*Kg + j]
  __host__ __device__ DenseMnContiguous<kTile> a_loader(int g, int tile0, int k_begin, int k_end, int tid) const {
    return DenseMnContiguous<kTile>(dy + g * sh.out_per_group, sh.out_c, sh.out_per_group, tile0, k_begin, k_end, tid);
  }
  template <int kTile>
  __host__ __device__ ConvWeightGradientPatches<kTile> b_loader(int g, int tile0, int k_begin, int k_end,
                                                                int tid) const {
    return ConvWeightGradientPatches<kTile>(sh, x + g * sh.in_per_group, tile0, k_begin, k_end, tid);
  }
  __host__ __device__ void finish(float value, int g, int row, int col) const {
    dw[(g * sh.out_per_group + row) * sh.patch() + col] += value;
  }
};

// Row-major C[m, n] = alpha * op(A) op(B) + beta * C (+ bias[n] when given; beta == 0 never reads C).
//   op(A)[i, kk] = transpose_a ? a[kk*lda + i] : a[i*lda + kk];
//   op(B)[kk, j] = transpose_b ? b[j*ldb + kk] : b[kk*ldb + j]
template <bool kTransposeA, bool kTransposeB>
struct GemmProblem {
  int m, n;
  float alpha, beta;
  const float* a;
  int lda;
  const float* b;
  int ldb;
  float* c;
  int ldc;
  const float* bias;  // nullable
  template <int kTile>
  using ALoader = std::conditional_t<kTransposeA, DenseMnContiguous<kTile>, DenseKContiguous<kTile>>;
  template <int kTile>
  using BLoader = std::conditional_t<kTransposeB, DenseKContiguous<kTile>, DenseMnContiguous<kTile>>;
  template <int kTile>
  __host__ __device__ ALoader<kTile> a_loader(int, int tile0, int k_begin, int k_end, int tid) const {
    return ALoader<kTile>(a, lda, m, tile0, k_begin, k_end, tid);
  }
  template <int kTile>
  __host__ __device__ BLoader<kTile> b_loader(int, int tile0, int k_begin, int k_end, int tid) const {
    return BLoader<kTile>(b, ldb, n, tile0, k_begin, k_end, tid);
  }
  __host__ __device__ void finish(float value, int, int row, int col) const {
    float* out = c + row * ldc + col;
    float result = alpha * value;
    if (beta != 0.0f) result += beta * *out;
    if (bias != nullptr) result += bias[col];
    *out = result;
  }
};

// ---- the block tile ---------------------------------------------------------------------------------

// Round to TF32 (10 mantissa bits), to nearest with ties away from zero, as cvt.rna.tf32.f32.
__host__ __device__ inline float round_to_tf32(float value) {
#ifdef __CUDA_ARCH__
  unsigned int bits;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(value));
  return __uint_as_float(bits);
#else
  unsigned int bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7f800000u) != 0x7f800000u) bits = (bits + 0x1000u) & 0xffffe000u;  // leave inf/nan alone
  float rounded;
  std::memcpy(&rounded, &bits, sizeof(rounded));
  return rounded;
#endif
}

template <int kTile>
constexpr int kTileStride = kTile + kPad;

// Stores a thread's fetched elements into the k-major shared tile: tile[k * stride + mn].
template <int kTile, class Map, bool kTf32>
__host__ __device__ inline void store_tile(float* tile, const float (&v)[Map::kCount], int tid) {
  ST_UNROLL
  for (int i = 0; i < Map::kCount; ++i)
    tile[Map::k(tid, i) * kTileStride<kTile> + Map::mn(tid, i)] = kTf32 ? round_to_tf32(v[i]) : v[i];
}

// Accumulator `index` of thread `tid` holds C[row, col] of the block tile.
//   FP32: index = i * (kBN/16) + j -> (ty + 16 i, tx + 16 j).
//   TF32: index = (mt*2 + nt)*4 + e, the mma C fragment: lane = 4 * group + t4,
//         e -> (group + 8 * (e >> 1), 2 * t4 + (e & 1)) inside mma tile (mt, nt) of the warp's 32x16 tile.
template <int kBM, int kBN, bool kTf32>
struct BlockTile {
  static constexpr int kAccumulators = kBM * kBN / kThreads;
  static constexpr int kWarpsM = kBM / 32;  // TF32 warp grid: kWarpsM x (8 / kWarpsM), 32x16 per warp
  static_assert(kAccumulators == 16 && kBM % 32 == 0 && kBN % 16 == 0 && (kBM / 32) * (kBN / 16) == kThreads / 32,
                "block tiles are 64x64, 128x32 or 32x128");
  __host__ __device__ static void warp_origin(int tid, int& row, int& col) {
    const int warp = tid / 32;
    row = (warp % kWarpsM) * 32;
    col = (warp / kWarpsM) * 16;
  }
  __host__ __device__ static void position(int tid, int index, int& row, int& col) {
    if (kTf32) {
      const int lane = tid % 32, group = lane / 4, t4 = lane % 4;
      const int mt = index / 8, nt = (index / 4) % 2, e = index % 4;
      warp_origin(tid, row, col);
      row += mt * 16 + group + 8 * (e >> 1);
      col += nt * 8 + 2 * t4 + (e & 1);
    } else {
      row = tid / 16 + 16 * (index / (kBN / 16));
      col = tid % 16 + 16 * (index % (kBN / 16));
    }
  }
};

__host__ __device__ inline unsigned int float_bits(float value) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(value);
#else
  unsigned int bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
#endif
}

// mma A fragment (16x8, row-major) of rows [row0, row0 + 16) and k [ks, ks + 8) from the k-major tile:
// a0 = (group, t4), a1 = (group + 8, t4), a2 = (group, t4 + 4), a3 = (group + 8, t4 + 4).
template <int kStride>
__host__ __device__ inline void load_a_fragment(const float* tile, int ks, int row0, int lane, unsigned int (&a)[4]) {
  const int group = lane / 4, t4 = lane % 4;
  a[0] = float_bits(tile[(ks + t4) * kStride + row0 + group]);
  a[1] = float_bits(tile[(ks + t4) * kStride + row0 + group + 8]);
  a[2] = float_bits(tile[(ks + t4 + 4) * kStride + row0 + group]);
  a[3] = float_bits(tile[(ks + t4 + 4) * kStride + row0 + group + 8]);
}

// mma B fragment (8x8, column-major) of columns [col0, col0 + 8): b0 = (k = t4, n = group), b1 = (t4 + 4, group).
template <int kStride>
__host__ __device__ inline void load_b_fragment(const float* tile, int ks, int col0, int lane, unsigned int (&b)[2]) {
  const int group = lane / 4, t4 = lane % 4;
  b[0] = float_bits(tile[(ks + t4) * kStride + col0 + group]);
  b[1] = float_bits(tile[(ks + t4 + 4) * kStride + col0 + group]);
}

// FP32 path: acc += the product of one k-tile pair (both tiles k-major in shared memory); thread
// (ty, tx) = (tid / 16, tid % 16) owns rows ty + 16 i and columns tx + 16 j (BlockTile::position).
template <int kBM, int kBN>
__host__ __device__ inline void multiply_tile_fma(const float* a_tile, const float* b_tile, float (&acc)[16], int tid) {
  constexpr int kRows = kBM / 16, kCols = kBN / 16;
  const int ty = tid / 16, tx = tid % 16;
  ST_UNROLL
  for (int kk = 0; kk < kTileK; ++kk) {
    float a[kRows], b[kCols];
    ST_UNROLL
    for (int i = 0; i < kRows; ++i) a[i] = a_tile[kk * kTileStride<kBM> + ty + 16 * i];
    ST_UNROLL
    for (int j = 0; j < kCols; ++j) b[j] = b_tile[kk * kTileStride<kBN> + tx + 16 * j];
    ST_UNROLL
    for (int i = 0; i < kRows; ++i) {
      ST_UNROLL
      for (int j = 0; j < kCols; ++j) acc[i * kCols + j] = fmaf(a[i], b[j], acc[i * kCols + j]);
    }
  }
}

#ifdef __CUDACC__

__device__ __forceinline__ void mma_tf32(float& d0, float& d1, float& d2, float& d3, const unsigned int (&a)[4],
                                         const unsigned int (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// TF32 path: the warp's 32x16 tile, 2 x 2 mma tiles per 8-deep k step; accumulator (mt*2 + nt)*4 + e.
template <int kBM, int kBN>
__device__ __forceinline__ void multiply_tile_mma(const float* a_tile, const float* b_tile, float (&acc)[16], int tid) {
  const int lane = tid % 32;
  int warp_row = 0, warp_col = 0;
  BlockTile<kBM, kBN, true>::warp_origin(tid, warp_row, warp_col);
  ST_UNROLL
  for (int ks = 0; ks < kTileK; ks += 8) {
    unsigned int a[2][4], b[2][2];
    ST_UNROLL
    for (int mt = 0; mt < 2; ++mt) load_a_fragment<kTileStride<kBM>>(a_tile, ks, warp_row + mt * 16, lane, a[mt]);
    ST_UNROLL
    for (int nt = 0; nt < 2; ++nt) load_b_fragment<kTileStride<kBN>>(b_tile, ks, warp_col + nt * 8, lane, b[nt]);
    ST_UNROLL
    for (int mt = 0; mt < 2; ++mt) {
      ST_UNROLL
      for (int nt = 0; nt < 2; ++nt) {
        float* d = acc + (mt * 2 + nt) * 4;
        mma_tf32(d[0], d[1], d[2], d[3], a[mt], b[nt]);
      }
    }
  }
}

// The GEMM dimensions of one launch (per group) and its split of the contraction.
struct Launch {
  int m, n, k, groups, splits, k_chunk;  // split s covers contraction [s * k_chunk, min(k, (s + 1) * k_chunk))
};

// grid = (ceil(m / kBM), ceil(n / kBN), groups * splits); blockIdx.z = g * splits + s.
template <class Problem, int kBM, int kBN, bool kTf32>
__global__ void __launch_bounds__(kThreads)
    implicit_gemm_kernel(const Problem problem, const Launch launch, float* partial) {
  __shared__ float a_tile[kTileK * kTileStride<kBM>];
  __shared__ float b_tile[kTileK * kTileStride<kBN>];
  const int tid = static_cast<int>(threadIdx.x);
  const int group = static_cast<int>(blockIdx.z) / launch.splits;
  const int split = static_cast<int>(blockIdx.z) - group * launch.splits;
  const int m0 = static_cast<int>(blockIdx.x) * kBM, n0 = static_cast<int>(blockIdx.y) * kBN;
  const int k_begin = split * launch.k_chunk;
  const int k_end = min(launch.k, k_begin + launch.k_chunk);
  auto a = problem.template a_loader<kBM>(group, m0, k_begin, k_end, tid);
  auto b = problem.template b_loader<kBN>(group, n0, k_begin, k_end, tid);
  using AMap = typename decltype(a)::Map;
  using BMap = typename decltype(b)::Map;
  float a_values[AMap::kCount], b_values[BMap::kCount];
  float acc[16];
  ST_UNROLL
  for (int i = 0; i < 16; ++i) acc[i] = 0.0f;
  a.load(a_values);
  b.load(b_values);
  for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
    store_tile<kBM, AMap, kTf32>(a_tile, a_values, tid);
    store_tile<kBN, BMap, kTf32>(b_tile, b_values, tid);
    __syncthreads();
    if (k0 + kTileK < k_end) {  // fetch the next tile while this one is multiplied
      a.advance();
      b.advance();
      a.load(a_values);
      b.load(b_values);
    }
    if constexpr (kTf32)
      multiply_tile_mma<kBM, kBN>(a_tile, b_tile, acc, tid);
    else
      multiply_tile_fma<kBM, kBN>(a_tile, b_tile, acc, tid);
    __syncthreads();
  }
  ST_UNROLL
  for (int index = 0; index < 16; ++index) {
    int row = 0, col = 0;
    BlockTile<kBM, kBN, kTf32>::position(tid, index, row, col);
    row += m0;
    col += n0;
    if (row >= launch.m || col >= launch.n) continue;
    if (launch.splits == 1)
      problem.finish(acc[index], group, row, col);
    else
      partial[((split * launch.groups + group) * launch.m + row) * launch.n + col] = acc[index];
  }
}

// Sums the splits in order (deterministic) and finishes: one thread per (g, row, col).
template <class Problem>
__global__ void split_k_reduce_kernel(const Problem problem, const Launch launch, const float* partial) {
  const int plane = launch.m * launch.n, count = launch.groups * plane;
  for (int index = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); index < count;
       index += static_cast<int>(gridDim.x * blockDim.x)) {
    float sum = 0.0f;
    for (int s = 0; s < launch.splits; ++s) sum += partial[s * count + index];
    const int group = index / plane, rest = index - group * plane, row = rest / launch.n;
    problem.finish(sum, group, row, rest - row * launch.n);
  }
}

// Split count for `blocks` output blocks and `k_tiles` contraction tiles: split only when the output
// alone leaves the GPU mostly idle, and keep >= kMinTilesPerSplit tiles (128 products) per split.
// kTargetBlocks (about 4 resident blocks on each of the 132 SMs of an H100/H200) is a constant so the
// split, hence the rounding, depends on the shape only.
constexpr long long kTargetBlocks = 528;
constexpr int kMinTilesPerSplit = 8;
inline Launch plan_launch(int m, int n, int k, int groups, int block_m, int block_n) {
  const long long blocks = static_cast<long long>(ceil_div(m, block_m)) * ceil_div(n, block_n) * groups;
  const int k_tiles = ceil_div(k, kTileK);
  long long splits = 1;
  if (blocks < kTargetBlocks / 2 && k_tiles >= 2 * kMinTilesPerSplit) {
    splits = kTargetBlocks / blocks;
    if (splits > k_tiles / kMinTilesPerSplit) splits = k_tiles / kMinTilesPerSplit;
    if (splits > 65535 / groups) splits = 65535 / groups;
    if (splits < 1) splits = 1;
  }
  const int tiles_per_split = k_tiles == 0 ? 0 : ceil_div(k_tiles, static_cast<int>(splits));
  const int used_splits = tiles_per_split == 0 ? 1 : ceil_div(k_tiles, tiles_per_split);  // no empty split
  return Launch{m, n, k, groups, used_splits, tiles_per_split * kTileK};
}

template <class Problem, int kBM, int kBN>
void launch_tiles(const Problem& problem, int m, int n, int k, int groups, bool tf32, Stream stream,
                  const char* caller) {
  const Launch launch = plan_launch(m, n, k, groups, kBM, kBN);
  const int m_tiles = ceil_div(m, kBM), n_tiles = ceil_div(n, kBN);
  if (n_tiles > 65535 || static_cast<long long>(groups) * launch.splits > 65535)
    throw_invalid_argument(caller, "too many column tiles or groups for one launch (grid y/z limit 65535)");
  float* partial = nullptr;
  if (launch.splits > 1) {
    const long long floats = static_cast<long long>(launch.splits) * groups * m * n;
    if (floats > std::numeric_limits<int>::max())
      throw_invalid_argument(caller, "split-K workspace exceeds 2^31 floats");
    partial = static_cast<float*>(stream_workspace(stream, static_cast<std::size_t>(floats) * sizeof(float)));
  }
  const dim3 grid(static_cast<unsigned>(m_tiles), static_cast<unsigned>(n_tiles),
                  static_cast<unsigned>(groups * launch.splits));
  if (tf32)
    implicit_gemm_kernel<Problem, kBM, kBN, true><<<grid, kThreads, 0, stream>>>(problem, launch, partial);
  else
    implicit_gemm_kernel<Problem, kBM, kBN, false><<<grid, kThreads, 0, stream>>>(problem, launch, partial);
  ST_CUDA_CHECK_LAUNCH();
  if (launch.splits > 1) {
    const int count = groups * m * n;
    const int blocks = ceil_div(count, 256) < 4096 ? ceil_div(count, 256) : 4096;
    split_k_reduce_kernel<Problem><<<blocks, 256, 0, stream>>>(problem, launch, partial);
    ST_CUDA_CHECK_LAUNCH();
  }
}

// Runs problem (m x n per group, contraction k) with the block tile that wastes least on thin outputs.
template <class Problem>
void run(const Problem& problem, int m, int n, int k, int groups, Stream stream, const char* caller) {
  if (m <= 0 || n <= 0 || groups <= 0) return;
  const bool tf32 = tf32_enabled();
  if (n <= 32 && m > 32)
    launch_tiles<Problem, 128, 32>(problem, m, n, k, groups, tf32, stream, caller);
  else if (m <= 32 && n > 32)
    launch_tiles<Problem, 32, 128>(problem, m, n, k, groups, tf32, stream, caller);
  else
    launch_tiles<Problem, 64, 64>(problem, m, n, k, groups, tf32, stream, caller);
}

#endif  // __CUDACC__

// ---- helpers shared by conv2d.cu and gemm.cu -----------------------------------------------------------
// Throws std::invalid_argument("<caller>: <parts...>").
template <class... Parts>
[[noreturn]] void fail_argument(const char* caller, const Parts&... parts) {
  std::ostringstream text;
  (text << ... << parts);
  throw_invalid_argument(caller, text.str().c_str());
}

// A count or extent as int, refused (naming it) when negative or too large for 32-bit indexing.
inline int checked_int(long long value, const char* caller, const char* what) {
  if (value < 0) fail_argument(caller, what, " = ", value, " must not be negative");
  if (value > std::numeric_limits<int>::max())
    fail_argument(caller, what, " = ", value, " exceeds 2^31 - 1 (the kernels index with 32-bit integers)");
  return static_cast<int>(value);
}

// Defined in gemm.cu:
// sums[c] += sum over rows of x[row * cols + c]: per-chunk partial sums, then the chunks in order.
void column_sums_accumulate(int rows, int cols, const float* x, float* sums, Stream stream);
// destination[i] += sum over p of partial[p * count + i], p in order.
void accumulate_partials(int parts, int count, const float* partial, float* destination, Stream stream);

}  // namespace st::cuda::igemm
