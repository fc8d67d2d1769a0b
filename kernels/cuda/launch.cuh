// Building blocks shared by the op families of kernels/cuda (nvcc only, not a public header): argument
// checks, launch sizes, grid-stride indexing, deterministic warp/block reductions, and the
// deterministic per-column reduction used by BatchNorm and column_sums. Errors of CUDA calls and
// launches are checked with ST_CUDA_CHECK / ST_CUDA_CHECK_LAUNCH (kernels/cuda/common.h).
//
// Determinism: every reduction here combines values in an order fixed by the launch shape, and the
// launch shape depends only on the problem size (never on the device), so results are bit-identical
// from run to run and from GPU to GPU of the same architecture. No floating-point atomics.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "kernels/cuda/allocator.h"
#include "kernels/cuda/common.h"

namespace st::cuda {

// Throws std::invalid_argument "<function>: <what>" when `ok` is false (bad sizes, null pointers).
inline void require(bool ok, const char* function, const char* what) {
  if (!ok) throw_invalid_argument(function, what);
}

// The parts joined by appending (no `"x" + std::string`, which trips GCC 12's false -Werror=restrict).
inline std::string join(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out.append(part.data(), part.size());
  return out;
}

}  // namespace st::cuda

namespace st::cuda::detail {

constexpr int kThreads = 256;  // threads per block of the 1-D (grid-stride) kernels
constexpr int kWarp = 32;
// Cap on the blocks of a grid-stride launch: 2^18 blocks * 256 threads = 2^26 threads, far more than
// an H100 keeps resident; larger arrays are covered by the grid-stride loop.
constexpr int64_t kMaxBlocks = int64_t{1} << 18;

// Blocks for a grid-stride loop over n elements (n > 0).
inline unsigned int grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// Launches a grid-stride kernel over n elements (n > 0) on `stream` and checks the launch.
template <typename... Params, typename... Args>
void launch_grid_stride(void (*kernel)(Params...), int64_t n, cudaStream_t stream, Args... args) {
  kernel<<<grid_for(n), kThreads, 0, stream>>>(args...);
  ST_CUDA_CHECK_LAUNCH();
}

// Thread -> element mapping of every grid-stride loop: element i is handled by global thread
// i mod (gridDim.x * blockDim.x), in rounds; 64-bit so arrays past 2^31 elements are safe.
__device__ __forceinline__ int64_t first_index() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t index_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Applies op(i) for i in [0, n) with one grid-stride kernel (the elementwise ops, token plumbing).
template <typename Op>
__global__ void for_each_kernel(int64_t n, Op op) {
  for (int64_t i = first_index(); i < n; i += index_stride()) op(i);
}

template <typename Op>
void for_each(int64_t n, const Op& op, const char* name, cudaStream_t stream) {
  require(n >= 0, name, "element count must be >= 0");
  if (n == 0) return;
  launch_grid_stride(for_each_kernel<Op>, n, stream, n, op);
}

// Sum over the 32 lanes of a warp in a fixed tree order (offsets 16, 8, 4, 2, 1); the total is
// returned to every lane (broadcast from lane 0). All 32 lanes must call it.
template <typename T>
__device__ __forceinline__ T warp_sum(T value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  return __shfl_sync(0xffffffffu, value, 0);
}

template <typename T>
__device__ __forceinline__ T warp_max(T value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const T other = __shfl_down_sync(0xffffffffu, value, offset);
    value = other > value ? other : value;
  }
  return __shfl_sync(0xffffffffu, value, 0);
}

// Block-wide sum / max in a fixed order: each warp reduces its lanes, then warp 0 reduces the warp
// results in warp order. Returned to every thread. blockDim.x must be a multiple of 32 (<= 1024), all
// threads must call it; `scratch` is __shared__ T[32]. Starts with a barrier so the same scratch can
// be reused by consecutive calls.
template <typename T>
__device__ T block_sum(T value, T* scratch) {
  __syncthreads();
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  value = warp_sum(value);
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  if (warp == 0) {
    T total = lane < warps ? scratch[lane] : T(0);
    total = warp_sum(total);
    if (lane == 0) scratch[0] = total;
  }
  __syncthreads();
  return scratch[0];
}

template <typename T>
__device__ T block_max(T value, T lowest, T* scratch) {
  __syncthreads();
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  value = warp_max(value);
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  if (warp == 0) {
    T best = lane < warps ? scratch[lane] : lowest;
    best = warp_max(best);
    if (lane == 0) scratch[0] = best;
  }
  __syncthreads();
  return scratch[0];
}

// ---- deterministic per-column sums of a [rows, cols] row-major array of terms ----------------------
// K sums at once (BatchNorm's backward needs sum dy and sum dy * xhat from one read of the data).
//
// Pass 1, column_partials_kernel: grid (ceil(cols / 32), chunks), block (32, 8).
//   Thread (tx, ty) of block (bx, by) owns column c = bx * 32 + tx (32 consecutive columns: coalesced
//   128-byte rows) and the rows r = begin + ty, begin + ty + 8, ... < end of chunk by, where
//   begin = by * rows_per_chunk, end = min(rows, begin + rows_per_chunk). It sums its rows in
//   increasing order; thread ty == 0 then adds the 8 row lanes in order ty = 0..7 and writes
//   partials[k][by * cols + c] (partials[k] = partials + k * chunks * cols).
// Pass 2, column_total (called by the op's finalize kernel): one warp per column; lane l sums chunks
//   l, l + 32, ... in order, then warp_sum. Every column's total thus has one fixed summation order.
template <int K>
struct Sums {
  float v[K];
};

struct ColumnPlan {
  int64_t chunks = 0, rows_per_chunk = 0;
};

constexpr int kColumnTile = 32;      // columns per block of pass 1 (threadIdx.x)
constexpr int kRowLanes = 8;         // row lanes per block of pass 1 (threadIdx.y)
constexpr int64_t kMaxChunks = 512;  // row chunks of pass 1 (gridDim.y <= 65535)
constexpr int64_t kMinRowsPerChunk = 64;

// Depends on rows only (never on the device): the summation order is a function of the shape.
inline ColumnPlan plan_columns(int64_t rows) {
  ColumnPlan plan;
  int64_t chunks = (rows + kMinRowsPerChunk - 1) / kMinRowsPerChunk;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  if (chunks < 1) chunks = 1;
  plan.rows_per_chunk = (rows + chunks - 1) / chunks;
  if (plan.rows_per_chunk < 1) plan.rows_per_chunk = 1;
  plan.chunks = (rows + plan.rows_per_chunk - 1) / plan.rows_per_chunk;  // no empty chunk
  if (plan.chunks < 1) plan.chunks = 1;
  return plan;
}

inline dim3 column_partials_grid(int64_t cols, const ColumnPlan& plan) {
  return dim3(static_cast<unsigned int>((cols + kColumnTile - 1) / kColumnTile), static_cast<unsigned int>(plan.chunks),
              1);
}
inline dim3 column_partials_block() { return dim3(kColumnTile, kRowLanes, 1); }

// Term: a functor with `__device__ Sums<K> operator()(int64_t index, int64_t col) const`, index =
// row * cols + col.
template <int K, typename Term>
__global__ void column_partials_kernel(int64_t rows, int64_t cols, int64_t rows_per_chunk, Term term, float* partials) {
  __shared__ float lanes[K][kRowLanes][kColumnTile];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColumnTile + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * rows_per_chunk;
  const int64_t end = begin + rows_per_chunk < rows ? begin + rows_per_chunk : rows;
  float acc[K];
#pragma unroll
  for (int k = 0; k < K; ++k) acc[k] = 0.0f;
  if (col < cols) {  // no early return: every thread reaches the barrier below
    for (int64_t row = begin + threadIdx.y; row < end; row += kRowLanes) {
      const Sums<K> t = term(row * cols + col, col);
#pragma unroll
      for (int k = 0; k < K; ++k) acc[k] += t.v[k];
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) lanes[k][threadIdx.y][threadIdx.x] = acc[k];
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    const int64_t chunks = gridDim.y;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      float sum = lanes[k][0][threadIdx.x];
      for (int lane = 1; lane < kRowLanes; ++lane) sum += lanes[k][lane][threadIdx.x];
      partials[k * chunks * cols + static_cast<int64_t>(blockIdx.y) * cols + col] = sum;
    }
  }
}

// Pass 2 for one column, by one whole warp (all 32 lanes call it with the same col); the totals are
// returned to every lane.
template <int K>
__device__ Sums<K> column_total(const float* partials, int64_t chunks, int64_t cols, int64_t col) {
  const int lane = threadIdx.x % kWarp;
  Sums<K> total;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const float* base = partials + k * chunks * cols;
    float sum = 0.0f;
    for (int64_t chunk = lane; chunk < chunks; chunk += kWarp) sum += base[chunk * cols + col];
    total.v[k] = warp_sum(sum);
  }
  return total;
}

// Finalize kernels run one warp per column: block of kThreads threads = 8 columns.
constexpr int kColumnsPerFinalizeBlock = kThreads / kWarp;
inline unsigned int finalize_grid(int64_t cols) {
  return static_cast<unsigned int>((cols + kColumnsPerFinalizeBlock - 1) / kColumnsPerFinalizeBlock);
}
// Column of the calling warp in a finalize kernel (may be >= cols: the whole warp then skips).
__device__ __forceinline__ int64_t finalize_column() {
  return static_cast<int64_t>(blockIdx.x) * kColumnsPerFinalizeBlock + threadIdx.x / kWarp;
}

// outputs[k][col] += the column total k of `term` over all rows (a null output is skipped): pass 1 and a
// finalize pass as above, with partials from the caching allocator (stream-ordered).
template <int K>
struct ColumnOutputs {
  float* out[K];
};

template <int K>
__global__ void column_totals_accumulate_kernel(const float* partials, int64_t chunks, int64_t cols,
                                                ColumnOutputs<K> outputs) {
  const int64_t c = finalize_column();
  if (c >= cols) return;  // whole warp
  const Sums<K> total = column_total<K>(partials, chunks, cols, c);
  if (threadIdx.x % kWarp != 0) return;
#pragma unroll
  for (int k = 0; k < K; ++k)
    if (outputs.out[k] != nullptr) outputs.out[k][c] += total.v[k];
}

template <int K, typename Term>
void accumulate_column_sums(int64_t rows, int64_t cols, const Term& term, ColumnOutputs<K> outputs,
                            cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  const ColumnPlan plan = plan_columns(rows);
  DeviceBuffer partials = DeviceBuffer::of<float>(static_cast<std::size_t>(K * plan.chunks * cols), stream);
  column_partials_kernel<K, Term><<<column_partials_grid(cols, plan), column_partials_block(), 0, stream>>>(
      rows, cols, plan.rows_per_chunk, term, partials.as<float>());
  ST_CUDA_CHECK_LAUNCH();
  column_totals_accumulate_kernel<K><<<finalize_grid(cols), kThreads, 0, stream>>>(partials.as<float>(), plan.chunks,
                                                                                  cols, outputs);
  ST_CUDA_CHECK_LAUNCH();
}

}  // namespace st::cuda::detail
