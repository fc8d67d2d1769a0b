// Vision transformer: the transformer ops' forward values against independent computations (known
// GELU values, a double-precision LayerNorm, attention as explicit loops around the softmax op), and
// vit-tiny's parameter counts, prunable tensors, FLOPs and structured pruning of its MLP hidden units.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "engine/error.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "pruning/structured.h"
#include "tests/test_helpers.h"

using namespace st;
using st::testing::random_tensor;

namespace {

double largest_difference(const std::vector<float>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
  return worst;
}

std::vector<float> logits(nn::Module& model, const Tensor& input) {
  model.train(false);
  return model.forward(Variable(input)).value().to_vector();
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("gelu and softmax give their known values") {
    const Tensor x = Tensor::from_vector({4}, {1.0f, -0.5f, 2.0f, 0.0f});
    // 0.5 x (1 + erf(x / sqrt 2)), values from the normal CDF
    const std::vector<double> gelu = {0.8413447460685429, -0.15426876936299347, 1.9544997361036416, 0.0};
    CHECK(largest_difference(ops::gelu(Variable(x)).value().to_vector(), gelu) < 1e-6);
    const Tensor z = Tensor::from_vector({2, 3}, {1.0f, 2.0f, 3.0f, -1.0f, -1.0f, 1000.0f});
    const std::vector<double> softmax = {0.09003057317038046, 0.24472847105479764, 0.6652409557748219, 0.0, 0.0, 1.0};
    CHECK(largest_difference(ops::softmax(Variable(z)).value().to_vector(), softmax) < 1e-6);
  }

  TEST_CASE("layernorm equals a double-precision computation") {
    Rng rng(1);
    const Tensor x = random_tensor({2, 3, 7}, rng, 3.0f), w = random_tensor({7}, rng), b = random_tensor({7}, rng);
    std::vector<double> expected;
    for (int64_t r = 0; r < 6; ++r) {
      double mean = 0.0, var = 0.0;
      for (int64_t c = 0; c < 7; ++c) mean += x.data()[r * 7 + c] / 7.0;
      for (int64_t c = 0; c < 7; ++c) var += std::pow(x.data()[r * 7 + c] - mean, 2) / 7.0;
      for (int64_t c = 0; c < 7; ++c)
        expected.push_back((x.data()[r * 7 + c] - mean) / std::sqrt(var + 1e-5) * w.data()[c] + b.data()[c]);
    }
    CHECK(largest_difference(ops::layernorm(Variable(x), Variable(w), Variable(b)).value().to_vector(), expected) <
          1e-5);
  }

  TEST_CASE("fused attention equals explicit per-head loops around the softmax op") {
    Rng rng(2);
    const int64_t batch = 2, tokens = 5, dim = 6, heads = 2, d = dim / heads;
    const Tensor qkv = random_tensor({batch, tokens, 3 * dim}, rng);
    auto at = [&](int64_t b, int64_t t, int64_t part, int64_t h, int64_t i) {
      return static_cast<double>(qkv.data()[(b * tokens + t) * 3 * dim + part * dim + h * d + i]);
    };
    Tensor scores = Tensor::empty({batch, heads, tokens, tokens});
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < tokens; ++i)
          for (int64_t j = 0; j < tokens; ++j) {
            double dot = 0.0;
            for (int64_t e = 0; e < d; ++e) dot += at(b, i, 0, h, e) * at(b, j, 1, h, e);
            scores.data()[((b * heads + h) * tokens + i) * tokens + j] = static_cast<float>(dot / std::sqrt(3.0));
          }
    const Tensor p = ops::softmax(Variable(scores)).value();
    std::vector<double> expected(static_cast<std::size_t>(batch * tokens * dim), 0.0);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < tokens; ++i)
          for (int64_t e = 0; e < d; ++e) {
            double sum = 0.0;
            for (int64_t j = 0; j < tokens; ++j)
              sum += p.data()[((b * heads + h) * tokens + i) * tokens + j] * at(b, j, 2, h, e);
            expected[static_cast<std::size_t>((b * tokens + i) * dim + h * d + e)] = sum;
          }
    const Variable y = ops::attention(Variable(qkv), heads);
    CHECK(y.shape() == Shape{batch, tokens, dim});
    CHECK(largest_difference(y.value().to_vector(), expected) < 1e-5);
    CHECK_THROWS_WITH_AS(ops::attention(Variable(qkv), 4), doctest::Contains("do not split into 4 heads"), Error);
  }

  TEST_CASE("token plumbing: class token first, position embedding on every sample, token selection") {
    const Tensor x = Tensor::from_vector({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
    const Tensor cls = Tensor::from_vector({1, 1, 2}, {-1, -2});
    const Variable with_cls = ops::prepend_token(Variable(x), Variable(cls));
    CHECK(with_cls.value().to_vector() == std::vector<float>{-1, -2, 1, 2, 3, 4, -1, -2, 5, 6, 7, 8});
    const Tensor pos = Tensor::from_vector({1, 3, 2}, {10, 20, 30, 40, 50, 60});
    const Variable embedded = ops::add_batch_broadcast(with_cls, Variable(pos));
    CHECK(embedded.value().to_vector() == std::vector<float>{9, 18, 31, 42, 53, 64, 9, 18, 35, 46, 57, 68});
    CHECK(ops::select_token(embedded, 1).value().to_vector() == std::vector<float>{31, 42, 35, 46});
    CHECK_THROWS_WITH_AS(ops::add_batch_broadcast(Variable(x), Variable(pos)), doctest::Contains("does not match"),
                         Error);
  }

  TEST_CASE("vit-tiny: parameter counts, prunable tensors, FLOPs and the input check") {
    Rng rng(3);
    auto vit = models::build_model("vit-tiny", {3, 32, 32, 10}, rng);
    CHECK(vit->parameter_count() == 5'362'762);
    CHECK(models::build_model("vit-tiny6", {3, 32, 32, 10}, rng)->parameter_count() == 2'693'578);
    // Fashion-MNIST (1 channel, padded to 32x32): the patch embedding loses 192 * 2 * 16 weights.
    CHECK(models::build_model("vit-tiny", {1, 32, 32, 10}, rng)->parameter_count() == 5'362'762 - 6'144);
    std::set<std::string> prunable;
    int64_t prunable_count = 0;
    for (nn::Parameter* p : vit->parameters())
      if (p->prunable()) {
        prunable.insert(p->name);
        prunable_count += p->numel();
      }
    CHECK(prunable.size() == 2 + 4 * 12);
    for (const char* name : {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.5.attn.proj.weight",
                             "blocks.11.mlp.fc1.weight", "blocks.11.mlp.fc2.weight", "head.weight"})
      CHECK(prunable.count(name) == 1);
    CHECK(prunable_count == 192 * 48 + 12 * (576 * 192 + 192 * 192 + 2 * 768 * 192) + 10 * 192);
    const std::vector<nn::Parameter*> parameters = vit->parameters();
    CHECK(parameters[0]->name == "cls_token");
    CHECK(parameters[1]->name == "pos_embed");
    CHECK(parameters[1]->value().shape() == Shape{1, 65, 192});
    CHECK(!parameters[0]->prunable());
    Rng data(4);
    const Variable out = vit->forward(Variable(random_tensor({2, 32, 32, 3}, data)));
    CHECK(out.shape() == Shape{2, 10});
    // Patch embedding at 64 positions, each token linear at 65 tokens, the head once.
    CHECK(pruning::flops_per_sample(*vit) ==
          2 * (192 * 48 * 64 + 12 * 65 * (576 * 192 + 192 * 192 + 2 * 768 * 192) + 10 * 192));
    CHECK_THROWS_WITH_AS(vit->forward(Variable(random_tensor({1, 28, 28, 3}, data))),
                         doctest::Contains("position embedding was built for"), Error);
  }

  TEST_CASE("vit-tiny6: removing all-zero MLP hidden units leaves the outputs unchanged; the model still trains") {
    Rng rng(5);
    auto vit = models::build_model("vit-tiny6", {1, 32, 32, 10}, rng);
    const std::vector<nn::ChannelGroup> groups = vit->channel_groups();
    REQUIRE(groups.size() == 6);
    CHECK(groups[2].name == "blocks.2.mlp.fc1.weight");
    CHECK(groups[2].channels == 768);
    // Silence the odd hidden units (fc1 rows and bias: GELU(0) = 0) and give the rest nonzero biases.
    for (const nn::ChannelGroup& group : groups)
      for (const nn::ChannelSlice& slice : group.producers) {
        Tensor& t = slice.parameter->value();
        const int64_t per_unit = t.numel() / group.channels;
        for (int64_t i = 0; i < t.numel(); ++i)
          t.data()[i] = (i / per_unit) % 2 == 1 ? 0.0f : t.data()[i] + (per_unit == 1 ? 0.1f : 0.0f);
      }
    Rng data(6);
    const Tensor input = random_tensor({2, 32, 32, 1}, data);
    const std::vector<float> before = logits(*vit, input);
    const int64_t count_before = vit->parameter_count();
    const auto changes = pruning::prune_filters(*vit, {0.5, "l1"}, {});
    REQUIRE(changes.size() == 6);
    for (const auto& change : changes) CHECK(change.channels_after == 384);
    CHECK(vit->parameter_count() == count_before - 6 * (384 * 192 + 384 + 192 * 384));
    const std::vector<float> after = logits(*vit, input);
    REQUIRE(after.size() == before.size());
    for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i] == doctest::Approx(before[i]).epsilon(1e-5));
    // the removed units were the silenced ones: the kept fc1 biases are the nonzero (even) ones
    for (nn::Parameter* p : vit->parameters())
      if (p->name == "blocks.0.mlp.fc1.bias") {
        CHECK(p->numel() == 384);
        for (int64_t i = 0; i < p->numel(); ++i) CHECK(p->value().data()[i] != 0.0f);
      }
    vit->train(true);
    Tape tape;
    Variable loss;
    {
      TapeScope scope(tape);
      loss = ops::softmax_cross_entropy(vit->forward(Variable(input)), {1, 7});
    }
    tape.backward(loss);
    for (nn::Parameter* p : vit->parameters()) CHECK(p->grad().shape() == p->value().shape());
  }
}
