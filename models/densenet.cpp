// DenseNet-BC (Huang et al. 2017) for CIFAR, growth rate k = 12, depth 100: a 3x3 conv to 2k channels,
// three dense blocks of n = (depth - 4) / 6 = 16 bottleneck layers (BN-ReLU-conv1x1 to 4k,
// BN-ReLU-conv3x3 to k, concatenated to the layer's input), transitions with compression 0.5
// (BN-ReLU-conv1x1 to half the channels, 2x2 average pooling), then BN-ReLU, global average pooling
// and one linear layer. Channels 24 -> 216 -> 108 -> 300 -> 150 -> 342. 3x32x32, 10 classes:
// 769,162 parameters.
#include "engine/ops.h"
#include "models/registry.h"

namespace st::models {
namespace {

class DenseLayer : public nn::Module {
 public:
  DenseLayer(int64_t in, int64_t growth, Rng& rng) {
    bn1_ = &register_module("norm1", std::make_unique<nn::BatchNorm2d>(in, true));
    conv1_ = &register_module("conv1", std::make_unique<nn::Conv2d>(in, 4 * growth, 1, 1, 0, false, rng));
    bn2_ = &register_module("norm2", std::make_unique<nn::BatchNorm2d>(4 * growth, true));
    conv2_ = &register_module("conv2", std::make_unique<nn::Conv2d>(4 * growth, growth, 3, 1, 1, false, rng));
  }
  Variable forward(const Variable& x) override {
    const Variable features = conv2_->forward(bn2_->forward(conv1_->forward(bn1_->forward(x))));
    return ops::concat_channels({x, features});
  }

 private:
  nn::BatchNorm2d* bn1_;
  nn::Conv2d* conv1_;
  nn::BatchNorm2d* bn2_;
  nn::Conv2d* conv2_;
};

}  // namespace

std::unique_ptr<nn::Module> make_densenet_bc(int depth, int64_t growth, const InputSpec& input, Rng& rng) {
  const int layers = (depth - 4) / 6;
  auto net = std::make_unique<nn::Sequential>();
  int64_t channels = 2 * growth;
  net->add(std::make_unique<nn::Conv2d>(input.channels, channels, 3, 1, 1, false, rng));
  for (int block = 0; block < 3; ++block) {
    for (int i = 0; i < layers; ++i) {
      net->add(std::make_unique<DenseLayer>(channels, growth, rng));
      channels += growth;
    }
    if (block < 2) {
      const int64_t out = channels / 2;
      net->add(std::make_unique<nn::BatchNorm2d>(channels, true));
      net->add(std::make_unique<nn::Conv2d>(channels, out, 1, 1, 0, false, rng));
      net->add(std::make_unique<nn::AvgPool2d>(2, 2));
      channels = out;
    }
  }
  net->add(std::make_unique<nn::BatchNorm2d>(channels, true));
  net->add(std::make_unique<nn::GlobalAvgPool>());
  net->add(std::make_unique<nn::Linear>(channels, input.num_classes, true, rng));
  return net;
}

}  // namespace st::models
