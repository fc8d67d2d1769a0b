#include "engine/nn.h"

#include <cmath>

#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/sparse_kernels.h"
#include "kernels/cpu/kernels.h"

namespace st::nn {

std::string kind_name(ParameterKind kind) {
  switch (kind) {
    case ParameterKind::ConvWeight: return "conv";
    case ParameterKind::LinearWeight: return "linear";
    case ParameterKind::Bias: return "bias";
    case ParameterKind::NormWeight: return "norm_weight";
    case ParameterKind::NormBias: return "norm_bias";
  }
  return "unknown";
}

int64_t Parameter::kept() const {
  if (!mask.defined()) return numel();
  int64_t count = 0;
  if (mask.device() != Device::CPU) {  // a device mask is counted from a host copy (cold path)
    for (float m : mask.to_vector()) count += m != 0.0f ? 1 : 0;
    return count;
  }
  const float* m = mask.data();
  for (int64_t i = 0; i < mask.numel(); ++i) count += m[i] != 0.0f ? 1 : 0;
  return count;
}

void Parameter::apply_mask() {
  if (!mask.defined()) return;
  if (mask.device() != value().device())
    fail("parameter {}: weight on {} but mask on {}", name, device_name(value().device()), device_name(mask.device()));
  if (mask.device() == Device::CUDA) {
    ops::gpu::apply_mask(numel(), value().data(), mask.data());
    return;
  }
  cpu::apply_mask(numel(), value().data(), mask.data());
}

void Module::train(bool training) {
  training_ = training;
  for (auto& [name, child] : children_) child->train(training);
}

std::vector<Parameter*> Module::parameters() {
  std::vector<Parameter*> result;
  collect("", result, nullptr);
  return result;
}

std::vector<NamedBuffer> Module::buffers() {
  std::vector<Parameter*> ignored;
  std::vector<NamedBuffer> result;
  collect("", ignored, &result);
  return result;
}

std::vector<ChannelGroup> Module::channel_groups() { return {}; }

bool Module::has_parameters() const {
  if (!parameters_.empty()) return true;
  for (const auto& [name, child] : children_)
    if (child->has_parameters()) return true;
  return false;
}

void Module::to(Device device) {
  for (Parameter* p : parameters()) {
    Tensor& value = p->variable.value();
    if (value.device() != device) value = value.to(device);
    if (p->variable.has_grad() && p->variable.grad().device() != device)
      p->variable.grad() = p->variable.grad().to(device);
    if (p->mask.defined() && p->mask.device() != device) p->mask = p->mask.to(device);
  }
  for (const NamedBuffer& buffer : buffers())
    if (buffer.tensor->defined() && buffer.tensor->device() != device) *buffer.tensor = buffer.tensor->to(device);
}

int64_t Module::parameter_count() {
  int64_t total = 0;
  for (Parameter* p : parameters()) total += p->numel();
  return total;
}

Parameter& Module::register_parameter(const std::string& name, Tensor value, ParameterKind kind) {
  auto parameter = std::make_unique<Parameter>();
  parameter->name = name;
  parameter->variable = Variable(std::move(value), true);
  parameter->kind = kind;
  if (parameter->prunable()) parameter->mask = Tensor::full(parameter->variable.shape(), 1.0f);
  Parameter& reference = *parameter;
  parameters_.emplace_back(name, std::move(parameter));
  return reference;
}

void Module::register_buffer(const std::string& name, Tensor* tensor) { buffers_.emplace_back(name, tensor); }

void Module::collect(const std::string& prefix, std::vector<Parameter*>& parameters,
                     std::vector<NamedBuffer>* buffers) {
  for (auto& [name, parameter] : parameters_) {
    parameter->name = prefix + name;
    parameters.push_back(parameter.get());
  }
  if (buffers != nullptr)
    for (auto& [name, tensor] : buffers_) buffers->push_back({prefix + name, tensor});
  for (auto& [name, child] : children_) child->collect(prefix + name + ".", parameters, buffers);
}

namespace {

Tensor kaiming_normal(const Shape& shape, int64_t fan_in, Rng& rng) {
  Tensor t = Tensor::empty(shape);
  const float std = std::sqrt(2.0f / static_cast<float>(fan_in));
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = std * rng.normal();
  return t;
}

}  // namespace

Linear::Linear(int64_t in, int64_t out, bool bias, Rng& rng) {
  weight_ = &register_parameter("weight", kaiming_normal({out, in}, in, rng), ParameterKind::LinearWeight);
  if (bias) bias_ = &register_parameter("bias", Tensor::zeros({out}), ParameterKind::Bias);
}

Variable Linear::forward(const Variable& x) {
  const Variable bias = bias_ ? bias_->variable : Variable();
  if (x.value().device() == Device::CPU && x.value().ndim() == 2 && sparse_path_allowed(*weight_)) {
    const SparseForm& form = refresh_sparse_form(*weight_, x.shape()[0]);
    if (form.use_sparse) return ops::sparse_linear(x, weight_->variable, bias, form.pattern);
  }
  return ops::linear(x, weight_->variable, bias);
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad, bool bias, Rng& rng,
               int64_t groups)
    : stride_(stride), pad_(pad), groups_(groups), depthwise_(groups > 1 && groups == in && groups == out) {
  ST_CHECK(in % groups == 0 && out % groups == 0, "Conv2d: {} -> {} channels not divisible by {} groups", in, out,
           groups);
  const int64_t fan_in = kernel * kernel * (in / groups);
  weight_ = &register_parameter("weight", kaiming_normal({out, kernel, kernel, in / groups}, fan_in, rng),
                                ParameterKind::ConvWeight);
  if (bias) bias_ = &register_parameter("bias", Tensor::zeros({out}), ParameterKind::Bias);
}

Variable Conv2d::forward(const Variable& x) {
  const Tensor& w = weight_->value();
  // A pointwise convolution (1x1, stride 1, no padding, one group) is a linear layer over the N*H*W pixels
  // of an NHWC input, so under --sparse-kernels it runs the sparse linear kernels on [N*H*W, C] views.
  if (x.value().device() == Device::CPU && x.value().ndim() == 4 && w.dim(1) == 1 && w.dim(2) == 1 && stride_ == 1 &&
      pad_ == 0 && groups() == 1 && sparse_path_allowed(*weight_)) {
    const int64_t n = x.shape()[0], h = x.shape()[1], wd = x.shape()[2], c = x.shape()[3], k = w.dim(0);
    const SparseForm& form = refresh_sparse_form(*weight_, n * h * wd);
    if (form.use_sparse) {
      weight_->uses_per_sample = h * wd;
      const Variable y = ops::sparse_linear(ops::reshape(x, {n * h * wd, c}), ops::reshape(weight_->variable, {k, c}),
                                            bias_ ? bias_->variable : Variable(), form.pattern);
      return ops::reshape(y, {n, h, wd, k});
    }
  }
  // Any other one-group convolution runs the sparse convolution kernels.
  // (A kernel larger than the padded input, which the dense kernels accept, stays dense.)
  if (x.value().device() == Device::CPU && x.value().ndim() == 4 && groups() == 1 &&
      x.shape()[1] + 2 * pad_ >= w.dim(1) && x.shape()[2] + 2 * pad_ >= w.dim(2) && sparse_path_allowed(*weight_)) {
    const Conv2dGeometry g = conv2d_geometry(x.shape(), w.shape(), stride_, pad_);
    const SparseForm& form = refresh_sparse_form(*weight_, g.batch, &g);
    // the geometry of a full training batch (not the smaller last batch of an epoch)
    if (training() && (!weight_->sparse->conv || weight_->sparse->conv->batch <= g.batch)) weight_->sparse->conv = g;
    if (form.use_sparse) {
      weight_->uses_per_sample = g.out_h() * g.out_w();
      return ops::sparse_conv2d(x, weight_->variable, bias_ ? bias_->variable : Variable(), stride_, pad_, form.pattern);
    }
  }
  Variable y = ops::conv2d(x, weight_->variable, bias_ ? bias_->variable : Variable(), stride_, pad_, groups());
  weight_->uses_per_sample = y.shape()[1] * y.shape()[2];
  return y;
}

BatchNorm2d::BatchNorm2d(int64_t channels, bool fused_relu, float momentum, float eps)
    : running_mean_(Tensor::zeros({channels})), running_var_(Tensor::full({channels}, 1.0f)), fused_relu_(fused_relu),
      momentum_(momentum), eps_(eps) {
  gamma_ = &register_parameter("weight", Tensor::full({channels}, 1.0f), ParameterKind::NormWeight);
  beta_ = &register_parameter("bias", Tensor::zeros({channels}), ParameterKind::NormBias);
  register_buffer("running_mean", &running_mean_);
  register_buffer("running_var", &running_var_);
}

void BatchNorm2d::add_channel_slices(std::vector<ChannelSlice>& slices, int64_t offset) {
  slices.push_back({gamma_, nullptr, 0, false, offset});
  slices.push_back({beta_, nullptr, 0, false, offset});
  slices.push_back({nullptr, &running_mean_, 0, false, offset});
  slices.push_back({nullptr, &running_var_, 0, false, offset});
}

Variable BatchNorm2d::forward(const Variable& x) {
  return ops::batchnorm(x, gamma_->variable, beta_->variable, running_mean_, running_var_, training(), momentum_,
                        eps_, fused_relu_);
}

Variable ReLU::forward(const Variable& x) { return ops::relu(x); }
Variable MaxPool2d::forward(const Variable& x) { return ops::max_pool2d(x, kernel_, stride_, pad_); }
Variable ReLU6::forward(const Variable& x) { return ops::relu6(x); }
Variable AvgPool2d::forward(const Variable& x) { return ops::avg_pool2d(x, kernel_, stride_); }
Variable GlobalAvgPool::forward(const Variable& x) { return ops::global_avg_pool(x); }
Variable Flatten::forward(const Variable& x) { return ops::flatten(x); }
Variable Dropout::forward(const Variable& x) { return ops::dropout(x, p_, training(), *rng_); }

std::vector<ChannelGroup> Sequential::channel_groups() {
  parameters();  // assigns the full names
  std::vector<ChannelGroup> groups;
  ChannelGroup pending;
  bool open = false, flattened = false;
  for (Module* layer : layers_) {
    Parameter* weight = nullptr;
    Parameter* bias = nullptr;
    int input_axis = 1;
    if (auto* linear = dynamic_cast<Linear*>(layer)) {
      weight = &linear->weight();
      bias = linear->bias();
    } else if (auto* conv = dynamic_cast<Conv2d*>(layer)) {
      if (conv->depthwise()) {
        // Channels pass through a depthwise conv: its filters are cut with the channels they filter.
        // At the start of a chain its channels are the chain's input, which is not pruned here.
        if (open) {
          pending.producers.push_back({&conv->weight(), nullptr, 0, false});
          if (conv->bias() != nullptr) pending.producers.push_back({conv->bias(), nullptr, 0, false});
        }
        continue;
      }
      if (conv->groups() != 1)
        fail("structured pruning: grouped convolution {} ({} groups, neither 1 nor depthwise) is not supported",
             conv->weight().name, conv->groups());
      weight = &conv->weight();
      bias = conv->bias();
      input_axis = 3;
    } else if (auto* norm = dynamic_cast<BatchNorm2d*>(layer)) {
      if (open) norm->add_channel_slices(pending.producers);
      continue;
    } else {
      if (layer->has_parameters())
        fail("structured pruning: this model has a layer with parameters that the chain analysis does not know "
             "(a residual or nested block); the model must describe its channel groups itself");
      if (dynamic_cast<Flatten*>(layer) != nullptr) flattened = true;
      continue;  // ReLU, pooling, dropout, flatten: channels pass through
    }
    if (open) {
      pending.consumers.push_back({weight, nullptr, input_axis, flattened && input_axis == 1});
      groups.push_back(pending);
    }
    pending = ChannelGroup{weight->name, weight->value().dim(0), {{weight, nullptr, 0, false}}, {}};
    if (bias != nullptr) pending.producers.push_back({bias, nullptr, 0, false});
    open = true;
    flattened = false;
  }
  return groups;
}

Variable Sequential::forward(const Variable& x) {
  Variable h = x;
  for (Module* layer : layers_) h = layer->forward(h);
  return h;
}

}  // namespace st::nn
