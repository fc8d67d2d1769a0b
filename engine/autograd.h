// Autograd: a tape of backward closures. Each op, when a tape is active and an input needs a
// gradient, computes its forward result and records one closure that reads the output's gradient
// and accumulates into its inputs' gradients. backward() seeds d(loss)/d(loss) = 1 and runs the
// closures in reverse order. First-order only; Hessian-vector products are finite differences of
// two gradients (see pruning/). Gradients accumulate (+=) until zeroed, like every framework.
//
//   Tape tape;
//   { TapeScope scope(tape); loss = model.forward(x) ... }
//   tape.backward(loss);   // fills .grad() of every Variable that requires it
//
// An activation's gradient buffer does not exist until the first backward step that writes it: that
// step may take it uninitialised and OVERWRITE it (grad_buffer_to_write, fresh = true) instead of
// zero-filling megabytes and adding to them; a later consumer of the same activation then adds.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace st {

struct VariableState {
  Tensor value;
  Tensor grad;  // allocated (zeroed) on first accumulation
  bool requires_grad = false;
};

class Variable {
 public:
  Variable() = default;
  explicit Variable(Tensor value, bool requires_grad = false);

  bool defined() const { return state_ != nullptr; }
  Tensor& value() { return state_->value; }
  const Tensor& value() const { return state_->value; }
  const Shape& shape() const { return state_->value.shape(); }
  bool requires_grad() const { return state_ && state_->requires_grad; }
  void set_requires_grad(bool flag) { state_->requires_grad = flag; }
  bool has_grad() const { return state_->grad.defined(); }
  // A Variable is a handle: its gradient can be accumulated through a const handle.
  Tensor& grad() const { return state_->grad; }
  // The gradient buffer, allocated and zeroed if absent: ops accumulate into it.
  Tensor& grad_buffer() const;
  // The gradient buffer for a step that writes every element: when absent it is allocated without
  // zeroing and `fresh` is set (the step must overwrite all of it); otherwise fresh is false (add).
  Tensor& grad_buffer_to_write(bool& fresh) const;
  void zero_grad();

 private:
  std::shared_ptr<VariableState> state_;
};

class Tape {
 public:
  void record(std::function<void()> backward_step) { steps_.push_back(std::move(backward_step)); }
  // Seeds the loss gradient with 1 (loss must have one element) and runs every step in reverse,
  // then clears the tape (releasing the saved activations).
  void backward(Variable& loss);
  // Seeds the output's gradient with `seed` (same shape) instead: vector-Jacobian products.
  void backward(Variable& output, const Tensor& seed);
  void clear() { steps_.clear(); }
  std::size_t size() const { return steps_.size(); }

 private:
  void run_steps();  // every step in reverse, then clear
  std::vector<std::function<void()>> steps_;
};

// The tape ops record on in this thread; nullptr = no recording (evaluation, no_grad).
Tape* active_tape();

class TapeScope {
 public:
  explicit TapeScope(Tape* tape);
  explicit TapeScope(Tape& tape) : TapeScope(&tape) {}
  ~TapeScope();
  TapeScope(const TapeScope&) = delete;
  TapeScope& operator=(const TapeScope&) = delete;

 private:
  Tape* previous_;
};

// Tests: fill buffers handed out fresh by grad_buffer_to_write with NaN, so a step that leaves any
// element unwritten poisons the gradient instead of passing on whatever the allocator held.
void set_poison_fresh_gradients(bool poison);

// True when an op on these inputs must record a backward step.
bool should_record(std::initializer_list<const Variable*> inputs);

}  // namespace st
