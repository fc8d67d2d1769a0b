// Layer normalisation over the last dimension (kernels/cpu/layernorm.cpp, kernels/cuda/layernorm.cu):
// the forward keeps each row's mean and 1/std for the backward.
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable layernorm(const Variable& x, const Variable& weight, const Variable& bias, float eps) {
  ST_CHECK(x.value().ndim() >= 1, "layernorm: input has no dimensions");
  const int64_t dim = x.shape().back();
  const int64_t rows = x.value().numel() / dim;
  ST_CHECK(weight.value().numel() == dim && bias.value().numel() == dim,
           "layernorm: input {} normalises {} features but weight {} and bias {}", shape_string(x.shape()), dim,
           shape_string(weight.shape()), shape_string(bias.shape()));
  const Device device = detail::op_device("layernorm", {&x, &weight, &bias});
  const bool recording = should_record({&x, &weight, &bias});
  Variable y(Tensor::empty(x.shape(), device), recording);
  Tensor mean = Tensor::empty({rows}, device), invstd = Tensor::empty({rows}, device);
  const auto forward = device == Device::CUDA ? gpu::layernorm_forward : cpu::layernorm_forward;
  forward(rows, dim, x.value().data(), weight.value().data(), bias.value().data(), eps, y.value().data(), mean.data(),
          invstd.data());
  detail::record_backward(recording, y, [x, weight, bias, mean, invstd, rows, dim, device](Tensor& dy) mutable {
    const auto backward = device == Device::CUDA ? gpu::layernorm_backward : cpu::layernorm_backward;
    backward(rows, dim, x.value().data(), weight.value().data(), mean.data(), invstd.data(), dy.data(),
             detail::grad_or_null(x), detail::grad_or_null(weight), detail::grad_or_null(bias));
  });
  return y;
}

}  // namespace st::ops
