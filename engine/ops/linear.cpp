#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  ST_CHECK(x.value().ndim() == 2 && weight.value().ndim() == 2 && x.shape()[1] == weight.shape()[1],
           "linear: input {} and weight {} do not match", shape_string(x.shape()), shape_string(weight.shape()));
  const int64_t batch = x.shape()[0], in = x.shape()[1], out = weight.shape()[0];
  const bool has_bias = bias.defined();
  if (has_bias) ST_CHECK(bias.value().numel() == out, "linear: bias {} for {} outputs", shape_string(bias.shape()), out);
  const Device device = detail::op_device("linear", {&x, &weight, &bias});
  const bool recording = should_record({&x, &weight, &bias});
  Variable y(Tensor::empty({batch, out}, device), recording);
  if (device == Device::CUDA) {
    gpu::linear_forward(batch, in, out, x.value().data(), weight.value().data(),
                        has_bias ? bias.value().data() : nullptr, y.value().data());
  } else {
    cpu::linear_forward(batch, in, out, x.value().data(), weight.value().data(),
                        has_bias ? bias.value().data() : nullptr, y.value().data());
  }
  detail::record_backward(recording, y, [x, weight, bias, batch, in, out, device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      gpu::linear_backward(batch, in, out, x.value().data(), weight.value().data(), dy.data(),
                           detail::grad_or_null(x), detail::grad_or_null(weight), detail::grad_or_null(bias));
      return;
    }
    cpu::linear_backward(batch, in, out, x.value().data(), weight.value().data(), dy.data(), detail::grad_or_null(x),
                         detail::grad_or_null(weight), detail::grad_or_null(bias));
  });
  return y;
}

}  // namespace st::ops
