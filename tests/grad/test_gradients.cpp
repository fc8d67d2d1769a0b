// Finite-difference gradient checks of every op (Caffe's GradientChecker, ggml's test-grad idea):
// the loss is a fixed random projection L = sum(y * r) of the op's output, and for sampled input
// elements the analytic dL/dx (from the tape) must match the central difference
// (L(x + h) - L(x - h)) / 2h computed in double from float forwards.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "engine/ops.h"
#include "kernels/cpu/sparse.h"
#include "tests/test_helpers.h"

using namespace st;
using st::testing::random_tensor;

namespace {

// Values kept at least `gap` away from zero (for ops with a kink at 0: relu).
Tensor away_from_zero(const Shape& shape, Rng& rng, float gap) {
  Tensor t = random_tensor(shape, rng);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float& v = t.data()[i];
    if (std::fabs(v) < gap) v = v < 0 ? v - gap : v + gap;
  }
  return t;
}

// Distinct values (a shuffled ramp): no ties, so max-pooling's argmax is stable under perturbation.
Tensor distinct_values(const Shape& shape, Rng& rng) {
  Tensor t = Tensor::empty(shape);
  std::vector<int64_t> order(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  rng.shuffle(order);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 0.05f * static_cast<float>(order[static_cast<std::size_t>(i)]);
  return t;
}

using Forward = std::function<Variable(std::vector<Variable>&)>;

double projected_loss(const Forward& forward, std::vector<Variable>& inputs, const Tensor& projection) {
  const Variable y = forward(inputs);
  double total = 0.0;
  for (int64_t i = 0; i < projection.numel(); ++i)
    total += static_cast<double>(y.value().data()[i]) * static_cast<double>(projection.data()[i]);
  return total;
}

// Checks every input of `inputs` that requires a gradient, at up to `samples` elements each.
void check_gradients(const Forward& forward, std::vector<Variable> inputs, float step = 1e-2f,
                     double tolerance = 2e-2, int samples = 40) {
  Rng rng(1234);
  Tensor projection;
  {
    Tape tape;
    Variable y;
    {
      TapeScope scope(tape);
      y = forward(inputs);
    }
    projection = random_tensor(y.shape(), rng);
    tape.backward(y, projection);
  }
  for (std::size_t which = 0; which < inputs.size(); ++which) {
    Variable& input = inputs[which];
    if (!input.requires_grad()) continue;
    REQUIRE(input.has_grad());
    const Tensor analytic = input.grad().clone();
    const int64_t n = input.value().numel();
    double worst = 0.0;
    for (int s = 0; s < samples; ++s) {
      const int64_t i = samples >= n ? s : static_cast<int64_t>(rng.uniform_int(static_cast<uint64_t>(n)));
      if (i >= n) break;
      float& element = input.value().data()[i];
      const float original = element;
      element = original + step;
      const double plus = projected_loss(forward, inputs, projection);
      element = original - step;
      const double minus = projected_loss(forward, inputs, projection);
      element = original;
      const double numeric = (plus - minus) / (2.0 * static_cast<double>(step));
      const double exact = analytic.data()[i];
      const double error = std::fabs(numeric - exact) / std::max(1.0, std::fabs(numeric));
      worst = std::max(worst, error);
      INFO("input " << which << " element " << i << ": analytic " << exact << " numeric " << numeric);
      CHECK(error < tolerance);
    }
  }
}

Variable param(Tensor t) { return Variable(std::move(t), true); }

}  // namespace

TEST_SUITE("grad") {
  TEST_CASE("linear") {
    Rng rng(1);
    check_gradients([](std::vector<Variable>& v) { return ops::linear(v[0], v[1], v[2]); },
                    {param(random_tensor({5, 7}, rng)), param(random_tensor({4, 7}, rng)),
                     param(random_tensor({4}, rng))});
  }

  TEST_CASE("sparse_linear (the sparse path forced on): a 40% pattern with an empty row, 70 rows over the 64-wide tile") {
    Rng rng(2);
    std::vector<float> mask(6 * 9);
    for (float& m : mask) m = rng.uniform() < 0.4 ? 1.0f : 0.0f;
    for (int c = 0; c < 9; ++c) mask[static_cast<std::size_t>(2 * 9 + c)] = 0.0f;  // output 2 has no weights
    const auto pattern = std::make_shared<const cpu::SparsePattern>(cpu::sparse_pattern(6, 9, mask.data()));
    // Weights outside the pattern are not read: their finite differences and gradients are both 0.
    check_gradients([pattern](std::vector<Variable>& v) { return ops::sparse_linear(v[0], v[1], v[2], pattern); },
                    {param(random_tensor({70, 9}, rng)), param(random_tensor({6, 9}, rng)),
                     param(random_tensor({6}, rng))});
  }

  TEST_CASE("sparse_conv2d (the sparse path forced on): 3x3 pad 1 at strides 1 and 2, an empty output channel") {
    for (const int64_t stride : {1, 2}) {
      CAPTURE(stride);
      Rng rng(3 + static_cast<uint64_t>(stride));
      std::vector<float> mask(4 * 3 * 3 * 3);
      for (float& m : mask) m = rng.uniform() < 0.4 ? 1.0f : 0.0f;
      for (int i = 0; i < 27; ++i) mask[static_cast<std::size_t>(27 + i)] = 0.0f;  // output 1 has no weights
      const auto pattern = std::make_shared<const cpu::SparsePattern>(cpu::sparse_pattern(4, 27, mask.data()));
      check_gradients(
          [pattern, stride](std::vector<Variable>& v) { return ops::sparse_conv2d(v[0], v[1], v[2], stride, 1, pattern); },
          {param(random_tensor({2, 5, 6, 3}, rng)), param(random_tensor({4, 3, 3, 3}, rng)),
           param(random_tensor({4}, rng))});
    }
  }

  TEST_CASE("conv2d: 3x3 stride 1 pad 1") {
    Rng rng(2);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], v[2], 1, 1); },
                    {param(random_tensor({2, 5, 5, 3}, rng)), param(random_tensor({4, 3, 3, 3}, rng)),
                     param(random_tensor({4}, rng))});
  }

  TEST_CASE("conv2d: 3x3 stride 2 pad 1, no bias") {
    Rng rng(3);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], Variable(), 2, 1); },
                    {param(random_tensor({2, 7, 6, 2}, rng)), param(random_tensor({3, 3, 3, 2}, rng))});
  }

  TEST_CASE("conv2d: 5x5 pad 2 (lenet5), 1 input channel") {
    Rng rng(4);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], v[2], 1, 2); },
                    {param(random_tensor({2, 6, 6, 1}, rng)), param(random_tensor({3, 5, 5, 1}, rng)),
                     param(random_tensor({3}, rng))});
  }

  TEST_CASE("conv2d: 1x1 pointwise fast path and strided 1x1") {
    Rng rng(5);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], Variable(), 1, 0); },
                    {param(random_tensor({2, 4, 4, 3}, rng)), param(random_tensor({5, 1, 1, 3}, rng))});
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], Variable(), 2, 0); },
                    {param(random_tensor({2, 5, 5, 3}, rng)), param(random_tensor({5, 1, 1, 3}, rng))});
  }

  TEST_CASE("conv2d: 16 and 32 output channels (the direct kernel, and the stride-1 data gradient through it)") {
    Rng rng(15);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], v[2], 1, 1); },
                    {param(random_tensor({2, 11, 10, 16}, rng)), param(random_tensor({16, 3, 3, 16}, rng)),
                     param(random_tensor({16}, rng))},
                    1e-2f, 2e-2, 60);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], Variable(), 2, 1); },
                    {param(random_tensor({2, 9, 9, 16}, rng)), param(random_tensor({32, 3, 3, 16}, rng))},
                    1e-2f, 2e-2, 60);
  }

  TEST_CASE("conv2d: the direct weight gradient (images of 128+ output pixels) and 64-channel blocks") {
    Rng rng(21);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], v[2], 1, 1); },
                    {param(random_tensor({1, 12, 12, 16}, rng)), param(random_tensor({16, 3, 3, 16}, rng)),
                     param(random_tensor({16}, rng))},
                    1e-2f, 2e-2, 60);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], Variable(), 1, 1); },
                    {param(random_tensor({1, 12, 12, 64}, rng, 0.5f)), param(random_tensor({64, 3, 3, 64}, rng, 0.2f))},
                    1e-2f, 2e-2, 60);
  }

  TEST_CASE("conv2d: 8 and 24 output channels (the 8-lane direct kernel: forward, data and weight gradients)") {
    Rng rng(22);
    // 12x12 = 144 output pixels: the direct weight gradient; 8 -> 8 channels: the data gradient as a forward
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], v[2], 1, 1); },
                    {param(random_tensor({1, 12, 12, 8}, rng)), param(random_tensor({8, 3, 3, 8}, rng)),
                     param(random_tensor({8}, rng))},
                    1e-2f, 2e-2, 60);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], Variable(), 1, 1); },
                    {param(random_tensor({1, 12, 12, 24}, rng, 0.5f)), param(random_tensor({24, 3, 3, 24}, rng, 0.3f))},
                    1e-2f, 2e-2, 60);
  }

  TEST_CASE("conv2d: 12 output channels (the direct kernel computing 16, with bias; the data gradient through it)") {
    Rng rng(23);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], v[2], 1, 1); },
                    {param(random_tensor({1, 10, 10, 12}, rng)), param(random_tensor({12, 3, 3, 12}, rng, 0.4f)),
                     param(random_tensor({12}, rng))},
                    1e-2f, 2e-2, 60);
  }

  TEST_CASE("conv2d: first layers (the planar kernel: 1 to 3 input channels, 6 and 5 outputs, with bias) and wide "
            "weights on rows under 8 pixels (im2col + sgemm)") {
    Rng rng(24);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], v[2], 1, 2); },
                    {param(random_tensor({2, 9, 18, 1}, rng)), param(random_tensor({6, 5, 5, 1}, rng, 0.4f)),
                     param(random_tensor({6}, rng))},
                    1e-2f, 2e-2, 60);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], Variable(), 1, 1); },
                    {param(random_tensor({1, 7, 17, 3}, rng)), param(random_tensor({5, 3, 3, 3}, rng, 0.4f))},
                    1e-2f, 2e-2, 60);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], Variable(), 1, 1); },
                    {param(random_tensor({1, 3, 3, 128}, rng, 0.5f)), param(random_tensor({128, 3, 3, 128}, rng, 0.05f))},
                    1e-2f, 2e-2, 60);
  }

  TEST_CASE("conv2d: groups and depthwise") {
    Rng rng(6);
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], v[2], 1, 1, 2); },
                    {param(random_tensor({2, 5, 5, 4}, rng)), param(random_tensor({6, 3, 3, 2}, rng)),
                     param(random_tensor({6}, rng))});
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], Variable(), 2, 1, 4); },
                    {param(random_tensor({2, 6, 6, 4}, rng)), param(random_tensor({4, 3, 3, 1}, rng))});
    check_gradients([](std::vector<Variable>& v) { return ops::conv2d(v[0], v[1], v[2], 1, 1, 16); },
                    {param(random_tensor({2, 5, 5, 16}, rng)), param(random_tensor({16, 3, 3, 1}, rng)),
                     param(random_tensor({16}, rng))},
                    1e-2f, 2e-2, 60);
  }

  TEST_CASE("batchnorm: training mode (batch statistics)") {
    Rng rng(7);
    Tensor running_mean = Tensor::zeros({3}), running_var = Tensor::full({3}, 1.0f);
    check_gradients(
        [&](std::vector<Variable>& v) {
          return ops::batchnorm(v[0], v[1], v[2], running_mean, running_var, true, 0.1f, 1e-5f);
        },
        {param(random_tensor({4, 3, 3, 3}, rng)), param(random_tensor({3}, rng)), param(random_tensor({3}, rng))},
        1e-2f, 3e-2);
  }

  TEST_CASE("batchnorm with fused ReLU: training and evaluation mode") {
    Rng rng(16);
    Tensor running_mean = Tensor::from_vector({3}, {0.1f, -0.2f, 0.3f});
    Tensor running_var = Tensor::from_vector({3}, {0.5f, 1.5f, 2.0f});
    for (bool training : {true, false}) {
      check_gradients(
          [&](std::vector<Variable>& v) {
            Tensor mean = running_mean.clone(), var = running_var.clone();
            return ops::batchnorm(v[0], v[1], v[2], mean, var, training, 0.1f, 1e-5f, true);
          },
          {param(random_tensor({4, 3, 3, 3}, rng)), param(random_tensor({3}, rng)), param(random_tensor({3}, rng))},
          1e-3f, 3e-2);
    }
  }

  TEST_CASE("add_relu") {
    Rng rng(17);
    check_gradients([](std::vector<Variable>& v) { return ops::add_relu(v[0], v[1]); },
                    {param(away_from_zero({2, 3, 3, 2}, rng, 0.1f)), param(random_tensor({2, 3, 3, 2}, rng, 0.02f))});
  }

  TEST_CASE("batchnorm: evaluation mode (running statistics)") {
    Rng rng(8);
    Tensor running_mean = Tensor::from_vector({3}, {0.1f, -0.2f, 0.3f});
    Tensor running_var = Tensor::from_vector({3}, {0.5f, 1.5f, 2.0f});
    check_gradients(
        [&](std::vector<Variable>& v) {
          return ops::batchnorm(v[0], v[1], v[2], running_mean, running_var, false, 0.1f, 1e-5f);
        },
        {param(random_tensor({2, 3, 3, 3}, rng)), param(random_tensor({3}, rng)), param(random_tensor({3}, rng))});
  }

  TEST_CASE("relu, add, flatten") {
    Rng rng(9);
    check_gradients([](std::vector<Variable>& v) { return ops::relu(v[0]); },
                    {param(away_from_zero({3, 4, 4, 2}, rng, 0.05f))});
    check_gradients([](std::vector<Variable>& v) { return ops::add(v[0], v[1]); },
                    {param(random_tensor({2, 3, 3, 2}, rng)), param(random_tensor({2, 3, 3, 2}, rng))});
    check_gradients([](std::vector<Variable>& v) { return ops::flatten(ops::relu(v[0])); },
                    {param(away_from_zero({2, 3, 3, 2}, rng, 0.05f))});
  }

  TEST_CASE("max pool and average pool (with padding)") {
    Rng rng(10);
    check_gradients([](std::vector<Variable>& v) { return ops::max_pool2d(v[0], 2, 2); },
                    {param(distinct_values({2, 6, 6, 3}, rng))}, 1e-3f);
    check_gradients([](std::vector<Variable>& v) { return ops::max_pool2d(v[0], 3, 2, 1); },
                    {param(distinct_values({2, 5, 5, 2}, rng))}, 1e-3f);
    check_gradients([](std::vector<Variable>& v) { return ops::avg_pool2d(v[0], 3, 2, 1); },
                    {param(random_tensor({2, 5, 5, 2}, rng))});
    check_gradients([](std::vector<Variable>& v) { return ops::global_avg_pool(v[0]); },
                    {param(random_tensor({2, 4, 3, 5}, rng))});
  }

  TEST_CASE("concat along channels") {
    Rng rng(20);
    check_gradients([](std::vector<Variable>& v) { return ops::concat_channels({v[0], v[1], v[2]}); },
                    {param(random_tensor({2, 3, 3, 4}, rng)), param(random_tensor({2, 3, 3, 1}, rng)),
                     param(random_tensor({2, 3, 3, 3}, rng))});
  }

  TEST_CASE("relu6") {
    Rng rng(19);
    Tensor x = away_from_zero({3, 4, 2, 2}, rng, 0.05f);
    for (int64_t i = 0; i < x.numel(); i += 3) x.data()[i] = 6.5f + 0.1f * static_cast<float>(i % 5);  // above 6
    check_gradients([](std::vector<Variable>& v) { return ops::relu6(v[0]); }, {param(x)});
  }

  TEST_CASE("scale") {
    Rng rng(18);
    check_gradients([](std::vector<Variable>& v) { return ops::scale(v[0], -0.37f); },
                    {param(random_tensor({3, 5}, rng))});
  }

  TEST_CASE("dropout (fixed mask)") {
    Rng data_rng(11);
    Rng dropout_rng(0);
    check_gradients(
        [&](std::vector<Variable>& v) {
          dropout_rng.reseed(99);  // the same mask on every evaluation
          return ops::dropout(v[0], 0.3f, true, dropout_rng);
        },
        {param(random_tensor({4, 10}, data_rng))});
  }

  TEST_CASE("option-A pad shortcut") {
    Rng rng(12);
    check_gradients([](std::vector<Variable>& v) { return ops::pad_shortcut(v[0], 2, 8); },
                    {param(random_tensor({2, 5, 5, 4}, rng))});
  }

  TEST_CASE("softmax cross-entropy, with and without label smoothing") {
    Rng rng(13);
    const std::vector<int32_t> labels = {0, 3, 2, 1, 3};
    for (float smoothing : {0.0f, 0.1f}) {
      check_gradients([&](std::vector<Variable>& v) { return ops::softmax_cross_entropy(v[0], labels, smoothing); },
                      {param(random_tensor({5, 4}, rng))}, 1e-2f, 1e-2);
    }
  }

  TEST_CASE("a small network end to end (conv, bn, relu, pool, linear, loss)") {
    Rng rng(14);
    Tensor running_mean = Tensor::zeros({4}), running_var = Tensor::full({4}, 1.0f);
    const std::vector<int32_t> labels = {1, 0, 2};
    check_gradients(
        [&](std::vector<Variable>& v) {
          Variable h = ops::conv2d(v[0], v[1], Variable(), 1, 1);
          h = ops::batchnorm(h, v[2], v[3], running_mean, running_var, true, 0.1f, 1e-5f);
          h = ops::global_avg_pool(ops::relu(h));
          return ops::softmax_cross_entropy(ops::linear(h, v[4], v[5]), labels, 0.0f);
        },
        {param(random_tensor({3, 4, 4, 2}, rng)), param(random_tensor({4, 3, 3, 2}, rng)),
         param(random_tensor({4}, rng, 0.5f)), param(random_tensor({4}, rng)), param(random_tensor({3, 4}, rng)),
         param(random_tensor({3}, rng))},
        1e-3f, 5e-2);
  }

  // ---- transformer ops (vision transformer) -------------------------------------------------------
  TEST_CASE("layernorm over the last dimension, with affine weight and bias") {
    Rng rng(22);
    check_gradients([](std::vector<Variable>& v) { return ops::layernorm(v[0], v[1], v[2]); },
                    {param(random_tensor({3, 4, 6}, rng)), param(random_tensor({6}, rng)), param(random_tensor({6}, rng))},
                    1e-2f, 2e-2, 72);
  }

  TEST_CASE("gelu (exact erf form) and softmax over the last dimension") {
    Rng rng(23);
    check_gradients([](std::vector<Variable>& v) { return ops::gelu(v[0]); }, {param(random_tensor({4, 5}, rng, 2.0f))});
    check_gradients([](std::vector<Variable>& v) { return ops::softmax(v[0]); }, {param(random_tensor({3, 2, 5}, rng))});
  }

  TEST_CASE("fused multi-head self-attention: T = 5, D = 6, H = 2, and one head") {
    Rng rng(24);
    check_gradients([](std::vector<Variable>& v) { return ops::attention(v[0], 2); },
                    {param(random_tensor({2, 5, 18}, rng))}, 1e-2f, 2e-2, 180);
    check_gradients([](std::vector<Variable>& v) { return ops::attention(v[0], 1); },
                    {param(random_tensor({1, 4, 12}, rng))}, 1e-2f, 2e-2, 48);
  }

  TEST_CASE("token plumbing: reshape, prepend a class token, add a position embedding, select a token") {
    Rng rng(25);
    check_gradients([](std::vector<Variable>& v) { return ops::reshape(ops::gelu(v[0]), {6, 4}); },
                    {param(random_tensor({2, 3, 4}, rng))});
    check_gradients([](std::vector<Variable>& v) { return ops::prepend_token(v[0], v[1]); },
                    {param(random_tensor({3, 4, 5}, rng)), param(random_tensor({1, 1, 5}, rng))});
    check_gradients([](std::vector<Variable>& v) { return ops::add_batch_broadcast(v[0], v[1]); },
                    {param(random_tensor({3, 4, 5}, rng)), param(random_tensor({1, 4, 5}, rng))});
    check_gradients([](std::vector<Variable>& v) { return ops::select_token(v[0], 1); },
                    {param(random_tensor({3, 4, 5}, rng))});
  }

  TEST_CASE("a small pre-LN transformer block end to end (patches, tokens, attention, MLP, head, loss)") {
    Rng rng(26);
    const std::vector<int32_t> labels = {2, 0};
    // v: image, patch weight, patch bias, cls, pos, ln w, ln b, qkv w, qkv b, proj w, fc1 w, fc2 w, head w
    check_gradients(
        [&](std::vector<Variable>& v) {
          Variable t = ops::conv2d(v[0], v[1], v[2], 2, 0);                     // [2, 2, 2, 6]
          t = ops::prepend_token(ops::reshape(t, {2, 4, 6}), v[3]);             // [2, 5, 6]
          t = ops::add_batch_broadcast(t, v[4]);
          const Variable n = ops::reshape(ops::layernorm(t, v[5], v[6]), {10, 6});
          const Variable qkv = ops::reshape(ops::linear(n, v[7], v[8]), {2, 5, 18});
          const Variable a = ops::linear(ops::reshape(ops::attention(qkv, 2), {10, 6}), v[9], Variable());
          t = ops::add(t, ops::reshape(a, {2, 5, 6}));
          const Variable m = ops::linear(ops::gelu(ops::linear(ops::reshape(t, {10, 6}), v[10], Variable())), v[11],
                                         Variable());
          t = ops::add(t, ops::reshape(m, {2, 5, 6}));
          return ops::softmax_cross_entropy(ops::linear(ops::select_token(t, 0), v[12], Variable()), labels);
        },
        {param(random_tensor({2, 4, 4, 2}, rng)), param(random_tensor({6, 2, 2, 2}, rng, 0.5f)),
         param(random_tensor({6}, rng)), param(random_tensor({1, 1, 6}, rng)), param(random_tensor({1, 5, 6}, rng)),
         param(random_tensor({6}, rng)), param(random_tensor({6}, rng)), param(random_tensor({18, 6}, rng, 0.5f)),
         param(random_tensor({18}, rng)), param(random_tensor({6, 6}, rng, 0.5f)), param(random_tensor({8, 6}, rng, 0.5f)),
         param(random_tensor({6, 8}, rng, 0.5f)), param(random_tensor({3, 6}, rng))},
        1e-3f, 5e-2);
  }
}
