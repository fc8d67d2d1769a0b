// Fused multi-head self-attention on the GPU, tiled in the FlashAttention manner (Dao et al. 2022;
// Dao 2023): the [T, T] score matrix never goes to device memory. Same function as
// kernels/cpu/attention.cpp: per (batch b, head h), with Q, K, V the [T, d] slices of qkv
// ([B, T, 3D] = [q | k | v], head h at features h*d .. h*d + d - 1 of each part) and s = 1 / sqrt(d),
//   P = softmax(s Q K^T) (row-wise),  O = P V,  y[b, t, h*d + c] = O[t, c].
//
// Forward (attention_forward_kernel): a block of 4 warps takes 16 query rows of one (b, h), 4 per warp,
// and walks the keys in shared-memory tiles of 32 * KPL rows (K and V rows padded to d + 1 floats, so
// the 32 lanes reading 32 different rows hit 32 different banks). Per tile and query row, lane l
// scores keys l, l + 32 (KPL of them), and the row keeps the online-softmax state: running maximum m,
// running sum l = sum exp(score - m), and the output accumulator (lane l owns features l, l + 32, ...;
// DL of them) rescaled by exp(m_old - m_new) whenever the maximum grows. At the end
// y = acc / l and lse = m + log l (one float per query row, kept for the backward).
//
// Backward, with D_t = sum_c dO[t, c] O[t, c] (row_dot_kernel) and P recomputed as exp(s q.k - lse):
//   dV_j = sum_t P_tj dO_t,  dS_tj = P_tj (dO_t . V_j - D_t),  dQ_t = s sum_j dS_tj K_j,  dK_j = s sum_t dS_tj Q_t.
// dQ (attention_dq_kernel) has the forward's shape: query rows in warps, key tiles in shared memory.
// dK and dV (attention_dkdv_kernel): a one-warp block owns 32 keys (lane l = key l, its K, V, dK, dV
// rows in shared memory) and walks the query rows in chunks of 16 staged in shared memory. The two
// kernels recompute P separately, so no gradient is summed by two blocks: no atomics, and every sum
// has one fixed order (bit-identical results on repeat).
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

#include "kernels/cuda/allocator.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/transformer.h"

namespace st::cuda {
namespace {

constexpr int kWarps = 4;                             // warps per block of the forward and dQ kernels
constexpr int kRowsPerWarp = 4;                       // query rows a warp carries through the key tiles
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;  // query rows per block
constexpr int kKeysPerBlock = detail::kWarp;          // dK/dV kernel: one warp, one key per lane
constexpr int kQueryChunk = 16;                       // dK/dV kernel: query rows staged at once

struct Geometry {
  int64_t tokens = 0, dim = 0, heads = 0;
  int head_dim = 0;
  float scale = 0.0f;
  // Element offset of the q part of token t of sample b, head h (k: + dim, v: + 2 dim).
  __device__ int64_t qkv_offset(int64_t b, int64_t h, int64_t t) const {
    return (b * tokens + t) * 3 * dim + h * head_dim;
  }
  // Element offset of token t of sample b, head h in y / dy.
  __device__ int64_t y_offset(int64_t b, int64_t h, int64_t t) const { return (b * tokens + t) * dim + h * head_dim; }
};

// Loads rows [k0, k0 + tile) of part `part` (1: K, 2: V) of one (b, h) into a padded shared tile (zeros
// past the last token). All threads of the block take part.
__device__ void load_key_tile(const Geometry& g, const float* qkv, int64_t b, int64_t h, int64_t k0, int tile,
                              int part, float* shared) {
  const int d = g.head_dim, pad = d + 1;
  for (int i = static_cast<int>(threadIdx.x); i < tile * d; i += static_cast<int>(blockDim.x)) {
    const int j = i / d, c = i % d;
    const int64_t t = k0 + j;
    shared[j * pad + c] = t < g.tokens ? qkv[g.qkv_offset(b, h, t) + part * g.dim + c] : 0.0f;
  }
}

__device__ float dot_shared(const float* a, const float* b, int d) {
  float sum = 0.0f;
#pragma unroll 8
  for (int c = 0; c < d; ++c) sum += a[c] * b[c];
  return sum;
}

// The block's place and shared memory in the forward and dQ kernels: block (pair, query tile), this
// warp's 4 query rows from `first`, the padded K and V tiles, then `staged` (what each kernel keeps
// per warp: query rows, dO rows, a row of probabilities or score gradients).
template <int KPL>
struct QueryBlock {
  static constexpr int kTile = detail::kWarp * KPL;
  int d, pad, warp, lane;
  int64_t pair, b, h, T, first;
  float* k_tile;
  float* v_tile;
  float* staged;
  __device__ QueryBlock(const Geometry& g, float* shared)
      : d(g.head_dim),
        pad(g.head_dim + 1),
        warp(static_cast<int>(threadIdx.x) / detail::kWarp),
        lane(static_cast<int>(threadIdx.x) % detail::kWarp),
        pair(blockIdx.x),
        b(pair / g.heads),
        h(pair % g.heads),
        T(g.tokens),
        first(static_cast<int64_t>(blockIdx.y) * kRowsPerBlock + warp * kRowsPerWarp),
        k_tile(shared),
        v_tile(shared + kTile * pad),
        staged(shared + 2 * kTile * pad) {}
  // Loads keys [k0, k0 + kTile) into the tiles (all threads, between two barriers); returns how many
  // of them are real tokens.
  __device__ int load(const Geometry& g, const float* qkv, int64_t k0) {
    __syncthreads();  // the previous tile is no longer read
    load_key_tile(g, qkv, b, h, k0, kTile, 1, k_tile);
    load_key_tile(g, qkv, b, h, k0, kTile, 2, v_tile);
    __syncthreads();
    return T - k0 < kTile ? static_cast<int>(T - k0) : kTile;
  }
  // acc[i] += sum_{j < valid} weights[j] tile[j][lane + 32 i] (weights: this warp's shared row).
  template <int DL>
  __device__ void accumulate(float (&acc)[DL], const float* weights, const float* tile, int valid) const {
    for (int j = 0; j < valid; ++j) {
      const float w = weights[j];
#pragma unroll
      for (int i = 0; i < DL; ++i) {
        const int c = lane + detail::kWarp * i;
        if (c < d) acc[i] += w * tile[j * pad + c];
      }
    }
  }
};

template <int DL, int KPL>
__global__ void __launch_bounds__(kWarps* detail::kWarp)
    attention_forward_kernel(Geometry g, const float* qkv, float* y, float* lse) {
  extern __shared__ float shared[];
  QueryBlock<KPL> q(g, shared);
  constexpr int kTile = QueryBlock<KPL>::kTile;
  const int d = q.d, pad = q.pad, lane = q.lane;
  const int64_t pair = q.pair, b = q.b, h = q.h, T = q.T, first = q.first;
  float* q_rows = q.staged + q.warp * kRowsPerWarp * d;
  float* p_row = q.staged + kWarps * kRowsPerWarp * d + q.warp * kTile;
  const float* k_tile = q.k_tile;
  for (int r = 0; r < kRowsPerWarp; ++r)
    for (int c = lane; c < d; c += detail::kWarp)
      q_rows[r * d + c] = first + r < T ? qkv[g.qkv_offset(b, h, first + r) + c] : 0.0f;
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][DL];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < DL; ++i) acc[r][i] = 0.0f;
  }
  for (int64_t k0 = 0; k0 < T; k0 += kTile) {
    const int valid = q.load(g, qkv, k0);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      if (first + r >= T) continue;  // warp-uniform
      float s[KPL];
      float tile_max = -INFINITY;
#pragma unroll
      for (int i = 0; i < KPL; ++i) {
        const int j = lane + detail::kWarp * i;
        s[i] = j < valid ? g.scale * dot_shared(q_rows + r * d, k_tile + j * pad, d) : -INFINITY;
        tile_max = fmaxf(tile_max, s[i]);
      }
      const float m_new = fmaxf(m[r], detail::warp_max(tile_max));
      const float alpha = expf(m[r] - m_new);  // 0 on the first tile (m = -inf)
      float p_sum = 0.0f;
#pragma unroll
      for (int i = 0; i < KPL; ++i) {
        const int j = lane + detail::kWarp * i;
        const float p = j < valid ? expf(s[i] - m_new) : 0.0f;
        p_row[j] = p;
        p_sum += p;
      }
      l[r] = l[r] * alpha + detail::warp_sum(p_sum);
      m[r] = m_new;
      __syncwarp();
#pragma unroll
      for (int i = 0; i < DL; ++i) acc[r][i] *= alpha;
      q.accumulate(acc[r], p_row, q.v_tile, valid);
      __syncwarp();  // p_row is rewritten by the next row
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t t = first + r;
    if (t >= T) continue;
    const float inv = 1.0f / l[r];
    float* yr = y + g.y_offset(b, h, t);
#pragma unroll
    for (int i = 0; i < DL; ++i) {
      const int c = lane + detail::kWarp * i;
      if (c < d) yr[c] = acc[r][i] * inv;
    }
    if (lane == 0) lse[pair * T + t] = m[r] + logf(l[r]);
  }
}

// dvec[(b * heads + h) * T + t] = sum_c dy[b, t, h*d + c] y[b, t, h*d + c]; one warp per row.
__global__ void row_dot_kernel(Geometry g, int64_t rows, const float* y, const float* dy, float* dvec) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (detail::kThreads / detail::kWarp) +
                      threadIdx.x / detail::kWarp;
  if (row >= rows) return;  // whole warp
  const int lane = static_cast<int>(threadIdx.x) % detail::kWarp;
  const int64_t t = row % g.tokens, pair = row / g.tokens, b = pair / g.heads, h = pair % g.heads;
  const float* yr = y + g.y_offset(b, h, t);
  const float* dyr = dy + g.y_offset(b, h, t);
  float sum = 0.0f;
  for (int c = lane; c < g.head_dim; c += detail::kWarp) sum += dyr[c] * yr[c];
  sum = detail::warp_sum(sum);
  if (lane == 0) dvec[row] = sum;
}

template <int DL, int KPL>
__global__ void __launch_bounds__(kWarps* detail::kWarp)
    attention_dq_kernel(Geometry g, const float* qkv, const float* dy, const float* lse, const float* dvec,
                        float* dqkv) {
  extern __shared__ float shared[];
  QueryBlock<KPL> q(g, shared);
  const int d = q.d, pad = q.pad, lane = q.lane;
  const int64_t pair = q.pair, b = q.b, h = q.h, T = q.T, first = q.first;
  float* q_rows = q.staged + q.warp * kRowsPerWarp * d;
  float* do_rows = q.staged + kWarps * kRowsPerWarp * d + q.warp * kRowsPerWarp * d;
  float* ds_row = q.staged + 2 * kWarps * kRowsPerWarp * d + q.warp * QueryBlock<KPL>::kTile;
  const float* k_tile = q.k_tile;
  const float* v_tile = q.v_tile;
  float row_lse[kRowsPerWarp], row_d[kRowsPerWarp], acc[kRowsPerWarp][DL];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const bool in = first + r < T;
    for (int c = lane; c < d; c += detail::kWarp) {
      q_rows[r * d + c] = in ? qkv[g.qkv_offset(b, h, first + r) + c] : 0.0f;
      do_rows[r * d + c] = in ? dy[g.y_offset(b, h, first + r) + c] : 0.0f;
    }
    row_lse[r] = in ? lse[pair * T + first + r] : 0.0f;
    row_d[r] = in ? dvec[pair * T + first + r] : 0.0f;
#pragma unroll
    for (int i = 0; i < DL; ++i) acc[r][i] = 0.0f;
  }
  for (int64_t k0 = 0; k0 < T; k0 += QueryBlock<KPL>::kTile) {
    const int valid = q.load(g, qkv, k0);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      if (first + r >= T) continue;  // warp-uniform
#pragma unroll
      for (int i = 0; i < KPL; ++i) {
        const int j = lane + detail::kWarp * i;
        float ds = 0.0f;
        if (j < valid) {
          const float p = expf(g.scale * dot_shared(q_rows + r * d, k_tile + j * pad, d) - row_lse[r]);
          ds = p * (dot_shared(do_rows + r * d, v_tile + j * pad, d) - row_d[r]);
        }
        ds_row[j] = ds;
      }
      __syncwarp();
      q.accumulate(acc[r], ds_row, k_tile, valid);
      __syncwarp();
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    if (first + r >= T) continue;
    float* dq = dqkv + g.qkv_offset(b, h, first + r);
#pragma unroll
    for (int i = 0; i < DL; ++i) {
      const int c = lane + detail::kWarp * i;
      if (c < d) dq[c] += g.scale * acc[r][i];
    }
  }
}

__global__ void __launch_bounds__(kKeysPerBlock)
    attention_dkdv_kernel(Geometry g, const float* qkv, const float* dy, const float* lse, const float* dvec,
                          float* dqkv) {
  extern __shared__ float shared[];
  const int d = g.head_dim, pad = d + 1;
  float* k_rows = shared;                      // [32][d + 1]
  float* v_rows = k_rows + kKeysPerBlock * pad;
  float* dk_rows = v_rows + kKeysPerBlock * pad;
  float* dv_rows = dk_rows + kKeysPerBlock * pad;
  float* q_chunk = dv_rows + kKeysPerBlock * pad;  // [16][d]
  float* do_chunk = q_chunk + kQueryChunk * d;
  float* lse_chunk = do_chunk + kQueryChunk * d;  // [16]
  float* d_chunk = lse_chunk + kQueryChunk;
  const int64_t pair = blockIdx.x, b = pair / g.heads, h = pair % g.heads, T = g.tokens;
  const int64_t k0 = static_cast<int64_t>(blockIdx.y) * kKeysPerBlock;
  const int key = static_cast<int>(threadIdx.x);
  load_key_tile(g, qkv, b, h, k0, kKeysPerBlock, 1, k_rows);
  load_key_tile(g, qkv, b, h, k0, kKeysPerBlock, 2, v_rows);
  for (int i = key; i < kKeysPerBlock * pad; i += kKeysPerBlock) {
    dk_rows[i] = 0.0f;
    dv_rows[i] = 0.0f;
  }
  const bool valid_key = k0 + key < T;
  const float* k_own = k_rows + key * pad;
  const float* v_own = v_rows + key * pad;
  float* dk_own = dk_rows + key * pad;
  float* dv_own = dv_rows + key * pad;
  for (int64_t q0 = 0; q0 < T; q0 += kQueryChunk) {
    const int rows = T - q0 < kQueryChunk ? static_cast<int>(T - q0) : kQueryChunk;
    __syncthreads();  // the previous chunk is no longer read (and the first: the key rows are loaded)
    for (int i = key; i < rows * d; i += kKeysPerBlock) {
      const int r = i / d, c = i % d;
      q_chunk[r * d + c] = qkv[g.qkv_offset(b, h, q0 + r) + c];
      do_chunk[r * d + c] = dy[g.y_offset(b, h, q0 + r) + c];
    }
    if (key < rows) {
      lse_chunk[key] = lse[pair * T + q0 + key];
      d_chunk[key] = dvec[pair * T + q0 + key];
    }
    __syncthreads();
    if (!valid_key) continue;
    for (int r = 0; r < rows; ++r) {
      const float* q = q_chunk + r * d;
      const float* d_out = do_chunk + r * d;
      const float p = expf(g.scale * dot_shared(q, k_own, d) - lse_chunk[r]);
      const float ds = g.scale * p * (dot_shared(d_out, v_own, d) - d_chunk[r]);
      for (int c = 0; c < d; ++c) {
        dv_own[c] += p * d_out[c];
        dk_own[c] += ds * q[c];
      }
    }
  }
  __syncthreads();
  for (int i = key; i < kKeysPerBlock * d; i += kKeysPerBlock) {
    const int j = i / d, c = i % d;
    if (k0 + j >= T) continue;
    float* row = dqkv + g.qkv_offset(b, h, k0 + j);
    row[g.dim + c] += dk_rows[j * pad + c];
    row[2 * g.dim + c] += dv_rows[j * pad + c];
  }
}

// Raises a kernel's dynamic shared-memory limit when it needs more than the default 48 KiB.
template <typename Kernel>
void allow_shared_memory(Kernel kernel, std::size_t bytes) {
  if (bytes > 48 * 1024)
    ST_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

Geometry make_geometry(const char* name, int64_t batch, int64_t tokens, int64_t dim, int64_t heads) {
  require(batch >= 0 && tokens >= 0, name, "batch and tokens must be >= 0");
  require(heads >= 1 && dim >= heads && dim % heads == 0, name, "dim must split into heads (dim % heads == 0)");
  require(dim / heads <= kMaxAttentionHeadDim, name, "head dimension dim / heads must be <= 128");
  require(tokens < (int64_t{65535} * kRowsPerBlock), name, "too many tokens for one grid");
  Geometry g;
  g.tokens = tokens;
  g.dim = dim;
  g.heads = heads;
  g.head_dim = static_cast<int>(dim / heads);
  g.scale = 1.0f / std::sqrt(static_cast<float>(g.head_dim));  // as the CPU kernel
  return g;
}

dim3 query_grid(const Geometry& g, int64_t batch) {
  return dim3(static_cast<unsigned int>(batch * g.heads),
              static_cast<unsigned int>((g.tokens + kRowsPerBlock - 1) / kRowsPerBlock), 1);
}

// Shared floats of the forward (extra_rows = 1) and dQ (extra_rows = 2: q and dO rows) kernels.
std::size_t query_kernel_bytes(const Geometry& g, int kpl, int staged_parts) {
  const std::size_t tile = static_cast<std::size_t>(detail::kWarp * kpl), d = static_cast<std::size_t>(g.head_dim);
  const std::size_t floats = 2 * tile * (d + 1) + static_cast<std::size_t>(staged_parts) * kWarps * kRowsPerWarp * d +
                             kWarps * tile;
  return floats * sizeof(float);
}

template <int DL, int KPL>
void launch_forward(const Geometry& g, int64_t batch, const float* qkv, float* y, float* lse, cudaStream_t stream) {
  const std::size_t bytes = query_kernel_bytes(g, KPL, 1);
  allow_shared_memory(attention_forward_kernel<DL, KPL>, bytes);
  attention_forward_kernel<DL, KPL><<<query_grid(g, batch), kWarps * detail::kWarp, bytes, stream>>>(g, qkv, y, lse);
  ST_CUDA_CHECK_LAUNCH();
}

template <int DL, int KPL>
void launch_dq(const Geometry& g, int64_t batch, const float* qkv, const float* dy, const float* lse,
               const float* dvec, float* dqkv, cudaStream_t stream) {
  const std::size_t bytes = query_kernel_bytes(g, KPL, 2);
  allow_shared_memory(attention_dq_kernel<DL, KPL>, bytes);
  attention_dq_kernel<DL, KPL>
      <<<query_grid(g, batch), kWarps * detail::kWarp, bytes, stream>>>(g, qkv, dy, lse, dvec, dqkv);
  ST_CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, float* y,
                       float* lse, cudaStream_t stream) {
  constexpr const char* kName = "cuda::attention_forward";
  const Geometry g = make_geometry(kName, batch, tokens, dim, heads);
  if (batch == 0 || tokens == 0) return;
  require(qkv && y && lse, kName, "null pointer argument");
  if (g.head_dim <= 32) {
    launch_forward<1, 2>(g, batch, qkv, y, lse, stream);
  } else if (g.head_dim <= 64) {
    launch_forward<2, 2>(g, batch, qkv, y, lse, stream);
  } else {
    launch_forward<4, 1>(g, batch, qkv, y, lse, stream);
  }
}

void attention_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, const float* y,
                        const float* lse, const float* dy, float* dqkv, cudaStream_t stream) {
  constexpr const char* kName = "cuda::attention_backward";
  const Geometry g = make_geometry(kName, batch, tokens, dim, heads);
  if (batch == 0 || tokens == 0 || dqkv == nullptr) return;
  require(qkv && y && lse && dy, kName, "null pointer argument");
  const int64_t rows = batch * heads * tokens;
  DeviceBuffer dvec = DeviceBuffer::of<float>(static_cast<std::size_t>(rows), stream);
  constexpr int64_t kRowsPerDotBlock = detail::kThreads / detail::kWarp;
  row_dot_kernel<<<static_cast<unsigned int>((rows + kRowsPerDotBlock - 1) / kRowsPerDotBlock), detail::kThreads, 0,
                   stream>>>(g, rows, y, dy, dvec.as<float>());
  ST_CUDA_CHECK_LAUNCH();
  if (g.head_dim <= 32) {
    launch_dq<1, 2>(g, batch, qkv, dy, lse, dvec.as<float>(), dqkv, stream);
  } else if (g.head_dim <= 64) {
    launch_dq<2, 2>(g, batch, qkv, dy, lse, dvec.as<float>(), dqkv, stream);
  } else {
    launch_dq<4, 1>(g, batch, qkv, dy, lse, dvec.as<float>(), dqkv, stream);
  }
  const std::size_t d = static_cast<std::size_t>(g.head_dim);
  const std::size_t bytes = (4 * kKeysPerBlock * (d + 1) + 2 * kQueryChunk * d + 2 * kQueryChunk) * sizeof(float);
  allow_shared_memory(attention_dkdv_kernel, bytes);
  const dim3 grid(static_cast<unsigned int>(batch * heads),
                  static_cast<unsigned int>((tokens + kKeysPerBlock - 1) / kKeysPerBlock), 1);
  attention_dkdv_kernel<<<grid, kKeysPerBlock, bytes, stream>>>(g, qkv, dy, lse, dvec.as<float>(), dqkv);
  ST_CUDA_CHECK_LAUNCH();
}

}  // namespace st::cuda
