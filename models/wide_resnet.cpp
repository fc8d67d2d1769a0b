// Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016), RigL's CIFAR network WRN-22-2: a 3x3 conv to 16
// channels, three stages of n = (d - 4) / 6 pre-activation blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3)
// of 16k, 32k, 64k channels with strides 1, 2, 2; when a block changes shape its shortcut is a 1x1
// conv of the pre-activated input; a final BN-ReLU, global average pooling and one linear layer.
// WRN-22-2 on 3x32x32, 10 classes: 1,079,642 parameters.
#include "engine/ops.h"
#include "models/registry.h"

namespace st::models {
namespace {

class PreActBlock : public nn::Module {
 public:
  PreActBlock(int64_t in, int64_t out, int64_t stride, Rng& rng) {
    bn1_ = &register_module("bn1", std::make_unique<nn::BatchNorm2d>(in, true));
    conv1_ = &register_module("conv1", std::make_unique<nn::Conv2d>(in, out, 3, stride, 1, false, rng));
    bn2_ = &register_module("bn2", std::make_unique<nn::BatchNorm2d>(out, true));
    conv2_ = &register_module("conv2", std::make_unique<nn::Conv2d>(out, out, 3, 1, 1, false, rng));
    if (in != out || stride != 1)
      shortcut_ = &register_module("shortcut", std::make_unique<nn::Conv2d>(in, out, 1, stride, 0, false, rng));
  }
  Variable forward(const Variable& x) override {
    const Variable activated = bn1_->forward(x);
    const Variable h = conv2_->forward(bn2_->forward(conv1_->forward(activated)));
    return ops::add(h, shortcut_ != nullptr ? shortcut_->forward(activated) : x);
  }

 private:
  nn::BatchNorm2d* bn1_;
  nn::Conv2d* conv1_;
  nn::BatchNorm2d* bn2_;
  nn::Conv2d* conv2_;
  nn::Conv2d* shortcut_ = nullptr;
};

}  // namespace

std::unique_ptr<nn::Module> make_wide_resnet(int depth, int widen, const InputSpec& input, Rng& rng) {
  const int blocks = (depth - 4) / 6;
  auto net = std::make_unique<nn::Sequential>();
  net->add(std::make_unique<nn::Conv2d>(input.channels, 16, 3, 1, 1, false, rng));
  int64_t in = 16;
  const int64_t widths[3] = {16 * widen, 32 * widen, 64 * widen};
  for (int stage = 0; stage < 3; ++stage)
    for (int b = 0; b < blocks; ++b) {
      net->add(std::make_unique<PreActBlock>(in, widths[stage], (stage > 0 && b == 0) ? 2 : 1, rng));
      in = widths[stage];
    }
  net->add(std::make_unique<nn::BatchNorm2d>(in, true));
  net->add(std::make_unique<nn::GlobalAvgPool>());
  net->add(std::make_unique<nn::Linear>(in, input.num_classes, true, rng));
  return net;
}

}  // namespace st::models
