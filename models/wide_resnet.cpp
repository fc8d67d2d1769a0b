// Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016), RigL's CIFAR network WRN-22-2: a 3x3 conv to 16
// channels, three stages of n = (d - 4) / 6 pre-activation blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3)
// of 16k, 32k, 64k channels with strides 1, 2, 2; when a block changes shape its shortcut is a 1x1
// conv of the pre-activated input; a final BN-ReLU, global average pooling and one linear layer.
// WRN-22-2 on 3x32x32, 10 classes: 1,079,642 parameters.
// Channel groups (structured pruning): each block's conv1 filters with bn2 and conv2's input
// channels; and residual streams: the stem's channels run through the blocks of stage 1 until a
// shortcut conv starts a new stream, so a stream's producers are the conv2 (and shortcut) filters of
// its blocks and its consumers every reader: each block's pre-activation bn1, conv1 and shortcut
// inputs, and for the last stream the final BN and the linear layer.
#include "engine/ops.h"
#include "models/registry.h"
#include "models/residual_streams.h"

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
  bool has_shortcut() const { return shortcut_ != nullptr; }
  nn::ChannelGroup internal_group() {
    nn::ChannelGroup group{conv1_->weight().name, conv1_->weight().value().dim(0), {}, {}};
    group.producers.push_back({&conv1_->weight(), nullptr, 0, false});
    bn2_->add_channel_slices(group.producers);
    group.consumers.push_back({&conv2_->weight(), nullptr, 3, false});
    return group;
  }
  void add_stream_consumers(nn::ChannelGroup& input_stream) {
    bn1_->add_channel_slices(input_stream.consumers);  // pre-activation: reads the stream
    input_stream.consumers.push_back({&conv1_->weight(), nullptr, 3, false});
    if (shortcut_ != nullptr) input_stream.consumers.push_back({&shortcut_->weight(), nullptr, 3, false});
  }
  void add_stream_producers(nn::ChannelGroup& output_stream) {
    output_stream.producers.push_back({&conv2_->weight(), nullptr, 0, false});
    if (shortcut_ != nullptr) output_stream.producers.push_back({&shortcut_->weight(), nullptr, 0, false});
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

// A Sequential (state-dict names "0", "1", ...) that describes its residual streams.
class WideResNet : public nn::Sequential {
 public:
  WideResNet(int depth, int widen, const InputSpec& input, Rng& rng) {
    const int blocks = (depth - 4) / 6;
    stem_ = &add(std::make_unique<nn::Conv2d>(input.channels, 16, 3, 1, 1, false, rng));
    int64_t in = 16;
    const int64_t widths[3] = {16 * widen, 32 * widen, 64 * widen};
    for (int stage = 0; stage < 3; ++stage)
      for (int b = 0; b < blocks; ++b) {
        blocks_.push_back(&add(std::make_unique<PreActBlock>(in, widths[stage], (stage > 0 && b == 0) ? 2 : 1, rng)));
        in = widths[stage];
      }
    final_norm_ = &add(std::make_unique<nn::BatchNorm2d>(in, true));
    add(std::make_unique<nn::GlobalAvgPool>());
    fc_ = &add(std::make_unique<nn::Linear>(in, input.num_classes, true, rng));
  }

  std::vector<nn::ChannelGroup> channel_groups() override {
    parameters();  // assigns the full names
    std::vector<nn::ChannelGroup> groups;
    nn::ChannelGroup stream{stem_->weight().name + " stream", stem_->weight().value().dim(0), {}, {}};
    stream.producers.push_back({&stem_->weight(), nullptr, 0, false});
    stream = walk_residual_streams(
        stream, blocks_, [](const PreActBlock& b) { return b.has_shortcut(); },
        [](PreActBlock& b, std::vector<nn::ChannelGroup>& out) { out.push_back(b.internal_group()); }, groups);
    final_norm_->add_channel_slices(stream.consumers);
    stream.consumers.push_back({&fc_->weight(), nullptr, 1, false});
    groups.push_back(stream);
    return groups;
  }

 private:
  nn::Conv2d* stem_;
  std::vector<PreActBlock*> blocks_;
  nn::BatchNorm2d* final_norm_;
  nn::Linear* fc_;
};

}  // namespace

std::unique_ptr<nn::Module> make_wide_resnet(int depth, int widen, const InputSpec& input, Rng& rng) {
  return std::make_unique<WideResNet>(depth, widen, input, rng);
}

}  // namespace st::models
