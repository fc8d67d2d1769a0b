// max / average / global average pooling and the option-A padded shortcut.
#include <memory>
#include <vector>

#include "engine/error.h"
#include "engine/op_times.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {
namespace {

Pool2dGeometry pool_geometry(const Variable& x, int64_t kernel, int64_t stride, int64_t pad) {
  const Shape& s = x.shape();
  ST_CHECK(s.size() == 4, "pooling: input {} must be NHWC", shape_string(s));
  Pool2dGeometry g{s[0], s[1], s[2], s[3], kernel, stride, pad};
  ST_CHECK(kernel >= 1 && stride >= 1 && pad >= 0 && 2 * pad <= kernel && g.out_h() >= 1 && g.out_w() >= 1,
           "pooling: kernel {} stride {} pad {} invalid for input {}", kernel, stride, pad, shape_string(s));
  return g;
}

}  // namespace

Variable max_pool2d(const Variable& x, int64_t kernel, int64_t stride, int64_t pad) {
  const Pool2dGeometry g = pool_geometry(x, kernel, stride, pad);
  const Device device = detail::op_device("max_pool2d", {&x});
  const bool recording = should_record({&x});
  if (device == Device::CUDA) {
    Variable y(Tensor::empty({g.batch, g.out_h(), g.out_w(), g.channels}, device), recording);
    auto argmax = std::make_shared<gpu::DeviceInts>(y.value().numel());
    gpu::max_pool_forward(g, x.value().data(), y.value().data(), argmax->data());
    detail::record_backward(recording, y, [x, g, argmax](Tensor& dy) mutable {
      gpu::max_pool_backward(g, argmax->data(), dy.data(), x.grad_buffer().data());
    });
    return y;
  }
  const OpTimer timer("max_pool2d forward");
  Variable y(Tensor::empty({g.batch, g.out_h(), g.out_w(), g.channels}), recording);
  auto argmax = std::make_shared<std::vector<int32_t>>(static_cast<std::size_t>(y.value().numel()));
  cpu::max_pool_forward(g, x.value().data(), y.value().data(), argmax->data());
  detail::record_backward(recording, y, [x, g, argmax](Tensor& dy) mutable {
    const OpTimer backward_timer("max_pool2d backward");
    cpu::max_pool_backward(g, argmax->data(), dy.data(), x.grad_buffer().data());
  });
  return y;
}

Variable avg_pool2d(const Variable& x, int64_t kernel, int64_t stride, int64_t pad) {
  const Pool2dGeometry g = pool_geometry(x, kernel, stride, pad);
  const Device device = detail::op_device("avg_pool2d", {&x});
  const bool recording = should_record({&x});
  Variable y(Tensor::empty({g.batch, g.out_h(), g.out_w(), g.channels}, device), recording);
  if (device == Device::CUDA) {
    gpu::avg_pool_forward(g, x.value().data(), y.value().data());
  } else {
    cpu::avg_pool_forward(g, x.value().data(), y.value().data());
  }
  detail::record_backward(recording, y, [x, g, device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      gpu::avg_pool_backward(g, dy.data(), x.grad_buffer().data());
      return;
    }
    cpu::avg_pool_backward(g, dy.data(), x.grad_buffer().data());
  });
  return y;
}

Variable global_avg_pool(const Variable& x) {
  const Shape& s = x.shape();
  ST_CHECK(s.size() == 4, "global_avg_pool: input {} must be NHWC", shape_string(s));
  const int64_t batch = s[0], pixels = s[1] * s[2], channels = s[3];
  const Device device = detail::op_device("global_avg_pool", {&x});
  const bool recording = should_record({&x});
  Variable y(Tensor::empty({batch, channels}, device), recording);
  if (device == Device::CUDA) {
    gpu::global_avg_pool_forward(batch, pixels, channels, x.value().data(), y.value().data());
  } else {
    cpu::global_avg_pool_forward(batch, pixels, channels, x.value().data(), y.value().data());
  }
  detail::record_backward(recording, y, [x, batch, pixels, channels, device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      gpu::global_avg_pool_backward(batch, pixels, channels, dy.data(), x.grad_buffer().data());
      return;
    }
    cpu::global_avg_pool_backward(batch, pixels, channels, dy.data(), x.grad_buffer().data());
  });
  return y;
}

Variable pad_shortcut(const Variable& x, int64_t stride, int64_t out_channels) {
  const Shape& s = x.shape();
  ST_CHECK(s.size() == 4 && out_channels >= s[3] && stride >= 1, "pad_shortcut: input {} to {} channels stride {}",
           shape_string(s), out_channels, stride);
  PadShortcutGeometry g{s[0], s[1], s[2], s[3], out_channels, stride};
  const Device device = detail::op_device("pad_shortcut", {&x});
  const bool recording = should_record({&x});
  Variable y(Tensor::empty({g.batch, g.out_h(), g.out_w(), out_channels}, device), recording);
  if (device == Device::CUDA) {
    gpu::pad_shortcut_forward(g, x.value().data(), y.value().data());
  } else {
    cpu::pad_shortcut_forward(g, x.value().data(), y.value().data());
  }
  detail::record_backward(recording, y, [x, g, device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      gpu::pad_shortcut_backward(g, dy.data(), x.grad_buffer().data());
      return;
    }
    cpu::pad_shortcut_backward(g, dy.data(), x.grad_buffer().data());
  });
  return y;
}

}  // namespace st::ops
