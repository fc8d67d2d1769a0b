// Shared plumbing of the op wrappers: the device an op runs on, the output Variable and the recording of
// a backward step.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

#include "engine/autograd.h"
#include "engine/error.h"
#include "kernels/cpu/kernels.h"

namespace st::ops::detail {

// The device of an op's inputs, which must all be on one device (undefined Variables, e.g. a missing
// bias, are skipped). Fails naming the op when they are not.
inline Device op_device(const char* op, std::initializer_list<const Variable*> inputs) {
  bool found = false;
  Device device = Device::CPU;
  for (const Variable* v : inputs) {
    if (v == nullptr || !v->defined() || !v->value().defined()) continue;
    const Device d = v->value().device();
    if (found && d != device)
      fail("op {}: inputs on different devices ({} and {}); move the model and the data to one device "
           "(Module::to, Tensor::to)",
           op, device_name(device), device_name(d));
    device = d;
    found = true;
  }
  return device;
}

// Gradient buffer of an input that needs one, else nullptr (so the kernel skips that gradient).
inline float* grad_or_null(const Variable& input) {
  return input.defined() && input.requires_grad() ? input.grad_buffer().data() : nullptr;
}

// The same for a CPU backward kernel that writes the whole gradient (cpu::GradOut): the first
// gradient of an activation is written into an uninitialised buffer instead of a zero-filled one.
inline cpu::GradOut grad_to_write(const Variable& input) {
  if (!input.defined() || !input.requires_grad()) return {};
  bool fresh = false;
  float* data = input.grad_buffer_to_write(fresh).data();
  return {data, fresh};
}

// Records `backward` (called with the output's gradient tensor) when `recording` is true; the step is
// skipped at backward time if nothing downstream produced a gradient for the output.
template <typename Backward>
void record_backward(bool recording, const Variable& output, Backward&& backward) {
  if (!recording) return;
  active_tape()->record([output, step = std::forward<Backward>(backward)]() mutable {
    Variable out = output;
    if (!out.has_grad()) return;
    step(out.grad());
  });
}

}  // namespace st::ops::detail
