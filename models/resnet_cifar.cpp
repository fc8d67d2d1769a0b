// CIFAR ResNet (He et al. 2016, section 4.2): a 3x3 stem of 16 channels, three stages of n basic
// blocks with 16/32/64 channels (stride 2 entering stages 2 and 3), n = (depth - 2) / 6, BatchNorm,
// no conv bias, global average pool, one linear layer. Shortcut when the shape changes:
//   option A: strided identity with zero-padded channels (the original paper; no parameters)
//   option B: 1x1 conv with stride + BatchNorm (as open_lth)
// ReLUs are fused into bn1 (BN + ReLU) and into the residual join (add + ReLU).
// State-dict names: conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}, fc.
#include "engine/error.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "models/residual_streams.h"

namespace st::models {
namespace {

class BasicBlock : public nn::Module {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride, Shortcut shortcut, Rng& rng)
      : out_channels_(out), stride_(stride), shortcut_kind_(shortcut) {
    conv1_ = &register_module("conv1", std::make_unique<nn::Conv2d>(in, out, 3, stride, 1, false, rng));
    bn1_ = &register_module("bn1", std::make_unique<nn::BatchNorm2d>(out, true));
    conv2_ = &register_module("conv2", std::make_unique<nn::Conv2d>(out, out, 3, 1, 1, false, rng));
    bn2_ = &register_module("bn2", std::make_unique<nn::BatchNorm2d>(out));
    projection_needed_ = stride != 1 || in != out;
    if (projection_needed_ && shortcut == Shortcut::B) {
      auto projection = std::make_unique<nn::Sequential>();
      projection_conv_ = &projection->add(std::make_unique<nn::Conv2d>(in, out, 1, stride, 0, false, rng));
      projection_bn_ = &projection->add(std::make_unique<nn::BatchNorm2d>(out));
      projection_ = &register_module("shortcut", std::move(projection));
    }
  }

  bool has_projection() const { return projection_ != nullptr; }
  // Channel groups (structured pruning): conv1's filters are internal to the block; its input channels,
  // conv2's filters and the shortcut belong to the residual streams the block reads and writes.
  nn::ChannelGroup internal_group() {
    nn::ChannelGroup group{conv1_->weight().name, conv1_->weight().value().dim(0), {}, {}};
    group.producers.push_back({&conv1_->weight(), nullptr, 0, false});
    bn1_->add_channel_slices(group.producers);
    group.consumers.push_back({&conv2_->weight(), nullptr, 3, false});
    return group;
  }
  void add_stream_consumers(nn::ChannelGroup& input_stream) {
    input_stream.consumers.push_back({&conv1_->weight(), nullptr, 3, false});
    if (projection_conv_ != nullptr) input_stream.consumers.push_back({&projection_conv_->weight(), nullptr, 3, false});
  }
  void add_stream_producers(nn::ChannelGroup& output_stream) {
    output_stream.producers.push_back({&conv2_->weight(), nullptr, 0, false});
    bn2_->add_channel_slices(output_stream.producers);
    if (projection_conv_ != nullptr) {
      output_stream.producers.push_back({&projection_conv_->weight(), nullptr, 0, false});
      projection_bn_->add_channel_slices(output_stream.producers);
    }
  }

  Variable forward(const Variable& x) override {
    Variable h = bn1_->forward(conv1_->forward(x));  // BN + ReLU fused
    h = bn2_->forward(conv2_->forward(h));
    Variable identity = x;
    if (projection_needed_)
      identity = shortcut_kind_ == Shortcut::B ? projection_->forward(x) : ops::pad_shortcut(x, stride_, out_channels_);
    return ops::add_relu(h, identity);
  }

 private:
  int64_t out_channels_, stride_;
  Shortcut shortcut_kind_;
  bool projection_needed_ = false;
  nn::Conv2d* conv1_;
  nn::BatchNorm2d* bn1_;
  nn::Conv2d* conv2_;
  nn::BatchNorm2d* bn2_;
  nn::Sequential* projection_ = nullptr;
  nn::Conv2d* projection_conv_ = nullptr;
  nn::BatchNorm2d* projection_bn_ = nullptr;
};

class CifarResNet : public nn::Module {
 public:
  CifarResNet(int depth, Shortcut shortcut, const InputSpec& input, Rng& rng) : shortcut_(shortcut) {
    const int blocks = (depth - 2) / 6;
    conv1_ = &register_module("conv1", std::make_unique<nn::Conv2d>(input.channels, 16, 3, 1, 1, false, rng));
    bn1_ = &register_module("bn1", std::make_unique<nn::BatchNorm2d>(16, true));
    int64_t in = 16;
    const int64_t widths[3] = {16, 32, 64};
    for (int stage = 0; stage < 3; ++stage) {
      auto layer = std::make_unique<nn::Sequential>();
      for (int b = 0; b < blocks; ++b) {
        const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
        blocks_.push_back(&layer->add(std::make_unique<BasicBlock>(in, widths[stage], stride, shortcut, rng)));
        in = widths[stage];
      }
      stages_[stage] = &register_module("layer" + std::to_string(stage + 1), std::move(layer));
    }
    fc_ = &register_module("fc", std::make_unique<nn::Linear>(64, input.num_classes, true, rng));
  }

  // Residual streams: the stem's channels run through every block of stage 1 (identity shortcuts
  // add them), so the stem, each block's conv2 + bn2 and the readers of the stream are one group; a
  // projection shortcut starts a new stream. The last stream is read by fc.
  std::vector<nn::ChannelGroup> channel_groups() override {
    if (shortcut_ == Shortcut::A)
      fail("structured pruning: option-A shortcuts (zero-padded identity) fix the channel arithmetic; use the "
           "option-B model (resnetN instead of resnetNa)");
    parameters();  // assigns the full names
    std::vector<nn::ChannelGroup> groups;
    nn::ChannelGroup stream{"conv1 stream", conv1_->weight().value().dim(0), {}, {}};
    stream.producers.push_back({&conv1_->weight(), nullptr, 0, false});
    bn1_->add_channel_slices(stream.producers);
    stream = walk_residual_streams(
        stream, blocks_, [](const BasicBlock& b) { return b.has_projection(); },
        [](BasicBlock& b, std::vector<nn::ChannelGroup>& out) { out.push_back(b.internal_group()); }, groups);
    stream.consumers.push_back({&fc_->weight(), nullptr, 1, false});
    groups.push_back(stream);
    return groups;
  }

  Variable forward(const Variable& x) override {
    Variable h = bn1_->forward(conv1_->forward(x));  // BN + ReLU fused
    for (nn::Sequential* stage : stages_) h = stage->forward(h);
    return fc_->forward(ops::global_avg_pool(h));
  }

 private:
  nn::Conv2d* conv1_;
  nn::BatchNorm2d* bn1_;
  nn::Sequential* stages_[3] = {nullptr, nullptr, nullptr};
  nn::Linear* fc_;
  Shortcut shortcut_;
  std::vector<BasicBlock*> blocks_;
};

}  // namespace

std::unique_ptr<nn::Module> make_cifar_resnet(int depth, Shortcut shortcut, const InputSpec& input, Rng& rng) {
  ST_CHECK(depth >= 8 && (depth - 2) % 6 == 0, "CIFAR ResNet depth {} is not 6n + 2", depth);
  return std::make_unique<CifarResNet>(depth, shortcut, input, rng);
}

}  // namespace st::models
