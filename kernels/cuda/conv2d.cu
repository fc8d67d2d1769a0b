// Our 2-D convolution (kernels/cuda/conv2d.h): the three passes as implicit GEMMs on the tiled engine
// of implicit_gemm.cuh, plus direct kernels for depthwise convolutions (one input channel per group,
// where a GEMM would have a contraction of R*S only).
#include <algorithm>

#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/implicit_gemm.cuh"

namespace st::cuda {
namespace {

using igemm::checked_int;
using igemm::ConvShape;
using igemm::fail_argument;

// The geometry as 32-bit ints, refused with a message naming the field when it is not a valid
// convolution or a tensor would exceed 32-bit indexing.
ConvShape shape_of(const Conv2dGeometry& g, const char* caller) {
  if (g.batch < 0) fail_argument(caller, "batch = ", g.batch, " must not be negative");
  if (g.in_h < 1 || g.in_w < 1) fail_argument(caller, "input size ", g.in_h, "x", g.in_w, " must be positive");
  if (g.in_channels < 1 || g.out_channels < 1)
    fail_argument(caller, "channels ", g.in_channels, " -> ", g.out_channels, " must be positive");
  if (g.kernel_h < 1 || g.kernel_w < 1)
    fail_argument(caller, "kernel ", g.kernel_h, "x", g.kernel_w, " must be positive");
  if (g.stride < 1 || g.pad < 0) fail_argument(caller, "stride = ", g.stride, " must be >= 1, pad = ", g.pad, " >= 0");
  if (g.groups < 1 || g.in_channels % g.groups != 0 || g.out_channels % g.groups != 0)
    fail_argument(caller, "groups = ", g.groups, " must divide in_channels = ", g.in_channels,
                  " and out_channels = ", g.out_channels);
  if (g.out_h() < 1 || g.out_w() < 1)
    fail_argument(caller, "kernel ", g.kernel_h, "x", g.kernel_w, " larger than the padded input ", g.in_h, "x", g.in_w,
                  " + 2*", g.pad);
  checked_int(g.batch * g.in_h * g.in_w * g.in_channels, caller, "input elements");
  checked_int(g.batch * g.out_h() * g.out_w() * g.out_channels, caller, "output elements");
  checked_int(g.weight_numel(), caller, "weight elements");
  ConvShape s{};
  s.batch = static_cast<int>(g.batch);
  s.in_h = static_cast<int>(g.in_h);
  s.in_w = static_cast<int>(g.in_w);
  s.in_c = static_cast<int>(g.in_channels);
  s.out_c = static_cast<int>(g.out_channels);
  s.kernel_h = static_cast<int>(g.kernel_h);
  s.kernel_w = static_cast<int>(g.kernel_w);
  s.out_h = static_cast<int>(g.out_h());
  s.out_w = static_cast<int>(g.out_w());
  s.stride = static_cast<int>(g.stride);
  s.pad = static_cast<int>(g.pad);
  s.groups = static_cast<int>(g.groups);
  s.in_per_group = static_cast<int>(g.in_per_group());
  s.out_per_group = static_cast<int>(g.out_per_group());
  return s;
}

bool is_depthwise(const ConvShape& s) { return s.groups == s.in_c && s.out_c == s.in_c; }

int grid_for(int count) { return std::min(igemm::ceil_div(count, 256), 65535); }

// ---- depthwise: w[c][r][s], one thread per output (forward) or input (data gradient) element ---------

// The per-element bodies are __host__ __device__ so they can be checked on the CPU.

// y[n, p, q, c] = b[c] + sum_{r,s} x[n, p*stride - pad + r, q*stride - pad + s, c] * w[c, r, s]
__host__ __device__ inline void depthwise_forward_at(const ConvShape& s, const float* x, const float* w, const float* b,
                                                     float* y, int index) {
  const int c = index % s.in_c, pixel = index / s.in_c;  // pixel = (n*P + p)*Q + q
  const int q = pixel % s.out_w, np = pixel / s.out_w, p = np % s.out_h, n = np / s.out_h;
  float sum = 0.0f;
  for (int r = 0; r < s.kernel_h; ++r) {
    const int ih = p * s.stride - s.pad + r;
    if (ih < 0 || ih >= s.in_h) continue;
    for (int t = 0; t < s.kernel_w; ++t) {
      const int iw = q * s.stride - s.pad + t;
      if (iw < 0 || iw >= s.in_w) continue;
      sum += x[((n * s.in_h + ih) * s.in_w + iw) * s.in_c + c] * w[(c * s.kernel_h + r) * s.kernel_w + t];
    }
  }
  y[index] = b != nullptr ? sum + b[c] : sum;
}

// dx[n, h, w, c] += sum_{r,s} dy[n, p, q, c] * w[c, r, s] over the (p, q) with p*stride - pad + r = h
// and q*stride - pad + s = w.
__host__ __device__ inline void depthwise_data_gradient_at(const ConvShape& s, const float* w, const float* dy,
                                                           float* dx, int index) {
  const int c = index % s.in_c, pixel = index / s.in_c;  // pixel = (n*H + h)*W + w
  const int iw = pixel % s.in_w, nh = pixel / s.in_w, ih = nh % s.in_h, n = nh / s.in_h;
  float sum = 0.0f;
  for (int r = 0; r < s.kernel_h; ++r) {
    const int ph = ih + s.pad - r;
    if (ph < 0 || ph % s.stride != 0 || ph / s.stride >= s.out_h) continue;
    const int p = ph / s.stride;
    for (int t = 0; t < s.kernel_w; ++t) {
      const int pw = iw + s.pad - t;
      if (pw < 0 || pw % s.stride != 0 || pw / s.stride >= s.out_w) continue;
      const int q = pw / s.stride;
      sum += dy[((n * s.out_h + p) * s.out_w + q) * s.in_c + c] * w[(c * s.kernel_h + r) * s.kernel_w + t];
    }
  }
  dx[index] += sum;
}

// Partial weight gradient over one chunk of output pixels: element e = tap * C + c (tap = r*S + s) sums
// dy[pixel, c] * x[tapped pixel, c] over pixels [chunk * per_chunk, ...) in order and writes
// partial[chunk][c*R*S + tap] (the w[c][r][s] layout); the chunks are then added in order.
__host__ __device__ inline void depthwise_weight_partial_at(const ConvShape& s, int pixels_per_chunk, const float* x,
                                                            const float* dy, float* partial, int e, int chunk) {
  const int taps = s.kernel_h * s.kernel_w, count = s.in_c * taps;
  const int tap = e / s.in_c, c = e - tap * s.in_c, r = tap / s.kernel_w, t = tap - r * s.kernel_w;
  const int pixels = s.batch * s.out_h * s.out_w;
  const int begin = chunk * pixels_per_chunk,
            end = pixels < begin + pixels_per_chunk ? pixels : begin + pixels_per_chunk;
  int q = begin % s.out_w, p = (begin / s.out_w) % s.out_h, n = begin / (s.out_w * s.out_h);
  float sum = 0.0f;
  for (int pixel = begin; pixel < end; ++pixel) {
    const int ih = p * s.stride - s.pad + r, iw = q * s.stride - s.pad + t;
    if (ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w)
      sum += dy[pixel * s.in_c + c] * x[((n * s.in_h + ih) * s.in_w + iw) * s.in_c + c];
    if (++q == s.out_w) {
      q = 0;
      if (++p == s.out_h) {
        p = 0;
        ++n;
      }
    }
  }
  partial[chunk * count + c * taps + tap] = sum;
}

__global__ void depthwise_forward_kernel(const ConvShape s, const float* x, const float* w, const float* b, float* y) {
  const int count = s.batch * s.out_h * s.out_w * s.in_c;
  for (int index = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); index < count;
       index += static_cast<int>(gridDim.x * blockDim.x))
    depthwise_forward_at(s, x, w, b, y, index);
}

__global__ void depthwise_data_gradient_kernel(const ConvShape s, const float* w, const float* dy, float* dx) {
  const int count = s.batch * s.in_h * s.in_w * s.in_c;
  for (int index = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); index < count;
       index += static_cast<int>(gridDim.x * blockDim.x))
    depthwise_data_gradient_at(s, w, dy, dx, index);
}

// grid = (ceil(C*R*S / 256), chunks)
__global__ void depthwise_weight_partials_kernel(const ConvShape s, int pixels_per_chunk, const float* x,
                                                 const float* dy, float* partial) {
  const int e = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (e < s.in_c * s.kernel_h * s.kernel_w)
    depthwise_weight_partial_at(s, pixels_per_chunk, x, dy, partial, e, static_cast<int>(blockIdx.y));
}

// The chunking of the depthwise weight gradient: about 2048 threads on each of 132 SMs and >= 32 pixels
// per chunk; a function of the shape only. Returns the chunk count; sets pixels_per_chunk.
int depthwise_weight_chunks(const ConvShape& s, int& pixels_per_chunk) {
  constexpr int kTargetThreads = 132 * 2048;
  const int count = s.in_c * s.kernel_h * s.kernel_w, pixels = s.batch * s.out_h * s.out_w;
  const int wanted = std::max(1, std::min({kTargetThreads / count, igemm::ceil_div(pixels, 32), 65535}));
  pixels_per_chunk = igemm::ceil_div(pixels, wanted);
  return igemm::ceil_div(pixels, pixels_per_chunk);
}

void depthwise_weight_gradient(const ConvShape& s, const float* x, const float* dy, float* dw, Stream stream) {
  int pixels_per_chunk = 0;
  const int chunks = depthwise_weight_chunks(s, pixels_per_chunk);
  const int count = s.in_c * s.kernel_h * s.kernel_w;
  checked_int(static_cast<long long>(chunks) * count, "st::cuda::conv2d_backward", "depthwise partial elements");
  float* partial = static_cast<float*>(
      stream_workspace(stream, static_cast<std::size_t>(chunks) * static_cast<std::size_t>(count) * sizeof(float)));
  const dim3 grid(static_cast<unsigned>(igemm::ceil_div(count, 256)), static_cast<unsigned>(chunks));
  depthwise_weight_partials_kernel<<<grid, 256, 0, stream>>>(s, pixels_per_chunk, x, dy, partial);
  ST_CUDA_CHECK_LAUNCH();
  igemm::accumulate_partials(chunks, count, partial, dw, stream);
}

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y, Stream stream) {
  constexpr const char* kCaller = "st::cuda::conv2d_forward";
  const ConvShape s = shape_of(g, kCaller);
  if (s.batch == 0) return;
  if (x == nullptr || w == nullptr || y == nullptr) fail_argument(kCaller, "x, w and y must not be null");
  if (is_depthwise(s)) {
    depthwise_forward_kernel<<<grid_for(s.batch * s.out_h * s.out_w * s.in_c), 256, 0, stream>>>(s, x, w, b, y);
    ST_CUDA_CHECK_LAUNCH();
    return;
  }
  igemm::run(igemm::ConvForwardProblem{s, x, w, b, y}, s.batch * s.out_h * s.out_w, s.out_per_group, s.patch(),
             s.groups, stream, kCaller);
}

void conv2d_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, Stream stream) {
  constexpr const char* kCaller = "st::cuda::conv2d_backward";
  const ConvShape s = shape_of(g, kCaller);
  if (s.batch == 0) return;
  if (dy == nullptr) fail_argument(kCaller, "dy must not be null");
  if (dx != nullptr && w == nullptr) fail_argument(kCaller, "the data gradient needs w");
  if (dw != nullptr && x == nullptr) fail_argument(kCaller, "the weight gradient needs x");
  const int out_pixels = s.batch * s.out_h * s.out_w;
  // The bias gradient first: its partial sums and the weight gradient's share the stream workspace.
  if (db != nullptr) igemm::column_sums_accumulate(out_pixels, s.out_c, dy, db, stream);
  if (is_depthwise(s)) {
    if (dx != nullptr) {
      depthwise_data_gradient_kernel<<<grid_for(s.batch * s.in_h * s.in_w * s.in_c), 256, 0, stream>>>(s, w, dy, dx);
      ST_CUDA_CHECK_LAUNCH();
    }
    if (dw != nullptr) depthwise_weight_gradient(s, x, dy, dw, stream);
    return;
  }
  const int kernel_taps = s.kernel_h * s.kernel_w;
  if (dx != nullptr)
    igemm::run(igemm::ConvDataGradientProblem{s, dy, w, dx}, s.batch * s.in_h * s.in_w, s.in_per_group,
               kernel_taps * s.out_per_group, s.groups, stream, kCaller);
  if (dw != nullptr)
    igemm::run(igemm::ConvWeightGradientProblem{s, x, dy, dw}, s.out_per_group, s.patch(), out_pixels, s.groups, stream,
               kCaller);
}

}  // namespace st::cuda
