#include "engine/autograd.h"

#include <limits>

#include "engine/error.h"

namespace st {

namespace {
thread_local Tape* current_tape = nullptr;
bool poison_fresh_gradients = false;
}

Variable::Variable(Tensor value, bool requires_grad) : state_(std::make_shared<VariableState>()) {
  state_->value = std::move(value);
  state_->requires_grad = requires_grad;
}

Tensor& Variable::grad_buffer() const {
  if (!state_->grad.defined()) state_->grad = Tensor::zeros(state_->value.shape(), state_->value.device());
  return state_->grad;
}

Tensor& Variable::grad_buffer_to_write(bool& fresh) const {
  fresh = !state_->grad.defined();
  if (fresh) {
    state_->grad = Tensor::empty(state_->value.shape(), state_->value.device());
    if (poison_fresh_gradients) state_->grad.fill(std::numeric_limits<float>::quiet_NaN());
  }
  return state_->grad;
}

void set_poison_fresh_gradients(bool poison) { poison_fresh_gradients = poison; }

void Variable::zero_grad() {
  if (state_->grad.defined()) state_->grad.zero();
}

void Tape::backward(Variable& loss) {
  ST_CHECK(loss.value().numel() == 1, "backward needs a scalar loss, shape is {}", shape_string(loss.shape()));
  // The seed 1 is written where the loss lives (on a GPU: a fill, no host-to-device copy).
  loss.grad_buffer().fill(1.0f);
  run_steps();
}

void Tape::backward(Variable& output, const Tensor& seed) {
  ST_CHECK(seed.numel() == output.value().numel(), "backward seed {} for output {}", shape_string(seed.shape()),
           shape_string(output.shape()));
  output.grad_buffer().copy_from(seed);
  run_steps();
}

void Tape::run_steps() {
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) (*it)();
  steps_.clear();
}

Tape* active_tape() { return current_tape; }

TapeScope::TapeScope(Tape* tape) : previous_(current_tape) { current_tape = tape; }
TapeScope::~TapeScope() { current_tape = previous_; }

bool should_record(std::initializer_list<const Variable*> inputs) {
  if (current_tape == nullptr) return false;
  for (const Variable* v : inputs)
    if (v != nullptr && v->defined() && v->requires_grad()) return true;
  return false;
}

}  // namespace st
