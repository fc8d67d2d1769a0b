// Layer shapes of the benchmarked CIFAR models (32x32 inputs, 10 classes), written out from their
// definitions in models/: resnet_cifar.cpp (resnet20 with option-B 1x1 stride-2 projection shortcuts),
// vgg.cpp (depth 19, 3x3 convs with bias), mobilenet.cpp (MobileNetV2, CIFAR strides) and vit.cpp
// (ViT-Tiny: 4x4 patch embedding, 65 tokens, depth 12). Layers of equal shape are listed once with a count.
#include "tools/kernelbench/shapes.h"

#include <fmt/format.h>

#include <map>
#include <stdexcept>
#include <tuple>

namespace st::kernelbench {
namespace {

Conv2dGeometry conv(int64_t in_channels, int64_t out_channels, int64_t size, int64_t kernel, int64_t stride,
                    int64_t groups = 1) {
  Conv2dGeometry g;
  g.in_h = size;
  g.in_w = size;
  g.in_channels = in_channels;
  g.out_channels = out_channels;
  g.kernel_h = kernel;
  g.kernel_w = kernel;
  g.stride = stride;
  g.pad = kernel / 2;
  g.groups = groups;
  return g;
}

std::string conv_name(const Conv2dGeometry& g) {
  const std::string stride = g.stride != 1 ? fmt::format("/{}", g.stride) : std::string();
  const char* depthwise = g.groups == g.in_channels && g.groups > 1 ? " dw" : "";
  return fmt::format("{}->{} {}x{}{}{} @{}", g.in_channels, g.out_channels, g.kernel_h, g.kernel_w, stride, depthwise,
                     g.in_h);
}

std::vector<ConvLayer> resnet20() {
  const std::string m = "resnet20";
  std::vector<ConvLayer> layers;
  auto add = [&](const std::string& name, const Conv2dGeometry& g, int count) {
    layers.push_back({m, name, g, false, count});
  };
  add("conv1 (RGB)", conv(3, 16, 32, 3, 1), 1);
  add("conv1 (grey)", conv(1, 16, 32, 3, 1), 1);
  add("stage1 3x3", conv(16, 16, 32, 3, 1), 6);
  add("stage2 first 3x3/2", conv(16, 32, 32, 3, 2), 1);
  add("stage2 shortcut 1x1/2", conv(16, 32, 32, 1, 2), 1);
  add("stage2 3x3", conv(32, 32, 16, 3, 1), 5);
  add("stage3 first 3x3/2", conv(32, 64, 16, 3, 2), 1);
  add("stage3 shortcut 1x1/2", conv(32, 64, 16, 1, 2), 1);
  add("stage3 3x3", conv(64, 64, 8, 3, 1), 5);
  for (ConvLayer& layer : layers) layer.name = fmt::format("{} {}", layer.name, conv_name(layer.geometry));
  return layers;
}

std::vector<ConvLayer> vgg19() {
  // Widths per conv; -1 = 2x2 max pool (models/vgg.cpp, depth 19).
  const int plan[] = {64, 64, -1, 128, 128, -1, 256, 256, 256, 256, -1, 512, 512, 512, 512, -1, 512, 512, 512, 512};
  std::map<std::tuple<int64_t, int64_t, int64_t>, int> counts;  // (in, out, size) -> layers
  std::vector<std::tuple<int64_t, int64_t, int64_t>> order;
  int64_t in = 3, size = 32;
  for (const int width : plan) {
    if (width < 0) {
      size /= 2;
      continue;
    }
    const auto key = std::make_tuple(in, static_cast<int64_t>(width), size);
    if (counts[key]++ == 0) order.push_back(key);
    in = width;
  }
  std::vector<ConvLayer> layers;
  for (const auto& key : order) {
    const Conv2dGeometry g = conv(std::get<0>(key), std::get<1>(key), std::get<2>(key), 3, 1);
    layers.push_back({"vgg19", conv_name(g), g, true, counts[key]});
  }
  return layers;
}

std::vector<ConvLayer> mobilenetv2() {
  // models/mobilenet.cpp: stem 3x3 to 32 (stride 1 on CIFAR), inverted residual stages (t, c, n, s), the
  // first stride-2 stage at stride 1 on CIFAR, 1x1 head to 1280.
  struct Stage {
    int64_t expansion, channels, repeats, stride;
  };
  const Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                          {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  std::vector<Conv2dGeometry> all;
  all.push_back(conv(3, 32, 32, 3, 1));
  int64_t in = 32, size = 32;
  bool first_stride_two = true;
  for (const Stage& stage : stages) {
    for (int64_t r = 0; r < stage.repeats; ++r) {
      int64_t stride = r == 0 ? stage.stride : 1;
      if (stride == 2 && first_stride_two) {
        stride = 1;
        first_stride_two = false;
      }
      const int64_t hidden = in * stage.expansion;
      if (stage.expansion != 1) all.push_back(conv(in, hidden, size, 1, 1));
      all.push_back(conv(hidden, hidden, size, 3, stride, hidden));
      size = (size + 2 - 3) / stride + 1;
      all.push_back(conv(hidden, stage.channels, size, 1, 1));
      in = stage.channels;
    }
  }
  all.push_back(conv(in, 1280, size, 1, 1));
  std::vector<ConvLayer> layers;
  for (const Conv2dGeometry& g : all) {
    bool merged = false;
    for (ConvLayer& layer : layers) {
      const Conv2dGeometry& h = layer.geometry;
      if (h.in_channels == g.in_channels && h.out_channels == g.out_channels && h.in_h == g.in_h &&
          h.kernel_h == g.kernel_h && h.stride == g.stride && h.groups == g.groups) {
        ++layer.count;
        merged = true;
        break;
      }
    }
    if (!merged) layers.push_back({"mobilenetv2", conv_name(g), g, false, 1});
  }
  return layers;
}

[[noreturn]] void unknown_model(const std::string& model) {
  throw std::invalid_argument(
      fmt::format("--model: unknown model '{}' (expected resnet20, vgg19, mobilenetv2, vit-tiny or all)", model));
}

std::vector<ConvLayer> vit_tiny() {
  Conv2dGeometry g = conv(3, 192, 32, 4, 4);
  g.pad = 0;
  return {{"vit-tiny", "patch_embed 3->192 4x4/4 @32", g, true, 1}};
}

}  // namespace

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = {"resnet20", "vgg19", "mobilenetv2", "vit-tiny"};
  return names;
}

std::vector<ConvLayer> conv_layers(const std::string& model) {
  if (model == "all") {
    std::vector<ConvLayer> layers;
    for (const std::string& name : model_names())
      for (ConvLayer& layer : conv_layers(name)) layers.push_back(std::move(layer));
    return layers;
  }
  if (model == "resnet20") return resnet20();
  if (model == "vgg19") return vgg19();
  if (model == "mobilenetv2") return mobilenetv2();
  if (model == "vit-tiny") return vit_tiny();
  unknown_model(model);
}

std::vector<LinearLayer> linear_layers(const std::string& model) {
  if (model == "all") {
    std::vector<LinearLayer> layers;
    for (const std::string& name : model_names())
      for (LinearLayer& layer : linear_layers(name)) layers.push_back(std::move(layer));
    return layers;
  }
  if (model == "resnet20") return {{model, "fc 64->10", 1, 64, 10, true, 1}};
  if (model == "vgg19") return {{model, "fc 512->10", 1, 512, 10, true, 1}};
  if (model == "mobilenetv2") return {{model, "fc 1280->10", 1, 1280, 10, true, 1}};
  if (model == "vit-tiny")
    return {{model, "attn.qkv 192->576 (65 tokens)", 65, 192, 576, true, 12},
            {model, "attn.proj 192->192 (65 tokens)", 65, 192, 192, true, 12},
            {model, "mlp.fc1 192->768 (65 tokens)", 65, 192, 768, true, 12},
            {model, "mlp.fc2 768->192 (65 tokens)", 65, 768, 192, true, 12},
            {model, "head 192->10 (class token)", 1, 192, 10, true, 1}};
  unknown_model(model);
}

std::vector<AttentionLayer> attention_layers(const std::string& model) {
  if (model == "all" || model == "vit-tiny") return {{"vit-tiny", "attention 65 tokens, 3 heads of 64", 65, 192, 3, 12}};
  if (model == "resnet20" || model == "vgg19" || model == "mobilenetv2") return {};
  unknown_model(model);
}

}  // namespace st::kernelbench
