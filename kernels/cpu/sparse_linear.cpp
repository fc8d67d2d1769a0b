// The sparse linear layer (formulas and layout in kernels/cpu/sparse.h).
//
// Inner loops: one stored weight scales a contiguous batch row into an accumulator tile of kTile floats
// (4 AVX-512 registers, kept in registers across the row's entries: the tile has a compile-time size),
// or, for the weight gradient, dots two batch rows. Batches that are not a multiple of kTile finish
// with a tile of run-time width.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/sparse.h"

namespace st::cpu {
namespace {

constexpr int64_t kTile = 64;

// out[0, width) = sum_j values[j] * rows[index[j] * ld + 0 .. width), for the entries [begin, end).
template <int64_t Width>
inline void combine_fixed(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* rows,
                          int64_t ld, float* out) {
  float acc[Width];
#pragma omp simd
  for (int64_t i = 0; i < Width; ++i) acc[i] = 0.0f;
  for (int64_t j = begin; j < end; ++j) {
    const float v = values[j];
    const float* src = rows + static_cast<int64_t>(index[j]) * ld;
#pragma omp simd
    for (int64_t i = 0; i < Width; ++i) acc[i] += v * src[i];
  }
#pragma omp simd
  for (int64_t i = 0; i < Width; ++i) out[i] = acc[i];
}

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

// out_row[0, batch) = sum over entries [begin, end) of values[j] * rows[index[j]] (rows [*, batch]).
inline void combine_row(const int32_t* index, const float* values, int64_t begin, int64_t end, const float* rows,
                        int64_t batch, float* out_row) {
  int64_t n0 = 0;
  for (; n0 + kTile <= batch; n0 += kTile) combine_fixed<kTile>(index, values, begin, end, rows + n0, batch, out_row + n0);
  if (n0 < batch) combine_any(index, values, begin, end, rows + n0, batch, batch - n0, out_row + n0);
}

inline float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
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
  for (int64_t c = 0; c < cols; ++c) p.col_start[static_cast<std::size_t>(c + 1)] += p.col_start[static_cast<std::size_t>(c)];
  p.row_index.resize(p.col_index.size());
  p.csr_position.resize(p.col_index.size());
  std::vector<int64_t> next(p.col_start.begin(), p.col_start.end() - 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = p.row_start[static_cast<std::size_t>(r)]; i < p.row_start[static_cast<std::size_t>(r + 1)]; ++i) {
      const auto slot = static_cast<std::size_t>(next[static_cast<std::size_t>(p.col_index[static_cast<std::size_t>(i)])]++);
      p.row_index[slot] = static_cast<int32_t>(r);
      p.csr_position[slot] = i;
    }
  return p;
}

void sparse_gather(const SparsePattern& p, const float* w, float* values) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t i = p.row_start[static_cast<std::size_t>(r)]; i < p.row_start[static_cast<std::size_t>(r + 1)]; ++i)
      values[i] = w[r * p.cols + p.col_index[static_cast<std::size_t>(i)]];
}

void transpose(int64_t rows, int64_t cols, const float* src, float* dst) {
  constexpr int64_t kBlock = 32;
#pragma omp parallel for schedule(static)
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
  std::vector<float> xt(static_cast<std::size_t>(p.cols * batch)), yt(static_cast<std::size_t>(p.rows * batch));
  transpose(batch, p.cols, x, xt.data());
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t r = 0; r < p.rows; ++r)
    combine_row(p.col_index.data(), values, p.row_start[static_cast<std::size_t>(r)],
                p.row_start[static_cast<std::size_t>(r + 1)], xt.data(), batch, yt.data() + r * batch);
  transpose(p.rows, batch, yt.data(), y);
  if (b != nullptr) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t r = 0; r < p.rows; ++r) y[n * p.rows + r] += b[r];
  }
}

void sparse_linear_backward(int64_t batch, const SparsePattern& p, const float* values, const float* x,
                            const float* dy, float* dx, float* dw, float* db) {
  if (batch == 0) return;
  std::vector<float> dyt(static_cast<std::size_t>(p.rows * batch));
  transpose(batch, p.rows, dy, dyt.data());
  if (dx != nullptr) {
    std::vector<float> csc_values(p.csr_position.size()), dxt(static_cast<std::size_t>(p.cols * batch));
    for (std::size_t i = 0; i < csc_values.size(); ++i) csc_values[i] = values[p.csr_position[i]];
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t c = 0; c < p.cols; ++c)
      combine_row(p.row_index.data(), csc_values.data(), p.col_start[static_cast<std::size_t>(c)],
                  p.col_start[static_cast<std::size_t>(c + 1)], dyt.data(), batch, dxt.data() + c * batch);
    // dx[n, c] += dxt[c, n], blocked like transpose
    constexpr int64_t kBlock = 32;
#pragma omp parallel for schedule(static)
    for (int64_t n0 = 0; n0 < batch; n0 += kBlock) {
      const int64_t n1 = std::min(batch, n0 + kBlock);
      for (int64_t c0 = 0; c0 < p.cols; c0 += kBlock) {
        const int64_t c1 = std::min(p.cols, c0 + kBlock);
        for (int64_t n = n0; n < n1; ++n)
          for (int64_t c = c0; c < c1; ++c) dx[n * p.cols + c] += dxt[static_cast<std::size_t>(c * batch + n)];
      }
    }
  }
  if (dw != nullptr) {
    std::vector<float> xt(static_cast<std::size_t>(p.cols * batch));
    transpose(batch, p.cols, x, xt.data());
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t r = 0; r < p.rows; ++r) {
      const float* g = dyt.data() + r * batch;
      for (int64_t i = p.row_start[static_cast<std::size_t>(r)]; i < p.row_start[static_cast<std::size_t>(r + 1)]; ++i) {
        const int64_t c = p.col_index[static_cast<std::size_t>(i)];
        dw[r * p.cols + c] += dot(g, xt.data() + c * batch, batch);
      }
    }
  }
  if (db != nullptr) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < p.rows; ++r) {
      const float* g = dyt.data() + r * batch;
      float sum = 0.0f;
      for (int64_t n = 0; n < batch; ++n) sum += g[n];
      db[r] += sum;
    }
  }
}

}  // namespace st::cpu
