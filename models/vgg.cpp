// CIFAR VGG as in open_lth (Simonyan & Zisserman 2015 configurations A, B, D, E): 3x3 convs with
// bias, each followed by BatchNorm and ReLU; 2x2 max-pooling after each of the first four stages;
// global average pooling; one linear layer 512 -> classes.
#include "models/registry.h"

namespace st::models {

std::unique_ptr<nn::Module> make_vgg(int depth, const InputSpec& input, Rng& rng) {
  std::vector<int> plan;
  switch (depth) {
    case 11: plan = {64, -1, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512}; break;
    case 13: plan = {64, 64, -1, 128, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512}; break;
    case 16: plan = {64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512}; break;
    default: plan = {64, 64, -1, 128, 128, -1, 256, 256, 256, 256, -1, 512, 512, 512, 512, -1, 512, 512, 512, 512};
  }
  auto net = std::make_unique<nn::Sequential>();
  int64_t in = input.channels;
  for (int width : plan) {
    if (width < 0) {
      net->add(std::make_unique<nn::MaxPool2d>(2, 2));
      continue;
    }
    net->add(std::make_unique<nn::Conv2d>(in, width, 3, 1, 1, true, rng));
    net->add(std::make_unique<nn::BatchNorm2d>(width, true));  // BN + ReLU fused
    in = width;
  }
  net->add(std::make_unique<nn::GlobalAvgPool>());
  net->add(std::make_unique<nn::Linear>(512, input.num_classes, true, rng));
  return net;
}

}  // namespace st::models
