#include "engine/error.h"
#include "engine/op_times.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias, int64_t stride, int64_t pad,
                int64_t groups) {
  const Shape& xs = x.shape();
  const Shape& ws = weight.shape();
  ST_CHECK(xs.size() == 4 && ws.size() == 4, "conv2d: input {} must be NHWC and weight {} KRSC", shape_string(xs),
           shape_string(ws));
  ST_CHECK(groups >= 1 && xs[3] % groups == 0 && ws[0] % groups == 0 && ws[3] == xs[3] / groups,
           "conv2d: input {} weight {} groups {} do not match", shape_string(xs), shape_string(ws), groups);
  const Conv2dGeometry g = conv2d_geometry(xs, ws, stride, pad, groups);
  ST_CHECK(stride >= 1 && g.out_h() >= 1 && g.out_w() >= 1, "conv2d: input {} too small for kernel {} pad {} stride {}",
           shape_string(xs), shape_string(ws), pad, stride);
  const bool has_bias = bias.defined();
  const Device device = detail::op_device("conv2d", {&x, &weight, &bias});
  const bool recording = should_record({&x, &weight, &bias});
  Variable y(Tensor::empty({g.batch, g.out_h(), g.out_w(), g.out_channels}, device), recording);
  const OpTimer timer("conv2d forward");
  if (device == Device::CUDA) {
    gpu::conv2d_forward(g, x.value().data(), weight.value().data(), has_bias ? bias.value().data() : nullptr,
                        y.value().data());
  } else {
    cpu::conv2d_forward(g, x.value().data(), weight.value().data(), has_bias ? bias.value().data() : nullptr,
                        y.value().data());
  }
  detail::record_backward(recording, y, [x, weight, bias, g, device](Tensor& dy) mutable {
    const OpTimer backward_timer("conv2d backward");
    if (device == Device::CUDA) {
      gpu::conv2d_backward(g, x.value().data(), weight.value().data(), dy.data(), detail::grad_or_null(x),
                           detail::grad_or_null(weight), detail::grad_or_null(bias));
      return;
    }
    cpu::conv2d_backward(g, x.value().data(), weight.value().data(), dy.data(), detail::grad_to_write(x),
                         detail::grad_or_null(weight), detail::grad_or_null(bias));
  });
  return y;
}

}  // namespace st::ops
