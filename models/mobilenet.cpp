// MobileNets with BatchNorm after every conv and no conv bias.
//   mobilenetv1 (Howard et al. 2017): 3x3/2 conv to 32, then 13 depthwise-separable blocks (3x3
//   depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU) to 1024 channels, global average pooling, fc.
//   mobilenetv2 (Sandler et al. 2018, torchvision's definition): 3x3/2 conv to 32 with ReLU6, inverted
//   residual blocks (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2)
//   (6,320,1,1) — 1x1 expansion + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 linear projection + BN,
//   identity added when stride 1 and shapes match — a 1x1 conv to 1280 + BN + ReLU6, global average
//   pooling, dropout 0.2, fc. ImageNet (1000 classes): 3,504,872 parameters.
// CIFAR variants (32x32 inputs): the stem's stride and the first stride-2 stage's stride are 1
// (kuangliu's pytorch-cifar convention), so 32x32 images keep enough resolution.
// Channel groups (structured pruning). A depthwise conv filters each channel alone, so its channels
// are those of the conv before it: one group holds the filters of the conv that makes the channels,
// its BN, the depthwise filters (rows along axis 0; the conv's groups follow its channel count), the
// depthwise BN and the input channels of the 1x1 conv after it.
//   mobilenetv1: the Sequential chain analysis finds them: the stem and each pointwise conv with the
//   next block's depthwise conv; the last pointwise conv's channels with fc's inputs.
//   mobilenetv2: each block's expansion channels (expansion conv, BN, depthwise conv, BN, projection
//   input); residual streams: a stage's first block starts a stream whose producers are the
//   projection convs + BNs of the stage's blocks (identity adds join them) and whose consumers are the
//   expansion inputs of the following blocks and the 1x1 head conv's input; the first block
//   (expansion 1) filters the stem's channels depthwise, so the stem group holds its depthwise conv;
//   the head conv's 1280 channels with fc's inputs.
#include "engine/ops.h"
#include "models/registry.h"

namespace st::models {
namespace {

struct ConvBn {
  nn::Conv2d* conv = nullptr;
  nn::BatchNorm2d* norm = nullptr;

  void add_producers(nn::ChannelGroup& group) const {
    group.producers.push_back({&conv->weight(), nullptr, 0, false});
    norm->add_channel_slices(group.producers);
  }
};

// conv + BN (+ ReLU or ReLU6): the unit every MobileNet is made of.
ConvBn add_conv_bn(nn::Sequential& net, int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups,
                   const std::string& activation, Rng& rng) {
  ConvBn unit;
  unit.conv = &net.add(std::make_unique<nn::Conv2d>(in, out, kernel, stride, kernel / 2, false, rng, groups));
  unit.norm = &net.add(std::make_unique<nn::BatchNorm2d>(out, activation == "relu"));
  if (activation == "relu6") net.add(std::make_unique<nn::ReLU6>());
  return unit;
}

nn::ChannelGroup group_of(const ConvBn& producer) {
  nn::ChannelGroup group{producer.conv->weight().name, producer.conv->weight().value().dim(0), {}, {}};
  producer.add_producers(group);
  return group;
}

class InvertedResidual : public nn::Module {
 public:
  InvertedResidual(int64_t in, int64_t out, int64_t stride, int64_t expansion, Rng& rng)
      : residual_(stride == 1 && in == out) {
    auto body = std::make_unique<nn::Sequential>();
    const int64_t hidden = in * expansion;
    if (expansion != 1) expand_ = add_conv_bn(*body, in, hidden, 1, 1, 1, "relu6", rng);
    depthwise_ = add_conv_bn(*body, hidden, hidden, 3, stride, hidden, "relu6", rng);
    project_ = add_conv_bn(*body, hidden, out, 1, 1, 1, "none", rng);
    body_ = &register_module("conv", std::move(body));
  }
  Variable forward(const Variable& x) override {
    const Variable h = body_->forward(x);
    return residual_ ? ops::add(h, x) : h;
  }

  bool residual() const { return residual_; }
  // Reads `input` (the stream or stem channels before it); with expansion 1 the depthwise conv
  // filters those channels themselves, otherwise the expansion channels are a group of their own.
  void add_channel_groups(nn::ChannelGroup& input, std::vector<nn::ChannelGroup>& groups) {
    nn::ChannelGroup* hidden = &input;
    if (expand_.conv != nullptr) {
      input.consumers.push_back({&expand_.conv->weight(), nullptr, 3, false});
      groups.push_back(group_of(expand_));
      hidden = &groups.back();
    }
    depthwise_.add_producers(*hidden);
    hidden->consumers.push_back({&project_.conv->weight(), nullptr, 3, false});
  }
  const ConvBn& projection() const { return project_; }

 private:
  bool residual_;
  nn::Sequential* body_;
  ConvBn expand_, depthwise_, project_;
};

class MobileNetV2 : public nn::Sequential {
 public:
  MobileNetV2(bool cifar, const InputSpec& input, Rng& rng);

  std::vector<nn::ChannelGroup> channel_groups() override {
    parameters();  // assigns the full names
    std::vector<nn::ChannelGroup> groups;
    nn::ChannelGroup stream = group_of(stem_);
    for (InvertedResidual* block : blocks_) {
      block->add_channel_groups(stream, groups);
      if (block->residual()) {
        block->projection().add_producers(stream);
      } else {
        groups.push_back(stream);
        stream = group_of(block->projection());
        stream.name += " stream";
      }
    }
    stream.consumers.push_back({&head_.conv->weight(), nullptr, 3, false});
    groups.push_back(stream);
    groups.push_back(group_of(head_));
    groups.back().consumers.push_back({&fc_->weight(), nullptr, 1, false});
    return groups;
  }

 private:
  ConvBn stem_, head_;
  std::vector<InvertedResidual*> blocks_;
  nn::Linear* fc_;
};

}  // namespace

std::unique_ptr<nn::Module> make_mobilenet_v1(bool cifar, const InputSpec& input, Rng& rng) {
  auto net = std::make_unique<nn::Sequential>();
  add_conv_bn(*net, input.channels, 32, 3, cifar ? 1 : 2, 1, "relu", rng);
  const std::vector<std::pair<int64_t, int64_t>> blocks = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},
                                                           {512, 2}, {512, 1}, {512, 1}, {512, 1}, {512, 1},
                                                           {512, 1}, {1024, 2}, {1024, 1}};
  int64_t in = 32;
  bool first_stride_two = true;
  for (auto [out, stride] : blocks) {
    if (cifar && stride == 2 && first_stride_two) {
      stride = 1;
      first_stride_two = false;
    }
    add_conv_bn(*net, in, in, 3, stride, in, "relu", rng);  // depthwise
    add_conv_bn(*net, in, out, 1, 1, 1, "relu", rng);       // pointwise
    in = out;
  }
  net->add(std::make_unique<nn::GlobalAvgPool>());
  net->add(std::make_unique<nn::Linear>(in, input.num_classes, true, rng));
  return net;
}

MobileNetV2::MobileNetV2(bool cifar, const InputSpec& input, Rng& rng) {
  auto features = std::make_unique<nn::Sequential>();
  stem_ = add_conv_bn(*features, input.channels, 32, 3, cifar ? 1 : 2, 1, "relu6", rng);
  struct Stage {
    int64_t expansion, channels, repeats, stride;
  };
  const Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                          {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int64_t in = 32;
  bool first_stride_two = true;
  for (const Stage& stage : stages) {
    for (int64_t r = 0; r < stage.repeats; ++r) {
      int64_t stride = r == 0 ? stage.stride : 1;
      if (cifar && stride == 2 && first_stride_two) {
        stride = 1;
        first_stride_two = false;
      }
      blocks_.push_back(
          &features->add(std::make_unique<InvertedResidual>(in, stage.channels, stride, stage.expansion, rng)));
      in = stage.channels;
    }
  }
  head_ = add_conv_bn(*features, in, 1280, 1, 1, 1, "relu6", rng);
  add(std::move(features));
  add(std::make_unique<nn::GlobalAvgPool>());
  add(std::make_unique<nn::Dropout>(0.2f, rng));
  fc_ = &add(std::make_unique<nn::Linear>(1280, input.num_classes, true, rng));
}

std::unique_ptr<nn::Module> make_mobilenet_v2(bool cifar, const InputSpec& input, Rng& rng) {
  return std::make_unique<MobileNetV2>(cifar, input, rng);
}

}  // namespace st::models
