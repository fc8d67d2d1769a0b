// GEMM and the linear layer through cuBLAS (kernels/vendor/vendor.h). cuBLAS is column-major: a row-major
// matrix is its column-major transpose with the same leading dimension, so row-major C = op(A) op(B) is
// computed as column-major C^T = op(B)^T op(A)^T, i.e. cuBLAS is called with the operands swapped and the
// same transpose flags. Compute type CUBLAS_COMPUTE_32F_FAST_TF32 when st::cuda::tf32_enabled(), else
// CUBLAS_COMPUTE_32F. The bias gradient is a gemv of dy^T with a cached vector of ones.
#include <cublas_v2.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "kernels/vendor/vendor.h"

namespace st::vendor {
namespace {

cublasHandle_t cublas_handle(Stream stream) {
  static std::mutex mutex;
  static std::map<std::pair<int, Stream>, cublasHandle_t> handles;  // kept for the life of the process
  int device = 0;
  ST_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  auto found = handles.find({device, stream});
  if (found != handles.end()) return found->second;
  cublasHandle_t handle = nullptr;
  ST_CUBLAS_CHECK(cublasCreate(&handle));
  ST_CUBLAS_CHECK(cublasSetStream(handle, stream));
  handles.emplace(std::make_pair(device, stream), handle);
  return handle;
}

__global__ void fill_kernel(int count, float value, float* destination) {
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < count;
       i += static_cast<int>(gridDim.x * blockDim.x))
    destination[i] = value;
}

// y[row, j] = b[j] for every row (the bias the GEMM then adds to with beta = 1).
__global__ void broadcast_rows_kernel(int rows, int cols, const float* b, float* y) {
  const int count = rows * cols;
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < count;
       i += static_cast<int>(gridDim.x * blockDim.x))
    y[i] = b[i % cols];
}

int blocks_for(int count) { return std::max(1, std::min((count + 255) / 256, 4096)); }

// A device vector of at least `count` ones, per device, filled once (synchronously); grows by
// reallocating after synchronising the device, as queued work may read the old one.
const float* ones(int count, Stream stream) {
  static std::mutex mutex;
  static std::map<int, std::pair<float*, int>> vectors;
  int device = 0;
  ST_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  std::pair<float*, int>& vector = vectors[device];
  if (vector.second >= count) return vector.first;
  if (vector.first != nullptr) {
    ST_CUDA_CHECK(cudaDeviceSynchronize());
    ST_CUDA_CHECK(cudaFree(vector.first));
  }
  const int size = std::max(count, 1024);
  ST_CUDA_CHECK(cudaMalloc(&vector.first, static_cast<std::size_t>(size) * sizeof(float)));
  vector.second = size;
  fill_kernel<<<blocks_for(size), 256, 0, stream>>>(size, 1.0f, vector.first);
  ST_CUDA_CHECK_LAUNCH();
  ST_CUDA_CHECK(cudaStreamSynchronize(stream));  // ready before any stream reads it
  return vector.first;
}

int as_int(int64_t value, const char* caller, const char* what) {
  if (value < 0 || value > 0x7fffffff) {
    std::ostringstream text;
    text << what << " = " << value << " is out of cuBLAS's int range";
    cuda::throw_invalid_argument(caller, text.str().c_str());
  }
  return static_cast<int>(value);
}

void gemm_checked(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Stream stream,
                  const char* caller) {
  const int rows = as_int(m, caller, "m"), cols = as_int(n, caller, "n"), depth = as_int(k, caller, "k");
  if (lda < std::max<int64_t>(transpose_a ? m : k, 1) || ldb < std::max<int64_t>(transpose_b ? k : n, 1) ||
      ldc < std::max<int64_t>(n, 1))
    cuda::throw_invalid_argument(caller, "a leading dimension is shorter than its stored row");
  if (rows == 0 || cols == 0) return;
  const cublasHandle_t handle = cublas_handle(stream);
  const cublasComputeType_t compute = cuda::tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  ST_CUBLAS_CHECK(cublasGemmEx(handle, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                               cols, rows, depth, &alpha, b, CUDA_R_32F, as_int(ldb, caller, "ldb"), a, CUDA_R_32F,
                               as_int(lda, caller, "lda"), &beta, c, CUDA_R_32F, as_int(ldc, caller, "ldc"), compute,
                               CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Stream stream) {
  gemm_checked(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, stream, "st::vendor::gemm");
}

void linear_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y,
                    Stream stream) {
  constexpr const char* kCaller = "st::vendor::linear_forward";
  if (b != nullptr) {
    const int rows = as_int(batch, kCaller, "batch"), cols = as_int(out, kCaller, "out");
    if (rows > 0 && cols > 0) {
      as_int(batch * out, kCaller, "batch * out");
      broadcast_rows_kernel<<<blocks_for(rows * cols), 256, 0, stream>>>(rows, cols, b, y);
      ST_CUDA_CHECK_LAUNCH();
    }
  }
  gemm_checked(false, true, batch, out, in, 1.0f, x, in, w, in, b != nullptr ? 1.0f : 0.0f, y, out, stream, kCaller);
}

void linear_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db, Stream stream) {
  constexpr const char* kCaller = "st::vendor::linear_backward";
  if (dx != nullptr) gemm_checked(false, false, batch, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in, stream, kCaller);
  if (dw != nullptr) gemm_checked(true, false, out, in, batch, 1.0f, dy, out, x, in, 1.0f, dw, in, stream, kCaller);
  if (db != nullptr) {
    const int rows = as_int(batch, kCaller, "batch"), cols = as_int(out, kCaller, "out");
    if (rows == 0 || cols == 0) return;
    // dy is row-major [batch, out] = column-major out x batch (ld out): db += dy^T-view * ones
    const float one = 1.0f;
    const float* ones_vector = ones(rows, stream);
    ST_CUBLAS_CHECK(
        cublasSgemv(cublas_handle(stream), CUBLAS_OP_N, cols, rows, &one, dy, cols, ones_vector, 1, &one, db, 1));
  }
}

}  // namespace st::vendor
