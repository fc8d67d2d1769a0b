#include <cmath>
#include "engine/error.h"
#include "engine/op_times.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "engine/probe.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable batchnorm(const Variable& x, const Variable& gamma, const Variable& beta, Tensor& running_mean,
                   Tensor& running_var, bool training, float momentum, float eps, bool relu) {
  const int64_t channels = x.shape().back();
  const int64_t rows = x.value().numel() / channels;
  ST_CHECK(gamma.value().numel() == channels && beta.value().numel() == channels &&
               running_mean.numel() == channels && running_var.numel() == channels,
           "batchnorm: {} channels but parameters of {} values", channels, gamma.value().numel());
  const Device device = detail::op_device("batchnorm", {&x, &gamma, &beta});
  if (running_mean.device() != device || running_var.device() != device)
    fail("op batchnorm: input on {} but running statistics on {} (move the model with Module::to)",
         device_name(device), device_name(running_mean.device()));
  const bool cuda = device == Device::CUDA;
  const OpTimer timer("batchnorm forward");  // training and evaluation mode alike
  if (!training) {
    const bool recording = should_record({&x, &gamma, &beta});
    Variable y(Tensor::empty(x.shape(), device), recording);
    if (cuda) {
      gpu::batchnorm_forward_eval(rows, channels, x.value().data(), gamma.value().data(), beta.value().data(),
                                  running_mean.data(), running_var.data(), eps, relu, y.value().data());
    } else {
      cpu::batchnorm_forward_eval(rows, channels, x.value().data(), gamma.value().data(), beta.value().data(),
                                  running_mean.data(), running_var.data(), eps, relu, y.value().data());
    }
    if (relu) probe_activation("bn_relu", y.value());
    // Evaluation-mode backward (used by pruning scores on a frozen network): an affine map per channel.
    detail::record_backward(recording, y, [x, gamma, beta, running_mean, running_var, rows, channels, eps, relu, cuda,
                                           y_value = y.value()](Tensor& dy) mutable {
      const OpTimer backward_timer("batchnorm backward");
      if (cuda) {
        gpu::batchnorm_backward_eval(rows, channels, x.value().data(), gamma.value().data(), running_mean.data(),
                                     running_var.data(), eps, relu ? y_value.data() : nullptr, dy.data(),
                                     detail::grad_or_null(x), detail::grad_or_null(gamma),
                                     detail::grad_or_null(beta));
        return;
      }
      cpu::batchnorm_backward_eval(rows, channels, x.value().data(), gamma.value().data(), running_mean.data(),
                                   running_var.data(), eps, relu ? y_value.data() : nullptr, dy.data(),
                                   detail::grad_or_null(x), detail::grad_or_null(gamma), detail::grad_or_null(beta));
    });
    return y;
  }
  ST_CHECK(rows > 1, "batchnorm: training needs more than one value per channel, got input {}",
           shape_string(x.shape()));
  const bool recording = should_record({&x, &gamma, &beta});
  Variable y(Tensor::empty(x.shape(), device), recording);
  Tensor mean = Tensor::empty({channels}, device), invstd = Tensor::empty({channels}, device),
         var = Tensor::empty({channels}, device);
  const float unbiased = static_cast<float>(rows) / static_cast<float>(rows - 1);
  if (cuda) {
    gpu::batchnorm_forward_train(rows, channels, x.value().data(), gamma.value().data(), beta.value().data(), eps,
                                 relu, y.value().data(), mean.data(), invstd.data(), var.data());
    gpu::batchnorm_update_running_stats(channels, mean.data(), var.data(), momentum, unbiased, running_mean.data(),
                                        running_var.data());
    if (relu) probe_activation("bn_relu", y.value());
  } else {
    cpu::batchnorm_forward_train(rows, channels, x.value().data(), gamma.value().data(), beta.value().data(), eps,
                                 relu, y.value().data(), mean.data(), invstd.data(), var.data());
    if (relu) probe_activation("bn_relu", y.value());
    for (int64_t c = 0; c < channels; ++c) {
      running_mean.data()[c] = (1.0f - momentum) * running_mean.data()[c] + momentum * mean.data()[c];
      running_var.data()[c] = (1.0f - momentum) * running_var.data()[c] + momentum * var.data()[c] * unbiased;
    }
  }
  detail::record_backward(recording, y, [x, gamma, beta, mean, invstd, rows, channels, relu, cuda,
                                         y_value = y.value()](Tensor& dy) mutable {
    const OpTimer backward_timer("batchnorm backward");
    if (cuda) {
      gpu::batchnorm_backward_train(rows, channels, x.value().data(), gamma.value().data(), mean.data(),
                                    invstd.data(), relu ? y_value.data() : nullptr, dy.data(),
                                    detail::grad_or_null(x), detail::grad_or_null(gamma),
                                    detail::grad_or_null(beta));
      return;
    }
    cpu::batchnorm_backward_train(rows, channels, x.value().data(), gamma.value().data(), beta.value().data(),
                                  mean.data(), invstd.data(), relu, dy.data(), detail::grad_to_write(x),
                                  detail::grad_or_null(gamma), detail::grad_or_null(beta));
  });
  return y;
}

}  // namespace st::ops
