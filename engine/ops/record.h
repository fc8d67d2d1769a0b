// Shared plumbing of the op wrappers: the output Variable and the recording of a backward step.
#pragma once

#include <utility>

#include "engine/autograd.h"

namespace st::ops::detail {

// Gradient buffer of an input that needs one, else nullptr (so the kernel skips that gradient).
inline float* grad_or_null(const Variable& input) {
  return input.defined() && input.requires_grad() ? input.grad_buffer().data() : nullptr;
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
