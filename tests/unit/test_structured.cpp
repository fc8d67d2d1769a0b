// Structured pruning: physical removal of filters/channels with their coupled tensors.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "pruning/structured.h"
#include "tests/test_helpers.h"

using namespace st;
using st::testing::random_tensor;

namespace {

// Zeroes every producer of the odd channels of every group, so those channels carry exactly 0.
void zero_odd_channels(nn::Module& model) {
  for (const nn::ChannelGroup& group : model.channel_groups()) {
    for (const nn::ChannelSlice& slice : group.producers) {
      Tensor& t = slice.parameter != nullptr ? slice.parameter->value() : *slice.buffer;
      if (slice.buffer != nullptr) continue;  // running statistics may stay: gamma = beta = 0 silences BN
      const int64_t per_channel = t.numel() / group.channels;
      for (int64_t i = 0; i < t.numel(); ++i)
        if ((i / per_channel) % 2 == 1) t.data()[i] = 0.0f;
    }
  }
}

std::vector<float> logits(nn::Module& model, const Tensor& input) {
  model.train(false);
  return model.forward(Variable(input)).value().to_vector();
}

void check_close(const std::vector<float>& a, const std::vector<float>& b, double tolerance) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
  CHECK(worst < tolerance);
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("lenet300: removing all-zero hidden units leaves the outputs unchanged; counts drop as computed") {
    Rng rng(1);
    auto model = models::build_model("lenet300", {1, 28, 28, 10}, rng);
    zero_odd_channels(*model);
    const Tensor input = random_tensor({4, 28, 28, 1}, rng);
    const auto before = logits(*model, input);
    const auto changes = pruning::prune_filters(*model, {0.5, "l1"}, {});
    REQUIRE(changes.size() == 2);
    CHECK(changes[0].channels_after == 150);
    CHECK(changes[1].channels_after == 50);
    CHECK(model->parameter_count() == (784 * 150 + 150) + (150 * 50 + 50) + (50 * 10 + 10));
    check_close(before, logits(*model, input), 1e-5);
  }

  TEST_CASE("lenet5: conv filters and the flattened fc input shrink together") {
    Rng rng(2);
    auto model = models::build_model("lenet5", {1, 28, 28, 10}, rng);
    zero_odd_channels(*model);
    const Tensor input = random_tensor({3, 28, 28, 1}, rng);
    const auto before = logits(*model, input);
    pruning::prune_filters(*model, {0.5, "l2"}, {});
    // conv1 6 -> 3, conv2 16 -> 8 (fc1 reads 5 x 5 x 8), fc1 120 -> 60, fc2 84 -> 42
    CHECK(model->parameter_count() ==
          (3 * 25 + 3) + (8 * 25 * 3 + 8) + (60 * 200 + 60) + (42 * 60 + 42) + (10 * 42 + 10));
    check_close(before, logits(*model, input), 1e-5);
  }

  TEST_CASE("resnet20 at 50% of filters: residual streams, shortcuts and BatchNorm shrink together") {
    Rng rng(3);
    auto model = models::build_model("resnet20", {1, 32, 32, 10}, rng);
    const Tensor input = random_tensor({2, 32, 32, 1}, rng);
    model->train(false);
    model->forward(Variable(input));  // records each conv's output positions for the FLOP count
    const int64_t flops_before = pruning::flops_per_sample(*model);
    zero_odd_channels(*model);
    const auto before = logits(*model, input);
    pruning::prune_filters(*model, {0.5, "l1"}, {});
    CHECK(model->parameter_count() == 68642);  // every group halves: widths 8/16/32, stem 1 -> 8
    check_close(before, logits(*model, input), 1e-4);
    const int64_t expected_flops =
        2 * (72 * 1024 + 6 * 576 * 1024 + (1152 + 2304 + 128) * 256 + 4 * 2304 * 256 + (4608 + 9216 + 512) * 64 +
             4 * 9216 * 64 + 320);
    CHECK(pruning::flops_per_sample(*model) == expected_flops);
    CHECK(flops_before == 2 * (144 * 1024 + 6 * 2304 * 1024 + (4608 + 9216 + 512) * 256 + 4 * 9216 * 256 +
                               (18432 + 36864 + 2048) * 64 + 4 * 36864 * 64 + 640));
    // the shrunk model still trains: one SGD step changes the loss without shape errors
    model->train(true);
    Tape tape;
    Variable loss;
    {
      TapeScope scope(tape);
      loss = ops::softmax_cross_entropy(model->forward(Variable(input)), {1, 2});
    }
    tape.backward(loss);
    for (nn::Parameter* p : model->parameters()) CHECK(p->grad().shape() == p->value().shape());
  }

  TEST_CASE("a shrunk model's checkpoint loads into a fresh model") {
    namespace fs = std::filesystem;
    const fs::path path = fs::temp_directory_path() / "sparsetrain-structured.safetensors";
    Rng rng(4);
    auto model = models::build_model("resnet20", {1, 32, 32, 10}, rng);
    pruning::prune_filters(*model, {0.25, "l1"}, {});
    io::save_checkpoint(path, {model.get(), nullptr, {}, {}, "{}", "{}"});
    Rng other(5);
    auto fresh = models::build_model("resnet20", {1, 32, 32, 10}, other);
    std::map<std::string, Shape> shapes;
    for (const auto& record : io::read_safetensors(path).tensors)
      if (record.name.rfind("param/", 0) == 0) shapes[record.name.substr(6)] = record.shape;
    pruning::resize_to_shapes(*fresh, shapes);
    io::CheckpointContents contents{fresh.get(), nullptr, {}, {}, "", ""};
    io::load_checkpoint(path, contents);
    CHECK(fresh->parameter_count() == model->parameter_count());
    const Tensor input = random_tensor({2, 32, 32, 1}, rng);
    check_close(logits(*model, input), logits(*fresh, input), 0.0 + 1e-7);
    fs::remove(path);
  }

  TEST_CASE("VGG prunes through the chain analysis; nested blocks it does not know are refused") {
    Rng rng(9);
    auto vgg = models::build_model("vgg11", {1, 32, 32, 10}, rng);
    const Tensor input = random_tensor({2, 32, 32, 1}, rng);
    zero_odd_channels(*vgg);
    const auto before = logits(*vgg, input);
    pruning::prune_filters(*vgg, {0.5, "l1"}, {});
    check_close(before, logits(*vgg, input), 1e-4);
    for (const char* name : {"wrn-22-2", "mobilenetv2", "mobilenetv1"}) {
      auto model = models::build_model(name, {1, 32, 32, 10}, rng);
      INFO(name);
      CHECK_THROWS_AS(pruning::prune_filters(*model, {0.5, "l1"}, {}), Error);
      CHECK(model->parameters().front()->name.find('.') != std::string::npos);  // names intact
    }
  }

  TEST_CASE("option-A ResNets and unknown filter scores are refused") {
    Rng rng(6);
    auto model = models::build_model("resnet20a", {1, 32, 32, 10}, rng);
    CHECK_THROWS_WITH_AS(pruning::prune_filters(*model, {0.5, "l1"}, {}), doctest::Contains("option-A"), Error);
    CHECK_THROWS_WITH_AS(pruning::validate(pruning::StructuredSpec{0.5, "entropy"}),
                         doctest::Contains("--structured-score"), Error);
    CHECK_THROWS_WITH_AS(pruning::validate(pruning::StructuredSpec{1.0, "l1"}), doctest::Contains("--structured-prune"),
                         Error);
  }
}

#include "pruning/greedy.h"

TEST_SUITE("unit") {
  TEST_CASE("unit subsets rewrite the consumers (selected units scaled, others zero) and restore them") {
    Rng rng(7);
    auto model = models::build_model("lenet300", {1, 28, 28, 10}, rng);
    const auto groups = model->channel_groups();
    const nn::ChannelGroup& hidden2 = groups[1];  // 100 units read by the [10, 100] output layer
    const std::vector<float> original = hidden2.consumers[0].parameter->value().to_vector();
    {
      pruning::UnitSubset subset(hidden2);
      subset.apply({1, 3}, 50.0);
      const float* w = hidden2.consumers[0].parameter->value().data();
      for (int64_t row = 0; row < 10; ++row)
        for (int64_t unit = 0; unit < 100; ++unit) {
          const float expected = (unit == 1 || unit == 3) ? 50.0f * original[static_cast<std::size_t>(row * 100 + unit)] : 0.0f;
          REQUIRE(w[row * 100 + unit] == expected);
        }
    }
    CHECK(hidden2.consumers[0].parameter->value().to_vector() == original);  // restored
  }

  TEST_CASE("greedy forward selection finds the useful units; magnitude needs more when they are small") {
    Rng rng(8);
    auto model = models::build_model("lenet300", {1, 28, 28, 10}, rng);
    const auto groups = model->channel_groups();
    const nn::ChannelGroup& hidden2 = groups[1];
    // Synthetic objective read off the consumer weights: units 7 and 42 are the useful ones.
    const auto active = [&](int64_t unit) {
      const float* w = hidden2.consumers[0].parameter->value().data();
      for (int64_t row = 0; row < 10; ++row)
        if (w[row * 100 + unit] != 0.0f) return true;
      return false;
    };
    const pruning::SelectionHooks hooks{
        [&](int64_t) {
          double loss = 0.0;
          for (int64_t u = 0; u < 100; ++u) loss += active(u) ? 0.01 : 0.0;
          return loss - (active(7) ? 1.0 : 0.0) - (active(42) ? 1.0 : 0.0);
        },
        [&] { return ((active(7) ? 1.0 : 0.0) + (active(42) ? 1.0 : 0.0)) / 2.0; }};
    const pruning::Selection greedy = pruning::greedy_forward_selection(hidden2, hooks, 1.0, 100, rng);
    CHECK(greedy.units == std::vector<int64_t>{7, 42});
    CHECK(greedy.scale == doctest::Approx(50.0));
    CHECK(greedy.accuracy == 1.0);
    // make the useful units the two of smallest norm: magnitude ordering reaches them last
    for (const nn::ChannelSlice& slice : hidden2.producers) {
      if (slice.parameter == nullptr || !slice.parameter->prunable()) continue;
      float* w = slice.parameter->value().data();
      for (int64_t i = 0; i < 300; ++i) {
        w[7 * 300 + i] *= 1e-3f;
        w[42 * 300 + i] *= 1e-3f;
      }
    }
    auto fresh = models::build_model("lenet300", {1, 28, 28, 10}, rng);  // unselected consumers again
    hidden2.consumers[0].parameter->value().copy_from(fresh->channel_groups()[1].consumers[0].parameter->value());
    const pruning::Selection magnitude = pruning::magnitude_selection(hidden2, hooks, 1.0);
    CHECK(magnitude.units.size() == 100);
  }
}
