// Pooling over NHWC (formulas and summation order as kernels/cpu/pooling.cpp).
//
// Forwards: one thread per OUTPUT element, o = ((n * out_h + oh) * out_w + ow) * C + c, c fastest, so
// consecutive threads read consecutive channels (coalesced). Window taps are visited in (r, s) order.
// Backwards: one thread per INPUT (dx) element, i = ((n * in_h + ih) * in_w + iw) * C + c. The outputs
// whose window covers row ih are oh in [ceil((ih + pad - kernel + 1) / stride), floor((ih + pad) / stride)]
// (clamped to [0, out_h - 1]), likewise for columns; they are visited in increasing (oh, ow) order,
// which is the order in which the CPU's scatter adds them, and each thread writes only its own dx
// element: deterministic without atomics.
#include <cuda_runtime.h>

#include <cmath>
#include <limits>

#include "kernels/cuda/common.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/pooling.h"

namespace st::cuda {
namespace {

struct PoolShape {
  int64_t batch, in_h, in_w, channels, kernel, stride, pad, out_h, out_w;
};

PoolShape shape_of(const Pool2dGeometry& g, const char* name) {
  require(g.batch > 0 && g.in_h > 0 && g.in_w > 0 && g.channels > 0, name,
          "batch, in_h, in_w and channels must be > 0");
  require(g.kernel > 0 && g.stride > 0 && g.pad >= 0, name, "kernel > 0, stride > 0, pad >= 0 expected");
  require(g.out_h() > 0 && g.out_w() > 0, name, "the window does not fit: out_h and out_w must be > 0");
  // argmax stores an index within one image as int32 (as the CPU does)
  require(g.in_h * g.in_w * g.channels <= std::numeric_limits<int32_t>::max(), name,
          "one image (in_h * in_w * channels) must have fewer than 2^31 elements");
  return PoolShape{g.batch, g.in_h, g.in_w, g.channels, g.kernel, g.stride, g.pad, g.out_h(), g.out_w()};
}

// Outputs [lo, hi] along one axis whose window covers input position i (empty when lo > hi).
__device__ __forceinline__ void covering_outputs(int64_t i, int64_t pad, int64_t kernel, int64_t stride, int64_t out,
                                                 int64_t& lo, int64_t& hi) {
  const int64_t first = i + pad - kernel + 1;  // smallest oh * stride allowed
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  hi = (i + pad) / stride;  // i + pad >= 0
  if (hi > out - 1) hi = out - 1;
}

__global__ void max_pool_forward_kernel(PoolShape s, const float* x, float* y, int32_t* argmax) {
  const int64_t total = s.batch * s.out_h * s.out_w * s.channels;
  for (int64_t o = detail::first_index(); o < total; o += detail::index_stride()) {
    const int64_t c = o % s.channels;
    int64_t t = o / s.channels;
    const int64_t ow = t % s.out_w;
    t /= s.out_w;
    const int64_t oh = t % s.out_h;
    const int64_t n = t / s.out_h;
    const float* image = x + n * s.in_h * s.in_w * s.channels;
    float best = -INFINITY;
    int64_t arg = -1;
    for (int64_t r = 0; r < s.kernel; ++r) {
      const int64_t ih = oh * s.stride - s.pad + r;
      if (ih < 0 || ih >= s.in_h) continue;
      for (int64_t q = 0; q < s.kernel; ++q) {
        const int64_t iw = ow * s.stride - s.pad + q;
        if (iw < 0 || iw >= s.in_w) continue;
        const int64_t index = (ih * s.in_w + iw) * s.channels + c;
        const float v = image[index];
        if (v > best || arg < 0) {
          best = v;
          arg = index;
        }
      }
    }
    y[o] = best;
    argmax[o] = static_cast<int32_t>(arg);
  }
}

__global__ void max_pool_backward_kernel(PoolShape s, const int32_t* argmax, const float* dy, float* dx) {
  const int64_t total = s.batch * s.in_h * s.in_w * s.channels;
  for (int64_t i = detail::first_index(); i < total; i += detail::index_stride()) {
    const int64_t c = i % s.channels;
    int64_t t = i / s.channels;
    const int64_t iw = t % s.in_w;
    t /= s.in_w;
    const int64_t ih = t % s.in_h;
    const int64_t n = t / s.in_h;
    const int64_t local = (ih * s.in_w + iw) * s.channels + c;  // what argmax holds when this element won
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    covering_outputs(ih, s.pad, s.kernel, s.stride, s.out_h, oh_lo, oh_hi);
    covering_outputs(iw, s.pad, s.kernel, s.stride, s.out_w, ow_lo, ow_hi);
    float acc = dx[i];
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh)
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
        const int64_t o = ((n * s.out_h + oh) * s.out_w + ow) * s.channels + c;
        if (argmax[o] == local) acc += dy[o];
      }
    dx[i] = acc;
  }
}

__global__ void avg_pool_forward_kernel(PoolShape s, float inv_area, const float* x, float* y) {
  const int64_t total = s.batch * s.out_h * s.out_w * s.channels;
  for (int64_t o = detail::first_index(); o < total; o += detail::index_stride()) {
    const int64_t c = o % s.channels;
    int64_t t = o / s.channels;
    const int64_t ow = t % s.out_w;
    t /= s.out_w;
    const int64_t oh = t % s.out_h;
    const int64_t n = t / s.out_h;
    const float* image = x + n * s.in_h * s.in_w * s.channels;
    float sum = 0.0f;
    for (int64_t r = 0; r < s.kernel; ++r) {
      const int64_t ih = oh * s.stride - s.pad + r;
      if (ih < 0 || ih >= s.in_h) continue;
      for (int64_t q = 0; q < s.kernel; ++q) {
        const int64_t iw = ow * s.stride - s.pad + q;
        if (iw < 0 || iw >= s.in_w) continue;
        sum += image[(ih * s.in_w + iw) * s.channels + c];
      }
    }
    y[o] = sum * inv_area;
  }
}

__global__ void avg_pool_backward_kernel(PoolShape s, float inv_area, const float* dy, float* dx) {
  const int64_t total = s.batch * s.in_h * s.in_w * s.channels;
  for (int64_t i = detail::first_index(); i < total; i += detail::index_stride()) {
    const int64_t c = i % s.channels;
    int64_t t = i / s.channels;
    const int64_t iw = t % s.in_w;
    t /= s.in_w;
    const int64_t ih = t % s.in_h;
    const int64_t n = t / s.in_h;
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    covering_outputs(ih, s.pad, s.kernel, s.stride, s.out_h, oh_lo, oh_hi);
    covering_outputs(iw, s.pad, s.kernel, s.stride, s.out_w, ow_lo, ow_hi);
    float acc = dx[i];
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh)
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow)
        acc += dy[((n * s.out_h + oh) * s.out_w + ow) * s.channels + c] * inv_area;
    dx[i] = acc;
  }
}

// Thread -> output (n, c) = (o / channels, o mod channels); sums the pixels in order.
__global__ void global_avg_pool_forward_kernel(int64_t batch, int64_t pixels, int64_t channels, float inv_pixels,
                                               const float* x, float* y) {
  const int64_t total = batch * channels;
  for (int64_t o = detail::first_index(); o < total; o += detail::index_stride()) {
    const int64_t n = o / channels, c = o % channels;
    const float* in = x + n * pixels * channels + c;
    float sum = 0.0f;
    for (int64_t p = 0; p < pixels; ++p) sum += in[p * channels];
    y[o] = sum * inv_pixels;
  }
}

// Thread -> dx element i of [batch, pixels, channels]: dx[i] += dy[n, c] / pixels.
__global__ void global_avg_pool_backward_kernel(int64_t batch, int64_t pixels, int64_t channels, float inv_pixels,
                                                const float* dy, float* dx) {
  const int64_t total = batch * pixels * channels;
  for (int64_t i = detail::first_index(); i < total; i += detail::index_stride()) {
    const int64_t n = i / (pixels * channels), c = i % channels;
    dx[i] += dy[n * channels + c] * inv_pixels;
  }
}

struct ShortcutShape {
  int64_t batch, in_h, in_w, in_channels, out_channels, stride, out_h, out_w, before;
};

ShortcutShape shape_of(const PadShortcutGeometry& g, const char* name) {
  require(g.batch > 0 && g.in_h > 0 && g.in_w > 0 && g.in_channels > 0 && g.stride > 0, name,
          "batch, in_h, in_w, in_channels and stride must be > 0");
  require(g.out_channels >= g.in_channels, name, "out_channels must be >= in_channels");
  return ShortcutShape{g.batch,  g.in_h,    g.in_w,    g.in_channels, g.out_channels,
                       g.stride, g.out_h(), g.out_w(), g.pad_before()};
}

// Thread -> output element o = ((n * out_h + oh) * out_w + ow) * out_channels + co; channel co copies
// input channel co - before of pixel (oh * stride, ow * stride), or is 0 outside [before, before + in_channels).
__global__ void pad_shortcut_forward_kernel(ShortcutShape s, const float* x, float* y) {
  const int64_t total = s.batch * s.out_h * s.out_w * s.out_channels;
  for (int64_t o = detail::first_index(); o < total; o += detail::index_stride()) {
    const int64_t co = o % s.out_channels;
    int64_t t = o / s.out_channels;
    const int64_t ow = t % s.out_w;
    t /= s.out_w;
    const int64_t oh = t % s.out_h;
    const int64_t n = t / s.out_h;
    const int64_t ci = co - s.before;
    y[o] = (ci >= 0 && ci < s.in_channels)
               ? x[((n * s.in_h + oh * s.stride) * s.in_w + ow * s.stride) * s.in_channels + ci]
               : 0.0f;
  }
}

// Thread -> (n, oh, ow, ci), ci fastest, over batch * out_h * out_w * in_channels: adds the gradient of
// output channel before + ci to input pixel (oh * stride, ow * stride). Distinct threads own distinct dx
// elements; dx elements off the stride grid receive nothing.
__global__ void pad_shortcut_backward_kernel(ShortcutShape s, const float* dy, float* dx) {
  const int64_t total = s.batch * s.out_h * s.out_w * s.in_channels;
  for (int64_t j = detail::first_index(); j < total; j += detail::index_stride()) {
    const int64_t ci = j % s.in_channels;
    int64_t t = j / s.in_channels;
    const int64_t ow = t % s.out_w;
    t /= s.out_w;
    const int64_t oh = t % s.out_h;
    const int64_t n = t / s.out_h;
    dx[((n * s.in_h + oh * s.stride) * s.in_w + ow * s.stride) * s.in_channels + ci] +=
        dy[((n * s.out_h + oh) * s.out_w + ow) * s.out_channels + s.before + ci];
  }
}

void require_pointers(bool ok, const char* name) { require(ok, name, "null pointer argument"); }

}  // namespace

void max_pool_forward(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax, cudaStream_t stream) {
  constexpr const char* kName = "cuda::max_pool_forward";
  const PoolShape s = shape_of(g, kName);
  require_pointers(x && y && argmax, kName);
  const int64_t total = s.batch * s.out_h * s.out_w * s.channels;
  detail::launch_grid_stride(max_pool_forward_kernel, total, stream, s, x, y, argmax);
}

void max_pool_backward(const Pool2dGeometry& g, const int32_t* argmax, const float* dy, float* dx,
                       cudaStream_t stream) {
  constexpr const char* kName = "cuda::max_pool_backward";
  const PoolShape s = shape_of(g, kName);
  require_pointers(argmax && dy && dx, kName);
  const int64_t total = s.batch * s.in_h * s.in_w * s.channels;
  detail::launch_grid_stride(max_pool_backward_kernel, total, stream, s, argmax, dy, dx);
}

void avg_pool_forward(const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream) {
  constexpr const char* kName = "cuda::avg_pool_forward";
  const PoolShape s = shape_of(g, kName);
  require_pointers(x && y, kName);
  const float inv_area = 1.0f / static_cast<float>(g.kernel * g.kernel);
  const int64_t total = s.batch * s.out_h * s.out_w * s.channels;
  detail::launch_grid_stride(avg_pool_forward_kernel, total, stream, s, inv_area, x, y);
}

void avg_pool_backward(const Pool2dGeometry& g, const float* dy, float* dx, cudaStream_t stream) {
  constexpr const char* kName = "cuda::avg_pool_backward";
  const PoolShape s = shape_of(g, kName);
  require_pointers(dy && dx, kName);
  const float inv_area = 1.0f / static_cast<float>(g.kernel * g.kernel);
  const int64_t total = s.batch * s.in_h * s.in_w * s.channels;
  detail::launch_grid_stride(avg_pool_backward_kernel, total, stream, s, inv_area, dy, dx);
}

void global_avg_pool_forward(int64_t batch, int64_t pixels, int64_t channels, const float* x, float* y,
                             cudaStream_t stream) {
  constexpr const char* kName = "cuda::global_avg_pool_forward";
  require(batch > 0 && pixels > 0 && channels > 0, kName, "batch, pixels and channels must be > 0");
  require_pointers(x && y, kName);
  const float inv_pixels = 1.0f / static_cast<float>(pixels);
  detail::launch_grid_stride(global_avg_pool_forward_kernel, batch * channels, stream, batch, pixels, channels,
                             inv_pixels, x, y);
}

void global_avg_pool_backward(int64_t batch, int64_t pixels, int64_t channels, const float* dy, float* dx,
                              cudaStream_t stream) {
  constexpr const char* kName = "cuda::global_avg_pool_backward";
  require(batch > 0 && pixels > 0 && channels > 0, kName, "batch, pixels and channels must be > 0");
  require_pointers(dy && dx, kName);
  const float inv_pixels = 1.0f / static_cast<float>(pixels);
  detail::launch_grid_stride(global_avg_pool_backward_kernel, batch * pixels * channels, stream, batch, pixels,
                             channels, inv_pixels, dy, dx);
}

void pad_shortcut_forward(const PadShortcutGeometry& g, const float* x, float* y, cudaStream_t stream) {
  constexpr const char* kName = "cuda::pad_shortcut_forward";
  const ShortcutShape s = shape_of(g, kName);
  require_pointers(x && y, kName);
  const int64_t total = s.batch * s.out_h * s.out_w * s.out_channels;
  detail::launch_grid_stride(pad_shortcut_forward_kernel, total, stream, s, x, y);
}

void pad_shortcut_backward(const PadShortcutGeometry& g, const float* dy, float* dx, cudaStream_t stream) {
  constexpr const char* kName = "cuda::pad_shortcut_backward";
  const ShortcutShape s = shape_of(g, kName);
  require_pointers(dy && dx, kName);
  const int64_t total = s.batch * s.out_h * s.out_w * s.in_channels;
  detail::launch_grid_stride(pad_shortcut_backward_kernel, total, stream, s, dy, dx);
}

}  // namespace st::cuda
