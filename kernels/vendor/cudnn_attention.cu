// Multi-head self-attention through cuDNN's multi-head attention API, FP32 (see vendor.h for why this
// API and not the fused SDPA graph). Layout: cuDNN sees batch B*H, beam 1, time T, vector d with the
// axes [batch, beam, time, vect] (packed, outermost first), one head, no projections, smScaler
// 1 / sqrt(d), every sequence full length (window [0, T) for every query). Per shape and math mode, one
// plan (descriptors, buffer sizes, the device sequence-length arrays) is built and kept.
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "kernels/cuda/allocator.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/vendor/cudnn_handle.h"
#include "kernels/vendor/vendor.h"

namespace st::vendor {
namespace {

using cuda::DeviceBuffer;

struct Plan {
  cudnnAttnDescriptor_t attention = nullptr;
  cudnnSeqDataDescriptor_t data = nullptr;  // Q, K, V, O and their gradients share one shape
  std::size_t weight_bytes = 0, workspace_bytes = 0, reserve_bytes = 0;
  std::vector<int> low, high;  // attention window per query time step
  DeviceBuffer lengths;        // int[B*H] = T (device)
  DeviceBuffer weights;        // cuDNN's (empty) projection weights, zeroed, if it asks for any
};

using PlanKey = std::tuple<int, int64_t, int64_t, int64_t, int64_t, bool>;  // device, B, T, D, H, tf32

Plan& plan_for(cudnnHandle_t handle, int64_t batch, int64_t tokens, int64_t dim, int64_t heads, cudaStream_t stream) {
  static std::mutex mutex;
  static std::map<PlanKey, std::unique_ptr<Plan>> plans;  // kept for the life of the process
  int device = 0;
  ST_CUDA_CHECK(cudaGetDevice(&device));
  const bool tf32 = cuda::tf32_enabled();
  const std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<Plan>& slot = plans[PlanKey{device, batch, tokens, dim, heads, tf32}];
  if (slot) return *slot;
  auto plan = std::make_unique<Plan>();
  const int sequences = static_cast<int>(batch * heads), time = static_cast<int>(tokens);
  const int head_dim = static_cast<int>(dim / heads);
  ST_CUDNN_CHECK(cudnnCreateAttnDescriptor(&plan->attention));
  const auto describe = [&](cudnnMathType_t math) {
    return cudnnSetAttnDescriptor(plan->attention, CUDNN_ATTN_QUERYMAP_ALL_TO_ONE | CUDNN_ATTN_DISABLE_PROJ_BIASES, 1,
                                  1.0 / std::sqrt(static_cast<double>(head_dim)), CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT,
                                  math, nullptr, nullptr, head_dim, head_dim, head_dim, 0, 0, 0, 0, time, time,
                                  sequences, 1);
  };
  // FP32 FMA math when TF32 is off; if this API refuses it, its default math (which may use TF32).
  if (tf32 || describe(CUDNN_FMA_MATH) != CUDNN_STATUS_SUCCESS) ST_CUDNN_CHECK(describe(CUDNN_DEFAULT_MATH));
  ST_CUDNN_CHECK(cudnnGetMultiHeadAttnBuffers(handle, plan->attention, &plan->weight_bytes, &plan->workspace_bytes,
                                              &plan->reserve_bytes));
  int dims[CUDNN_SEQDATA_DIM_COUNT];
  dims[CUDNN_SEQDATA_TIME_DIM] = time;
  dims[CUDNN_SEQDATA_BATCH_DIM] = sequences;
  dims[CUDNN_SEQDATA_BEAM_DIM] = 1;
  dims[CUDNN_SEQDATA_VECT_DIM] = head_dim;
  const cudnnSeqDataAxis_t axes[CUDNN_SEQDATA_DIM_COUNT] = {CUDNN_SEQDATA_BATCH_DIM, CUDNN_SEQDATA_BEAM_DIM,
                                                            CUDNN_SEQDATA_TIME_DIM, CUDNN_SEQDATA_VECT_DIM};
  const std::vector<int> lengths(static_cast<std::size_t>(sequences), time);
  ST_CUDNN_CHECK(cudnnCreateSeqDataDescriptor(&plan->data));
  ST_CUDNN_CHECK(cudnnSetSeqDataDescriptor(plan->data, CUDNN_DATA_FLOAT, CUDNN_SEQDATA_DIM_COUNT, dims, axes,
                                           lengths.size(), lengths.data(), nullptr));
  plan->low.assign(static_cast<std::size_t>(time), 0);
  plan->high.assign(static_cast<std::size_t>(time), time);
  plan->lengths = DeviceBuffer::from_host(lengths, stream);
  if (plan->weight_bytes > 0) {
    plan->weights = DeviceBuffer(plan->weight_bytes, stream);
    ST_CUDA_CHECK(cudaMemsetAsync(plan->weights.data(), 0, plan->weight_bytes, stream));
  }
  slot = std::move(plan);
  return *slot;
}

// packed[((b * H + h) * T + t) * d + c] <-> qkv[(b * T + t) * 3D + part * D + h * d + c] (or y with 1 part).
struct Layout {
  int64_t tokens, dim, heads, head_dim, parts;
  __device__ int64_t strided(int64_t packed, int64_t part) const {
    const int64_t c = packed % head_dim, t = (packed / head_dim) % tokens, pair = packed / (head_dim * tokens);
    const int64_t b = pair / heads, h = pair % heads;
    return (b * tokens + t) * parts * dim + part * dim + h * head_dim + c;
  }
};
struct Pack {
  Layout layout;
  int64_t part;
  const float* source;
  float* packed;
  __device__ void operator()(int64_t i) const { packed[i] = source[layout.strided(i, part)]; }
};
struct Unpack {  // write (y) or accumulate (gradients)
  Layout layout;
  int64_t part;
  bool accumulate;
  const float* packed;
  float* target;
  __device__ void operator()(int64_t i) const {
    float& out = target[layout.strided(i, part)];
    out = accumulate ? out + packed[i] : packed[i];
  }
};

void check(const char* name, int64_t batch, int64_t tokens, int64_t dim, int64_t heads) {
  if (batch < 0 || tokens < 0 || heads < 1 || dim < heads || dim % heads != 0)
    cuda::throw_invalid_argument(name, "batch, tokens >= 0 and dim must split into heads");
  if (batch * heads > (int64_t{1} << 30) || tokens > (int64_t{1} << 30))
    cuda::throw_invalid_argument(name, "too many sequences or tokens for cuDNN's int sizes");
}

// Packs Q, K, V and runs cuDNN's training-mode forward (currIdx -1: every time step; the reserve space
// filled for a backward) into the packed `out`.
struct Forward {
  DeviceBuffer q, k, v, out, reserve;
};
Forward run_forward(cudnnHandle_t handle, Plan& plan, const Layout& layout, int64_t count, const float* qkv,
                    cudaStream_t stream) {
  const char* name = "vendor::attention_forward";
  Forward f;
  const auto bytes = static_cast<std::size_t>(count) * sizeof(float);
  DeviceBuffer* parts[3] = {&f.q, &f.k, &f.v};
  for (int64_t part = 0; part < 3; ++part) {
    *parts[part] = DeviceBuffer(bytes, stream);
    cuda::detail::for_each(count, Pack{layout, part, qkv, parts[part]->as<float>()}, name, stream);
  }
  f.out = DeviceBuffer(bytes, stream);
  f.reserve = DeviceBuffer(plan.reserve_bytes, stream);
  void* workspace = cuda::stream_workspace(stream, plan.workspace_bytes);
  const int* lengths = plan.lengths.as<int>();
  ST_CUDNN_CHECK(cudnnMultiHeadAttnForward(handle, plan.attention, -1, plan.low.data(), plan.high.data(), lengths,
                                           lengths, plan.data, f.q.data(), nullptr, plan.data, f.k.data(), plan.data,
                                           f.v.data(), plan.data, f.out.data(), plan.weight_bytes, plan.weights.data(),
                                           plan.workspace_bytes, workspace, plan.reserve_bytes, f.reserve.data()));
  return f;
}

Layout layout_of(int64_t tokens, int64_t dim, int64_t heads, int64_t parts) {
  return Layout{tokens, dim, heads, dim / heads, parts};
}

}  // namespace

void attention_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, float* y,
                       Stream stream) {
  constexpr const char* kName = "vendor::attention_forward";
  check(kName, batch, tokens, dim, heads);
  const int64_t count = batch * tokens * dim;
  if (count == 0) return;
  if (qkv == nullptr || y == nullptr) cuda::throw_invalid_argument(kName, "null pointer argument");
  const cudnnHandle_t handle = cudnn_handle(stream);
  Plan& plan = plan_for(handle, batch, tokens, dim, heads, stream);
  const Forward f = run_forward(handle, plan, layout_of(tokens, dim, heads, 3), count, qkv, stream);
  cuda::detail::for_each(count, Unpack{layout_of(tokens, dim, heads, 1), 0, false, f.out.as<float>(), y}, kName,
                         stream);
}

void attention_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, const float* dy,
                        float* dqkv, Stream stream) {
  constexpr const char* kName = "vendor::attention_backward";
  check(kName, batch, tokens, dim, heads);
  const int64_t count = batch * tokens * dim;
  if (count == 0 || dqkv == nullptr) return;
  if (qkv == nullptr || dy == nullptr) cuda::throw_invalid_argument(kName, "null pointer argument");
  const cudnnHandle_t handle = cudnn_handle(stream);
  Plan& plan = plan_for(handle, batch, tokens, dim, heads, stream);
  const Layout packed3 = layout_of(tokens, dim, heads, 3), packed1 = layout_of(tokens, dim, heads, 1);
  Forward f = run_forward(handle, plan, packed3, count, qkv, stream);
  const auto bytes = static_cast<std::size_t>(count) * sizeof(float);
  DeviceBuffer d_out(bytes, stream), dq(bytes, stream), dk(bytes, stream), dv(bytes, stream);
  cuda::detail::for_each(count, Pack{packed1, 0, dy, d_out.as<float>()}, kName, stream);
  void* workspace = cuda::stream_workspace(stream, plan.workspace_bytes);
  const int* lengths = plan.lengths.as<int>();
  ST_CUDNN_CHECK(cudnnMultiHeadAttnBackwardData(handle, plan.attention, plan.low.data(), plan.high.data(), lengths,
                                                lengths, plan.data, d_out.data(), plan.data, dq.data(), f.q.data(),
                                                plan.data, dk.data(), f.k.data(), plan.data, dv.data(), f.v.data(),
                                                plan.weight_bytes, plan.weights.data(), plan.workspace_bytes,
                                                workspace, plan.reserve_bytes, f.reserve.data()));
  const DeviceBuffer* gradients[3] = {&dq, &dk, &dv};
  for (int64_t part = 0; part < 3; ++part)
    cuda::detail::for_each(count, Unpack{packed3, part, true, gradients[part]->as<float>(), dqkv}, kName, stream);
}

}  // namespace st::vendor
