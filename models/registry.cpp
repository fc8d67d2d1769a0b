#include "models/registry.h"

#include "engine/error.h"

namespace st::models {

// MobileNetV2 with CIFAR strides, 3x32x32, 10 classes (the ImageNet count minus 1280 * 990 + 990 of the
// classifier).
constexpr int64_t MOBILENETV2_CIFAR = 3'504'872 - 1280 * 990 - 990;

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
    const int vgg_depths[4] = {11, 13, 16, 19};
    const int64_t vgg_counts[4] = {9'231'114, 9'416'010, 14'728'266, 20'040'522};
    for (int i = 0; i < 4; ++i) {
      const int depth = vgg_depths[i];
      list.push_back({"vgg" + std::to_string(depth), "CIFAR VGG-" + std::to_string(depth) + " (open_lth): conv+BN+ReLU, 4 maxpools, GAP, fc",
                      cifar, vgg_counts[i], 32,
                      [depth](const InputSpec& in, Rng& rng) { return make_vgg(depth, in, rng); }});
    }
    list.push_back({"wrn-22-2", "Wide ResNet 22-2 (pre-activation, RigL's CIFAR net)", cifar, 1'079'642, 32,
                    [](const InputSpec& in, Rng& rng) { return make_wide_resnet(22, 2, in, rng); }});
    list.push_back({"mobilenetv1", "MobileNetV1, CIFAR strides", cifar, 3'217'226, 32,
                    [](const InputSpec& in, Rng& rng) { return make_mobilenet_v1(true, in, rng); }});
    list.push_back({"mobilenetv2", "MobileNetV2 (torchvision blocks), CIFAR strides", cifar, MOBILENETV2_CIFAR, 32,
                    [](const InputSpec& in, Rng& rng) { return make_mobilenet_v2(true, in, rng); }});
    const InputSpec imagenet{3, 224, 224, 1000};
    list.push_back({"mobilenetv1-imagenet", "MobileNetV1 (Howard et al. 2017), ImageNet", imagenet, 4'231'976, 32,
                    [](const InputSpec& in, Rng& rng) { return make_mobilenet_v1(false, in, rng); }});
    list.push_back({"mobilenetv2-imagenet", "MobileNetV2 (torchvision), ImageNet", imagenet, 3'504'872, 32,
                    [](const InputSpec& in, Rng& rng) { return make_mobilenet_v2(false, in, rng); }});
    list.push_back({"resnet18", "ResNet-18 (torchvision)", imagenet, 11'689'512, 32,
                    [](const InputSpec& in, Rng& rng) { return make_imagenet_resnet(18, in, rng); }});
    list.push_back({"resnet50", "ResNet-50 (torchvision v1.5)", imagenet, 25'557'032, 32,
                    [](const InputSpec& in, Rng& rng) { return make_imagenet_resnet(50, in, rng); }});
    list.push_back({"densenet", "DenseNet-BC, k = 12, depth 100 (CIFAR)", cifar, 769'162, 32,
                    [](const InputSpec& in, Rng& rng) { return make_densenet_bc(100, 12, in, rng); }});
    list.push_back({"alexnet-cifar", "AlexNet, CIFAR variant: 5 conv (3x3) + 3 fc (4096, 4096)", cifar, 35'855'178,
                    32, [](const InputSpec& in, Rng& rng) { return make_alexnet_cifar(in, rng); }});
    // ViT-Tiny widths, 4x4 patches, 65 tokens (the count is derived in models/vit.cpp).
    list.push_back({"vit-tiny", "ViT-Tiny (dim 192, 3 heads, MLP 768), 4x4 patches, depth 12, cls token, pre-LN", cifar,
                    5'362'762, 32, [](const InputSpec& in, Rng& rng) { return make_vit_tiny(12, in, rng); }});
    list.push_back({"vit-tiny6", "ViT-Tiny widths, 4x4 patches, depth 6", cifar, 2'693'578, 32,
                    [](const InputSpec& in, Rng& rng) { return make_vit_tiny(6, in, rng); }});
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

void install(Plugins& plugins) {
  plugins.build_model = build_model;
  plugins.model_image_size = [](const std::string& name) { return find_model(name).image_size; };
}

}  // namespace st::models
