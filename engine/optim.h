// Optimizers with the masks applied inside the step (the design's step loop): after every step a
// masked-out weight is exactly 0 and so is its optimizer state, so nothing resurrects a pruned weight.
// The learning rate is an argument of step(): schedules (schedules/) decide it per iteration.
// Device: the state lives on the parameters' device. On CUDA a step is one multi-tensor launch for the
// whole parameter group (kernels/cuda/optimizer.h, the same math as the CPU's); parameters, gradients,
// masks and state must then all be on the GPU (Module::to and Optimizer::to move them).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"

namespace st {

struct OptimizerConfig {
  std::string name = "sgd";  // sgd | adam | adamw | rmsprop
  float momentum = 0.9f;     // sgd, rmsprop
  float dampening = 0.0f;    // sgd
  bool nesterov = false;     // sgd
  float weight_decay = 5e-4f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // adam (eps also rmsprop)
  float alpha = 0.99f;                              // rmsprop smoothing
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<nn::Parameter*> parameters) : parameters_(std::move(parameters)) {}
  virtual ~Optimizer() = default;
  virtual void step(float lr) = 0;
  void zero_grad();
  // Optimizer state tensors, named "<parameter>.<slot>", for checkpoints.
  virtual std::vector<std::pair<std::string, Tensor*>> state() = 0;
  // Zeroes every state tensor and the step count (a new pruning cycle restarts the optimizer).
  void reset_state();
  // Zeroes the optimizer state of the given elements of one parameter (weights grown by RigL/SET).
  void reset_state_at(const nn::Parameter& parameter, const std::vector<int64_t>& indices);
  // Moves every state tensor to `device` (with the model: Module::to).
  void to(Device device);
  int64_t steps_taken() const { return steps_taken_; }
  void set_steps_taken(int64_t steps) { steps_taken_ = steps; }
  const std::vector<nn::Parameter*>& parameters() const { return parameters_; }

 protected:
  static const float* mask_of(nn::Parameter* p) { return p->mask.defined() ? p->mask.data() : nullptr; }
  std::vector<nn::Parameter*> parameters_;
  int64_t steps_taken_ = 0;
};

// Validates the configuration (st::Error naming the flag) and builds the optimizer.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, std::vector<nn::Parameter*> parameters);

}  // namespace st
