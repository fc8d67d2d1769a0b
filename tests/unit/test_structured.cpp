// Structured pruning: physical removal of filters/channels with their coupled tensors.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <map>

#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "models/registry.h"
#include "pruning/structured.h"
#include "tests/test_helpers.h"

using namespace st;
using st::testing::random_tensor;

namespace {

// Zeroes the odd channels of every group in every producer and in the BatchNorms that read them
// (pre-activation), so those channels carry exactly 0 to every conv/linear reader. Running
// statistics may stay: gamma = beta = 0 silences a BatchNorm.
void zero_odd_channels(nn::Module& model) {
  for (const nn::ChannelGroup& group : model.channel_groups()) {
    const auto zero = [&](const nn::ChannelSlice& slice) {
      Tensor& t = slice.parameter->value();
      const auto axis = static_cast<std::size_t>(slice.axis);
      int64_t inner = 1;
      for (std::size_t i = axis + 1; i < t.shape().size(); ++i) inner *= t.shape()[i];
      for (int64_t i = 0; i < t.numel(); ++i) {
        const int64_t channel = (i / inner) % t.shape()[axis] - slice.offset;
        if (channel >= 0 && channel < group.channels && channel % 2 == 1) t.data()[i] = 0.0f;
      }
    };
    for (const nn::ChannelSlice& slice : group.producers)
      if (slice.parameter != nullptr) zero(slice);
    for (const nn::ChannelSlice& slice : group.consumers)
      if (slice.parameter != nullptr && !slice.parameter->prunable()) zero(slice);
  }
}

// Random BatchNorm parameters and running statistics, so that no channel is silent by accident (a
// fresh BatchNorm maps 0 to 0 in eval mode and would hide a pre-activation reader left out of a group).
void randomize_norms(nn::Module& model, Rng& rng) {
  for (nn::Parameter* p : model.parameters()) {
    if (p->kind != nn::ParameterKind::NormWeight && p->kind != nn::ParameterKind::NormBias) continue;
    const bool gamma = p->kind == nn::ParameterKind::NormWeight;
    for (int64_t i = 0; i < p->numel(); ++i)
      p->value().data()[i] = gamma ? rng.uniform(0.5f, 1.5f) : 0.2f * rng.normal();
  }
  for (const nn::NamedBuffer& buffer : model.buffers()) {
    const bool variance = buffer.name.find("running_var") != std::string::npos;
    for (int64_t i = 0; i < buffer.tensor->numel(); ++i)
      buffer.tensor->data()[i] = variance ? rng.uniform(0.5f, 1.5f) : 0.2f * rng.normal();
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

// Structured pruning of a model of the registry at 50%, checked three ways:
//  - removing channels that carry exactly 0 (odd channels silenced) leaves the eval-mode outputs
//    unchanged (relative to the logits' scale), and every group keeps exactly its even channels;
//  - the parameter count equals `expected_parameters` (computed from the architecture in the test);
//  - a fresh model resized to the shrunk shapes (what loading a checkpoint does) has the same shapes;
//  - (train_steps > 0) the shrunk network trains: a few SGD steps on one batch lower its loss.
void check_structured(const std::string& name, int64_t side, int64_t expected_parameters, int train_steps = 0) {
  INFO(name);
  Rng rng(21);
  const models::InputSpec spec{3, side, side, 10};
  auto model = models::build_model(name, spec, rng);
  const Tensor input = random_tensor({2, side, side, 3}, rng);
  randomize_norms(*model, rng);
  zero_odd_channels(*model);
  const auto before = logits(*model, input);
  const auto changes = pruning::prune_filters(*model, {0.5, "l1"}, {});
  for (const pruning::GroupChange& change : changes) {
    INFO(change.name);
    CHECK(change.channels_after == (change.channels_before + 1) / 2);
  }
  CHECK(model->parameter_count() == expected_parameters);
  const auto after = logits(*model, input);
  double scale = 1.0;
  for (float v : before) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  check_close(before, after, 1e-4 * scale);

  std::map<std::string, Shape> shapes;
  for (nn::Parameter* p : model->parameters()) shapes[p->name] = p->value().shape();
  auto fresh = models::build_model(name, spec, rng);
  pruning::resize_to_shapes(*fresh, shapes);
  for (nn::Parameter* p : fresh->parameters()) CHECK(p->value().shape() == shapes.at(p->name));
  const auto buffers = model->buffers(), fresh_buffers = fresh->buffers();
  REQUIRE(buffers.size() == fresh_buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i)
    CHECK(fresh_buffers[i].tensor->shape() == buffers[i].tensor->shape());

  if (train_steps == 0) return;
  OptimizerConfig config;
  config.weight_decay = 0.0f;
  auto optimizer = make_optimizer(config, model->parameters());
  model->train(true);
  double first = 0.0, last = 0.0;
  for (int step = 0; step < train_steps; ++step) {
    optimizer->zero_grad();
    Tape tape;
    Variable loss;
    {
      TapeScope scope(tape);
      loss = ops::softmax_cross_entropy(model->forward(Variable(input)), {3, 7});
    }
    tape.backward(loss);
    optimizer->step(0.02f);
    (step == 0 ? first : last) = loss.value().item();
  }
  INFO("loss " << first << " -> " << last);
  CHECK(std::isfinite(last));
  CHECK(last < first);
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

  TEST_CASE("VGG prunes by chain analysis; unknown nested blocks and grouped convolutions are refused") {
    Rng rng(9);
    auto vgg = models::build_model("vgg11", {1, 32, 32, 10}, rng);
    const Tensor input = random_tensor({2, 32, 32, 1}, rng);
    zero_odd_channels(*vgg);
    const auto before = logits(*vgg, input);
    pruning::prune_filters(*vgg, {0.5, "l1"}, {});
    check_close(before, logits(*vgg, input), 1e-4);

    nn::Sequential nested;
    nested.add(std::make_unique<nn::Linear>(8, 8, true, rng));
    nested.add(std::make_unique<nn::Sequential>()).add(std::make_unique<nn::Linear>(8, 4, true, rng));
    CHECK_THROWS_WITH_AS(pruning::prune_filters(nested, {0.5, "l1"}, {}), doctest::Contains("describe its channel"),
                         Error);
    CHECK(nested.parameters().back()->name == "1.0.bias");  // names intact
    nn::Sequential grouped;
    grouped.add(std::make_unique<nn::Conv2d>(4, 8, 3, 1, 1, false, rng));
    grouped.add(std::make_unique<nn::Conv2d>(8, 8, 3, 1, 1, false, rng, 2));
    CHECK_THROWS_WITH_AS(pruning::prune_filters(grouped, {0.5, "l1"}, {}), doctest::Contains("2 groups"), Error);
  }

  // Expected counts: each model's parameter count written from its architecture, checked first
  // against the registry's reference count, then evaluated at the shrunk widths. Every group of these
  // models has an even channel count, so at 50% the shrunk network is the same architecture at half
  // width (DenseNet's second transition: 150 -> 75 channels).
  TEST_CASE("wrn-22-2: pre-activation blocks and residual streams with 1x1 shortcuts shrink together") {
    // stem conv; per block bn1 (in), conv1 3x3, bn2, conv2 3x3, 1x1 shortcut when the shape changes;
    // final BN and fc.
    const auto wrn = [](int64_t stem, std::array<int64_t, 3> widths, int64_t in_channels, int64_t classes) {
      int64_t total = 9 * in_channels * stem, in = stem;
      for (int stage = 0; stage < 3; ++stage)
        for (int block = 0; block < 3; ++block) {
          const int64_t out = widths[static_cast<std::size_t>(stage)];
          const bool shortcut = in != out || (block == 0 && stage > 0);
          total += 2 * in + 9 * in * out + 2 * out + 9 * out * out + (shortcut ? in * out : 0);
          in = out;
        }
      return total + 2 * in + in * classes + classes;
    };
    REQUIRE(wrn(16, {32, 64, 128}, 3, 10) == models::find_model("wrn-22-2").reference_parameters);
    check_structured("wrn-22-2", 8, wrn(8, {16, 32, 64}, 3, 10), 4);
  }

  TEST_CASE("resnet18 / resnet50: inner block channels and the residual streams with downsample shortcuts") {
    // stem 7x7 conv + BN; basic blocks (3x3, 3x3) or bottlenecks (1x1 to p, 3x3, 1x1 to 4p) with BN;
    // downsample 1x1 conv + BN when the shape changes; fc.
    const auto resnet = [](bool bottleneck, std::array<int, 4> blocks, int64_t stem, std::array<int64_t, 4> planes,
                           int64_t classes) {
      int64_t total = 49 * 3 * stem + 2 * stem, in = stem;
      for (std::size_t stage = 0; stage < 4; ++stage)
        for (int b = 0; b < blocks[stage]; ++b) {
          const int64_t p = planes[stage], out = bottleneck ? 4 * p : p;
          total += bottleneck ? in * p + 2 * p + 9 * p * p + 2 * p + p * out + 2 * out
                              : 9 * in * p + 2 * p + 9 * p * out + 2 * out;
          if (in != out || (stage > 0 && b == 0)) total += in * out + 2 * out;
          in = out;
        }
      return total + in * classes + classes;
    };
    REQUIRE(resnet(false, {2, 2, 2, 2}, 64, {64, 128, 256, 512}, 1000) ==
            models::find_model("resnet18").reference_parameters);
    REQUIRE(resnet(true, {3, 4, 6, 3}, 64, {64, 128, 256, 512}, 1000) ==
            models::find_model("resnet50").reference_parameters);
    check_structured("resnet18", 32, resnet(false, {2, 2, 2, 2}, 32, {32, 64, 128, 256}, 10), 3);
    check_structured("resnet50", 32, resnet(true, {3, 4, 6, 3}, 32, {32, 64, 128, 256}, 10));
  }

  TEST_CASE("mobilenets: depthwise convs shrink with the channels they filter; V2 expansion channels and streams") {
    // V1: stem 3x3 conv + BN; per block depthwise 3x3 + BN, pointwise 1x1 + BN; fc.
    const auto v1 = [](int64_t stem, std::vector<int64_t> widths, int64_t classes) {
      int64_t total = 9 * 3 * stem + 2 * stem, in = stem;
      for (int64_t out : widths) {
        total += 9 * in + 2 * in + in * out + 2 * out;
        in = out;
      }
      return total + in * classes + classes;
    };
    const std::vector<int64_t> v1_widths = {64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
    std::vector<int64_t> v1_half;
    for (int64_t w : v1_widths) v1_half.push_back(w / 2);
    REQUIRE(v1(32, v1_widths, 10) == models::find_model("mobilenetv1").reference_parameters);
    REQUIRE(v1(32, v1_widths, 1000) == models::find_model("mobilenetv1-imagenet").reference_parameters);
    check_structured("mobilenetv1", 8, v1(16, v1_half, 10), 4);
    // V2: stem 3x3 conv + BN; per inverted residual (t, c): expansion 1x1 to t * in + BN (t > 1),
    // depthwise 3x3 + BN, projection 1x1 to c + BN; head 1x1 conv + BN; fc.
    const auto v2 = [](int64_t divisor, int64_t classes) {
      const int64_t stages[7][3] = {{1, 16, 1}, {6, 24, 2},  {6, 32, 3}, {6, 64, 4},
                                    {6, 96, 3}, {6, 160, 3}, {6, 320, 1}};  // (t, c, n)
      const int64_t stem = 32 / divisor, head = 1280 / divisor;
      int64_t total = 9 * 3 * stem + 2 * stem, in = stem;
      for (const auto& stage : stages)
        for (int64_t r = 0; r < stage[2]; ++r) {
          const int64_t hidden = in * stage[0], out = stage[1] / divisor;
          if (stage[0] != 1) total += in * hidden + 2 * hidden;
          total += 9 * hidden + 2 * hidden + hidden * out + 2 * out;
          in = out;
        }
      return total + in * head + 2 * head + head * classes + classes;
    };
    REQUIRE(v2(1, 1000) == models::find_model("mobilenetv2-imagenet").reference_parameters);
    check_structured("mobilenetv2", 8, v2(2, 10), 4);
    check_structured("mobilenetv2-imagenet", 32, v2(2, 10));
  }

  TEST_CASE("densenet: concatenation segments, bottleneck and transition channels shrink together") {
    // stem 3x3 conv to c0; per dense layer on c channels: BN, 1x1 conv to b, BN, 3x3 conv to k; per
    // transition on c channels: BN, 1x1 conv to t; final BN and fc.
    const auto densenet = [](int64_t c0, int64_t k, int64_t b, std::array<int64_t, 2> transitions, int64_t classes) {
      int64_t total = 9 * 3 * c0, c = c0;
      for (int block = 0; block < 3; ++block) {
        for (int layer = 0; layer < 16; ++layer) {
          total += 2 * c + c * b + 2 * b + 9 * b * k;
          c += k;
        }
        if (block < 2) {
          const int64_t t = transitions[static_cast<std::size_t>(block)];
          total += 2 * c + c * t;
          c = t;
        }
      }
      return total + 2 * c + c * classes + classes;
    };
    REQUIRE(densenet(24, 12, 48, {108, 150}, 10) == models::find_model("densenet").reference_parameters);
    check_structured("densenet", 8, densenet(12, 6, 24, {54, 75}, 10), 3);
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

  TEST_CASE("greedy forward selection with repeats weights a unit picked twice double; without, the layer stays whole") {
    Rng rng(9);
    auto model = models::build_model("lenet300", {1, 28, 28, 10}, rng);
    const auto groups = model->channel_groups();
    const nn::ChannelGroup& hidden2 = groups[1];
    const std::vector<float> original = hidden2.consumers[0].parameter->value().to_vector();
    // The factor a subset puts on a unit, read off the first row of the [10, 100] consumer.
    const auto factor = [&](int64_t unit) {
      return static_cast<double>(hidden2.consumers[0].parameter->value().data()[unit]) /
             static_cast<double>(original[static_cast<std::size_t>(unit)]);
    };
    // loss -sqrt(f7) - 0.9 sqrt(f42) (+0.01 per other active unit): picks 7, then 42 (-13.42 beats
    // 7 twice at -10), then 7 again (f7 = 66.7, f42 = 33.3: -13.36; 42 again -13.12; another unit
    // -10.97); the target needs f7 > f42 > 0, which only a repeat gives.
    const pruning::SelectionHooks hooks{
        [&](int64_t) {
          double loss = -std::sqrt(factor(7)) - 0.9 * std::sqrt(factor(42));
          for (int64_t u = 0; u < 100; ++u)
            if (u != 7 && u != 42 && factor(u) != 0.0) loss += 0.01;
          return loss;
        },
        [&] { return factor(42) > 0.0 && factor(7) > factor(42) * 1.5 ? 1.0 : 0.0; }};
    {
      const pruning::Selection with = pruning::greedy_forward_selection(hidden2, hooks, 1.0, {100, true, true}, rng);
      CHECK(with.units == std::vector<int64_t>{7, 42});
      CHECK(with.picks == 3);
      CHECK(with.scale == doctest::Approx(100.0 / 3.0));
      CHECK(with.accuracy == 1.0);
      CHECK(factor(7) == doctest::Approx(200.0 / 3.0).epsilon(1e-5));  // committed: 2 picks x 100 / 3
      CHECK(factor(42) == doctest::Approx(100.0 / 3.0).epsilon(1e-5));
      CHECK(factor(0) == 0.0);
    }
    hidden2.consumers[0].parameter->value().copy_from(Tensor::from_vector({10, 100}, original));
    const pruning::Selection without = pruning::greedy_forward_selection(hidden2, hooks, 1.0, {100, false, true}, rng);
    CHECK(without.units.size() == 100);  // never reached: every unit, unscaled
    CHECK(without.scale == 1.0);
    CHECK(without.accuracy == 0.0);
    CHECK(hidden2.consumers[0].parameter->value().to_vector() == original);
  }

  // Gives the group's consumer the weights of a newly built lenet300 (no unit selected); returns them.
  std::vector<float> fresh_consumer(const nn::ChannelGroup& group, Rng& rng) {
    auto fresh = models::build_model("lenet300", {1, 28, 28, 10}, rng);
    const Tensor& w = fresh->channel_groups()[1].consumers[0].parameter->value();
    group.consumers[0].parameter->value().copy_from(w);
    return w.to_vector();
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
    const pruning::Selection greedy = pruning::greedy_forward_selection(hidden2, hooks, 1.0, {100, false, true}, rng);
    CHECK(greedy.units == std::vector<int64_t>{7, 42});
    CHECK(greedy.scale == doctest::Approx(50.0));
    CHECK(greedy.accuracy == 1.0);
    {
      // The sum form selects the same units and leaves their consumer weights as they were.
      const std::vector<float> before = fresh_consumer(hidden2, rng);
      const pruning::Selection sum = pruning::greedy_forward_selection(hidden2, hooks, 1.0, {100, false, false}, rng);
      CHECK(sum.units == std::vector<int64_t>{7, 42});
      CHECK(sum.scale == 1.0);
      const float* w = hidden2.consumers[0].parameter->value().data();
      for (int64_t row = 0; row < 10; ++row)
        for (int64_t unit = 0; unit < 100; ++unit) {
          const float expected = (unit == 7 || unit == 42) ? before[static_cast<std::size_t>(row * 100 + unit)] : 0.0f;
          REQUIRE(w[row * 100 + unit] == expected);
        }
      CHECK_THROWS_WITH_AS(pruning::greedy_forward_selection(hidden2, hooks, 1.0, {100, true, false}, rng),
                           doctest::Contains("--select-repeats"), Error);
    }
    // make the useful units the two of smallest norm: magnitude ordering reaches them last
    for (const nn::ChannelSlice& slice : hidden2.producers) {
      if (slice.parameter == nullptr || !slice.parameter->prunable()) continue;
      float* w = slice.parameter->value().data();
      for (int64_t i = 0; i < 300; ++i) {
        w[7 * 300 + i] *= 1e-3f;
        w[42 * 300 + i] *= 1e-3f;
      }
    }
    fresh_consumer(hidden2, rng);
    const pruning::Selection magnitude = pruning::magnitude_selection(hidden2, hooks, 1.0);
    CHECK(magnitude.units.size() == 100);
  }
}
