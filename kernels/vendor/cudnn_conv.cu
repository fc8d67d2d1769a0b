// Convolution through cuDNN 9's legacy API (kernels/vendor/vendor.h): NHWC tensor descriptors, NHWC
// filter format (= our KRSC), a group count, cross-correlation. For each (device, shape, TF32 setting)
// and pass, cudnnFind*Algorithm runs once and the fastest successful deterministic algorithm is cached
// (the engine wants bit-reproducible results; cuDNN marks some weight-gradient algorithms
// non-deterministic; where no deterministic one exists the fastest is used and stderr says so). TF32: the descriptor's
// math type is CUDNN_DEFAULT_MATH when allowed (cuDNN may then use TF32 tensor cores) and CUDNN_FMA_MATH otherwise
// (fp32 FMA kernels only).
#include <cudnn.h>

#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "kernels/vendor/cudnn_handle.h"
#include "kernels/vendor/vendor.h"

namespace st::vendor {
namespace {

enum Pass { kForward = 0, kDataGradient = 1, kWeightGradient = 2, kDescriptorsOnly = 3 };
const char* const kPassNames[] = {"forward", "data gradient", "weight gradient"};

// Descriptors of one shape, and per pass the chosen algorithm (its own convolution descriptor carries the
// algorithm's math type).
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv[3] = {nullptr, nullptr, nullptr};
  bool chosen[3] = {false, false, false};
  int algorithm[3] = {0, 0, 0};
  std::size_t workspace_bytes[3] = {0, 0, 0};
  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan() {  // errors ignored: this runs at exit, possibly after the driver has shut down
    if (x != nullptr) cudnnDestroyTensorDescriptor(x);
    if (y != nullptr) cudnnDestroyTensorDescriptor(y);
    if (bias != nullptr) cudnnDestroyTensorDescriptor(bias);
    if (w != nullptr) cudnnDestroyFilterDescriptor(w);
    for (cudnnConvolutionDescriptor_t c : conv)
      if (c != nullptr) cudnnDestroyConvolutionDescriptor(c);
  }
};

int as_int(int64_t value, const char* what) {
  if (value < 0 || value > 0x7fffffff) {
    std::ostringstream text;
    text << what << " = " << value << " is out of cuDNN's int range";
    cuda::throw_invalid_argument("st::vendor::conv2d", text.str().c_str());
  }
  return static_cast<int>(value);
}

void describe(const Conv2dGeometry& g, bool tf32, ConvPlan& plan) {
  const int n = as_int(g.batch, "batch"), c = as_int(g.in_channels, "in_channels"), h = as_int(g.in_h, "in_h"),
            w = as_int(g.in_w, "in_w"), k = as_int(g.out_channels, "out_channels"), p = as_int(g.out_h(), "out_h"),
            q = as_int(g.out_w(), "out_w"), r = as_int(g.kernel_h, "kernel_h"), s = as_int(g.kernel_w, "kernel_w"),
            cg = as_int(g.in_per_group(), "in_channels / groups"), pad = as_int(g.pad, "pad"),
            stride = as_int(g.stride, "stride"), groups = as_int(g.groups, "groups");
  ST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.x));
  ST_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, c, h, w));
  ST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.y));
  ST_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, k, p, q));
  ST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.bias));
  ST_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan.bias, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, k, 1, 1));
  ST_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan.w));
  ST_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, k, cg, r, s));
  for (cudnnConvolutionDescriptor_t& conv : plan.conv) {
    ST_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    ST_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, pad, pad, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
    ST_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, groups));
    ST_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  }
  int out_n = 0, out_c = 0, out_h = 0, out_w = 0;  // cuDNN's view of the output must be ours
  ST_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan.conv[0], plan.x, plan.w, &out_n, &out_c, &out_h, &out_w));
  if (out_n != n || out_c != k || out_h != p || out_w != q) {
    std::ostringstream text;
    text << "cuDNN output " << out_n << "x" << out_c << "x" << out_h << "x" << out_w << " differs from the geometry's "
         << n << "x" << k << "x" << p << "x" << q;
    throw std::runtime_error(text.str());
  }
}

// The first (fastest) successful result, in order of preference:
//   1. deterministic and, without TF32, an FMA-only kernel;
//   2. deterministic with another math type (without TF32 it still runs under CUDNN_FMA_MATH);
//   3. any (non-deterministic: bit-reproducibility is lost; said once on stderr so a run shows why).
// No successful result at all is an error listing what cuDNN tried.
template <class Perf>
void choose(const Perf* results, int count, bool tf32, Pass pass, const Conv2dGeometry& g, ConvPlan& plan) {
  int best = -1, best_tier = 0;
  for (int tier = 1; tier <= 3 && best < 0; ++tier)
    for (int i = 0; i < count && best < 0; ++i) {
      const Perf& perf = results[i];
      if (perf.status != CUDNN_STATUS_SUCCESS) continue;
      if (tier <= 2 && perf.determinism != CUDNN_DETERMINISTIC) continue;
      if (tier == 1 && !tf32 && perf.mathType != CUDNN_FMA_MATH) continue;
      best = i;
      best_tier = tier;
    }
  if (best < 0) {
    std::ostringstream text;
    text << "cuDNN found no usable " << kPassNames[pass] << " algorithm (" << count << " tried:";
    for (int i = 0; i < count; ++i)
      text << " algo " << static_cast<int>(results[i].algo) << " " << cudnnGetErrorString(results[i].status);
    text << ")";
    throw std::runtime_error(text.str());
  }
  if (best_tier == 3)
    std::fprintf(
        stderr,
        "st::vendor: cuDNN has no deterministic %s algorithm for N%lld %lldx%lld C%lld -> K%lld kernel %lldx%lld "
        "stride %lld groups %lld; using non-deterministic algo %d\n",
        kPassNames[pass], static_cast<long long>(g.batch), static_cast<long long>(g.in_h),
        static_cast<long long>(g.in_w), static_cast<long long>(g.in_channels), static_cast<long long>(g.out_channels),
        static_cast<long long>(g.kernel_h), static_cast<long long>(g.kernel_w), static_cast<long long>(g.stride),
        static_cast<long long>(g.groups), static_cast<int>(results[best].algo));
  plan.algorithm[pass] = static_cast<int>(results[best].algo);
  plan.workspace_bytes[pass] = results[best].memory;
  ST_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv[pass], tf32 ? results[best].mathType : CUDNN_FMA_MATH));
  plan.chosen[pass] = true;
}

void find_algorithm(cudnnHandle_t handle, bool tf32, Pass pass, const Conv2dGeometry& g, ConvPlan& plan) {
  int returned = 0;
  if (pass == kForward) {
    cudnnConvolutionFwdAlgoPerf_t results[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    ST_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle, plan.x, plan.w, plan.conv[pass], plan.y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, results));
    choose(results, returned, tf32, pass, g, plan);
  } else if (pass == kDataGradient) {
    cudnnConvolutionBwdDataAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    ST_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(
        handle, plan.w, plan.y, plan.conv[pass], plan.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, results));
    choose(results, returned, tf32, pass, g, plan);
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    ST_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(
        handle, plan.x, plan.y, plan.conv[pass], plan.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, results));
    choose(results, returned, tf32, pass, g, plan);
  }
}

// The cached plan of this shape with the algorithm of `pass` chosen (found on first use; none for
// kDescriptorsOnly).
const ConvPlan& plan_for(const Conv2dGeometry& g, cudnnHandle_t handle, Pass pass) {
  static std::mutex mutex;
  static std::map<std::array<int64_t, 12>, std::unique_ptr<ConvPlan>> plans;  // kept for the life of the process
  const bool tf32 = cuda::tf32_enabled();
  int device = 0;
  ST_CUDA_CHECK(cudaGetDevice(&device));
  const std::array<int64_t, 12> key = {device,         tf32 ? 1 : 0, g.batch,    g.in_h,   g.in_w, g.in_channels,
                                       g.out_channels, g.kernel_h,   g.kernel_w, g.stride, g.pad,  g.groups};
  const std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<ConvPlan>& plan = plans[key];
  if (plan == nullptr) {
    auto fresh = std::make_unique<ConvPlan>();
    describe(g, tf32, *fresh);
    plan = std::move(fresh);
  }
  if (pass != kDescriptorsOnly && !plan->chosen[pass]) find_algorithm(handle, tf32, pass, g, *plan);
  return *plan;
}

void check_geometry(const Conv2dGeometry& g, const char* caller) {
  if (g.stride < 1 || g.pad < 0 || g.groups < 1 || g.in_channels % g.groups != 0 || g.out_channels % g.groups != 0 ||
      g.kernel_h < 1 || g.kernel_w < 1 || g.out_h() < 1 || g.out_w() < 1)
    cuda::throw_invalid_argument(caller,
                                 "invalid geometry (stride >= 1, pad >= 0, groups dividing both channel "
                                 "counts, kernel fitting the padded input)");
}

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y, Stream stream) {
  check_geometry(g, "st::vendor::conv2d_forward");
  if (g.batch == 0) return;
  const cudnnHandle_t handle = cudnn_handle(stream);
  const ConvPlan& plan = plan_for(g, handle, kForward);
  void* workspace = cuda::stream_workspace(stream, plan.workspace_bytes[kForward]);
  const float one = 1.0f, zero = 0.0f;
  ST_CUDNN_CHECK(cudnnConvolutionForward(handle, &one, plan.x, x, plan.w, w, plan.conv[kForward],
                                         static_cast<cudnnConvolutionFwdAlgo_t>(plan.algorithm[kForward]), workspace,
                                         plan.workspace_bytes[kForward], &zero, plan.y, y));
  if (b != nullptr) ST_CUDNN_CHECK(cudnnAddTensor(handle, &one, plan.bias, b, &one, plan.y, y));
}

void conv2d_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, Stream stream) {
  check_geometry(g, "st::vendor::conv2d_backward");
  if (g.batch == 0) return;
  const cudnnHandle_t handle = cudnn_handle(stream);
  const float one = 1.0f;  // beta = 1: cuDNN adds into dx, dw and db
  if (db != nullptr) {
    const ConvPlan& plan = plan_for(g, handle, kDescriptorsOnly);
    ST_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle, &one, plan.y, dy, &one, plan.bias, db));
  }
  if (dx != nullptr) {
    const ConvPlan& plan = plan_for(g, handle, kDataGradient);
    void* workspace = cuda::stream_workspace(stream, plan.workspace_bytes[kDataGradient]);
    ST_CUDNN_CHECK(
        cudnnConvolutionBackwardData(handle, &one, plan.w, w, plan.y, dy, plan.conv[kDataGradient],
                                     static_cast<cudnnConvolutionBwdDataAlgo_t>(plan.algorithm[kDataGradient]),
                                     workspace, plan.workspace_bytes[kDataGradient], &one, plan.x, dx));
  }
  if (dw != nullptr) {
    const ConvPlan& plan = plan_for(g, handle, kWeightGradient);
    void* workspace = cuda::stream_workspace(stream, plan.workspace_bytes[kWeightGradient]);
    ST_CUDNN_CHECK(
        cudnnConvolutionBackwardFilter(handle, &one, plan.x, x, plan.y, dy, plan.conv[kWeightGradient],
                                       static_cast<cudnnConvolutionBwdFilterAlgo_t>(plan.algorithm[kWeightGradient]),
                                       workspace, plan.workspace_bytes[kWeightGradient], &one, plan.w, dw));
  }
}

}  // namespace st::vendor
