#include "models/registry.h"

#include "engine/error.h"

namespace st::models {

const std::vector<ModelEntry>& registry() {
  static const std::vector<ModelEntry> entries = [] {
    std::vector<ModelEntry> list;
    const InputSpec mnist{1, 28, 28, 10};
    const InputSpec cifar{3, 32, 32, 10};
    list.push_back({"lenet300", "MLP 784-300-100-10, ReLU", mnist, 266'610, 28, make_lenet300});
    list.push_back({"lenet5", "conv 6@5x5 pad 2, maxpool, conv 16@5x5, maxpool, fc 120-84-10, ReLU", mnist, 61'706, 28,
                    make_lenet5});
    const int depths[4] = {20, 32, 56, 110};
    const int64_t counts_b[4] = {272'474, 466'906, 855'770, 1'730'714};
    const int64_t counts_a[4] = {269'722, 464'154, 853'018, 1'727'962};
    for (int i = 0; i < 4; ++i) {
      const int depth = depths[i];
      const std::string name = "resnet" + std::to_string(depth);
      list.push_back({name, "CIFAR ResNet-" + std::to_string(depth) + ", shortcut option B (1x1 conv + BN)", cifar,
                      counts_b[i], 32, [depth](const InputSpec& input, Rng& rng) {
                        return make_cifar_resnet(depth, Shortcut::B, input, rng);
                      }});
      list.push_back({name + "a", "CIFAR ResNet-" + std::to_string(depth) + ", shortcut option A (zero-padded identity)",
                      cifar, counts_a[i], 32, [depth](const InputSpec& input, Rng& rng) {
                        return make_cifar_resnet(depth, Shortcut::A, input, rng);
                      }});
    }
    return list;
  }();
  return entries;
}

const ModelEntry& find_model(const std::string& name) {
  std::string known;
  for (const ModelEntry& entry : registry()) {
    if (entry.name == name) return entry;
    known += (known.empty() ? "" : ", ") + entry.name;
  }
  fail("--model: unknown model '{}' (known: {})", name, known);
}

std::unique_ptr<nn::Module> build_model(const std::string& name, const InputSpec& input, Rng& rng) {
  return find_model(name).build(input, rng);
}

}  // namespace st::models
