// nn: Module (a tree of named parameters, buffers and children), Parameter (a trainable Variable
// plus, for prunable tensors, its mask), and the layers the models compose. Names follow the
// natural PyTorch state-dict ("layer1.0.conv1.weight"), so checkpoints and exports read naturally.
// Prunable tensors are conv and linear weights, never biases or BatchNorm parameters.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/rng.h"

namespace st {
struct SparseForm;  // engine/sparse_kernels.h
}

namespace st::nn {

enum class ParameterKind { ConvWeight, LinearWeight, Bias, NormWeight, NormBias };
std::string kind_name(ParameterKind kind);

struct Parameter {
  std::string name;  // full dotted name, set when the module tree is collected
  Variable variable;
  Tensor mask;       // defined for prunable tensors: 1 = kept, 0 = pruned
  ParameterKind kind = ParameterKind::Bias;
  // Output positions each weight is applied at per sample (conv: out_h * out_w, set by the last
  // forward; linear: 1): FLOPs of the layer = 2 * kept weights * uses_per_sample.
  int64_t uses_per_sample = 1;
  // Bumped by every writer of the mask (pruning, DST, random masks, restores): the sparse compute form
  // (engine/sparse_kernels.h) is rebuilt when it changes.
  uint64_t mask_version = 0;
  std::shared_ptr<SparseForm> sparse;  // the CPU sparse compute form of a masked linear weight, if built

  bool prunable() const { return kind == ParameterKind::ConvWeight || kind == ParameterKind::LinearWeight; }
  Tensor& value() { return variable.value(); }
  Tensor& grad() { return variable.grad_buffer(); }
  int64_t numel() const { return variable.value().numel(); }
  int64_t kept() const;  // number of non-zero mask entries (numel if no mask)
  void apply_mask();     // value *= mask (exactly 0 where the mask is 0); the mask itself is unchanged
  void mask_changed() { ++mask_version; }  // every writer of the mask calls it
};

struct NamedBuffer {
  std::string name;
  Tensor* tensor;
};

// Structured pruning: a set of channels that must be removed together. Producers hold one slice per
// channel along `axis` (conv/linear weight rows, biases, BatchNorm parameters and statistics, the
// filters of a depthwise conv that passes the channels through); consumers read the channels along
// `axis` (the next layers' input channels, and pre-activation BatchNorms, which read the channels and
// produce none of their own). A consumer after an NHWC flatten reads channel c at every position i
// with i % period == c (period = channel count). A slice of a channel concatenation (DenseNet) covers
// [offset, offset + channels) of its axis; the slices of all groups that cut one tensor along one axis
// must tile that axis exactly (checked when shrinking).
struct ChannelSlice {
  Parameter* parameter = nullptr;  // either a parameter ...
  Tensor* buffer = nullptr;        // ... or a buffer
  int axis = 0;
  bool flattened = false;
  int64_t offset = 0;
};

struct ChannelGroup {
  std::string name;
  int64_t channels = 0;
  std::vector<ChannelSlice> producers, consumers;
};

class Module {
 public:
  virtual ~Module() = default;
  virtual Variable forward(const Variable& x) = 0;

  void train(bool training = true);
  bool training() const { return training_; }

  // Every parameter of the tree in registration order (depth first), with full names.
  std::vector<Parameter*> parameters();
  // The coupled channel groups structured pruning may shrink; models that describe none cannot be
  // pruned structurally (the default).
  virtual std::vector<ChannelGroup> channel_groups();
  std::vector<NamedBuffer> buffers();
  int64_t parameter_count();
  bool has_parameters() const;  // anywhere in the tree (does not assign names)
  // Moves every parameter (with its gradient, if any, and its mask) and every buffer to `device`; tensors
  // already there are kept. Tensor handles taken before the move still point to the old storage.
  void to(Device device);

 protected:
  Parameter& register_parameter(const std::string& name, Tensor value, ParameterKind kind);
  void register_buffer(const std::string& name, Tensor* tensor);
  template <typename M>
  M& register_module(const std::string& name, std::unique_ptr<M> module) {
    M& reference = *module;
    children_.emplace_back(name, std::move(module));
    return reference;
  }

 private:
  void collect(const std::string& prefix, std::vector<Parameter*>& parameters, std::vector<NamedBuffer>* buffers);

  bool training_ = true;
  std::vector<std::pair<std::string, std::unique_ptr<Parameter>>> parameters_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
};

// ---- layers ---------------------------------------------------------------------------------------
// Initialisation: weights Kaiming-normal (He et al. 2015, fan_in, ReLU gain: std = sqrt(2 / fan_in)),
// biases 0, BatchNorm gamma 1 and beta 0 (as open_lth).

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias, Rng& rng);
  Variable forward(const Variable& x) override;
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }
 private:
  Parameter* weight_;
  Parameter* bias_ = nullptr;
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad, bool bias, Rng& rng,
         int64_t groups = 1);
  Variable forward(const Variable& x) override;
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }
  int64_t stride() const { return stride_; }
  int64_t pad() const { return pad_; }
  // A depthwise conv (groups == in == out channels) keeps groups equal to its channel count when
  // structured pruning removes channels; any other grouping is fixed.
  int64_t groups() const { return depthwise_ ? weight_->value().dim(0) : groups_; }
  bool depthwise() const { return depthwise_; }
 private:
  Parameter* weight_;
  Parameter* bias_ = nullptr;
  int64_t stride_, pad_, groups_;
  bool depthwise_;
};

// fused_relu: the module computes max(0, bn(x)) (conv-BN-ReLU in two ops instead of three).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, bool fused_relu = false, float momentum = 0.1f, float eps = 1e-5f);
  bool fused_relu() const { return fused_relu_; }
  Variable forward(const Variable& x) override;
  // Slices of its channels (gamma, beta and the running statistics), at `offset` of a concatenation.
  void add_channel_slices(std::vector<ChannelSlice>& slices, int64_t offset = 0);
 private:
  Parameter* gamma_;
  Parameter* beta_;
  Tensor running_mean_, running_var_;
  bool fused_relu_;
  float momentum_, eps_;
};

class ReLU : public Module {
 public:
  Variable forward(const Variable& x) override;
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, int64_t pad = 0) : kernel_(kernel), stride_(stride), pad_(pad) {}
  Variable forward(const Variable& x) override;
 private:
  int64_t kernel_, stride_, pad_;
};

class ReLU6 : public Module {
 public:
  Variable forward(const Variable& x) override;
};

class AvgPool2d : public Module {
 public:
  AvgPool2d(int64_t kernel, int64_t stride) : kernel_(kernel), stride_(stride) {}
  Variable forward(const Variable& x) override;
 private:
  int64_t kernel_, stride_;
};

class GlobalAvgPool : public Module {
 public:
  Variable forward(const Variable& x) override;
};

class Flatten : public Module {
 public:
  Variable forward(const Variable& x) override;
};

class Dropout : public Module {
 public:
  Dropout(float p, Rng& rng) : p_(p), rng_(&rng) {}
  Variable forward(const Variable& x) override;
 private:
  float p_;
  Rng* rng_;
};

// Children run in order; names are "0", "1", ... as in torch.nn.Sequential.
class Sequential : public Module {
 public:
  template <typename M>
  M& add(std::unique_ptr<M> module) {
    M& reference = register_module(std::to_string(layers_.size()), std::move(module));
    layers_.push_back(&reference);
    return reference;
  }
  Variable forward(const Variable& x) override;
  // Chain analysis: each conv/linear layer's output channels (with the BatchNorms after it) are
  // consumed by the next conv/linear layer (through ReLU, pooling, dropout and flatten); a depthwise
  // conv passes the channels through, so its filters (and the BatchNorm after it) join the open group
  // (MobileNetV1); the last layer's outputs are the model's outputs and are never pruned. Models with
  // residual adds or concatenations subclass Sequential (keeping its names) and describe their groups.
  std::vector<ChannelGroup> channel_groups() override;
 private:
  std::vector<Module*> layers_;
};

}  // namespace st::nn
