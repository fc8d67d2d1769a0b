// Our GEMM and linear layer (kernels/cuda/gemm.h) on the tiled engine of implicit_gemm.cuh, and the
// deterministic column sums behind every bias gradient (fixed chunking and summation order, no atomics).
#include <algorithm>

#include "kernels/cuda/gemm.h"
#include "kernels/cuda/implicit_gemm.cuh"

namespace st::cuda {
namespace igemm {
namespace {

constexpr int kSumLanes = 8;  // row lanes per column in column_partial_sums_kernel

// Block (32 columns x 8 row lanes) sums the rows of chunk blockIdx.y for 32 columns: lane ty adds rows
// ty, ty + 8, ... in order, then lane 0 adds the 8 lane sums in order -> partial[chunk * cols + col].
__global__ void column_partial_sums_kernel(int rows, int cols, int rows_per_chunk, const float* x, float* partial) {
  __shared__ float lane_sums[kSumLanes][33];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int col = static_cast<int>(blockIdx.x) * 32 + tx, chunk = static_cast<int>(blockIdx.y);
  const int begin = chunk * rows_per_chunk, end = min(rows, begin + rows_per_chunk);
  float sum = 0.0f;
  if (col < cols)
    for (int row = begin + ty; row < end; row += kSumLanes) sum += x[row * cols + col];
  lane_sums[ty][tx] = sum;
  __syncthreads();
  if (ty == 0 && col < cols) {
    float total = 0.0f;
    for (int lane = 0; lane < kSumLanes; ++lane) total += lane_sums[lane][tx];
    partial[chunk * cols + col] = total;
  }
}

__global__ void accumulate_partials_kernel(int parts, int count, const float* partial, float* destination) {
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < count;
       i += static_cast<int>(gridDim.x * blockDim.x)) {
    float sum = 0.0f;
    for (int p = 0; p < parts; ++p) sum += partial[p * count + i];
    destination[i] += sum;
  }
}

}  // namespace

void accumulate_partials(int parts, int count, const float* partial, float* destination, Stream stream) {
  if (count <= 0) return;
  const int blocks = min(ceil_div(count, 256), 4096);
  accumulate_partials_kernel<<<blocks, 256, 0, stream>>>(parts, count, partial, destination);
  ST_CUDA_CHECK_LAUNCH();
}

void column_sums_accumulate(int rows, int cols, const float* x, float* sums, Stream stream) {
  if (rows <= 0 || cols <= 0) return;
  // About 1024 blocks and at least 64 rows per chunk; the chunking depends on the shape only.
  const int column_blocks = ceil_div(cols, 32);
  const int max_chunks = max(1, 1024 / column_blocks);
  const int rows_per_chunk = ceil_div(rows, min(ceil_div(rows, 64), max_chunks));
  const int chunks = ceil_div(rows, rows_per_chunk);
  float* partial = static_cast<float*>(
      stream_workspace(stream, static_cast<std::size_t>(chunks) * static_cast<std::size_t>(cols) * sizeof(float)));
  column_partial_sums_kernel<<<dim3(static_cast<unsigned>(column_blocks), static_cast<unsigned>(chunks)),
                               dim3(32, kSumLanes), 0, stream>>>(rows, cols, rows_per_chunk, x, partial);
  ST_CUDA_CHECK_LAUNCH();
  accumulate_partials(chunks, cols, partial, sums, stream);
}

}  // namespace igemm

namespace {

// gemm with an optional per-column bias added in the epilogue (linear_forward).
void gemm_with_bias(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, const float* bias,
                    Stream stream, const char* caller) {
  using igemm::checked_int;
  using igemm::fail_argument;
  const int rows = checked_int(m, caller, "m"), cols = checked_int(n, caller, "n"), depth = checked_int(k, caller, "k");
  if (rows == 0 || cols == 0) return;
  // Leading dimensions as BLAS requires them (row-major): at least the stored row length.
  const int64_t a_row = transpose_a ? m : k, b_row = transpose_b ? k : n;
  if (lda < std::max<int64_t>(a_row, 1)) fail_argument(caller, "lda = ", lda, " < ", a_row, " (row length of A)");
  if (ldb < std::max<int64_t>(b_row, 1)) fail_argument(caller, "ldb = ", ldb, " < ", b_row, " (row length of B)");
  if (ldc < n) fail_argument(caller, "ldc = ", ldc, " < n = ", n);
  if (c == nullptr || (depth > 0 && (a == nullptr || b == nullptr))) fail_argument(caller, "null matrix pointer");
  // Every element offset must fit 32 bits: the last stored row starts at (rows - 1) * ld.
  checked_int((transpose_a ? k : m) * lda, caller, "stored size of A");
  checked_int((transpose_b ? n : k) * ldb, caller, "stored size of B");
  checked_int(m * ldc, caller, "stored size of C");
  const int lda32 = static_cast<int>(lda), ldb32 = static_cast<int>(ldb), ldc32 = static_cast<int>(ldc);
  auto run = [&](auto problem) { igemm::run(problem, rows, cols, depth, 1, stream, caller); };
  if (!transpose_a && !transpose_b)
    run(igemm::GemmProblem<false, false>{rows, cols, alpha, beta, a, lda32, b, ldb32, c, ldc32, bias});
  else if (!transpose_a && transpose_b)
    run(igemm::GemmProblem<false, true>{rows, cols, alpha, beta, a, lda32, b, ldb32, c, ldc32, bias});
  else if (transpose_a && !transpose_b)
    run(igemm::GemmProblem<true, false>{rows, cols, alpha, beta, a, lda32, b, ldb32, c, ldc32, bias});
  else
    run(igemm::GemmProblem<true, true>{rows, cols, alpha, beta, a, lda32, b, ldb32, c, ldc32, bias});
}

}  // namespace

void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Stream stream) {
  gemm_with_bias(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, nullptr, stream,
                 "st::cuda::gemm");
}

void linear_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y,
                    Stream stream) {
  // y = x W^T (+ b in the epilogue)
  gemm_with_bias(false, true, batch, out, in, 1.0f, x, in, w, in, 0.0f, y, out, b, stream, "st::cuda::linear_forward");
}

void linear_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db, Stream stream) {
  constexpr const char* kCaller = "st::cuda::linear_backward";
  if (dx != nullptr)
    gemm_with_bias(false, false, batch, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in, nullptr, stream, kCaller);
  if (dw != nullptr)
    gemm_with_bias(true, false, out, in, batch, 1.0f, dy, out, x, in, 1.0f, dw, in, nullptr, stream, kCaller);
  if (db != nullptr)
    igemm::column_sums_accumulate(igemm::checked_int(batch, kCaller, "batch"), igemm::checked_int(out, kCaller, "out"),
                                  dy, db, stream);
}

}  // namespace st::cuda
