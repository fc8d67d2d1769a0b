// kernelbench: our CUDA convolution and GEMM kernels (kernels/cuda) against their vendor twins
// (kernels/vendor: cuDNN, cuBLAS) on every distinct conv and linear layer shape of the CIFAR models
// (tools/kernelbench/shapes.cpp), for the forward pass, the data gradient and the weight gradient.
//   - Each shape is first checked against the CPU reference (kernels/cpu) at a small batch (--check-batch,
//     default 8: the CPU is slow at 128), ours and vendor, as normalised error ||gpu - cpu|| / ||cpu||
//     with the tolerances of the GPU test suite (FP32 1e-5, cuDNN FP32 1e-4 (Winograd/FFT), TF32 5e-3).
//   - Then timed at --batch: cudaEvent timing of one call, --warmup calls first (cuDNN's algorithm search
//     happens in the first), the median of --repeats, the L2 cache flushed before every repeat by writing
//     a buffer twice its size.
//   - Printed as a markdown table: time of ours and vendor, their ratio, TFLOP/s of each (useful flops:
//     2 * multiply-adds of the pass) and % of the device's peak (H100 SXM / H200: 67 TFLOP/s fp32,
//     495 TFLOP/s dense TF32; other devices: n/a), and per model the total over its layers (x layer count).
//   - vit-tiny also times fused attention (65 tokens, 3 heads of 64): ours (kernels/cuda/attention.cu)
//     against cuDNN's FP32 multi-head attention (kernels/vendor/cudnn_attention.cu), forward and
//     forward + backward (cuDNN's backward call reruns its forward, so that row is one call of each).
//   - --list prints the shapes and exits (no GPU needed).
// Exit status: 0 when every check passed, 2 when a check failed or a kernel raised an error (the table
// is still written), 1 without a GPU or on an error outside the kernels, CLI11's code for bad flags.
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/transformer.h"
#include "kernels/vendor/vendor.h"
#include "tools/kernelbench/shapes.h"

namespace {

using Floats = std::vector<float>;
using st::kernelbench::ConvLayer;
using st::kernelbench::LinearLayer;

struct Options {
  std::string model = "all";
  int64_t batch = 128;
  int repeats = 20;
  int warmup = 3;
  std::string tf32 = "on";
  std::string out;
  int64_t check_batch = 8;
  bool list = false;
};

constexpr double kFp32Tolerance = 1e-5;
constexpr double kTf32Tolerance = 5e-3;
constexpr double kCudnnFp32Tolerance = 1e-4;

// A device buffer of floats (RAII).
class DeviceFloats {
 public:
  explicit DeviceFloats(int64_t count) : count_(count) {
    if (count_ > 0) ST_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), bytes()));
  }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  ~DeviceFloats() {
    if (data_ != nullptr) cudaFree(data_);
  }
  float* data() const { return data_; }
  void upload(const Floats& host) {
    if (static_cast<int64_t>(host.size()) < count_) throw std::logic_error("DeviceFloats::upload: host too short");
    if (count_ > 0) ST_CUDA_CHECK(cudaMemcpy(data_, host.data(), bytes(), cudaMemcpyHostToDevice));
  }
  Floats download() const {
    Floats host(static_cast<std::size_t>(count_));
    if (count_ > 0) ST_CUDA_CHECK(cudaMemcpy(host.data(), data_, bytes(), cudaMemcpyDeviceToHost));
    return host;
  }
  void zero() {
    if (count_ > 0) ST_CUDA_CHECK(cudaMemset(data_, 0, bytes()));
  }

 private:
  std::size_t bytes() const { return static_cast<std::size_t>(count_) * sizeof(float); }
  float* data_ = nullptr;
  int64_t count_ = 0;
};

// The device copies of one layer's check: inputs uploaded, outputs allocated, gradients zeroed
// (the backward functions accumulate).
struct LayerBuffers {
  LayerBuffers(const Floats& x_host, const Floats& w_host, const Floats& b_host, const Floats& dy_host)
      : x(size(x_host)), w(size(w_host)), b(size(b_host)), dy(size(dy_host)), y(size(dy_host)), dx(size(x_host)),
        dw(size(w_host)), db(size(b_host)) {
    x.upload(x_host);
    w.upload(w_host);
    b.upload(b_host);
    dy.upload(dy_host);
    dx.zero();
    dw.zero();
    db.zero();
  }
  static int64_t size(const Floats& v) { return static_cast<int64_t>(v.size()); }
  DeviceFloats x, w, b, dy, y, dx, dw, db;
};

// Uniform values in [-1, 1), generated once and shared (timing does not depend on the values).
const Floats& random_pool(int64_t count) {
  static Floats pool;
  static st::Rng rng(12345);
  while (static_cast<int64_t>(pool.size()) < count) pool.push_back(rng.uniform(-1.0f, 1.0f));
  return pool;
}

Floats random_floats(int64_t count, st::Rng& rng) {
  Floats values(static_cast<std::size_t>(count));
  for (float& v : values) v = rng.normal();
  return values;
}

std::unique_ptr<DeviceFloats> device_random(int64_t count) {
  auto buffer = std::make_unique<DeviceFloats>(count);
  buffer->upload(random_pool(count));
  return buffer;
}

double normalised_error(const Floats& got, const Floats& want) {
  double difference = 0.0, reference = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - static_cast<double>(want[i]);
    difference += d * d;
    reference += static_cast<double>(want[i]) * static_cast<double>(want[i]);
  }
  if (reference == 0.0) return difference == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(difference / reference);
}

// ---- device peak -------------------------------------------------------------------------------------

struct Peak {
  double fp32_tflops = 0.0, tf32_tflops = 0.0;  // 0: unknown
  std::string source;
};

Peak peak_for(const std::string& device) {
  const bool h100 = device.find("H100") != std::string::npos;
  const bool h100_sxm = h100 && device.find("PCIe") == std::string::npos && device.find("NVL") == std::string::npos;
  if (h100_sxm) return {67.0, 495.0, "H100 SXM: 67 fp32 / 495 dense TF32 TFLOP/s"};
  if (device.find("H200") != std::string::npos)
    return {67.0, 495.0, "H200 (the H100 SXM chip): 67 fp32 / 495 dense TF32 TFLOP/s"};
  return {};
}

// ---- timing -----------------------------------------------------------------------------------------

class Timer {
 public:
  explicit Timer(std::size_t flush_bytes) : flush_bytes_(flush_bytes) {
    ST_CUDA_CHECK(cudaMalloc(&flush_, flush_bytes_));
    ST_CUDA_CHECK(cudaEventCreate(&start_));
    ST_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() {
    cudaFree(flush_);
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  // Median milliseconds of one launch (all work on the legacy default stream).
  double median_ms(const std::function<void()>& launch, int warmup, int repeats) {
    for (int i = 0; i < warmup; ++i) launch();
    ST_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> times;
    for (int r = 0; r < repeats; ++r) {
      ST_CUDA_CHECK(cudaMemsetAsync(flush_, r & 0xff, flush_bytes_, nullptr));  // evicts the L2
      ST_CUDA_CHECK(cudaEventRecord(start_, nullptr));
      launch();
      ST_CUDA_CHECK(cudaEventRecord(stop_, nullptr));
      ST_CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0.0f;
      ST_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      times.push_back(ms);
    }
    std::sort(times.begin(), times.end());
    const std::size_t mid = times.size() / 2;
    return times.size() % 2 == 1 ? times[mid] : 0.5 * (static_cast<double>(times[mid - 1]) + times[mid]);
  }

 private:
  std::size_t flush_bytes_;
  void* flush_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// ---- one table row per (layer, pass) --------------------------------------------------------------------

enum Impl { kOurs = 0, kVendor = 1 };

struct Row {
  std::string model, layer;
  bool conv = true;
  int count = 1;
  std::string pass;
  double flops = 0.0;
  std::optional<double> ms[2], error[2];  // empty: failed (see errors)
  double tolerance[2] = {0.0, 0.0};       // set: this row's own check tolerance (attention)
  bool in_total = true;                   // counted in the per-model total
};

Row make_row(const std::string& model, const std::string& layer, int count, const char* pass, bool conv) {
  Row row;
  row.model = model;
  row.layer = layer;
  row.count = count;
  row.pass = pass;
  row.conv = conv;
  return row;
}

struct Report {
  std::vector<Row> rows;
  std::vector<std::string> errors;
  double conv_tolerance[2] = {0.0, 0.0}, linear_tolerance = 0.0;  // conv: [ours, vendor]
  bool all_checks_passed = true;
  double tolerance(const Row& row, int impl) const {
    if (row.tolerance[impl] > 0.0) return row.tolerance[impl];
    return row.conv ? conv_tolerance[impl] : linear_tolerance;
  }
};

// Runs `body`; an exception becomes a listed error (the benchmark goes on with the next shape).
template <class Body>
bool attempt(Report& report, const std::string& what, Body&& body) {
  try {
    body();
    return true;
  } catch (const std::exception& e) {
    report.errors.push_back(fmt::format("{}: {}", what, e.what()));
    report.all_checks_passed = false;
    return false;
  }
}

const char* const kPassNames[] = {"fwd", "dgrad", "wgrad"};

void bench_conv(const ConvLayer& layer, const Options& options, Timer& timer, Report& report) {
  Row rows[3];
  for (int pass = 0; pass < 3; ++pass) rows[pass] = make_row(layer.model, layer.name, layer.count, kPassNames[pass], true);
  // Check at the small batch against the CPU reference, each pass alone.
  st::Conv2dGeometry g = layer.geometry;
  g.batch = std::min(options.batch, options.check_batch);
  st::Rng rng(static_cast<uint64_t>(g.macs()));
  const Floats x = random_floats(g.batch * g.in_h * g.in_w * g.in_channels, rng),
               w = random_floats(g.weight_numel(), rng), b = random_floats(g.out_channels, rng),
               dy = random_floats(g.batch * g.out_h() * g.out_w() * g.out_channels, rng);
  const float* bias = layer.bias ? b.data() : nullptr;
  Floats y_ref(dy.size()), dx_ref(x.size(), 0.0f), dw_ref(w.size(), 0.0f), db_ref(b.size(), 0.0f);
  st::cpu::conv2d_forward(g, x.data(), w.data(), bias, y_ref.data());
  st::cpu::conv2d_backward(g, x.data(), w.data(), dy.data(), dx_ref.data(), nullptr, nullptr);
  st::cpu::conv2d_backward(g, x.data(), w.data(), dy.data(), nullptr, dw_ref.data(),
                           layer.bias ? db_ref.data() : nullptr);
  for (const Impl impl : {kOurs, kVendor}) {
    attempt(report, fmt::format("{} {} check ({})", layer.model, layer.name, impl == kOurs ? "ours" : "vendor"), [&] {
      LayerBuffers d(x, w, b, dy);
      DeviceFloats &x_d = d.x, &w_d = d.w, &b_d = d.b, &dy_d = d.dy, &y_d = d.y, &dx_d = d.dx, &dw_d = d.dw, &db_d = d.db;
      const float* bias_d = layer.bias ? b_d.data() : nullptr;
      float* db_or_null = layer.bias ? db_d.data() : nullptr;
      if (impl == kOurs) {
        st::cuda::conv2d_forward(g, x_d.data(), w_d.data(), bias_d, y_d.data());
        st::cuda::conv2d_backward(g, x_d.data(), w_d.data(), dy_d.data(), dx_d.data(), nullptr, nullptr);
        st::cuda::conv2d_backward(g, x_d.data(), w_d.data(), dy_d.data(), nullptr, dw_d.data(), db_or_null);
      } else {
        st::vendor::conv2d_forward(g, x_d.data(), w_d.data(), bias_d, y_d.data());
        st::vendor::conv2d_backward(g, x_d.data(), w_d.data(), dy_d.data(), dx_d.data(), nullptr, nullptr);
        st::vendor::conv2d_backward(g, x_d.data(), w_d.data(), dy_d.data(), nullptr, dw_d.data(), db_or_null);
      }
      rows[0].error[impl] = normalised_error(y_d.download(), y_ref);
      rows[1].error[impl] = normalised_error(dx_d.download(), dx_ref);
      double wgrad_error = normalised_error(dw_d.download(), dw_ref);
      if (layer.bias) wgrad_error = std::max(wgrad_error, normalised_error(db_d.download(), db_ref));
      rows[2].error[impl] = wgrad_error;
    });
  }
  // Time at the full batch.
  g.batch = options.batch;
  attempt(report, fmt::format("{} {} timing", layer.model, layer.name), [&] {
    const int64_t x_count = g.batch * g.in_h * g.in_w * g.in_channels,
                  y_count = g.batch * g.out_h() * g.out_w() * g.out_channels;
    const auto x_d = device_random(x_count), w_d = device_random(g.weight_numel()), b_d = device_random(g.out_channels),
               y_d = device_random(y_count), dy_d = device_random(y_count), dx_d = device_random(x_count),
               dw_d = device_random(g.weight_numel()), db_d = device_random(g.out_channels);
    const float* bias_d = layer.bias ? b_d->data() : nullptr;
    float* db_or_null = layer.bias ? db_d->data() : nullptr;
    for (int pass = 0; pass < 3; ++pass) {
      rows[pass].flops = 2.0 * static_cast<double>(g.macs());
      for (const Impl impl : {kOurs, kVendor}) {
        const bool ours = impl == kOurs;
        std::function<void()> launch;
        if (pass == 0)
          launch = [&, ours] {
            if (ours)
              st::cuda::conv2d_forward(g, x_d->data(), w_d->data(), bias_d, y_d->data());
            else
              st::vendor::conv2d_forward(g, x_d->data(), w_d->data(), bias_d, y_d->data());
          };
        else if (pass == 1)
          launch = [&, ours] {
            if (ours)
              st::cuda::conv2d_backward(g, x_d->data(), w_d->data(), dy_d->data(), dx_d->data(), nullptr, nullptr);
            else
              st::vendor::conv2d_backward(g, x_d->data(), w_d->data(), dy_d->data(), dx_d->data(), nullptr, nullptr);
          };
        else
          launch = [&, ours] {
            if (ours)
              st::cuda::conv2d_backward(g, x_d->data(), w_d->data(), dy_d->data(), nullptr, dw_d->data(), db_or_null);
            else
              st::vendor::conv2d_backward(g, x_d->data(), w_d->data(), dy_d->data(), nullptr, dw_d->data(), db_or_null);
          };
        attempt(report,
                fmt::format("{} {} {} ({})", layer.model, layer.name, kPassNames[pass], ours ? "ours" : "vendor"),
                [&] { rows[pass].ms[impl] = timer.median_ms(launch, options.warmup, options.repeats); });
      }
    }
  });
  for (Row& row : rows) report.rows.push_back(row);
}

void bench_linear(const LinearLayer& layer, const Options& options, Timer& timer, Report& report) {
  Row rows[3];
  for (int pass = 0; pass < 3; ++pass)
    rows[pass] = make_row(layer.model, layer.name, layer.count, kPassNames[pass], false);
  int64_t batch = std::min(options.batch, options.check_batch) * layer.rows_per_image;
  st::Rng rng(static_cast<uint64_t>(batch * layer.in * layer.out));
  const Floats x = random_floats(batch * layer.in, rng), w = random_floats(layer.out * layer.in, rng),
               b = random_floats(layer.out, rng), dy = random_floats(batch * layer.out, rng);
  Floats y_ref(dy.size()), dx_ref(x.size(), 0.0f), dw_ref(w.size(), 0.0f), db_ref(b.size(), 0.0f);
  st::cpu::linear_forward(batch, layer.in, layer.out, x.data(), w.data(), b.data(), y_ref.data());
  st::cpu::linear_backward(batch, layer.in, layer.out, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(),
                           db_ref.data());
  for (const Impl impl : {kOurs, kVendor}) {
    attempt(report, fmt::format("{} {} check ({})", layer.model, layer.name, impl == kOurs ? "ours" : "vendor"), [&] {
      LayerBuffers d(x, w, b, dy);
      DeviceFloats &x_d = d.x, &w_d = d.w, &b_d = d.b, &dy_d = d.dy, &y_d = d.y, &dx_d = d.dx, &dw_d = d.dw, &db_d = d.db;
      auto forward = impl == kOurs ? st::cuda::linear_forward : st::vendor::linear_forward;
      auto backward = impl == kOurs ? st::cuda::linear_backward : st::vendor::linear_backward;
      forward(batch, layer.in, layer.out, x_d.data(), w_d.data(), b_d.data(), y_d.data(), nullptr);
      backward(batch, layer.in, layer.out, x_d.data(), w_d.data(), dy_d.data(), dx_d.data(), nullptr, nullptr, nullptr);
      backward(batch, layer.in, layer.out, x_d.data(), w_d.data(), dy_d.data(), nullptr, dw_d.data(), db_d.data(),
               nullptr);
      rows[0].error[impl] = normalised_error(y_d.download(), y_ref);
      rows[1].error[impl] = normalised_error(dx_d.download(), dx_ref);
      rows[2].error[impl] =
          std::max(normalised_error(dw_d.download(), dw_ref), normalised_error(db_d.download(), db_ref));
    });
  }
  batch = options.batch * layer.rows_per_image;
  attempt(report, fmt::format("{} {} timing", layer.model, layer.name), [&] {
    const auto x_d = device_random(batch * layer.in), w_d = device_random(layer.out * layer.in),
               b_d = device_random(layer.out), y_d = device_random(batch * layer.out),
               dy_d = device_random(batch * layer.out), dx_d = device_random(batch * layer.in),
               dw_d = device_random(layer.out * layer.in), db_d = device_random(layer.out);
    for (int pass = 0; pass < 3; ++pass) {
      rows[pass].flops = 2.0 * static_cast<double>(batch * layer.in * layer.out);
      for (const Impl impl : {kOurs, kVendor}) {
        auto forward = impl == kOurs ? st::cuda::linear_forward : st::vendor::linear_forward;
        auto backward = impl == kOurs ? st::cuda::linear_backward : st::vendor::linear_backward;
        std::function<void()> launch;
        if (pass == 0)
          launch = [&, forward] {
            forward(batch, layer.in, layer.out, x_d->data(), w_d->data(), b_d->data(), y_d->data(), nullptr);
          };
        else if (pass == 1)
          launch = [&, backward] {
            backward(batch, layer.in, layer.out, x_d->data(), w_d->data(), dy_d->data(), dx_d->data(), nullptr, nullptr,
                     nullptr);
          };
        else
          launch = [&, backward] {
            backward(batch, layer.in, layer.out, x_d->data(), w_d->data(), dy_d->data(), nullptr, dw_d->data(),
                     db_d->data(), nullptr);
          };
        attempt(
            report,
            fmt::format("{} {} {} ({})", layer.model, layer.name, kPassNames[pass], impl == kOurs ? "ours" : "vendor"),
            [&] { rows[pass].ms[impl] = timer.median_ms(launch, options.warmup, options.repeats); });
      }
    }
  });
  for (Row& row : rows) report.rows.push_back(row);
}

// Fused attention of one layer: passes "fwd" and "fwd+bwd"; useful flops 4 B H T^2 d forward (Q K^T and
// P V) and 2.5 times that backward (FlashAttention's count), whatever each implementation recomputes.
void bench_attention(const st::kernelbench::AttentionLayer& layer, const Options& options, Timer& timer,
                     Report& report, bool tf32) {
  Row rows[2];
  const char* const passes[2] = {"fwd", "fwd+bwd"};
  for (int pass = 0; pass < 2; ++pass) {
    rows[pass] = make_row(layer.model, layer.name, layer.count, passes[pass], false);
    rows[pass].tolerance[kOurs] = 1e-4;
    rows[pass].tolerance[kVendor] = tf32 ? kTf32Tolerance : 1e-3;
  }
  rows[0].in_total = false;  // the fwd+bwd row holds the layer's time
  const int64_t T = layer.tokens, D = layer.dim, H = layer.heads;
  int64_t batch = std::min(options.batch, options.check_batch);
  st::Rng rng(static_cast<uint64_t>(batch * T * D));
  const Floats qkv = random_floats(batch * T * 3 * D, rng), dy = random_floats(batch * T * D, rng);
  Floats y_ref(dy.size()), p_ref(static_cast<std::size_t>(batch * H * T * T)), dqkv_ref(qkv.size(), 0.0f);
  st::cpu::attention_forward(batch, T, D, H, qkv.data(), y_ref.data(), p_ref.data());
  st::cpu::attention_backward(batch, T, D, H, qkv.data(), p_ref.data(), dy.data(), dqkv_ref.data());
  for (const Impl impl : {kOurs, kVendor}) {
    attempt(report, fmt::format("{} {} check ({})", layer.model, layer.name, impl == kOurs ? "ours" : "vendor"), [&] {
      DeviceFloats qkv_d(static_cast<int64_t>(qkv.size())), dy_d(static_cast<int64_t>(dy.size())),
          y_d(static_cast<int64_t>(dy.size())), lse_d(batch * H * T), dqkv_d(static_cast<int64_t>(qkv.size()));
      qkv_d.upload(qkv);
      dy_d.upload(dy);
      dqkv_d.zero();
      if (impl == kOurs) {
        st::cuda::attention_forward(batch, T, D, H, qkv_d.data(), y_d.data(), lse_d.data(), nullptr);
        st::cuda::attention_backward(batch, T, D, H, qkv_d.data(), y_d.data(), lse_d.data(), dy_d.data(),
                                     dqkv_d.data(), nullptr);
      } else {
        st::vendor::attention_forward(batch, T, D, H, qkv_d.data(), y_d.data(), nullptr);
        st::vendor::attention_backward(batch, T, D, H, qkv_d.data(), dy_d.data(), dqkv_d.data(), nullptr);
      }
      rows[0].error[impl] = normalised_error(y_d.download(), y_ref);
      rows[1].error[impl] = std::max(*rows[0].error[impl], normalised_error(dqkv_d.download(), dqkv_ref));
    });
  }
  batch = options.batch;
  attempt(report, fmt::format("{} {} timing", layer.model, layer.name), [&] {
    const auto qkv_d = device_random(batch * T * 3 * D), y_d = device_random(batch * T * D),
               dy_d = device_random(batch * T * D), lse_d = device_random(batch * H * T),
               dqkv_d = device_random(batch * T * 3 * D);
    const double forward_flops = 4.0 * static_cast<double>(batch * H * T * T * (D / H));
    rows[0].flops = forward_flops;
    rows[1].flops = 3.5 * forward_flops;
    st::cuda::attention_forward(batch, T, D, H, qkv_d->data(), y_d->data(), lse_d->data(), nullptr);  // real lse
    const std::function<void()> launches[2][2] = {
        {[&] { st::cuda::attention_forward(batch, T, D, H, qkv_d->data(), y_d->data(), lse_d->data(), nullptr); },
         [&] {
           st::cuda::attention_forward(batch, T, D, H, qkv_d->data(), y_d->data(), lse_d->data(), nullptr);
           st::cuda::attention_backward(batch, T, D, H, qkv_d->data(), y_d->data(), lse_d->data(), dy_d->data(),
                                        dqkv_d->data(), nullptr);
         }},
        {[&] { st::vendor::attention_forward(batch, T, D, H, qkv_d->data(), y_d->data(), nullptr); },
         [&] { st::vendor::attention_backward(batch, T, D, H, qkv_d->data(), dy_d->data(), dqkv_d->data(), nullptr); }}};
    for (int pass = 0; pass < 2; ++pass)
      for (const Impl impl : {kOurs, kVendor})
        attempt(report,
                fmt::format("{} {} {} ({})", layer.model, layer.name, passes[pass], impl == kOurs ? "ours" : "vendor"),
                [&] { rows[pass].ms[impl] = timer.median_ms(launches[impl][pass], options.warmup, options.repeats); });
  });
  for (Row& row : rows) report.rows.push_back(row);
}

// ---- the markdown table ---------------------------------------------------------------------------------

std::string number(const std::optional<double>& value, const char* format_spec) {
  return value ? fmt::format(fmt::runtime(format_spec), *value) : std::string("error");
}

std::string render(const Report& report, const Peak& peak, bool tf32) {
  const double peak_tflops = tf32 ? peak.tf32_tflops : peak.fp32_tflops;
  std::string table =
      "| model | layer | layers | pass | ours ms | vendor ms | ours/vendor | ours TFLOP/s | vendor TFLOP/s | "
      "ours % peak | vendor % peak | check ours | check vendor |\n"
      "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n";
  std::map<std::string, std::pair<double, double>> totals;  // model -> (ours, vendor) ms x layer count
  std::vector<std::string> model_order;
  for (const Row& row : report.rows) {
    std::string cells[2][3];  // [impl][TFLOP/s, % peak, check]
    for (int impl = 0; impl < 2; ++impl) {
      const std::optional<double>& ms = row.ms[impl];
      const double tflops = ms ? row.flops / (*ms * 1e-3) / 1e12 : 0.0;
      cells[impl][0] = ms ? fmt::format("{:.2f}", tflops) : "error";
      cells[impl][1] = ms && peak_tflops > 0.0 ? fmt::format("{:.1f}%", 100.0 * tflops / peak_tflops) : "n/a";
      const std::optional<double>& error = row.error[impl];
      cells[impl][2] = !error ? "error"
                              : (*error < report.tolerance(row, impl) ? fmt::format("ok ({:.1e})", *error)
                                                                      : fmt::format("**FAIL** ({:.1e})", *error));
    }
    const std::string ratio = row.ms[0] && row.ms[1] ? fmt::format("{:.2f}", *row.ms[0] / *row.ms[1]) : "n/a";
    table += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", row.model, row.layer,
                         row.count, row.pass, number(row.ms[0], "{:.4f}"), number(row.ms[1], "{:.4f}"), ratio,
                         cells[0][0], cells[1][0], cells[0][1], cells[1][1], cells[0][2], cells[1][2]);
    if (totals.find(row.model) == totals.end()) model_order.push_back(row.model);
    if (!row.in_total) continue;
    auto& total = totals[row.model];
    total.first += row.ms[0].value_or(NAN) * row.count;
    total.second += row.ms[1].value_or(NAN) * row.count;
  }
  table +=
      "\nPer model, summed over its conv, linear and attention layers (time x layer count, every pass; "
      "attention's fwd+bwd row):\n\n"
      "| model | ours ms | vendor ms | ours/vendor |\n|---|---:|---:|---:|\n";
  for (const std::string& model : model_order) {
    const auto& [ours, vendor] = totals[model];
    table += fmt::format("| {} | {:.3f} | {:.3f} | {:.2f} |\n", model, ours, vendor, ours / vendor);
  }
  if (!report.errors.empty()) {
    table += "\nErrors:\n\n";
    for (const std::string& error : report.errors) table += fmt::format("- {}\n", error);
  }
  return table;
}

// --list: the shapes that would be timed, one line each.
void list_shapes(const Options& options) {
  for (const ConvLayer& layer : st::kernelbench::conv_layers(options.model)) {
    const st::Conv2dGeometry& g = layer.geometry;
    std::printf(
        "%-12s conv   %-36s x%-2d N%lld %lldx%lld C%lld -> K%lld kernel %lldx%lld stride %lld pad %lld groups %lld "
        "-> %lldx%lld%s\n",
        layer.model.c_str(), layer.name.c_str(), layer.count, static_cast<long long>(options.batch),
        static_cast<long long>(g.in_h), static_cast<long long>(g.in_w), static_cast<long long>(g.in_channels),
        static_cast<long long>(g.out_channels), static_cast<long long>(g.kernel_h), static_cast<long long>(g.kernel_w),
        static_cast<long long>(g.stride), static_cast<long long>(g.pad), static_cast<long long>(g.groups),
        static_cast<long long>(g.out_h()), static_cast<long long>(g.out_w()), layer.bias ? " +bias" : "");
  }
  for (const LinearLayer& layer : st::kernelbench::linear_layers(options.model))
    std::printf("%-12s linear %-36s x%-2d rows %lld in %lld out %lld%s\n", layer.model.c_str(), layer.name.c_str(),
                layer.count, static_cast<long long>(layer.rows_per_image * options.batch),
                static_cast<long long>(layer.in), static_cast<long long>(layer.out), layer.bias ? " +bias" : "");
  for (const st::kernelbench::AttentionLayer& layer : st::kernelbench::attention_layers(options.model))
    std::printf("%-12s attn   %-36s x%-2d batch %lld tokens %lld dim %lld heads %lld\n", layer.model.c_str(),
                layer.name.c_str(), layer.count, static_cast<long long>(options.batch),
                static_cast<long long>(layer.tokens), static_cast<long long>(layer.dim),
                static_cast<long long>(layer.heads));
}

int run(const Options& options, const std::string& command_line) {
  const st::cuda::DeviceInfo info = st::cuda::query_devices();
  if (info.count == 0) {
    std::fprintf(stderr,
                 "kernelbench: error: no usable CUDA GPU on this machine (%s); kernelbench times GPU kernels "
                 "and needs one\n",
                 info.unavailable.c_str());
    return 1;
  }
  const bool tf32 = options.tf32 == "on";
  st::cuda::set_tf32_enabled(tf32);
  const std::vector<ConvLayer> convs = st::kernelbench::conv_layers(options.model);
  const std::vector<LinearLayer> linears = st::kernelbench::linear_layers(options.model);
  cudaDeviceProp properties{};
  ST_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
  const std::size_t flush_bytes = std::max<std::size_t>(2 * static_cast<std::size_t>(properties.l2CacheSize), 1 << 20);
  Timer timer(flush_bytes);
  const Peak peak = peak_for(info.first_name);
  Report report;
  report.conv_tolerance[kOurs] = tf32 ? kTf32Tolerance : kFp32Tolerance;
  report.conv_tolerance[kVendor] = tf32 ? kTf32Tolerance : kCudnnFp32Tolerance;
  report.linear_tolerance = tf32 ? kTf32Tolerance : kFp32Tolerance;
  for (const ConvLayer& layer : convs) {
    std::fprintf(stderr, "kernelbench: %s %s\n", layer.model.c_str(), layer.name.c_str());
    bench_conv(layer, options, timer, report);
  }
  for (const LinearLayer& layer : linears) {
    std::fprintf(stderr, "kernelbench: %s %s\n", layer.model.c_str(), layer.name.c_str());
    bench_linear(layer, options, timer, report);
  }
  for (const st::kernelbench::AttentionLayer& layer : st::kernelbench::attention_layers(options.model)) {
    std::fprintf(stderr, "kernelbench: %s %s\n", layer.model.c_str(), layer.name.c_str());
    bench_attention(layer, options, timer, report, tf32);
  }
  for (const Row& row : report.rows)
    for (int impl = 0; impl < 2; ++impl)
      if (!row.error[impl] || !(*row.error[impl] < report.tolerance(row, impl))) report.all_checks_passed = false;

  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M", std::localtime(&now));
  std::string markdown = fmt::format("# kernelbench: {}, {}\n\n", info.first_name, date);
  markdown += fmt::format("Command: `{}`\n\n", command_line);
  markdown += fmt::format(
      "- TF32 {} (conv and GEMM, ours and vendor); batch {}; median of {} repeats after {} warm-up calls; L2 ({:.0f} "
      "MiB) flushed before every repeat by writing {:.0f} MiB.\n",
      tf32 ? "on" : "off", options.batch, options.repeats, options.warmup, properties.l2CacheSize / 1048576.0,
      static_cast<double>(flush_bytes) / 1048576.0);
  markdown += fmt::format(
      "- Checked against the CPU reference at batch {} before timing (normalised error; tolerance {} for ours and "
      "cuBLAS, {} for cuDNN; wgrad includes the bias gradient where the layer has a bias).\n",
      std::min(options.batch, options.check_batch), report.linear_tolerance, report.conv_tolerance[kVendor]);
  markdown += fmt::format("- Peak: {}.\n", peak.source.empty() ? std::string("unknown device (n/a)") : peak.source);
  markdown +=
      "- ours/vendor is the time ratio (below 1: ours is faster). TFLOP/s counts 2 x multiply-adds of the "
      "pass.\n\n";
  markdown += render(report, peak, tf32);
  std::fputs(markdown.c_str(), stdout);
  if (!options.out.empty()) {
    std::ofstream file(options.out);
    if (!file) {
      std::fprintf(stderr, "kernelbench: error: --out: cannot write %s\n", options.out.c_str());
      return 1;
    }
    file << markdown;
  }
  if (!report.all_checks_passed) {
    std::fprintf(stderr, "kernelbench: some checks failed or kernels raised errors (see the table)\n");
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kernelbench: our CUDA conv/GEMM kernels against cuDNN/cuBLAS on the layer shapes of the CIFAR models"};
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return fmt::format("kernelbench: error: {} (see --help)\n", e.what());
  });
  Options options;
  app.add_option("--model", options.model, "resnet20, vgg19, mobilenetv2, vit-tiny or all")
      ->check(CLI::IsMember({"resnet20", "vgg19", "mobilenetv2", "vit-tiny", "all"}))
      ->capture_default_str();
  app.add_option("--batch", options.batch, "batch size of the timed calls")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--repeats", options.repeats, "timed repeats per kernel (the median is reported)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--warmup", options.warmup, "untimed calls before timing")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--tf32", options.tf32, "TF32 tensor cores for conv and GEMM (ours and vendor): on or off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--check-batch", options.check_batch, "batch of the CPU-reference check before timing")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--out", options.out, "also write the markdown report to this file");
  app.add_flag("--list", options.list, "print the shapes that would be timed and exit (no GPU needed)");
  CLI11_PARSE(app, argc, argv);
  std::string command_line = "kernelbench";
  for (int i = 1; i < argc; ++i) command_line += fmt::format(" {}", argv[i]);
  try {
    if (options.list) {
      list_shapes(options);
      return 0;
    }
    return run(options, command_line);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kernelbench: error: %s\n", e.what());
    return 1;
  }
}
