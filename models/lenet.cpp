// LeNet-300-100 (LeCun et al. 1998; the lottery-ticket MLP, Frankle & Carbin 2019) and LeNet-5
// (conv 6@5x5 pad 2, maxpool, conv 16@5x5, maxpool, fc 120-84-10, ReLU).
// Note: flattening is NHWC, so fc1 of lenet5 reads (h, w, c) order; export permutes it for PyTorch.
#include "models/registry.h"

namespace st::models {

std::unique_ptr<nn::Module> make_lenet300(const InputSpec& input, Rng& rng) {
  auto net = std::make_unique<nn::Sequential>();
  net->add(std::make_unique<nn::Flatten>());
  net->add(std::make_unique<nn::Linear>(input.channels * input.height * input.width, 300, true, rng));
  net->add(std::make_unique<nn::ReLU>());
  net->add(std::make_unique<nn::Linear>(300, 100, true, rng));
  net->add(std::make_unique<nn::ReLU>());
  net->add(std::make_unique<nn::Linear>(100, input.num_classes, true, rng));
  return net;
}

std::unique_ptr<nn::Module> make_lenet5(const InputSpec& input, Rng& rng) {
  auto net = std::make_unique<nn::Sequential>();
  net->add(std::make_unique<nn::Conv2d>(input.channels, 6, 5, 1, 2, true, rng));
  net->add(std::make_unique<nn::ReLU>());
  net->add(std::make_unique<nn::MaxPool2d>(2, 2));
  net->add(std::make_unique<nn::Conv2d>(6, 16, 5, 1, 0, true, rng));
  net->add(std::make_unique<nn::ReLU>());
  net->add(std::make_unique<nn::MaxPool2d>(2, 2));
  net->add(std::make_unique<nn::Flatten>());
  const int64_t side_h = (input.height / 2 - 4) / 2, side_w = (input.width / 2 - 4) / 2;
  net->add(std::make_unique<nn::Linear>(16 * side_h * side_w, 120, true, rng));
  net->add(std::make_unique<nn::ReLU>());
  net->add(std::make_unique<nn::Linear>(120, 84, true, rng));
  net->add(std::make_unique<nn::ReLU>());
  net->add(std::make_unique<nn::Linear>(84, input.num_classes, true, rng));
  return net;
}

}  // namespace st::models
