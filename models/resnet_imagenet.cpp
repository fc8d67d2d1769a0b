// ImageNet ResNets as torchvision defines them (He et al. 2016; v1.5: the stride of a bottleneck is on
// its 3x3 conv): a 7x7/2 stem with BatchNorm, ReLU and 3x3/2 max-pooling, four stages of basic
// (resnet18: 2-2-2-2) or bottleneck (resnet50: 3-4-6-3, expansion 4) blocks with 64/128/256/512
// planes, 1x1 conv + BatchNorm downsampling when the shape changes, global average pooling, fc.
// State-dict names follow torchvision: conv1, bn1, layer{1-4}.{i}.{conv1,bn1,...,downsample.0/1}, fc.
// Any input of at least 32x32 works (Fashion-MNIST is padded to 32x32).
// Channel groups (structured pruning): inside each block, the filters of every conv but the last
// with their BatchNorm and the next conv's input channels (basic: conv1; bottleneck: conv1 and
// conv2); and residual streams: the stem's channels run through the identity blocks of layer1 (all
// of resnet18's; none of resnet50's, whose first block has a downsample) until a downsample starts a
// new stream, whose producers are each block's last conv + BN and the downsample conv + BN, and
// whose consumers are each block's conv1 and downsample inputs, and fc for the last stream.
#include "engine/ops.h"
#include "models/registry.h"
#include "models/residual_streams.h"

namespace st::models {
namespace {

class ImageNetBlock : public nn::Module {
 public:
  ImageNetBlock(int64_t in, int64_t planes, int64_t stride, bool bottleneck, Rng& rng) : bottleneck_(bottleneck) {
    const int64_t out = bottleneck ? planes * 4 : planes;
    if (bottleneck) {
      convs_.push_back(&register_module("conv1", std::make_unique<nn::Conv2d>(in, planes, 1, 1, 0, false, rng)));
      norms_.push_back(&register_module("bn1", std::make_unique<nn::BatchNorm2d>(planes, true)));
      convs_.push_back(&register_module("conv2", std::make_unique<nn::Conv2d>(planes, planes, 3, stride, 1, false, rng)));
      norms_.push_back(&register_module("bn2", std::make_unique<nn::BatchNorm2d>(planes, true)));
      convs_.push_back(&register_module("conv3", std::make_unique<nn::Conv2d>(planes, out, 1, 1, 0, false, rng)));
      norms_.push_back(&register_module("bn3", std::make_unique<nn::BatchNorm2d>(out)));
    } else {
      convs_.push_back(&register_module("conv1", std::make_unique<nn::Conv2d>(in, planes, 3, stride, 1, false, rng)));
      norms_.push_back(&register_module("bn1", std::make_unique<nn::BatchNorm2d>(planes, true)));
      convs_.push_back(&register_module("conv2", std::make_unique<nn::Conv2d>(planes, out, 3, 1, 1, false, rng)));
      norms_.push_back(&register_module("bn2", std::make_unique<nn::BatchNorm2d>(out)));
    }
    if (stride != 1 || in != out) {
      auto downsample = std::make_unique<nn::Sequential>();
      downsample_conv_ = &downsample->add(std::make_unique<nn::Conv2d>(in, out, 1, stride, 0, false, rng));
      downsample_norm_ = &downsample->add(std::make_unique<nn::BatchNorm2d>(out));
      downsample_ = &register_module("downsample", std::move(downsample));
    }
  }

  bool has_downsample() const { return downsample_ != nullptr; }
  void add_internal_groups(std::vector<nn::ChannelGroup>& groups) {
    for (std::size_t i = 0; i + 1 < convs_.size(); ++i) {
      nn::ChannelGroup group{convs_[i]->weight().name, convs_[i]->weight().value().dim(0), {}, {}};
      group.producers.push_back({&convs_[i]->weight(), nullptr, 0, false});
      norms_[i]->add_channel_slices(group.producers);
      group.consumers.push_back({&convs_[i + 1]->weight(), nullptr, 3, false});
      groups.push_back(group);
    }
  }
  void add_stream_consumers(nn::ChannelGroup& input_stream) {
    input_stream.consumers.push_back({&convs_.front()->weight(), nullptr, 3, false});
    if (downsample_conv_ != nullptr) input_stream.consumers.push_back({&downsample_conv_->weight(), nullptr, 3, false});
  }
  void add_stream_producers(nn::ChannelGroup& output_stream) {
    output_stream.producers.push_back({&convs_.back()->weight(), nullptr, 0, false});
    norms_.back()->add_channel_slices(output_stream.producers);
    if (downsample_conv_ != nullptr) {
      output_stream.producers.push_back({&downsample_conv_->weight(), nullptr, 0, false});
      downsample_norm_->add_channel_slices(output_stream.producers);
    }
  }

  Variable forward(const Variable& x) override {
    Variable h = x;
    for (std::size_t i = 0; i < convs_.size(); ++i) h = norms_[i]->forward(convs_[i]->forward(h));
    return ops::add_relu(h, downsample_ != nullptr ? downsample_->forward(x) : x);
  }

 private:
  bool bottleneck_;
  std::vector<nn::Conv2d*> convs_;
  std::vector<nn::BatchNorm2d*> norms_;
  nn::Sequential* downsample_ = nullptr;
  nn::Conv2d* downsample_conv_ = nullptr;
  nn::BatchNorm2d* downsample_norm_ = nullptr;
};

class ImageNetResNet : public nn::Module {
 public:
  ImageNetResNet(const std::vector<int>& blocks, bool bottleneck, const InputSpec& input, Rng& rng) {
    conv1_ = &register_module("conv1", std::make_unique<nn::Conv2d>(input.channels, 64, 7, 2, 3, false, rng));
    bn1_ = &register_module("bn1", std::make_unique<nn::BatchNorm2d>(64, true));
    int64_t in = 64;
    const int64_t planes[4] = {64, 128, 256, 512};
    for (int stage = 0; stage < 4; ++stage) {
      auto layer = std::make_unique<nn::Sequential>();
      for (int b = 0; b < blocks[static_cast<std::size_t>(stage)]; ++b) {
        const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
        blocks_.push_back(&layer->add(std::make_unique<ImageNetBlock>(in, planes[stage], stride, bottleneck, rng)));
        in = bottleneck ? planes[stage] * 4 : planes[stage];
      }
      stages_.push_back(&register_module("layer" + std::to_string(stage + 1), std::move(layer)));
    }
    fc_ = &register_module("fc", std::make_unique<nn::Linear>(in, input.num_classes, true, rng));
  }

  std::vector<nn::ChannelGroup> channel_groups() override {
    parameters();  // assigns the full names
    std::vector<nn::ChannelGroup> groups;
    nn::ChannelGroup stream{conv1_->weight().name + " stream", conv1_->weight().value().dim(0), {}, {}};
    stream.producers.push_back({&conv1_->weight(), nullptr, 0, false});
    bn1_->add_channel_slices(stream.producers);
    stream = walk_residual_streams(
        stream, blocks_, [](const ImageNetBlock& b) { return b.has_downsample(); },
        [](ImageNetBlock& b, std::vector<nn::ChannelGroup>& out) { b.add_internal_groups(out); }, groups);
    stream.consumers.push_back({&fc_->weight(), nullptr, 1, false});
    groups.push_back(stream);
    return groups;
  }

  Variable forward(const Variable& x) override {
    Variable h = ops::max_pool2d(bn1_->forward(conv1_->forward(x)), 3, 2, 1);
    for (nn::Sequential* stage : stages_) h = stage->forward(h);
    return fc_->forward(ops::global_avg_pool(h));
  }

 private:
  nn::Conv2d* conv1_;
  nn::BatchNorm2d* bn1_;
  std::vector<nn::Sequential*> stages_;
  std::vector<ImageNetBlock*> blocks_;
  nn::Linear* fc_;
};

}  // namespace

std::unique_ptr<nn::Module> make_imagenet_resnet(int depth, const InputSpec& input, Rng& rng) {
  if (depth == 18) return std::make_unique<ImageNetResNet>(std::vector<int>{2, 2, 2, 2}, false, input, rng);
  return std::make_unique<ImageNetResNet>(std::vector<int>{3, 4, 6, 3}, true, input, rng);
}

}  // namespace st::models
