// Exact GELU (kernels/cpu/gelu.cpp, kernels/cuda/elementwise.cu); when recording, the forward keeps
// dy/dx for the backward.
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "engine/probe.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable gelu(const Variable& x) {
  const Device device = detail::op_device("gelu", {&x});
  const bool recording = should_record({&x});
  Variable y(Tensor::empty(x.shape(), device), recording);
  Tensor derivative = recording ? Tensor::empty(x.shape(), device) : Tensor();
  const auto forward = device == Device::CUDA ? gpu::gelu_forward : cpu::gelu_forward;
  forward(x.value().numel(), x.value().data(), y.value().data(), derivative.data());
  probe_activation("gelu", y.value());
  detail::record_backward(recording, y, [x, derivative, device](Tensor& dy) mutable {
    const auto backward = device == Device::CUDA ? gpu::gelu_backward : cpu::gelu_backward;
    backward(dy.numel(), derivative.data(), dy.data(), x.grad_buffer().data());
  });
  return y;
}

}  // namespace st::ops
