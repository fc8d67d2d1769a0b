// Every model of the registry trains on Fashion-MNIST (1 channel, zero-padded to 32x32 for the CIFAR
// and ImageNet models) for 200 SGD steps on the CPU, and its loss falls. Small batches keep CI fast.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>

#include "engine/data/loader.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "models/registry.h"

using namespace st;

TEST_SUITE("models") {
  TEST_CASE("every model trains 200 steps on Fashion-MNIST with the loss falling") {
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    if (!std::filesystem::exists(dir)) {
      MESSAGE("skipped: " << dir << " is not installed (apt-get install dataset-fashion-mnist)");
      return;
    }
    data::Dataset train = data::load_idx_directory(dir, true, "fashion-mnist");
    train.labels.resize(2000);
    train.pixels.resize(2000 * 28 * 28);
    const data::Normalization normalization = data::compute_normalization(train);
    const char* only = std::getenv("ST_TEST_MODELS");  // e.g. ST_TEST_MODELS=vgg11,resnet18 to run a few
    for (const models::ModelEntry& entry : models::registry()) {
      if (entry.name.back() == 'a' && entry.name.rfind("resnet", 0) == 0 && entry.name != "resnet20a") continue;
      // vit-tiny6 is vit-tiny with 6 blocks: vit-tiny (about 30 s of one core) covers both.
      if (entry.name == "vit-tiny6" && only == nullptr) continue;
      if (only != nullptr && fmt::format(",{},", only).find(fmt::format(",{},", entry.name)) == std::string::npos) continue;
      // The ImageNet networks downsample 32x: they get 64x64 inputs so their last maps are 2x2.
      const bool imagenet = entry.reference_input.height == 224;
      const int64_t side = imagenet ? 64 : std::max<int64_t>(entry.image_size, 28);
      const int64_t batch = imagenet ? 4 : entry.reference_parameters > 10'000'000 ? 2 : entry.reference_parameters > 1'000'000 ? 4 : 8;
      const data::BatchLoader loader(train, batch, true, true, 1, {side == 28 ? 0 : side, 0, false}, normalization);
      Rng rng(3);
      auto model = entry.build({1, side, side, 10}, rng);
      OptimizerConfig config;
      config.momentum = 0.9f;
      config.weight_decay = 0.0f;
      auto optimizer = make_optimizer(config, model->parameters());
      // No BatchNorm in AlexNet: a smaller step.
      const float lr = entry.name.rfind("lenet", 0) == 0 ? 0.05f : entry.name == "alexnet-cifar" ? 0.001f : 0.01f;
      std::vector<float> images;
      std::vector<int32_t> labels;
      double first = 0.0, last = 0.0;
      model->train(true);
      for (int64_t step = 0; step < 200; ++step) {
        loader.fill_batch(step / loader.batches_per_epoch(), step % loader.batches_per_epoch(), images, labels);
        Tensor input = Tensor::from_vector({batch, side, side, 1},
                                           std::vector<float>(images.begin(), images.begin() + batch * side * side));
        optimizer->zero_grad();
        Tape tape;
        Variable loss;
        {
          TapeScope scope(tape);
          loss = ops::softmax_cross_entropy(model->forward(Variable(input)), labels);
        }
        tape.backward(loss);
        optimizer->step(lr);
        if (step < 40) first += loss.value().item() / 40.0;
        if (step >= 160) last += loss.value().item() / 40.0;
      }
      INFO(entry.name << ": mean loss of steps 1-40 " << first << ", of steps 161-200 " << last);
      CHECK(std::isfinite(last));
      CHECK(last < first);
      MESSAGE(entry.name << ": loss " << first << " -> " << last);  // shown with -s
    }
  }
}
