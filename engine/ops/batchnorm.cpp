#include <cmath>
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/record.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable batchnorm(const Variable& x, const Variable& gamma, const Variable& beta, Tensor& running_mean,
                   Tensor& running_var, bool training, float momentum, float eps, bool relu) {
  const int64_t channels = x.shape().back();
  const int64_t rows = x.value().numel() / channels;
  ST_CHECK(gamma.value().numel() == channels && beta.value().numel() == channels &&
               running_mean.numel() == channels && running_var.numel() == channels,
           "batchnorm: {} channels but parameters of {} values", channels, gamma.value().numel());
  if (!training) {
    const bool recording = should_record({&x, &gamma, &beta});
    Variable y(Tensor::empty(x.shape()), recording);
    cpu::batchnorm_forward_eval(rows, channels, x.value().data(), gamma.value().data(), beta.value().data(),
                                running_mean.data(), running_var.data(), eps, relu, y.value().data());
    // Evaluation-mode backward (used by pruning scores on a frozen network): an affine map per channel.
    detail::record_backward(recording, y, [x, gamma, beta, running_mean, running_var, rows, channels, eps, relu,
                                           y_value = y.value()](Tensor& dy) mutable {
      cpu::batchnorm_backward_eval(rows, channels, x.value().data(), gamma.value().data(), running_mean.data(),
                                   running_var.data(), eps, relu ? y_value.data() : nullptr, dy.data(),
                                   detail::grad_or_null(x), detail::grad_or_null(gamma), detail::grad_or_null(beta));
    });
    return y;
  }
  ST_CHECK(rows > 1, "batchnorm: training needs more than one value per channel, got input {}",
           shape_string(x.shape()));
  const bool recording = should_record({&x, &gamma, &beta});
  Variable y(Tensor::empty(x.shape()), recording);
  Tensor mean = Tensor::empty({channels}), invstd = Tensor::empty({channels}), var = Tensor::empty({channels});
  cpu::batchnorm_forward_train(rows, channels, x.value().data(), gamma.value().data(), beta.value().data(), eps, relu,
                               y.value().data(), mean.data(), invstd.data(), var.data());
  const float unbiased = static_cast<float>(rows) / static_cast<float>(rows - 1);
  for (int64_t c = 0; c < channels; ++c) {
    running_mean.data()[c] = (1.0f - momentum) * running_mean.data()[c] + momentum * mean.data()[c];
    running_var.data()[c] = (1.0f - momentum) * running_var.data()[c] + momentum * var.data()[c] * unbiased;
  }
  detail::record_backward(recording, y, [x, gamma, beta, mean, invstd, rows, channels, relu,
                                         y_value = y.value()](Tensor& dy) mutable {
    cpu::batchnorm_backward_train(rows, channels, x.value().data(), gamma.value().data(), mean.data(), invstd.data(),
                                  relu ? y_value.data() : nullptr, dy.data(), detail::grad_or_null(x),
                                  detail::grad_or_null(gamma), detail::grad_or_null(beta));
  });
  return y;
}

}  // namespace st::ops
