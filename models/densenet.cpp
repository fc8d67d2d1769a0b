// DenseNet-BC (Huang et al. 2017) for CIFAR, growth rate k = 12, depth 100: a 3x3 conv to 2k channels,
// three dense blocks of n = (depth - 4) / 6 = 16 bottleneck layers (BN-ReLU-conv1x1 to 4k,
// BN-ReLU-conv3x3 to k, concatenated to the layer's input), transitions with compression 0.5
// (BN-ReLU-conv1x1 to half the channels, 2x2 average pooling), then BN-ReLU, global average pooling
// and one linear layer. Channels 24 -> 216 -> 108 -> 300 -> 150 -> 342. 3x32x32, 10 classes:
// 769,162 parameters.
// Channel groups (structured pruning): within a dense block the concatenated features are segments,
// each a group: the block's input (made by the stem or the transition conv) and each layer's k growth
// channels (made by its conv2). A segment is read, at its offset in the concatenation, by the norm1
// and conv1 of every later layer of the block and by the BN + conv of the transition (or the final BN
// and fc); all are cut together. Each layer's 4k bottleneck channels (conv1, norm2, conv2's input)
// are a group of their own.
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
  // Reads the segments (in concatenation order) and adds the bottleneck group.
  void add_channel_groups(const std::vector<std::size_t>& segments, std::vector<nn::ChannelGroup>& groups) {
    int64_t offset = 0;
    for (std::size_t s : segments) {
      bn1_->add_channel_slices(groups[s].consumers, offset);
      groups[s].consumers.push_back({&conv1_->weight(), nullptr, 3, false, offset});
      offset += groups[s].channels;
    }
    nn::ChannelGroup bottleneck{conv1_->weight().name, conv1_->weight().value().dim(0), {}, {}};
    bottleneck.producers.push_back({&conv1_->weight(), nullptr, 0, false});
    bn2_->add_channel_slices(bottleneck.producers);
    bottleneck.consumers.push_back({&conv2_->weight(), nullptr, 3, false});
    groups.push_back(bottleneck);
  }
  nn::Parameter& growth_filters() { return conv2_->weight(); }

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

// A Sequential (state-dict names "0", "1", ...) that describes its concatenation segments.
class DenseNet : public nn::Sequential {
 public:
  DenseNet(int depth, int64_t growth, const InputSpec& input, Rng& rng) {
    const int layers = (depth - 4) / 6;
    int64_t channels = 2 * growth;
    stem_ = &add(std::make_unique<nn::Conv2d>(input.channels, channels, 3, 1, 1, false, rng));
    for (int block = 0; block < 3; ++block) {
      Block& parts = blocks_[block];
      for (int i = 0; i < layers; ++i) {
        parts.layers.push_back(&add(std::make_unique<DenseLayer>(channels, growth, rng)));
        channels += growth;
      }
      parts.norm = &add(std::make_unique<nn::BatchNorm2d>(channels, true));
      if (block < 2) {
        const int64_t out = channels / 2;
        parts.transition = &add(std::make_unique<nn::Conv2d>(channels, out, 1, 1, 0, false, rng));
        add(std::make_unique<nn::AvgPool2d>(2, 2));
        channels = out;
      }
    }
    add(std::make_unique<nn::GlobalAvgPool>());
    fc_ = &add(std::make_unique<nn::Linear>(channels, input.num_classes, true, rng));
  }

  std::vector<nn::ChannelGroup> channel_groups() override {
    parameters();  // assigns the full names
    std::vector<nn::ChannelGroup> groups;
    const auto add_segment = [&groups](nn::Parameter& filters) {
      groups.push_back({filters.name, filters.value().dim(0), {{&filters, nullptr, 0, false}}, {}});
      return groups.size() - 1;
    };
    nn::Parameter* block_input = &stem_->weight();
    for (Block& block : blocks_) {
      std::vector<std::size_t> segments = {add_segment(*block_input)};
      for (DenseLayer* layer : block.layers) {
        layer->add_channel_groups(segments, groups);
        segments.push_back(add_segment(layer->growth_filters()));
      }
      // the transition (or the head) reads the whole concatenation: its BN, then its conv (or fc)
      nn::Parameter* reader = block.transition != nullptr ? &block.transition->weight() : &fc_->weight();
      const int reader_axis = block.transition != nullptr ? 3 : 1;
      int64_t offset = 0;
      for (std::size_t s : segments) {
        block.norm->add_channel_slices(groups[s].consumers, offset);
        groups[s].consumers.push_back({reader, nullptr, reader_axis, false, offset});
        offset += groups[s].channels;
      }
      if (block.transition != nullptr) block_input = &block.transition->weight();
    }
    return groups;
  }

 private:
  struct Block {
    std::vector<DenseLayer*> layers;
    nn::BatchNorm2d* norm = nullptr;
    nn::Conv2d* transition = nullptr;  // none after the last block
  };
  nn::Conv2d* stem_;
  Block blocks_[3];
  nn::Linear* fc_;
};

}  // namespace

std::unique_ptr<nn::Module> make_densenet_bc(int depth, int64_t growth, const InputSpec& input, Rng& rng) {
  return std::make_unique<DenseNet>(depth, growth, input, rng);
}

}  // namespace st::models
