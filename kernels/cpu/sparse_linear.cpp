// The sparse linear layer (formulas in kernels/cpu/sparse.h).
//
// Layout: activations and their gradients are transposed into blocks of 16 images, [ceil(batch / 16)]
// [features][16], so every stored weight scales (forward, data gradient) or dots (weight gradient) one
// 64-byte row per block: one AVX-512 register, or two AVX2 registers (kernels/cpu/vec16.h). Each thread
// owns a contiguous range of blocks: it transposes its own images in (16 x 16 tiles through registers),
// multiplies over the pattern and transposes its results back, so no cache line written by one thread is
// read or written by another (with row halves of a shared [features, batch] array, the cores most likely
// traded lines: two threads ran slower than one on the Intel VM). The weight and bias gradients are
// summed per thread and added in thread order.
//
// Inner loops: up to 8 blocks at a time in 8 accumulator registers (written with intrinsics so they stay
// in registers across a row's entries), the row of the entry after next prefetched; the weight gradient
// holds the output gradient's blocks in registers across the row (8 blocks with AVX-512, fewer with AVX2).
// Without either, the same loops in portable simd form.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <omp.h>


#include "kernels/cpu/kernels.h"
#include "kernels/cpu/sparse.h"
#include "kernels/cpu/vec16.h"

namespace st::cpu {
namespace {

constexpr int64_t kLanes = 16;  // images per block
// Blocks per pass in registers: accumulators of the forward and data gradient (a broadcast and a load
// beside them), and the output gradient's blocks held by the weight gradient (two accumulators and a load
// beside them). 8 with AVX-512; fewer with AVX2's 16 registers, whose Vec16 takes two.
#if defined(ST_VEC16)
constexpr int kCombinedBlocks = kVec16Registers - 2 >= 8 ? 8 : kVec16Registers - 2;
constexpr int kHeldBlocks = kVec16Registers - 3 >= 8 ? 8 : kVec16Registers - 3;
#else
constexpr int kCombinedBlocks = 8;
#endif

// Grow-only scratch arrays of the calling thread (the products are called from outside parallel
// regions), 64-byte aligned, so a training step allocates and clears nothing: slot 0 the blocked inputs,
// 1 blocked outputs or output gradients, 2 blocked input gradients, 3 the values in CSC order, 4 the
// weight gradient's partial sums per thread, 5 the bias gradient's.
float* scratch(int slot, int64_t count) {
  thread_local std::vector<float> buffers[6];
  std::vector<float>& buffer = buffers[slot];
  if (buffer.size() < static_cast<std::size_t>(count + 16)) buffer.resize(static_cast<std::size_t>(count + 16));
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return buffer.data() + ((64 - address % 64) % 64) / sizeof(float);
}

// GCC 12's headers for the shuffles and horizontal sums read an undefined register on purpose (its
// upper half is discarded), which -Wuninitialized reports: silenced for the intrinsics below.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#if defined(ST_VEC16)
// out[v][0, 16) = sum_j values[j] * in[v][index[j] * 16 + 0 .. 16) for V blocks (block v of the input at
// in + v * in_stride, of the output at out + v * out_stride), over the entries [begin, end).
template <int V>
inline void combine_fixed(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* in,
                          int64_t in_stride, float* out, int64_t out_stride) {
  Vec16 acc[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) acc[v] = vzero();
  for (int64_t j = begin; j < end; ++j) {
    if (j + 12 < end) {
      const float* ahead = in + static_cast<int64_t>(index[j + 12]) * kLanes;
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) _mm_prefetch(reinterpret_cast<const char*>(ahead + v * in_stride), _MM_HINT_T0);
    }
    const Vec16 w = vset1(values[j]);
    const float* src = in + static_cast<int64_t>(index[j]) * kLanes;
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[v] = vfmadd(w, vload(src + v * in_stride), acc[v]);
  }
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) vstore(out + v * out_stride, acc[v]);
}

// sum_v g[v] . x[v * stride + 0 .. 16) with g held in V registers: two accumulator chains.
template <int V>
inline float dot_held(const Vec16* g, const float* x, int64_t stride) {
  Vec16 acc[2] = {vmul(g[0], vload(x)), vzero()};
#pragma GCC unroll 8
  for (int v = 1; v < V; ++v) acc[v & 1] = vfmadd(g[v], vload(x + v * stride), acc[v & 1]);
  return vsum(vadd(acc[0], acc[1]));
}

// dst[c * ldd + r] = src[r * lds + c] (+ bias[r] when given, + the old dst when accumulating) for a 16 x 16
// tile, in registers.
inline void transpose_tile(const float* src, int64_t lds, float* dst, int64_t ldd, bool accumulate,
                           const float* bias) {
  Vec16 row[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) row[i] = vload(src + i * lds);
  transpose16(row);
  const Vec16 extra = bias != nullptr ? vload(bias) : vzero();
#pragma GCC unroll 16
  for (int j = 0; j < 16; ++j) {
    float* out = dst + j * ldd;
    Vec16 v = bias != nullptr ? vadd(row[j], extra) : row[j];
    if (accumulate) v = vadd(vload(out), v);
    vstore(out, v);
  }
}
#else
template <int V>
inline void combine_fixed(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* in,
                          int64_t in_stride, float* out, int64_t out_stride) {
  float acc[V][kLanes] = {};
  for (int64_t j = begin; j < end; ++j) {
    const float w = values[j];
    const float* src = in + static_cast<int64_t>(index[j]) * kLanes;
    for (int v = 0; v < V; ++v)
#pragma omp simd
      for (int64_t i = 0; i < kLanes; ++i) acc[v][i] += w * src[v * in_stride + i];
  }
  for (int v = 0; v < V; ++v)
    for (int64_t i = 0; i < kLanes; ++i) out[v * out_stride + i] = acc[v][i];
}
#endif

inline float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

#pragma GCC diagnostic pop

// out[0, width) = sum over the entries [begin, end) of values[j] * in[index[j] * 16 + 0 .. width): a block
// of fewer than 16 images (the batch's last).
inline void combine_part(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* in,
                         int64_t width, float* out) {
  std::fill(out, out + width, 0.0f);
  for (int64_t j = begin; j < end; ++j) {
    const float w = values[j];
    const float* src = in + static_cast<int64_t>(index[j]) * kLanes;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) out[i] += w * src[i];
  }
}

// One output row over the blocks [b0, b1) of blocked arrays: out[b][row] = sum over the entries [begin,
// end) of values[j] * in[b][index[j]] (in: [blocks][in_rows][16], out: [blocks][out_rows][16]); up to 8
// blocks at a time, the batch's last block holding `tail` images when tail > 0.
void combine_blocks(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* in,
                    int64_t in_rows, float* out, int64_t out_rows, int64_t row, int64_t b0, int64_t b1, int64_t tail) {
  const int64_t in_stride = in_rows * kLanes, out_stride = out_rows * kLanes;
  const int64_t full_end = tail > 0 ? b1 - 1 : b1;
  int64_t b = b0;
  for (; b + kCombinedBlocks <= full_end; b += kCombinedBlocks)
    combine_fixed<kCombinedBlocks>(index, values, begin, end, in + b * in_stride, in_stride, out + b * out_stride + row * kLanes,
                     out_stride);
  const float* in_b = in + b * in_stride;
  float* out_b = out + b * out_stride + row * kLanes;
  switch (full_end - b) {
    case 7: combine_fixed<7>(index, values, begin, end, in_b, in_stride, out_b, out_stride); break;
    case 6: combine_fixed<6>(index, values, begin, end, in_b, in_stride, out_b, out_stride); break;
    case 5: combine_fixed<5>(index, values, begin, end, in_b, in_stride, out_b, out_stride); break;
    case 4: combine_fixed<4>(index, values, begin, end, in_b, in_stride, out_b, out_stride); break;
    case 3: combine_fixed<3>(index, values, begin, end, in_b, in_stride, out_b, out_stride); break;
    case 2: combine_fixed<2>(index, values, begin, end, in_b, in_stride, out_b, out_stride); break;
    case 1: combine_fixed<1>(index, values, begin, end, in_b, in_stride, out_b, out_stride); break;
    default: break;
  }
  if (tail > 0 && full_end < b1)
    combine_part(index, values, begin, end, in + full_end * in_stride, tail,
                 out + full_end * out_stride + row * kLanes);
}

// dst[c * ldd + r] = src[r * lds + c] (+ bias[r] when given, + the old dst when accumulating) for the source
// rows [0, rows) and columns [0, cols): 16 x 16 tiles in registers with AVX-512 or AVX2, scalar edges.
void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows, int64_t cols,
                     bool accumulate, const float* bias) {
  const auto element = [&](int64_t r, int64_t c) {
    float v = src[r * lds + c];
    if (bias != nullptr) v += bias[r];
    float& out = dst[c * ldd + r];
    out = accumulate ? out + v : v;
  };
  int64_t r = 0;
#if defined(ST_VEC16)
  for (; r + 16 <= rows; r += 16) {
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16)
      transpose_tile(src + r * lds + c, lds, dst + c * ldd + r, ldd, accumulate, bias != nullptr ? bias + r : nullptr);
    for (; c < cols; ++c)
      for (int64_t rr = r; rr < r + 16; ++rr) element(rr, c);
  }
#endif
  constexpr int64_t kBlock = 32;  // the scalar rest (and everything without AVX2), in cache blocks
  for (; r < rows; r += kBlock) {
    const int64_t r_end = std::min(rows, r + kBlock);
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const int64_t c1 = std::min(cols, c0 + kBlock);
      for (int64_t rr = r; rr < r_end; ++rr)
        for (int64_t c = c0; c < c1; ++c) element(rr, c);
    }
  }
}

// The split of a batch among threads: ceil(batch / 16) blocks of 16 images, thread t of `threads` owning
// the blocks [t * blocks / threads, (t + 1) * blocks / threads); the last block holds `tail` images when
// tail > 0.
struct BatchSplit {
  int64_t batch = 0, blocks = 0, tail = 0;
  int threads = 1;
  BatchSplit(int64_t batch_size, bool parallel)
      : batch(batch_size), blocks((batch_size + kLanes - 1) / kLanes), tail(batch_size % kLanes) {
    threads = parallel ? static_cast<int>(std::min<int64_t>(omp_get_max_threads(), blocks)) : 1;
    threads = std::max(threads, 1);
  }
  int64_t begin(int t) const { return t * blocks / threads; }
  int64_t end(int t) const { return (t + 1) * blocks / threads; }
  int64_t images(int64_t block) const { return block == blocks - 1 && tail > 0 ? tail : kLanes; }
  int64_t tail_in(int64_t b1) const { return b1 == blocks ? tail : 0; }
};

// x [batch, features] -> blocked [blocks][features][16], the blocks [b0, b1).
void to_blocks(const BatchSplit& s, const float* x, int64_t features, float* blocked, int64_t b0, int64_t b1) {
  for (int64_t b = b0; b < b1; ++b)
    transpose_block(x + b * kLanes * features, features, blocked + b * features * kLanes, kLanes, s.images(b), features,
                    false, nullptr);
}

// blocked [blocks][features][16] -> y [batch, features] (+ bias[feature] when given, + the old y when
// accumulating), the blocks [b0, b1).
void from_blocks(const BatchSplit& s, const float* blocked, int64_t features, float* y, int64_t b0, int64_t b1,
                 bool accumulate, const float* bias) {
  for (int64_t b = b0; b < b1; ++b)
    transpose_block(blocked + b * features * kLanes, kLanes, y + b * kLanes * features, features, features,
                    s.images(b), accumulate, bias);
}

#if defined(ST_VEC16)
// part[i] += sum over V blocks of dyt[b][r] . xt[b][c_i] for the entries i of row r (dyt's blocks at
// stride rows * 16, xt's at cols * 16): the output gradient's blocks stay in registers across the row.
template <int V>
void sddmm_blocks(const SparsePattern& p, int64_t r, const float* dyt, const float* xt, float* part) {
  const int64_t dy_stride = p.rows * kLanes, x_stride = p.cols * kLanes;
  Vec16 g[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) g[v] = vload(dyt + v * dy_stride + r * kLanes);
  const int64_t begin = p.row_start[static_cast<std::size_t>(r)], end = p.row_start[static_cast<std::size_t>(r + 1)];
  const int32_t* index = p.col_index.data();
  for (int64_t i = begin; i < end; ++i) {
    if (i + 12 < end) {
      const float* ahead = xt + static_cast<int64_t>(index[i + 12]) * kLanes;
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) _mm_prefetch(reinterpret_cast<const char*>(ahead + v * x_stride), _MM_HINT_T0);
    }
    part[i] += dot_held<V>(g, xt + static_cast<int64_t>(index[i]) * kLanes, x_stride);
  }
}

#endif

// part[i] = sum over the blocks [b0, b1) of dyt[b][r] . xt[b][c_i] for the entries i of row r: 8 blocks
// at a time (or fewer), then the last block's `tail` images, added in that order.
void sddmm_row(const SparsePattern& p, int64_t r, const float* dyt, const float* xt, int64_t b0, int64_t b1,
               int64_t tail, float* part) {
  const int64_t begin = p.row_start[static_cast<std::size_t>(r)], end = p.row_start[static_cast<std::size_t>(r + 1)];
  const int64_t dy_stride = p.rows * kLanes, x_stride = p.cols * kLanes;
  std::fill(part + begin, part + end, 0.0f);
  const int64_t full_end = tail > 0 ? b1 - 1 : b1;
  int64_t b = b0;
#if defined(ST_VEC16)
  for (; b + kHeldBlocks <= full_end; b += kHeldBlocks)
    sddmm_blocks<kHeldBlocks>(p, r, dyt + b * dy_stride, xt + b * x_stride, part);
  const float* dyt_b = dyt + b * dy_stride;
  const float* xt_b = xt + b * x_stride;
  switch (full_end - b) {
    case 7: sddmm_blocks<7>(p, r, dyt_b, xt_b, part); break;
    case 6: sddmm_blocks<6>(p, r, dyt_b, xt_b, part); break;
    case 5: sddmm_blocks<5>(p, r, dyt_b, xt_b, part); break;
    case 4: sddmm_blocks<4>(p, r, dyt_b, xt_b, part); break;
    case 3: sddmm_blocks<3>(p, r, dyt_b, xt_b, part); break;
    case 2: sddmm_blocks<2>(p, r, dyt_b, xt_b, part); break;
    case 1: sddmm_blocks<1>(p, r, dyt_b, xt_b, part); break;
    default: break;
  }
  b = full_end;
#endif
  for (; b < b1; ++b) {
    const int64_t width = b == full_end ? tail : kLanes;
    const float* g = dyt + b * dy_stride + r * kLanes;
    for (int64_t i = begin; i < end; ++i)
      part[i] += dot(g, xt + b * x_stride + static_cast<int64_t>(p.col_index[static_cast<std::size_t>(i)]) * kLanes,
                     width);
  }
}

// Work below which a product runs on the calling thread.
bool parallel_work(const SparsePattern& p, int64_t batch) {
  return (p.nnz() + p.rows + p.cols) * batch > kSparseSerialWork;
}

}  // namespace

SparsePattern sparse_pattern(int64_t rows, int64_t cols, const float* mask) {
  SparsePattern p;
  p.rows = rows;
  p.cols = cols;
  p.row_start.assign(static_cast<std::size_t>(rows + 1), 0);
  p.col_start.assign(static_cast<std::size_t>(cols + 1), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* m = mask + r * cols;
    for (int64_t c = 0; c < cols; ++c)
      if (m[c] != 0.0f) {
        p.col_index.push_back(static_cast<int32_t>(c));
        ++p.col_start[static_cast<std::size_t>(c + 1)];
      }
    p.row_start[static_cast<std::size_t>(r + 1)] = p.nnz();
  }
  for (int64_t c = 0; c < cols; ++c)
    p.col_start[static_cast<std::size_t>(c + 1)] += p.col_start[static_cast<std::size_t>(c)];
  p.row_index.resize(p.col_index.size());
  p.csr_position.resize(p.col_index.size());
  std::vector<int64_t> next(p.col_start.begin(), p.col_start.end() - 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = p.row_start[static_cast<std::size_t>(r)]; i < p.row_start[static_cast<std::size_t>(r + 1)]; ++i) {
      const auto slot =
          static_cast<std::size_t>(next[static_cast<std::size_t>(p.col_index[static_cast<std::size_t>(i)])]++);
      p.row_index[slot] = static_cast<int32_t>(r);
      p.csr_position[slot] = i;
    }
  return p;
}
void sparse_gather(const SparsePattern& p, const float* w, float* values) {
#pragma omp parallel for schedule(static) if (p.nnz() > kSparseSerialWork / 8)
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t i = p.row_start[static_cast<std::size_t>(r)]; i < p.row_start[static_cast<std::size_t>(r + 1)]; ++i)
      values[i] = w[r * p.cols + p.col_index[static_cast<std::size_t>(i)]];
}

int64_t sparse_linear_blocked_size(int64_t batch, int64_t features) {
  return (batch + kLanes - 1) / kLanes * kLanes * features;
}

void sparse_linear_forward(int64_t batch, const SparsePattern& p, const float* values, const float* x, const float* b,
                           float* y, float* xt_out) {
  if (batch == 0) return;
  const BatchSplit split(batch, parallel_work(p, batch));
  float* xt = xt_out != nullptr ? xt_out : scratch(0, sparse_linear_blocked_size(batch, p.cols));
  float* yt = scratch(1, sparse_linear_blocked_size(batch, p.rows));
#pragma omp parallel num_threads(split.threads) if (split.threads > 1)
  {
    const int t = omp_get_thread_num();
    const int64_t b0 = split.begin(t), b1 = split.end(t), tail = split.tail_in(b1);
    if (b0 < b1) {
      to_blocks(split, x, p.cols, xt, b0, b1);
      for (int64_t r = 0; r < p.rows; ++r)
        combine_blocks(p.col_index.data(), values, p.row_start[static_cast<std::size_t>(r)],
                       p.row_start[static_cast<std::size_t>(r + 1)], xt, p.cols, yt, p.rows, r, b0, b1, tail);
      from_blocks(split, yt, p.rows, y, b0, b1, false, b);
    }
  }
}

void sparse_linear_backward(int64_t batch, const SparsePattern& p, const float* values, const float* x, const float* dy,
                            float* dx, float* dw, float* db, const float* xt_in) {
  if (batch == 0) return;
  const BatchSplit split(batch, parallel_work(p, batch));
  float* dyt = scratch(1, sparse_linear_blocked_size(batch, p.rows));
  float* xt_own = dw != nullptr && xt_in == nullptr ? scratch(0, sparse_linear_blocked_size(batch, p.cols)) : nullptr;
  const float* xt = xt_in != nullptr ? xt_in : xt_own;
  float* csc_values = dx != nullptr ? scratch(3, p.nnz()) : nullptr;
  float* dxt = dx != nullptr ? scratch(2, sparse_linear_blocked_size(batch, p.cols)) : nullptr;
  float* dw_part = dw != nullptr ? scratch(4, p.nnz() * split.threads) : nullptr;
  float* db_part = db != nullptr ? scratch(5, p.rows * split.threads) : nullptr;
#pragma omp parallel num_threads(split.threads) if (split.threads > 1)
  {
    const int t = omp_get_thread_num();
    const int64_t b0 = split.begin(t), b1 = split.end(t), tail = split.tail_in(b1);
    if (dx != nullptr) {
#pragma omp for schedule(static) nowait
      for (int64_t i = 0; i < p.nnz(); ++i) csc_values[i] = values[p.csr_position[static_cast<std::size_t>(i)]];
    }
    to_blocks(split, dy, p.rows, dyt, b0, b1);
    if (xt_own != nullptr) to_blocks(split, x, p.cols, xt_own, b0, b1);
#pragma omp barrier
    if (dx != nullptr && b0 < b1) {
      for (int64_t c = 0; c < p.cols; ++c)
        combine_blocks(p.row_index.data(), csc_values, p.col_start[static_cast<std::size_t>(c)],
                       p.col_start[static_cast<std::size_t>(c + 1)], dyt, p.rows, dxt, p.cols, c, b0, b1, tail);
      from_blocks(split, dxt, p.cols, dx, b0, b1, true, nullptr);  // dx += dxt, back in [batch, cols]
    }
    if (dw_part != nullptr) {
      float* part = dw_part + t * p.nnz();
      for (int64_t r = 0; r < p.rows; ++r) sddmm_row(p, r, dyt, xt, b0, b1, tail, part);
    }
    if (db_part != nullptr) {
      float* part = db_part + t * p.rows;
      for (int64_t r = 0; r < p.rows; ++r) {
        float sum = 0.0f;
        for (int64_t blk = b0; blk < b1; ++blk) {
          const float* g = dyt + (blk * p.rows + r) * kLanes;
          for (int64_t n = 0; n < split.images(blk); ++n) sum += g[n];
        }
        part[r] = sum;
      }
    }
    // the threads' partial sums, added in thread order
#pragma omp barrier
    if (dw != nullptr) {
#pragma omp for schedule(static)
      for (int64_t r = 0; r < p.rows; ++r)
        for (int64_t i = p.row_start[static_cast<std::size_t>(r)]; i < p.row_start[static_cast<std::size_t>(r + 1)];
             ++i) {
          float sum = dw_part[i];
          for (int u = 1; u < split.threads; ++u) sum += dw_part[u * p.nnz() + i];
          dw[r * p.cols + p.col_index[static_cast<std::size_t>(i)]] += sum;
        }
    }
    if (db != nullptr) {
#pragma omp for schedule(static)
      for (int64_t r = 0; r < p.rows; ++r) {
        float sum = db_part[r];
        for (int u = 1; u < split.threads; ++u) sum += db_part[u * p.rows + r];
        db[r] += sum;
      }
    }
  }
}

}  // namespace st::cpu
