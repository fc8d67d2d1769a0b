// GPU suite: convolution and GEMM — ours (kernels/cuda/conv2d.h, kernels/cuda/gemm.h) and vendor
// (kernels/vendor/vendor.h: cuDNN, cuBLAS) — against the CPU reference (st::cpu::conv2d_forward/backward,
// gemm, linear_forward/backward), forward and backward, each with TF32 off and on.
// Shapes cover stride 1/2, padding 0/1, 1x1/3x3/5x5 (and a 3x1) kernels, groups 1/2/depthwise (and
// groups == C with 2 outputs per group), channel counts that are not multiples of the tiles (1, 3, 8,
// 13, 16, 24, 26, 64, 80), batch 1 and 4, and a weight gradient long enough to be split (split-K).
//
// Error measure: normalised error ||gpu - cpu||_2 / ||cpu - start||_2 over the whole tensor, where start
// is what both sides accumulated into (zero for forward outputs): a gradient that overwrote instead of
// adding fails by ||start|| / ||gradient||. Thresholds:
//   FP32 (TF32 off): 1e-5 — fp32 sums in a different order than OpenBLAS (observed ~3e-7 in a CPU
//                    emulation of our kernels);
//   TF32 (TF32 on):  5e-3 — inputs rounded to 10 mantissa bits (relative 2^-11 each); with random signs
//                    the error stays ~1e-3 whatever the contraction length (observed up to 1.1e-3);
//   cuDNN with TF32 off: 1e-4 — cuDNN may pick a Winograd or FFT algorithm, whose transforms round more
//                    than a direct fp32 sum (cuBLAS keeps 1e-5).
// Also checked: backward called twice from the same start gives identical bits (determinism), calls with
// only dx or only dw give the same bits as the full call (null = not needed), beta == 0 never reads C
// (C filled with NaN), and our TF32 path really rounds (its error exceeds the FP32 threshold).
// On a machine without a GPU every case returns at once (tests/gpu/gpu_test_helpers.h prints one line).
#include <doctest/doctest.h>

#include "tests/gpu/gpu_test_helpers.h"

#ifdef ST_HAVE_CUDA
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/gemm.h"
#include "kernels/vendor/vendor.h"

namespace {

using Floats = std::vector<float>;
using st::test::DeviceArray;

constexpr double kFp32Tolerance = 1e-5;
constexpr double kTf32Tolerance = 5e-3;
constexpr double kCudnnFp32Tolerance = 1e-4;

Floats random_floats(int64_t count, st::Rng& rng) {
  Floats values(static_cast<std::size_t>(count));
  for (float& v : values) v = rng.normal();
  return values;
}

// ||got - want|| / ||want - start|| (start empty: zeros). NaN anywhere makes the result NaN (a failure).
double normalised_error(const Floats& got, const Floats& want, const Floats& start = {}) {
  REQUIRE(got.size() == want.size());
  double difference = 0.0, reference = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = static_cast<double>(got[i]) - static_cast<double>(want[i]);
    const double r = static_cast<double>(want[i]) - (start.empty() ? 0.0 : static_cast<double>(start[i]));
    difference += d * d;
    reference += r * r;
  }
  if (reference == 0.0) return difference == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(difference / reference);
}

bool same_bits(const Floats& a, const Floats& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  return true;
}

// Sets the TF32 switch for one scope and restores it.
class Tf32Scope {
 public:
  explicit Tf32Scope(bool enabled) : previous_(st::cuda::tf32_enabled()) { st::cuda::set_tf32_enabled(enabled); }
  ~Tf32Scope() { st::cuda::set_tf32_enabled(previous_); }
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;

 private:
  bool previous_;
};

enum class Impl { kOurs, kVendor };
const char* impl_name(Impl impl) { return impl == Impl::kOurs ? "ours" : "vendor"; }

// ---- convolution ------------------------------------------------------------------------------------

struct ConvCase {
  int64_t batch, in_h, in_w, in_channels, out_channels, kernel_h, kernel_w, stride, pad, groups;
};

st::Conv2dGeometry geometry_of(const ConvCase& c) {
  st::Conv2dGeometry g;
  g.batch = c.batch;
  g.in_h = c.in_h;
  g.in_w = c.in_w;
  g.in_channels = c.in_channels;
  g.out_channels = c.out_channels;
  g.kernel_h = c.kernel_h;
  g.kernel_w = c.kernel_w;
  g.stride = c.stride;
  g.pad = c.pad;
  g.groups = c.groups;
  return g;
}

std::string describe(const ConvCase& c) {
  return fmt::format("N{} {}x{} C{} -> K{} kernel {}x{} stride {} pad {} groups {}", c.batch, c.in_h, c.in_w,
                     c.in_channels, c.out_channels, c.kernel_h, c.kernel_w, c.stride, c.pad, c.groups);
}

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {4, 8, 8, 3, 16, 3, 3, 1, 1, 1},     // first conv, RGB
      {4, 8, 8, 1, 16, 3, 3, 1, 1, 1},     // first conv, one channel
      {1, 8, 8, 16, 16, 3, 3, 1, 1, 1},    // batch 1
      {4, 9, 9, 16, 32, 3, 3, 2, 1, 1},    // stride 2 on an odd size
      {4, 8, 8, 16, 32, 1, 1, 2, 0, 1},    // 1x1 stride-2 shortcut
      {1, 11, 11, 13, 24, 5, 5, 2, 1, 1},  // 5x5, stride 2, 13 channels
      {4, 6, 6, 8, 8, 5, 5, 1, 0, 1},      // 5x5, no padding
      {4, 8, 8, 16, 24, 3, 3, 1, 1, 2},    // two groups
      {1, 10, 10, 26, 26, 3, 3, 2, 0, 2},  // two groups of 13, stride 2, no padding
      {4, 8, 8, 24, 24, 3, 3, 1, 1, 24},   // depthwise
      {1, 9, 9, 13, 13, 3, 3, 2, 1, 13},   // depthwise, stride 2, odd size
      {4, 7, 7, 16, 16, 5, 5, 1, 1, 16},   // depthwise 5x5
      {4, 5, 5, 8, 16, 3, 3, 1, 1, 8},     // groups == C, two outputs per group (the generic path)
      {4, 8, 8, 64, 64, 3, 3, 1, 1, 1},    // 64 channels
      {4, 8, 8, 64, 24, 1, 1, 1, 0, 1},    // pointwise
      {4, 16, 16, 16, 16, 3, 3, 1, 1, 1},  // weight gradient over 1024 pixels: split-K
      {4, 16, 16, 64, 13, 3, 3, 2, 1, 1},  // 13 outputs, stride 2
      {3, 7, 5, 24, 80, 3, 1, 1, 1, 1},    // 3x1 kernel, 80 outputs (two column tiles)
  };
  return cases;
}

// The CPU reference of one case: forward output and the three gradients accumulated into `start`.
struct ConvData {
  Floats x, w, b, dy, dx_start, dw_start, db_start;
  Floats y_ref, dx_ref, dw_ref, db_ref;
};

ConvData make_conv_data(const st::Conv2dGeometry& g, st::Rng& rng) {
  ConvData d;
  d.x = random_floats(g.batch * g.in_h * g.in_w * g.in_channels, rng);
  d.w = random_floats(g.weight_numel(), rng);
  d.b = random_floats(g.out_channels, rng);
  d.dy = random_floats(g.batch * g.out_h() * g.out_w() * g.out_channels, rng);
  d.dx_start = random_floats(static_cast<int64_t>(d.x.size()), rng);
  d.dw_start = random_floats(static_cast<int64_t>(d.w.size()), rng);
  d.db_start = random_floats(static_cast<int64_t>(d.b.size()), rng);
  d.y_ref.assign(d.dy.size(), 0.0f);
  st::cpu::conv2d_forward(g, d.x.data(), d.w.data(), d.b.data(), d.y_ref.data());
  d.dx_ref = d.dx_start;
  d.dw_ref = d.dw_start;
  d.db_ref = d.db_start;
  st::cpu::conv2d_backward(g, d.x.data(), d.w.data(), d.dy.data(), d.dx_ref.data(), d.dw_ref.data(), d.db_ref.data());
  return d;
}

void run_forward(Impl impl, const st::Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) {
  if (impl == Impl::kOurs)
    st::cuda::conv2d_forward(g, x, w, b, y);
  else
    st::vendor::conv2d_forward(g, x, w, b, y);
}

void run_backward(Impl impl, const st::Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx,
                  float* dw, float* db) {
  if (impl == Impl::kOurs)
    st::cuda::conv2d_backward(g, x, w, dy, dx, dw, db);
  else
    st::vendor::conv2d_backward(g, x, w, dy, dx, dw, db);
}

struct Gradients {
  Floats dx, dw, db;
};

// Backward from the case's start values; null_mask bit 0/1/2 leaves dx/dw/db out (null pointer).
Gradients gpu_backward(Impl impl, const st::Conv2dGeometry& g, const ConvData& d, const DeviceArray<float>& x,
                       const DeviceArray<float>& w, const DeviceArray<float>& dy, int null_mask) {
  DeviceArray<float> dx(d.dx_start), dw(d.dw_start), db(d.db_start);
  run_backward(impl, g, x.data(), w.data(), dy.data(), (null_mask & 1) ? nullptr : dx.data(),
               (null_mask & 2) ? nullptr : dw.data(), (null_mask & 4) ? nullptr : db.data());
  return Gradients{dx.download(), dw.download(), db.download()};
}

void check_conv(Impl impl, bool tf32, const ConvCase& c, const ConvData& d) {
  const Tf32Scope scope(tf32);
  const st::Conv2dGeometry g = geometry_of(c);
  const double tolerance = tf32 ? kTf32Tolerance : impl == Impl::kOurs ? kFp32Tolerance : kCudnnFp32Tolerance;
  INFO(impl_name(impl), tf32 ? " TF32 " : " FP32 ", describe(c));
  const DeviceArray<float> x(d.x), w(d.w), b(d.b), dy(d.dy);

  DeviceArray<float> y(Floats(d.y_ref.size(), std::numeric_limits<float>::quiet_NaN()));  // must be overwritten
  run_forward(impl, g, x.data(), w.data(), b.data(), y.data());
  CHECK(normalised_error(y.download(), d.y_ref) < tolerance);

  const Gradients full = gpu_backward(impl, g, d, x, w, dy, 0);
  CHECK(normalised_error(full.dx, d.dx_ref, d.dx_start) < tolerance);
  CHECK(normalised_error(full.dw, d.dw_ref, d.dw_start) < tolerance);
  CHECK(normalised_error(full.db, d.db_ref, d.db_start) < tolerance);

  const Gradients again = gpu_backward(impl, g, d, x, w, dy, 0);  // deterministic
  CHECK(same_bits(again.dx, full.dx));
  CHECK(same_bits(again.dw, full.dw));
  CHECK(same_bits(again.db, full.db));

  const Gradients data_only = gpu_backward(impl, g, d, x, w, dy, 2 | 4);
  CHECK(same_bits(data_only.dx, full.dx));
  CHECK(same_bits(data_only.dw, d.dw_start));  // untouched
  const Gradients weight_only = gpu_backward(impl, g, d, x, w, dy, 1 | 4);
  CHECK(same_bits(weight_only.dw, full.dw));
  CHECK(same_bits(weight_only.dx, d.dx_start));
  CHECK(same_bits(weight_only.db, d.db_start));
}

// ---- GEMM and linear ------------------------------------------------------------------------------

struct GemmCase {
  int64_t m, n, k;
};

const std::vector<GemmCase>& gemm_cases() {
  static const std::vector<GemmCase> cases = {{1, 1, 1},       {13, 24, 3},    {64, 64, 64},   {100, 70, 130},
                                              {130, 192, 576}, {10, 640, 700}, {33, 17, 1000}, {5, 7, 0}};
  return cases;
}

void run_gemm(Impl impl, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (impl == Impl::kOurs)
    st::cuda::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    st::vendor::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// One GEMM against st::cpu::gemm; padding adds to every leading dimension; beta == 0 fills C with NaN on
// the GPU side. Returns the normalised error.
double gemm_error(Impl impl, bool ta, bool tb, const GemmCase& s, float alpha, float beta, int64_t padding,
                  st::Rng& rng) {
  const int64_t lda = (ta ? s.m : s.k) + padding, ldb = (tb ? s.k : s.n) + padding, ldc = s.n + padding;
  const Floats a = random_floats((ta ? s.k : s.m) * lda, rng), b = random_floats((tb ? s.n : s.k) * ldb, rng);
  const Floats c_start = random_floats(s.m * ldc, rng);
  Floats c_ref = beta == 0.0f ? Floats(c_start.size(), 0.0f) : c_start;
  st::cpu::gemm(ta, tb, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c_ref.data(), ldc);
  const DeviceArray<float> a_gpu(a), b_gpu(b);
  DeviceArray<float> c_gpu(beta == 0.0f ? Floats(c_start.size(), std::numeric_limits<float>::quiet_NaN()) : c_start);
  run_gemm(impl, ta, tb, s.m, s.n, s.k, alpha, a_gpu.data(), lda, b_gpu.data(), ldb, beta, c_gpu.data(), ldc);
  Floats c_got = c_gpu.download();
  // Padding columns of C are outside the product: compare the m x n part only.
  Floats got, want, start;
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j) {
      const auto index = static_cast<std::size_t>(i * ldc + j);
      got.push_back(c_got[index]);
      want.push_back(c_ref[index]);
      start.push_back(beta == 0.0f ? 0.0f : beta * c_start[index]);
    }
  return normalised_error(got, want, start);
}

struct LinearCase {
  int64_t batch, in, out;
};

void check_linear(Impl impl, bool tf32, const LinearCase& s, st::Rng& rng) {
  const Tf32Scope scope(tf32);
  const double tolerance = tf32 ? kTf32Tolerance : kFp32Tolerance;
  INFO(impl_name(impl), tf32 ? " TF32 " : " FP32 ", fmt::format("linear batch {} in {} out {}", s.batch, s.in, s.out));
  const Floats x = random_floats(s.batch * s.in, rng), w = random_floats(s.out * s.in, rng),
               b = random_floats(s.out, rng), dy = random_floats(s.batch * s.out, rng);
  const Floats dx_start = random_floats(s.batch * s.in, rng), dw_start = random_floats(s.out * s.in, rng),
               db_start = random_floats(s.out, rng);
  const DeviceArray<float> x_gpu(x), w_gpu(w), b_gpu(b), dy_gpu(dy);
  for (const bool with_bias : {true, false}) {
    Floats y_ref(static_cast<std::size_t>(s.batch * s.out));
    st::cpu::linear_forward(s.batch, s.in, s.out, x.data(), w.data(), with_bias ? b.data() : nullptr, y_ref.data());
    DeviceArray<float> y(Floats(y_ref.size(), std::numeric_limits<float>::quiet_NaN()));
    const float* bias = with_bias ? b_gpu.data() : nullptr;
    if (impl == Impl::kOurs)
      st::cuda::linear_forward(s.batch, s.in, s.out, x_gpu.data(), w_gpu.data(), bias, y.data());
    else
      st::vendor::linear_forward(s.batch, s.in, s.out, x_gpu.data(), w_gpu.data(), bias, y.data());
    CHECK_MESSAGE(normalised_error(y.download(), y_ref) < tolerance, "forward, bias ", with_bias);
  }
  Floats dx_ref = dx_start, dw_ref = dw_start, db_ref = db_start;
  st::cpu::linear_backward(s.batch, s.in, s.out, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(),
                           db_ref.data());
  DeviceArray<float> dx(dx_start), dw(dw_start), db(db_start);
  if (impl == Impl::kOurs)
    st::cuda::linear_backward(s.batch, s.in, s.out, x_gpu.data(), w_gpu.data(), dy_gpu.data(), dx.data(), dw.data(),
                              db.data());
  else
    st::vendor::linear_backward(s.batch, s.in, s.out, x_gpu.data(), w_gpu.data(), dy_gpu.data(), dx.data(), dw.data(),
                                db.data());
  CHECK(normalised_error(dx.download(), dx_ref, dx_start) < tolerance);
  CHECK(normalised_error(dw.download(), dw_ref, dw_start) < tolerance);
  CHECK(normalised_error(db.download(), db_ref, db_start) < tolerance);
}

}  // namespace
#endif

TEST_SUITE("gpu") {
  TEST_CASE("conv2d: ours and cuDNN match the CPU reference, forward and backward, FP32 and TF32") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(2024);
    for (const ConvCase& c : conv_cases()) {
      const ConvData data = make_conv_data(geometry_of(c), rng);
      for (const Impl impl : {Impl::kOurs, Impl::kVendor})
        for (const bool tf32 : {false, true}) check_conv(impl, tf32, c, data);
    }
#endif
  }

  TEST_CASE("conv2d: our TF32 path rounds its inputs (the tensor-core kernel runs when TF32 is on)") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(7);
    const ConvCase c{4, 8, 8, 64, 64, 3, 3, 1, 1, 1};
    const st::Conv2dGeometry g = geometry_of(c);
    const ConvData d = make_conv_data(g, rng);
    const DeviceArray<float> x(d.x), w(d.w), b(d.b);
    const Tf32Scope scope(true);
    DeviceArray<float> y(d.y_ref.size());
    st::cuda::conv2d_forward(g, x.data(), w.data(), b.data(), y.data());
    const double error = normalised_error(y.download(), d.y_ref);
    CHECK(error > kFp32Tolerance);
    CHECK(error < kTf32Tolerance);
#endif
  }

  TEST_CASE("gemm: ours and cuBLAS match st::cpu::gemm for every transpose, alpha, beta and leading dimension") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(99);
    for (const Impl impl : {Impl::kOurs, Impl::kVendor})
      for (const bool tf32 : {false, true}) {
        const Tf32Scope scope(tf32);
        const double tolerance = tf32 ? kTf32Tolerance : kFp32Tolerance;
        for (const GemmCase& s : gemm_cases())
          for (int transposes = 0; transposes < 4; ++transposes) {
            const bool ta = (transposes & 1) != 0, tb = (transposes & 2) != 0;
            INFO(impl_name(impl), tf32 ? " TF32 " : " FP32 ",
                 fmt::format("gemm m {} n {} k {} transpose_a {} transpose_b {}", s.m, s.n, s.k, ta, tb));
            if (s.k == 0) {  // an empty product: C = 0 exactly (leading dimensions padded to the minimum 1)
              CHECK(gemm_error(impl, ta, tb, s, 1.0f, 0.0f, 1, rng) == 0.0);
              continue;
            }
            CHECK(gemm_error(impl, ta, tb, s, 1.0f, 0.0f, 0, rng) < tolerance);
            CHECK(gemm_error(impl, ta, tb, s, 0.5f, 0.75f, 3, rng) < tolerance);
          }
      }
#endif
  }

  TEST_CASE("gemm: our TF32 path rounds its inputs") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(5);
    const Tf32Scope scope(true);
    const double error = gemm_error(Impl::kOurs, false, true, GemmCase{130, 192, 576}, 1.0f, 0.0f, 0, rng);
    CHECK(error > kFp32Tolerance);
    CHECK(error < kTf32Tolerance);
#endif
  }

  TEST_CASE("linear: ours and cuBLAS match st::cpu::linear_forward/backward (backward accumulates)") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(11);
    const std::vector<LinearCase> cases = {{1, 3, 5}, {4, 64, 10}, {130, 192, 576}, {65, 768, 192}, {7, 13, 1}};
    for (const LinearCase& s : cases)
      for (const Impl impl : {Impl::kOurs, Impl::kVendor})
        for (const bool tf32 : {false, true}) check_linear(impl, tf32, s, rng);
#endif
  }
}
