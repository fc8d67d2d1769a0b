// relu, relu6, add, add_relu, flatten, concat, scale, dropout.
#include "engine/error.h"
#include "engine/op_times.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "engine/probe.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable relu(const Variable& x) {
  const Device device = detail::op_device("relu", {&x});
  const bool recording = should_record({&x});
  Variable y(Tensor::empty(x.shape(), device), recording);
  if (device == Device::CUDA) {
    gpu::relu_forward(x.value().numel(), x.value().data(), y.value().data());
  } else {
    const OpTimer timer("relu forward");
    cpu::relu_forward(x.value().numel(), x.value().data(), y.value().data());
  }
  probe_activation("relu", y.value());
  detail::record_backward(recording, y, [x, y_value = y.value(), device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      gpu::relu_backward(y_value.numel(), y_value.data(), dy.data(), x.grad_buffer().data());
      return;
    }
    const OpTimer backward_timer("relu backward");
    cpu::relu_backward(y_value.numel(), y_value.data(), dy.data(), x.grad_buffer().data());
  });
  return y;
}

Variable relu6(const Variable& x) {
  const Device device = detail::op_device("relu6", {&x});
  const bool recording = should_record({&x});
  Variable y(Tensor::empty(x.shape(), device), recording);
  if (device == Device::CUDA) {
    gpu::relu6_forward(x.value().numel(), x.value().data(), y.value().data());
  } else {
    cpu::relu6_forward(x.value().numel(), x.value().data(), y.value().data());
  }
  probe_activation("relu6", y.value());
  detail::record_backward(recording, y, [x, y_value = y.value(), device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      gpu::relu6_backward(y_value.numel(), y_value.data(), dy.data(), x.grad_buffer().data());
      return;
    }
    cpu::relu6_backward(y_value.numel(), y_value.data(), dy.data(), x.grad_buffer().data());
  });
  return y;
}

Variable add(const Variable& a, const Variable& b) {
  ST_CHECK(a.shape() == b.shape(), "add: shapes {} and {} differ", shape_string(a.shape()), shape_string(b.shape()));
  const Device device = detail::op_device("add", {&a, &b});
  const bool recording = should_record({&a, &b});
  Variable y(Tensor::empty(a.shape(), device), recording);
  if (device == Device::CUDA) {
    gpu::add_forward(a.value().numel(), a.value().data(), b.value().data(), y.value().data());
  } else {
    cpu::add_forward(a.value().numel(), a.value().data(), b.value().data(), y.value().data());
  }
  detail::record_backward(recording, y, [a, b, device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      if (float* da = detail::grad_or_null(a)) gpu::accumulate(dy.numel(), dy.data(), da);
      if (float* db = detail::grad_or_null(b)) gpu::accumulate(dy.numel(), dy.data(), db);
      return;
    }
    if (float* da = detail::grad_or_null(a)) cpu::accumulate(dy.numel(), dy.data(), da);
    if (float* db = detail::grad_or_null(b)) cpu::accumulate(dy.numel(), dy.data(), db);
  });
  return y;
}

Variable add_relu(const Variable& a, const Variable& b) {
  ST_CHECK(a.shape() == b.shape(), "add_relu: shapes {} and {} differ", shape_string(a.shape()),
           shape_string(b.shape()));
  const Device device = detail::op_device("add_relu", {&a, &b});
  const bool recording = should_record({&a, &b});
  Variable y(Tensor::empty(a.shape(), device), recording);
  const OpTimer timer("add_relu forward");
  if (device == Device::CUDA) {
    gpu::add_relu_forward(a.value().numel(), a.value().data(), b.value().data(), y.value().data());
  } else {
    cpu::add_relu_forward(a.value().numel(), a.value().data(), b.value().data(), y.value().data());
  }
  probe_activation("add_relu", y.value());
  detail::record_backward(recording, y, [a, b, y_value = y.value(), device](Tensor& dy) mutable {
    const OpTimer backward_timer("add_relu backward");
    if (device == Device::CUDA) {
      gpu::add_relu_backward(dy.numel(), y_value.data(), dy.data(), detail::grad_or_null(a), detail::grad_or_null(b));
      return;
    }
    cpu::add_relu_backward(dy.numel(), y_value.data(), dy.data(), detail::grad_to_write(a), detail::grad_to_write(b));
  });
  return y;
}

Variable flatten(const Variable& x) {
  const int64_t batch = x.shape()[0];
  const Device device = detail::op_device("flatten", {&x});
  const bool recording = should_record({&x});
  // The output shares storage with the input; its gradient is a separate buffer reshaped back.
  Variable y(x.value().reshape({batch, x.value().numel() / batch}), recording);
  detail::record_backward(recording, y, [x, device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      gpu::accumulate(dy.numel(), dy.data(), x.grad_buffer().data());
      return;
    }
    cpu::accumulate(dy.numel(), dy.data(), x.grad_buffer().data());
  });
  return y;
}

Variable concat_channels(const std::vector<Variable>& inputs) {
  ST_CHECK(!inputs.empty(), "concat_channels: no inputs");
  Shape shape = inputs.front().shape();
  const int64_t rows = inputs.front().value().numel() / shape.back();
  const Device device = detail::op_device("concat_channels", {&inputs.front()});
  std::vector<int64_t> widths;
  std::vector<const float*> pointers;
  bool recording = false;
  int64_t total = 0;
  for (const Variable& v : inputs) {
    Shape leading = v.shape();
    leading.pop_back();
    Shape expected = shape;
    expected.pop_back();
    ST_CHECK(leading == expected, "concat_channels: input {} does not match {}", shape_string(v.shape()),
             shape_string(shape));
    detail::op_device("concat_channels", {&inputs.front(), &v});
    widths.push_back(v.shape().back());
    pointers.push_back(v.value().data());
    total += v.shape().back();
    recording = recording || should_record({&v});
  }
  shape.back() = total;
  Variable y(Tensor::empty(shape, device), recording);
  if (device == Device::CUDA) {
    gpu::concat_channels_forward(rows, pointers, widths, y.value().data());
  } else {
    cpu::concat_channels_forward(rows, pointers, widths, y.value().data());
  }
  detail::record_backward(recording, y, [inputs, widths, rows, device](Tensor& dy) mutable {
    std::vector<float*> grads;
    for (const Variable& v : inputs) grads.push_back(detail::grad_or_null(v));
    if (device == Device::CUDA) {
      gpu::concat_channels_backward(rows, widths, dy.data(), grads);
      return;
    }
    cpu::concat_channels_backward(rows, widths, dy.data(), grads);
  });
  return y;
}

Variable scale(const Variable& x, float factor) {
  const Device device = detail::op_device("scale", {&x});
  const bool recording = should_record({&x});
  Variable y(Tensor::empty(x.shape(), device), recording);
  if (device == Device::CUDA) {
    gpu::scale_forward(x.value().numel(), x.value().data(), factor, y.value().data());
  } else {
    cpu::scale_forward(x.value().numel(), x.value().data(), factor, y.value().data());
  }
  detail::record_backward(recording, y, [x, factor, device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      gpu::scale_backward(dy.numel(), dy.data(), factor, x.grad_buffer().data());
      return;
    }
    cpu::scale_backward(dy.numel(), dy.data(), factor, x.grad_buffer().data());
  });
  return y;
}

Variable dropout(const Variable& x, float p, bool training, Rng& rng) {
  ST_CHECK(p >= 0.0f && p < 1.0f, "dropout: probability {} outside [0, 1)", p);
  if (!training || p == 0.0f) return x;
  const Device device = detail::op_device("dropout", {&x});
  const bool recording = should_record({&x});
  const int64_t n = x.value().numel();
  Tensor scale = Tensor::empty(x.shape());
  const float keep_scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) scale.data()[i] = rng.uniform() < p ? 0.0f : keep_scale;
  if (device == Device::CUDA) {
    // The mask comes from the same host Rng stream on every device (a run is reproducible across
    // devices); it is uploaded, one activation-sized copy per dropout layer. A device-side generator is
    // later work.
    scale = scale.to(device);
    Variable y(Tensor::empty(x.shape(), device), recording);
    gpu::scale_by_mask(n, x.value().data(), scale.data(), y.value().data());
    detail::record_backward(recording, y, [x, scale](Tensor& dy) mutable {
      gpu::accumulate_scaled_by_mask(dy.numel(), dy.data(), scale.data(), x.grad_buffer().data());
    });
    return y;
  }
  Variable y(Tensor::empty(x.shape()), recording);
  cpu::scale_by_mask(n, x.value().data(), scale.data(), y.value().data());
  detail::record_backward(recording, y, [x, scale](Tensor& dy) mutable {
    cpu::accumulate_scaled_by_mask(dy.numel(), dy.data(), scale.data(), x.grad_buffer().data());
  });
  return y;
}

}  // namespace st::ops
