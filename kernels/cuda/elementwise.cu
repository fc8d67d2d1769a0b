// Elementwise ops, channel concatenation and the deterministic column sums (formulas and operation
// order as kernels/cpu/elementwise.cpp, concat.cpp, gelu.cpp). Each op is a small functor applied by
// one grid-stride kernel: thread t handles elements t, t + gridDim.x * blockDim.x, ...
#include <cuda_runtime.h>

#include "kernels/cuda/allocator.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch.cuh"

namespace st::cuda {
namespace {

using detail::for_each;

struct Fill {
  float value;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = value; }
};
struct Relu {
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
};
struct ReluBackward {
  const float* y;
  const float* dy;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[i] += y[i] > 0.0f ? dy[i] : 0.0f; }
};
struct Relu6 {
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] > 0.0f ? (x[i] < 6.0f ? x[i] : 6.0f) : 0.0f; }
};
struct Relu6Backward {
  const float* y;
  const float* dy;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[i] += (y[i] > 0.0f && y[i] < 6.0f) ? dy[i] : 0.0f; }
};
struct Add {
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = a[i] + b[i]; }
};
struct AddRelu {
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(int64_t i) const {
    const float sum = a[i] + b[i];
    y[i] = sum > 0.0f ? sum : 0.0f;
  }
};
struct AddReluBackward {
  const float* y;
  const float* dy;
  float* da;
  float* db;
  __device__ void operator()(int64_t i) const {
    const float g = y[i] > 0.0f ? dy[i] : 0.0f;
    if (da != nullptr) da[i] += g;
    if (db != nullptr) db[i] += g;
  }
};
struct Accumulate {
  const float* source;
  float* destination;
  __device__ void operator()(int64_t i) const { destination[i] += source[i]; }
};
struct ScaleByMask {
  const float* x;
  const float* scale;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] * scale[i]; }
};
struct ScaleForward {
  const float* x;
  float factor;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = factor * x[i]; }
};
struct ScaleBackward {
  const float* dy;
  float factor;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[i] += factor * dy[i]; }
};
struct AccumulateScaledByMask {
  const float* dy;
  const float* scale;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[i] += dy[i] * scale[i]; }
};

// Concatenation, one input (slice) at a time: element i of the input [rows, width] is
// (row, c) = (i / width, i mod width) and sits at row * total + offset + c of the output.
struct ConcatSliceForward {
  const float* x;
  int64_t width, total, offset;
  float* y;
  __device__ void operator()(int64_t i) const { y[(i / width) * total + offset + i % width] = x[i]; }
};
struct ConcatSliceBackward {
  const float* dy;
  int64_t width, total, offset;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[i] += dy[(i / width) * total + offset + i % width]; }
};

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
// Same expressions as kernels/cpu/gelu.cpp in both branches (their roundings differ slightly).
struct Gelu {
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * kInvSqrt2)); }
};
struct GeluWithDerivative {
  const float* x;
  float* y;
  float* derivative;
  __device__ void operator()(int64_t i) const {
    const float cdf = 0.5f * (1.0f + erff(x[i] * kInvSqrt2));
    y[i] = x[i] * cdf;
    derivative[i] = cdf + x[i] * kInvSqrt2Pi * expf(-0.5f * x[i] * x[i]);
  }
};
struct GeluBackward {
  const float* derivative;
  const float* dy;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[i] += dy[i] * derivative[i]; }
};

struct ValueTerm {
  const float* x;
  __device__ detail::Sums<1> operator()(int64_t i, int64_t) const { return detail::Sums<1>{{x[i]}}; }
};

// One warp per column: sums[c] += total of the partials.
__global__ void column_sums_total_kernel(const float* partials, int64_t chunks, int64_t cols, float* sums) {
  const int64_t c = detail::finalize_column();
  if (c >= cols) return;  // whole warp
  const detail::Sums<1> total = detail::column_total<1>(partials, chunks, cols, c);
  if (threadIdx.x % detail::kWarp == 0) sums[c] += total.v[0];
}

void require_pointers(bool ok, const char* name) { require(ok, name, "null pointer argument"); }

}  // namespace

void fill(int64_t n, float value, float* y, cudaStream_t stream) {
  require_pointers(n == 0 || y, "cuda::fill");
  for_each(n, Fill{value, y}, "cuda::fill", stream);
}
void relu_forward(int64_t n, const float* x, float* y, cudaStream_t stream) {
  require_pointers(n == 0 || (x && y), "cuda::relu_forward");
  for_each(n, Relu{x, y}, "cuda::relu_forward", stream);
}
void relu_backward(int64_t n, const float* y, const float* dy, float* dx, cudaStream_t stream) {
  require_pointers(n == 0 || (y && dy && dx), "cuda::relu_backward");
  for_each(n, ReluBackward{y, dy, dx}, "cuda::relu_backward", stream);
}
void relu6_forward(int64_t n, const float* x, float* y, cudaStream_t stream) {
  require_pointers(n == 0 || (x && y), "cuda::relu6_forward");
  for_each(n, Relu6{x, y}, "cuda::relu6_forward", stream);
}
void relu6_backward(int64_t n, const float* y, const float* dy, float* dx, cudaStream_t stream) {
  require_pointers(n == 0 || (y && dy && dx), "cuda::relu6_backward");
  for_each(n, Relu6Backward{y, dy, dx}, "cuda::relu6_backward", stream);
}
void add_forward(int64_t n, const float* a, const float* b, float* y, cudaStream_t stream) {
  require_pointers(n == 0 || (a && b && y), "cuda::add_forward");
  for_each(n, Add{a, b, y}, "cuda::add_forward", stream);
}
void add_relu_forward(int64_t n, const float* a, const float* b, float* y, cudaStream_t stream) {
  require_pointers(n == 0 || (a && b && y), "cuda::add_relu_forward");
  for_each(n, AddRelu{a, b, y}, "cuda::add_relu_forward", stream);
}
void add_relu_backward(int64_t n, const float* y, const float* dy, float* da, float* db, cudaStream_t stream) {
  require_pointers(n == 0 || (y && dy), "cuda::add_relu_backward");
  if (da == nullptr && db == nullptr) return;
  for_each(n, AddReluBackward{y, dy, da, db}, "cuda::add_relu_backward", stream);
}
void accumulate(int64_t n, const float* source, float* destination, cudaStream_t stream) {
  require_pointers(n == 0 || (source && destination), "cuda::accumulate");
  for_each(n, Accumulate{source, destination}, "cuda::accumulate", stream);
}
void scale_by_mask(int64_t n, const float* x, const float* scale, float* y, cudaStream_t stream) {
  require_pointers(n == 0 || (x && scale && y), "cuda::scale_by_mask");
  for_each(n, ScaleByMask{x, scale, y}, "cuda::scale_by_mask", stream);
}
void scale_forward(int64_t n, const float* x, float factor, float* y, cudaStream_t stream) {
  require_pointers(n == 0 || (x && y), "cuda::scale_forward");
  for_each(n, ScaleForward{x, factor, y}, "cuda::scale_forward", stream);
}
void scale_backward(int64_t n, const float* dy, float factor, float* dx, cudaStream_t stream) {
  require_pointers(n == 0 || (dy && dx), "cuda::scale_backward");
  for_each(n, ScaleBackward{dy, factor, dx}, "cuda::scale_backward", stream);
}
void accumulate_scaled_by_mask(int64_t n, const float* dy, const float* scale, float* dx, cudaStream_t stream) {
  require_pointers(n == 0 || (dy && scale && dx), "cuda::accumulate_scaled_by_mask");
  for_each(n, AccumulateScaledByMask{dy, scale, dx}, "cuda::accumulate_scaled_by_mask", stream);
}

void column_sums(int64_t rows, int64_t cols, const float* x, float* sums, cudaStream_t stream) {
  constexpr const char* kName = "cuda::column_sums";
  require(rows >= 0 && cols >= 0, kName, "rows and cols must be >= 0");
  if (rows == 0 || cols == 0) return;
  require_pointers(x && sums, kName);
  const detail::ColumnPlan plan = detail::plan_columns(rows);
  DeviceBuffer partials = DeviceBuffer::of<float>(static_cast<std::size_t>(plan.chunks * cols), stream);
  detail::column_partials_kernel<1, ValueTerm>
      <<<detail::column_partials_grid(cols, plan), detail::column_partials_block(), 0, stream>>>(
          rows, cols, plan.rows_per_chunk, ValueTerm{x}, partials.as<float>());
  ST_CUDA_CHECK_LAUNCH();
  column_sums_total_kernel<<<detail::finalize_grid(cols), detail::kThreads, 0, stream>>>(partials.as<float>(),
                                                                                         plan.chunks, cols, sums);
  ST_CUDA_CHECK_LAUNCH();
}

void concat_channels_forward(int64_t rows, const std::vector<const float*>& inputs, const std::vector<int64_t>& widths,
                             float* y, cudaStream_t stream) {
  constexpr const char* kName = "cuda::concat_channels_forward";
  require(inputs.size() == widths.size(), kName, "one width per input expected");
  int64_t total = 0;
  for (int64_t w : widths) {
    require(w >= 0, kName, "widths must be >= 0");
    total += w;
  }
  int64_t offset = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    require_pointers(rows * widths[i] == 0 || (inputs[i] && y), kName);
    for_each(rows * widths[i], ConcatSliceForward{inputs[i], widths[i], total, offset, y}, kName, stream);
    offset += widths[i];
  }
}

void concat_channels_backward(int64_t rows, const std::vector<int64_t>& widths, const float* dy,
                              const std::vector<float*>& dx, cudaStream_t stream) {
  constexpr const char* kName = "cuda::concat_channels_backward";
  require(dx.size() == widths.size(), kName, "one width per gradient expected");
  int64_t total = 0;
  for (int64_t w : widths) {
    require(w >= 0, kName, "widths must be >= 0");
    total += w;
  }
  int64_t offset = 0;
  for (std::size_t i = 0; i < widths.size(); ++i) {
    if (dx[i] != nullptr) {
      require_pointers(rows * widths[i] == 0 || dy, kName);
      for_each(rows * widths[i], ConcatSliceBackward{dy, widths[i], total, offset, dx[i]}, kName, stream);
    }
    offset += widths[i];
  }
}

void gelu_forward(int64_t n, const float* x, float* y, float* derivative, cudaStream_t stream) {
  require_pointers(n == 0 || (x && y), "cuda::gelu_forward");
  if (derivative == nullptr) {
    for_each(n, Gelu{x, y}, "cuda::gelu_forward", stream);
  } else {
    for_each(n, GeluWithDerivative{x, y, derivative}, "cuda::gelu_forward", stream);
  }
}
void gelu_backward(int64_t n, const float* derivative, const float* dy, float* dx, cudaStream_t stream) {
  require_pointers(n == 0 || (derivative && dy && dx), "cuda::gelu_backward");
  for_each(n, GeluBackward{derivative, dy, dx}, "cuda::gelu_backward", stream);
}

}  // namespace st::cuda
