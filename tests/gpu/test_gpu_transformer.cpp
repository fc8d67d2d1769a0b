// GPU suite: the transformer kernels (kernels/cuda/transformer.h) and cuDNN's attention twin
// (kernels/vendor/vendor.h) called directly, against the CPU kernels at vit-tiny's shapes: outputs
// poisoned with NaN first (every element must be written), gradients accumulated onto random values,
// attention's log-sum-exp checked against a double-precision reference, and our kernels run twice to
// check bit-identical results. Tolerances as tests/gpu/test_gpu_engine.cpp (1e-5 layernorm, 1e-4 our
// attention, 1e-3 cuDNN's with TF32 off).
#include <doctest/doctest.h>

#include "tests/gpu/gpu_test_helpers.h"

#ifdef ST_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/transformer.h"
#include "kernels/vendor/vendor.h"

namespace {

using Floats = std::vector<float>;
using Array = st::test::DeviceArray<float>;

Floats random_floats(std::size_t n, st::Rng& rng, float scale = 1.0f) {
  Floats v(n);
  for (float& value : v) value = scale * rng.normal();
  return v;
}

// Fills a device array with NaNs (every byte 0xFF), so an element a kernel fails to write stays NaN.
void poison(Array& a) { ST_CUDA_CHECK(cudaMemset(a.data(), 0xFF, a.size() * sizeof(float))); }

void check_close(const std::string& what, const Floats& got, const Floats& want, double tolerance) {
  REQUIRE(got.size() == want.size());
  const double error = st::test::normalised_error(got, want);
  INFO(what << ": normalised error " << error << " (tolerance " << tolerance << ")");
  CHECK(error <= tolerance);
  MESSAGE(what << ": normalised error " << error);
}

void synchronize() { ST_CUDA_CHECK(cudaDeviceSynchronize()); }

// lse[(b * heads + h) * T + t] = log sum_j exp(s q_t . k_j) in double.
std::vector<double> reference_lse(const Floats& qkv, int64_t batch, int64_t tokens, int64_t dim, int64_t heads) {
  const int64_t d = dim / heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> lse(static_cast<std::size_t>(batch * heads * tokens));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < tokens; ++t) {
        std::vector<double> scores(static_cast<std::size_t>(tokens));
        double best = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < tokens; ++j) {
          double dot = 0.0;
          for (int64_t c = 0; c < d; ++c)
            dot += static_cast<double>(qkv[static_cast<std::size_t>((b * tokens + t) * 3 * dim + h * d + c)]) *
                   static_cast<double>(qkv[static_cast<std::size_t>((b * tokens + j) * 3 * dim + dim + h * d + c)]);
          scores[static_cast<std::size_t>(j)] = scale * dot;
          best = std::max(best, scale * dot);
        }
        double sum = 0.0;
        for (double s : scores) sum += std::exp(s - best);
        lse[static_cast<std::size_t>((b * heads + h) * tokens + t)] = best + std::log(sum);
      }
  return lse;
}

struct AttentionCase {
  int64_t batch, tokens, dim, heads;
};

void compare_attention(const AttentionCase& a) {
  CAPTURE(a.batch);
  CAPTURE(a.tokens);
  CAPTURE(a.dim);
  CAPTURE(a.heads);
  st::Rng rng(static_cast<uint64_t>(31 + a.tokens + a.dim));
  const auto n_in = static_cast<std::size_t>(a.batch * a.tokens * 3 * a.dim);
  const auto n_out = static_cast<std::size_t>(a.batch * a.tokens * a.dim);
  const auto n_lse = static_cast<std::size_t>(a.batch * a.heads * a.tokens);
  const Floats qkv = random_floats(n_in, rng, 1.5f), dy = random_floats(n_out, rng), dqkv0 = random_floats(n_in, rng);
  Floats want_y(n_out), probabilities(n_lse * static_cast<std::size_t>(a.tokens)), want_dqkv = dqkv0;
  st::cpu::attention_forward(a.batch, a.tokens, a.dim, a.heads, qkv.data(), want_y.data(), probabilities.data());
  st::cpu::attention_backward(a.batch, a.tokens, a.dim, a.heads, qkv.data(), probabilities.data(), dy.data(),
                              want_dqkv.data());
  const std::vector<double> lse_double = reference_lse(qkv, a.batch, a.tokens, a.dim, a.heads);
  const Floats want_lse(lse_double.begin(), lse_double.end());
  const Array d_qkv(qkv), d_dy(dy);

  // ours, twice: bit-identical
  std::vector<Floats> runs;
  for (int run = 0; run < 2; ++run) {
    Array y(n_out), lse(n_lse), dqkv(dqkv0);
    poison(y);
    poison(lse);
    st::cuda::attention_forward(a.batch, a.tokens, a.dim, a.heads, d_qkv.data(), y.data(), lse.data(), nullptr);
    st::cuda::attention_backward(a.batch, a.tokens, a.dim, a.heads, d_qkv.data(), y.data(), lse.data(), d_dy.data(),
                                 dqkv.data(), nullptr);
    synchronize();
    const Floats got_y = y.download(), got_lse = lse.download(), got_dqkv = dqkv.download();
    if (run == 0) {
      check_close("ours: y", got_y, want_y, 1e-4);
      check_close("ours: lse", got_lse, want_lse, 1e-5);
      check_close("ours: dqkv (accumulated)", got_dqkv, want_dqkv, 1e-4);
    }
    Floats all = got_y;
    all.insert(all.end(), got_lse.begin(), got_lse.end());
    all.insert(all.end(), got_dqkv.begin(), got_dqkv.end());
    runs.push_back(all);
  }
  CHECK_MESSAGE(runs[0] == runs[1], "our attention is not bit-identical on repeat");

  // cuDNN's multi-head attention, TF32 off
  const bool tf32 = st::cuda::tf32_enabled();
  st::cuda::set_tf32_enabled(false);
  Array y(n_out), dqkv(dqkv0);
  poison(y);
  st::vendor::attention_forward(a.batch, a.tokens, a.dim, a.heads, d_qkv.data(), y.data(), nullptr);
  st::vendor::attention_backward(a.batch, a.tokens, a.dim, a.heads, d_qkv.data(), d_dy.data(), dqkv.data(), nullptr);
  synchronize();
  st::cuda::set_tf32_enabled(tf32);
  check_close("cuDNN: y", y.download(), want_y, 1e-3);
  check_close("cuDNN: dqkv (accumulated)", dqkv.download(), want_dqkv, 1e-3);
}

}  // namespace

TEST_SUITE("gpu") {
  TEST_CASE("gpu transformer: attention (ours and cuDNN) matches the CPU; ours writes lse and is deterministic") {
    if (!st::test::gpu_available()) return;
    // vit-tiny on CIFAR (65 tokens, 3 heads of 64) and on Fashion-MNIST (50 tokens); head dims 32 and
    // 128 (the other kernel instances); one token; 97 tokens (two key tiles and a remainder)
    for (const AttentionCase& a : {AttentionCase{4, 65, 192, 3}, AttentionCase{3, 50, 192, 3},
                                   AttentionCase{2, 33, 64, 2}, AttentionCase{2, 40, 256, 2},
                                   AttentionCase{3, 1, 64, 1}, AttentionCase{1, 97, 64, 1}})
      compare_attention(a);
  }

  TEST_CASE("gpu transformer: layernorm and softmax match the CPU, forward and accumulated backward") {
    if (!st::test::gpu_available()) return;
    st::Rng rng(8);
    const int64_t rows = 4 * 65, dim = 192;
    const auto n = static_cast<std::size_t>(rows * dim);
    const Floats x = random_floats(n, rng, 3.0f), gamma = random_floats(dim, rng), beta = random_floats(dim, rng),
                 dy = random_floats(n, rng), dx0 = random_floats(n, rng), dg0 = random_floats(dim, rng),
                 db0 = random_floats(dim, rng);
    Floats y(n), mean(rows), invstd(rows), dx = dx0, dg = dg0, db = db0;
    st::cpu::layernorm_forward(rows, dim, x.data(), gamma.data(), beta.data(), 1e-6f, y.data(), mean.data(),
                               invstd.data());
    st::cpu::layernorm_backward(rows, dim, x.data(), gamma.data(), mean.data(), invstd.data(), dy.data(), dx.data(),
                                dg.data(), db.data());
    const Array d_x(x), d_gamma(gamma), d_beta(beta), d_dy(dy);
    Array d_y(n), d_mean(static_cast<std::size_t>(rows)), d_invstd(static_cast<std::size_t>(rows)), d_dx(dx0), d_dg(dg0),
        d_db(db0);
    poison(d_y);
    poison(d_mean);
    poison(d_invstd);
    st::cuda::layernorm_forward(rows, dim, d_x.data(), d_gamma.data(), d_beta.data(), 1e-6f, d_y.data(), d_mean.data(),
                                d_invstd.data(), nullptr);
    st::cuda::layernorm_backward(rows, dim, d_x.data(), d_gamma.data(), d_mean.data(), d_invstd.data(), d_dy.data(),
                                 d_dx.data(), d_dg.data(), d_db.data(), nullptr);
    synchronize();
    check_close("layernorm y", d_y.download(), y, 1e-5);
    check_close("layernorm mean", d_mean.download(), mean, 1e-5);
    check_close("layernorm invstd", d_invstd.download(), invstd, 1e-5);
    check_close("layernorm dx", d_dx.download(), dx, 1e-5);
    check_close("layernorm dgamma", d_dg.download(), dg, 1e-5);
    check_close("layernorm dbeta", d_db.download(), db, 1e-5);

    Floats p(n), dp = dx0;
    st::cpu::softmax_forward(rows, dim, x.data(), p.data());
    st::cpu::softmax_backward(rows, dim, p.data(), dy.data(), dp.data());
    Array d_p(n), d_dp(dx0);
    poison(d_p);
    st::cuda::softmax_forward(rows, dim, d_x.data(), d_p.data(), nullptr);
    st::cuda::softmax_backward(rows, dim, d_p.data(), d_dy.data(), d_dp.data(), nullptr);
    synchronize();
    check_close("softmax y", d_p.download(), p, 1e-5);
    check_close("softmax dx", d_dp.download(), dp, 1e-5);
  }

  TEST_CASE("gpu transformer: bad arguments are refused before any launch") {
    if (!st::test::gpu_available()) return;
    float* none = nullptr;
    CHECK_THROWS_AS(st::cuda::attention_forward(1, 4, 512, 2, none, none, none, nullptr), std::invalid_argument);
    CHECK_THROWS_AS(st::cuda::attention_forward(1, 4, 10, 3, none, none, none, nullptr), std::invalid_argument);
    CHECK_THROWS_AS(st::cuda::attention_forward(1, 4, 64, 1, none, none, none, nullptr), std::invalid_argument);
    CHECK_THROWS_AS(st::cuda::layernorm_forward(2, 0, none, none, none, 1e-5f, none, none, none, nullptr),
                    std::invalid_argument);
    CHECK_THROWS_AS(st::cuda::select_token_forward(2, 3, 4, 3, none, none, nullptr), std::invalid_argument);
    CHECK_THROWS_AS(st::vendor::attention_forward(1, 4, 10, 3, none, none, nullptr), std::invalid_argument);
  }
}

#endif
