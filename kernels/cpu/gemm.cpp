// GEMM on the CPU through OpenBLAS's sgemm. OpenBLAS is pinned to one thread: all parallelism in the
// engine is OpenMP at our level (one thread pool, no oversubscription on small machines), and a
// parallel GEMM splits C into disjoint per-thread blocks so no reduction changes the summation order.
// Without OpenBLAS (ST_HAVE_OPENBLAS undefined: the GPU machines, which have no Debian packages and
// need the CPU only as the reference of the parity tests) a plain loop GEMM stands in: correct and
// deterministic, several times slower.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/kernels.h"

#ifdef ST_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace st::cpu {

#ifdef ST_HAVE_OPENBLAS
namespace {

struct SingleThreadedBlas {
  SingleThreadedBlas() { openblas_set_num_threads(1); }
};
const SingleThreadedBlas pin_blas_threads;

}  // namespace
#endif

int thread_count() { return omp_get_max_threads(); }

void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
#ifdef ST_HAVE_OPENBLAS
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
#else
  // C = alpha op(A) op(B) + beta C with op(B) copied to a row-major k x n block, rows of C
  // accumulated as saxpy's (the compiler vectorises the inner loop).
  std::vector<float> b_rows(static_cast<std::size_t>(k * n));
  for (int64_t p = 0; p < k; ++p)
    for (int64_t j = 0; j < n; ++j)
      b_rows[static_cast<std::size_t>(p * n + j)] = transpose_b ? b[j * ldb + p] : b[p * ldb + j];
  std::vector<float> row(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), 0.0f);
    for (int64_t p = 0; p < k; ++p) {
      const float a_ip = transpose_a ? a[p * lda + i] : a[i * lda + p];
      const float* b_row = b_rows.data() + p * n;
      for (int64_t j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] += a_ip * b_row[j];
    }
    float* c_row = c + i * ldc;
    for (int64_t j = 0; j < n; ++j)
      c_row[j] = alpha * row[static_cast<std::size_t>(j)] + (beta == 0.0f ? 0.0f : beta * c_row[j]);
  }
#endif
}

void parallel_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int threads = thread_count();
  const bool tiny = m * n * k < 32 * 32 * 32;
  if (threads <= 1 || tiny) {
    gemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Split the longer side of C; keep blocks a multiple of 16 for the sgemm micro-kernels.
  const bool split_rows = m >= n;
  const int64_t extent = split_rows ? m : n;
  const int64_t block = std::max<int64_t>(16, ((extent + threads - 1) / threads + 15) / 16 * 16);
  const int64_t blocks = (extent + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int64_t index = 0; index < blocks; ++index) {
    const int64_t begin = index * block;
    const int64_t size = std::min(block, extent - begin);
    if (split_rows) {
      const float* a_block = transpose_a ? a + begin : a + begin * lda;
      gemm(transpose_a, transpose_b, size, n, k, alpha, a_block, lda, b, ldb, beta, c + begin * ldc, ldc);
    } else {
      const float* b_block = transpose_b ? b + begin * ldb : b + begin;
      gemm(transpose_a, transpose_b, m, size, k, alpha, a, lda, b_block, ldb, beta, c + begin, ldc);
    }
  }
}

}  // namespace st::cpu
