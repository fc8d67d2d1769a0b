// The sparse linear layer (formulas and layout in kernels/cpu/sparse.h).
//
// Inner loops: one stored weight scales a contiguous batch row into an accumulator tile (with AVX-512:
// 128 floats in 8 registers, written with intrinsics so they stay in registers across the row's
// entries; tiles of 16, then a run-time width, for the rest of the batch), or, for the weight gradient,
// dots two batch rows with 4 independent accumulators. Without AVX-512 the same loops in portable
// simd form.
#include <algorithm>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/sparse.h"

namespace st::cpu {
namespace {

// Grow-only scratch arrays of the calling thread (the products are called from outside parallel
// regions), so a training step allocates and clears nothing: slot 0 transposed inputs, 1 transposed
// outputs or output gradients, 2 transposed input gradients, 3 the values in CSC order.
float* scratch(int slot, int64_t count) {
  thread_local std::vector<float> buffers[4];
  std::vector<float>& buffer = buffers[slot];
  if (buffer.size() < static_cast<std::size_t>(count)) buffer.resize(static_cast<std::size_t>(count));
  return buffer.data();
}

#if defined(__AVX512F__)
// out[0, 16 V) = sum_j values[j] * rows[index[j] * ld + 0 .. 16 V) over the entries [begin, end): V
// accumulator registers, one broadcast and V fused multiply-adds per stored weight, the row of the
// entry after next prefetched.
template <int V>
inline void combine_fixed(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* rows,
                          int64_t ld, float* out) {
  __m512 acc[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) acc[v] = _mm512_setzero_ps();
  for (int64_t j = begin; j < end; ++j) {
    if (j + 2 < end) {
      const float* ahead = rows + static_cast<int64_t>(index[j + 2]) * ld;
#pragma GCC unroll 8
      for (int v = 0; v < V; v += 4) _mm_prefetch(reinterpret_cast<const char*>(ahead + 16 * v), _MM_HINT_T0);
    }
    const __m512 w = _mm512_set1_ps(values[j]);
    const float* src = rows + static_cast<int64_t>(index[j]) * ld;
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(src + 16 * v), acc[v]);
  }
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) _mm512_storeu_ps(out + 16 * v, acc[v]);
}

// sum_i a[i] b[i] over n floats with 4 independent accumulator registers. GCC 12's header for the
// final horizontal sum reads an undefined register on purpose (its upper half is discarded), which
// -Wuninitialized reports: silenced here alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
inline float dot(const float* a, const float* b, int64_t n) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v)
      acc[v] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16 * v), _mm512_loadu_ps(b + i + 16 * v), acc[v]);
  for (; i + 16 <= n; i += 16) acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc[0]);
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}
#pragma GCC diagnostic pop
constexpr int64_t kWide = 128;  // batch floats per tile: 8 registers
constexpr int64_t kNarrow = 16;
#else
template <int V>
inline void combine_fixed(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* rows,
                          int64_t ld, float* out) {
  constexpr int64_t kWidth = 16 * V;
  float acc[kWidth];
#pragma omp simd
  for (int64_t i = 0; i < kWidth; ++i) acc[i] = 0.0f;
  for (int64_t j = begin; j < end; ++j) {
    const float v = values[j];
    const float* src = rows + static_cast<int64_t>(index[j]) * ld;
#pragma omp simd
    for (int64_t i = 0; i < kWidth; ++i) acc[i] += v * src[i];
  }
#pragma omp simd
  for (int64_t i = 0; i < kWidth; ++i) out[i] = acc[i];
}

inline float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}
constexpr int64_t kWide = 64;
constexpr int64_t kNarrow = 16;
#endif

inline void combine_any(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* rows,
                        int64_t ld, int64_t width, float* out) {
  std::fill(out, out + width, 0.0f);
  for (int64_t j = begin; j < end; ++j) {
    const float v = values[j];
    const float* src = rows + static_cast<int64_t>(index[j]) * ld;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) out[i] += v * src[i];
  }
}

// out_row[0, batch) = sum over entries [begin, end) of values[j] * rows[index[j]] (rows [*, batch]): tiles
// of kWide floats, then of 16, then the rest.
inline void combine_row(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* rows,
                        int64_t batch, float* out_row) {
  int64_t n0 = 0;
  for (; n0 + kWide <= batch; n0 += kWide)
    combine_fixed<static_cast<int>(kWide / 16)>(index, values, begin, end, rows + n0, batch, out_row + n0);
  for (; n0 + kNarrow <= batch; n0 += kNarrow)
    combine_fixed<1>(index, values, begin, end, rows + n0, batch, out_row + n0);
  if (n0 < batch) combine_any(index, values, begin, end, rows + n0, batch, batch - n0, out_row + n0);
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

void transpose(int64_t rows, int64_t cols, const float* src, float* dst) {
  constexpr int64_t kBlock = 32;
#pragma omp parallel for schedule(static) if (rows * cols > kSparseSerialWork / 8)
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = std::min(rows, r0 + kBlock);
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const int64_t c1 = std::min(cols, c0 + kBlock);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
    }
  }
}

void sparse_linear_forward(int64_t batch, const SparsePattern& p, const float* values, const float* x, const float* b,
                           float* y) {
  if (batch == 0) return;
  float* xt = scratch(0, p.cols * batch);
  float* yt = scratch(1, p.rows * batch);
  transpose(batch, p.cols, x, xt);
  const bool parallel = (p.nnz() + p.rows + p.cols) * batch > kSparseSerialWork;
#pragma omp parallel for schedule(dynamic, 8) if (parallel)
  for (int64_t r = 0; r < p.rows; ++r)
    combine_row(p.col_index.data(), values, p.row_start[static_cast<std::size_t>(r)],
                p.row_start[static_cast<std::size_t>(r + 1)], xt, batch, yt + r * batch);
  transpose(p.rows, batch, yt, y);
  if (b != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t r = 0; r < p.rows; ++r) y[n * p.rows + r] += b[r];
  }
}

void sparse_linear_backward(int64_t batch, const SparsePattern& p, const float* values, const float* x, const float* dy,
                            float* dx, float* dw, float* db) {
  if (batch == 0) return;
  float* dyt = scratch(1, p.rows * batch);
  transpose(batch, p.rows, dy, dyt);
  const bool parallel = (p.nnz() + p.rows + p.cols) * batch > kSparseSerialWork;
  if (dx != nullptr) {
    float* csc_values = scratch(3, p.nnz());
    float* dxt = scratch(2, p.cols * batch);
    for (std::size_t i = 0; i < p.csr_position.size(); ++i) csc_values[i] = values[p.csr_position[i]];
#pragma omp parallel for schedule(dynamic, 8) if (parallel)
    for (int64_t c = 0; c < p.cols; ++c)
      combine_row(p.row_index.data(), csc_values, p.col_start[static_cast<std::size_t>(c)],
                  p.col_start[static_cast<std::size_t>(c + 1)], dyt, batch, dxt + c * batch);
    // dx[n, c] += dxt[c, n], blocked like transpose
    constexpr int64_t kBlock = 32;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t n0 = 0; n0 < batch; n0 += kBlock) {
      const int64_t n1 = std::min(batch, n0 + kBlock);
      for (int64_t c0 = 0; c0 < p.cols; c0 += kBlock) {
        const int64_t c1 = std::min(p.cols, c0 + kBlock);
        for (int64_t n = n0; n < n1; ++n)
          for (int64_t c = c0; c < c1; ++c) dx[n * p.cols + c] += dxt[c * batch + n];
      }
    }
  }
  if (dw != nullptr) {
    float* xt = scratch(0, p.cols * batch);
    transpose(batch, p.cols, x, xt);
#pragma omp parallel for schedule(dynamic, 8) if (parallel)
    for (int64_t r = 0; r < p.rows; ++r) {
      const float* g = dyt + r * batch;
      for (int64_t i = p.row_start[static_cast<std::size_t>(r)]; i < p.row_start[static_cast<std::size_t>(r + 1)];
           ++i) {
        const int64_t c = p.col_index[static_cast<std::size_t>(i)];
        dw[r * p.cols + c] += dot(g, xt + c * batch, batch);
      }
    }
  }
  if (db != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < p.rows; ++r) {
      const float* g = dyt + r * batch;
      float sum = 0.0f;
      for (int64_t n = 0; n < batch; ++n) sum += g[n];
      db[r] += sum;
    }
  }
}

}  // namespace st::cpu
