// The three optimizers as thin owners of their state; the fused masked updates are in
// kernels/cpu/optimizer.cpp (formulas at the top of that file).
#include "engine/optim.h"

#include <initializer_list>

#include "engine/error.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/sparse_kernels.h"
#include "kernels/cpu/kernels.h"

namespace st {
namespace {

std::vector<Tensor> zeros_like_all(const std::vector<nn::Parameter*>& parameters) {
  std::vector<Tensor> tensors;
  for (nn::Parameter* p : parameters) tensors.push_back(Tensor::zeros(p->value().shape(), p->value().device()));
  return tensors;
}

// The device a step runs on: that of every parameter, its gradient, mask and state (checked, so a
// half-moved model is a clear error instead of a host loop reading device memory).
Device group_device(const std::vector<nn::Parameter*>& parameters, std::initializer_list<const std::vector<Tensor>*> states) {
  if (parameters.empty()) return Device::CPU;
  const Device device = parameters.front()->value().device();
  auto check = [&](const nn::Parameter* p, const Tensor& t, const char* what) {
    if (t.defined() && t.device() != device)
      fail("optimizer: {} of parameter {} is on {} but the parameters are on {} (move the model with Module::to "
           "and the optimizer with Optimizer::to)",
           what, p->name, device_name(t.device()), device_name(device));
  };
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    nn::Parameter* p = parameters[i];
    check(p, p->value(), "the weight");
    if (p->variable.has_grad()) check(p, p->variable.grad(), "the gradient");
    check(p, p->mask, "the mask");
    for (const std::vector<Tensor>* state : states) check(p, (*state)[i], "the optimizer state");
  }
  return device;
}

// One slot per parameter for the multi-tensor CUDA step (state1 may be null).
std::vector<ops::gpu::OptimizerSlot> device_slots(const std::vector<nn::Parameter*>& parameters,
                                                  std::vector<Tensor>& state0, std::vector<Tensor>* state1) {
  std::vector<ops::gpu::OptimizerSlot> slots;
  slots.reserve(parameters.size());
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    nn::Parameter* p = parameters[i];
    slots.push_back({p->value().data(), p->grad().data(), state0[i].data(),
                     state1 != nullptr ? (*state1)[i].data() : nullptr,
                     p->mask.defined() ? p->mask.data() : nullptr, p->numel()});
  }
  return slots;
}

// A weight computed over its sparse pattern (engine/sparse_kernels.h) is stepped at its kept entries
// only, once a dense masked step has zeroed its pruned entries and their state under this mask.
class PatternSteps {
 public:
  // Parameter i's pattern when this step may run over it; else null, and then dense_done() after the
  // dense masked step.
  const cpu::SparsePattern* pattern(std::size_t i, const nn::Parameter& p) {
    if (dense_version_.size() <= i) dense_version_.resize(i + 1, ~uint64_t{0});
    const SparseForm* form = current_sparse_form(p);
    return form != nullptr && dense_version_[i] == p.mask_version ? form->pattern.get() : nullptr;
  }
  void dense_done(std::size_t i, const nn::Parameter& p) {
    if (p.mask.defined()) dense_version_[i] = p.mask_version;
  }

 private:
  std::vector<uint64_t> dense_version_;  // per parameter: the mask_version of its last dense masked step
};

class MaskedSgd : public Optimizer {
 public:
  MaskedSgd(const OptimizerConfig& c, std::vector<nn::Parameter*> parameters)
      : Optimizer(std::move(parameters)), config_(c), velocity_(zeros_like_all(parameters_)) {}
  void step(float lr) override {
    const cpu::SgdHyper h{lr, config_.momentum, config_.dampening, config_.weight_decay, config_.nesterov};
    if (group_device(parameters_, {&velocity_}) == Device::CUDA) {
      device_group_.sgd_step(device_slots(parameters_, velocity_, nullptr), h);
      ++steps_taken_;
      return;
    }
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      nn::Parameter* p = parameters_[i];
      if (const cpu::SparsePattern* pattern = patterns_.pattern(i, *p)) {
        cpu::sgd_step_pattern(pattern->rows, pattern->cols, pattern->row_start.data(), pattern->col_index.data(),
                              p->value().data(), p->grad().data(), velocity_[i].data(), h);
        continue;
      }
      cpu::sgd_step(p->numel(), p->value().data(), p->grad().data(), velocity_[i].data(), mask_of(p), h);
      patterns_.dense_done(i, *p);
    }
    ++steps_taken_;
  }
  std::vector<std::pair<std::string, Tensor*>> state() override {
    std::vector<std::pair<std::string, Tensor*>> slots;
    for (std::size_t i = 0; i < parameters_.size(); ++i)
      slots.emplace_back(parameters_[i]->name + ".momentum", &velocity_[i]);
    return slots;
  }
 private:
  OptimizerConfig config_;
  std::vector<Tensor> velocity_;
  ops::gpu::OptimizerGroup device_group_;
  PatternSteps patterns_;
};

class MaskedAdam : public Optimizer {
 public:
  MaskedAdam(const OptimizerConfig& c, bool decoupled, std::vector<nn::Parameter*> parameters)
      : Optimizer(std::move(parameters)), config_(c), decoupled_(decoupled), first_(zeros_like_all(parameters_)),
        second_(zeros_like_all(parameters_)) {}
  void step(float lr) override {
    ++steps_taken_;
    const cpu::AdamHyper h{lr, config_.beta1, config_.beta2, config_.eps, config_.weight_decay, decoupled_,
                           steps_taken_};
    if (group_device(parameters_, {&first_, &second_}) == Device::CUDA) {
      device_group_.adam_step(device_slots(parameters_, first_, &second_), h);
      return;
    }
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      nn::Parameter* p = parameters_[i];
      if (const cpu::SparsePattern* pattern = patterns_.pattern(i, *p)) {
        cpu::adam_step_pattern(pattern->rows, pattern->cols, pattern->row_start.data(), pattern->col_index.data(),
                               p->value().data(), p->grad().data(), first_[i].data(), second_[i].data(), h);
        continue;
      }
      cpu::adam_step(p->numel(), p->value().data(), p->grad().data(), first_[i].data(), second_[i].data(),
                     mask_of(p), h);
      patterns_.dense_done(i, *p);
    }
  }
  std::vector<std::pair<std::string, Tensor*>> state() override {
    std::vector<std::pair<std::string, Tensor*>> slots;
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      slots.emplace_back(parameters_[i]->name + ".exp_avg", &first_[i]);
      slots.emplace_back(parameters_[i]->name + ".exp_avg_sq", &second_[i]);
    }
    return slots;
  }
 private:
  OptimizerConfig config_;
  bool decoupled_;
  std::vector<Tensor> first_, second_;
  ops::gpu::OptimizerGroup device_group_;
  PatternSteps patterns_;
};

class MaskedRmsProp : public Optimizer {
 public:
  MaskedRmsProp(const OptimizerConfig& c, std::vector<nn::Parameter*> parameters)
      : Optimizer(std::move(parameters)), config_(c), square_avg_(zeros_like_all(parameters_)),
        momentum_(zeros_like_all(parameters_)) {}
  void step(float lr) override {
    const cpu::RmsPropHyper h{lr, config_.alpha, config_.eps, config_.weight_decay, config_.momentum};
    if (group_device(parameters_, {&square_avg_, &momentum_}) == Device::CUDA) {
      device_group_.rmsprop_step(device_slots(parameters_, square_avg_, &momentum_), h);
      ++steps_taken_;
      return;
    }
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      nn::Parameter* p = parameters_[i];
      if (const cpu::SparsePattern* pattern = patterns_.pattern(i, *p)) {
        cpu::rmsprop_step_pattern(pattern->rows, pattern->cols, pattern->row_start.data(), pattern->col_index.data(),
                                  p->value().data(), p->grad().data(), square_avg_[i].data(), momentum_[i].data(), h);
        continue;
      }
      cpu::rmsprop_step(p->numel(), p->value().data(), p->grad().data(), square_avg_[i].data(), momentum_[i].data(),
                        mask_of(p), h);
      patterns_.dense_done(i, *p);
    }
    ++steps_taken_;
  }
  std::vector<std::pair<std::string, Tensor*>> state() override {
    std::vector<std::pair<std::string, Tensor*>> slots;
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      slots.emplace_back(parameters_[i]->name + ".square_avg", &square_avg_[i]);
      slots.emplace_back(parameters_[i]->name + ".momentum", &momentum_[i]);
    }
    return slots;
  }
 private:
  OptimizerConfig config_;
  std::vector<Tensor> square_avg_, momentum_;
  ops::gpu::OptimizerGroup device_group_;
  PatternSteps patterns_;
};

}  // namespace

void Optimizer::zero_grad() {
  for (nn::Parameter* p : parameters_) p->variable.zero_grad();
}

void Optimizer::reset_state() {
  for (auto& [name, tensor] : state()) tensor->zero();
  steps_taken_ = 0;
}

void Optimizer::reset_state_at(const nn::Parameter& parameter, const std::vector<int64_t>& indices) {
  const std::string prefix = parameter.name + ".";
  for (auto& [slot, tensor] : state()) {
    if (slot.compare(0, prefix.size(), prefix) != 0 || slot.find('.', prefix.size()) != std::string::npos) continue;
    if (tensor->device() != Device::CPU) {  // cold path (RigL/SET updates): through a host copy
      Tensor host = tensor->to(Device::CPU);
      for (int64_t i : indices) host.data()[i] = 0.0f;
      tensor->copy_from(host);
      continue;
    }
    for (int64_t i : indices) tensor->data()[i] = 0.0f;
  }
}

void Optimizer::to(Device device) {
  for (auto& [slot, tensor] : state())
    if (tensor->defined() && tensor->device() != device) *tensor = tensor->to(device);
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, std::vector<nn::Parameter*> parameters) {
  if (c.weight_decay < 0.0f) fail("--weight-decay: must be >= 0, got {}", c.weight_decay);
  if (c.momentum < 0.0f || c.momentum >= 1.0f) fail("--momentum: must be in [0, 1), got {}", c.momentum);
  if (c.nesterov && (c.momentum <= 0.0f || c.dampening != 0.0f))
    fail("--nesterov: needs momentum > 0 and zero dampening (momentum {}, dampening {})", c.momentum, c.dampening);
  if (c.name == "sgd") return std::make_unique<MaskedSgd>(c, std::move(parameters));
  if (c.name == "adam" || c.name == "adamw") {
    if (c.beta1 < 0.0f || c.beta1 >= 1.0f || c.beta2 < 0.0f || c.beta2 >= 1.0f)
      fail("--beta1/--beta2: must be in [0, 1), got {} and {}", c.beta1, c.beta2);
    if (c.eps <= 0.0f) fail("--eps: must be > 0, got {}", c.eps);
    return std::make_unique<MaskedAdam>(c, c.name == "adamw", std::move(parameters));
  }
  if (c.name == "rmsprop") {
    if (c.alpha < 0.0f || c.alpha >= 1.0f) fail("--alpha: must be in [0, 1), got {}", c.alpha);
    if (c.eps <= 0.0f) fail("--eps: must be > 0, got {}", c.eps);
    return std::make_unique<MaskedRmsProp>(c, std::move(parameters));
  }
  fail("--optimizer: unknown optimizer '{}' (known: sgd, adam, adamw, rmsprop)", c.name);
}

}  // namespace st
