// Exact GELU (kernels/cpu/gelu.cpp); when recording, the forward keeps dy/dx for the backward.
#include "engine/ops.h"
#include "engine/ops/record.h"
#include "engine/probe.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable gelu(const Variable& x) {
  const bool recording = should_record({&x});
  Variable y(Tensor::empty(x.shape()), recording);
  Tensor derivative = recording ? Tensor::empty(x.shape()) : Tensor();
  cpu::gelu_forward(x.value().numel(), x.value().data(), y.value().data(), derivative.data());
  probe_activation("gelu", y.value());
  detail::record_backward(recording, y, [x, derivative](Tensor& dy) mutable {
    cpu::gelu_backward(dy.numel(), derivative.data(), dy.data(), x.grad_buffer().data());
  });
  return y;
}

}  // namespace st::ops
