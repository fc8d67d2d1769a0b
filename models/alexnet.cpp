// AlexNet for 32x32 inputs (the CIFAR variant used in pruning papers; Krizhevsky et al. 2012 has 11x11
// and 5x5 kernels for 224x224): five 3x3 convs with bias (64, 192, 384, 256, 256 channels), ReLU,
// 2x2 max-pooling after the first, second and fifth (32 -> 4), then dropout 0.5 + fc 4096 -> 4096,
// ReLU, dropout 0.5 + fc 4096 -> 4096, ReLU, fc 4096 -> classes. 3x32x32, 10 classes: 35,855,178
// parameters (the two 4096-wide layers hold 94% of them).
#include "models/registry.h"

namespace st::models {

std::unique_ptr<nn::Module> make_alexnet_cifar(const InputSpec& input, Rng& rng) {
  auto net = std::make_unique<nn::Sequential>();
  const int64_t widths[5] = {64, 192, 384, 256, 256};
  int64_t in = input.channels;
  for (int i = 0; i < 5; ++i) {
    net->add(std::make_unique<nn::Conv2d>(in, widths[i], 3, 1, 1, true, rng));
    net->add(std::make_unique<nn::ReLU>());
    if (i == 0 || i == 1 || i == 4) net->add(std::make_unique<nn::MaxPool2d>(2, 2));
    in = widths[i];
  }
  net->add(std::make_unique<nn::Flatten>());
  const int64_t side = input.height / 8;
  net->add(std::make_unique<nn::Dropout>(0.5f, rng));
  net->add(std::make_unique<nn::Linear>(256 * side * side, 4096, true, rng));
  net->add(std::make_unique<nn::ReLU>());
  net->add(std::make_unique<nn::Dropout>(0.5f, rng));
  net->add(std::make_unique<nn::Linear>(4096, 4096, true, rng));
  net->add(std::make_unique<nn::ReLU>());
  net->add(std::make_unique<nn::Linear>(4096, input.num_classes, true, rng));
  return net;
}

}  // namespace st::models
