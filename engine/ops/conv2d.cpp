#include <memory>
#include <vector>

#include "engine/error.h"
#include "engine/op_times.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/sparse.h"

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

Variable sparse_conv2d(const Variable& x, const Variable& weight, const Variable& bias, int64_t stride, int64_t pad,
                       std::shared_ptr<const cpu::SparsePattern> pattern) {
  const Shape& xs = x.shape();
  const Shape& ws = weight.shape();
  ST_CHECK(xs.size() == 4 && ws.size() == 4 && ws[3] == xs[3], "sparse_conv2d: input {} must be NHWC and weight {} KRSC",
           shape_string(xs), shape_string(ws));
  const Conv2dGeometry g = conv2d_geometry(xs, ws, stride, pad);
  ST_CHECK(stride >= 1 && g.out_h() >= 1 && g.out_w() >= 1,
           "sparse_conv2d: input {} too small for kernel {} pad {} stride {}", shape_string(xs), shape_string(ws), pad,
           stride);
  ST_CHECK(xs[1] + 2 * pad >= ws[1] && xs[2] + 2 * pad >= ws[2],
           "sparse_conv2d: kernel {}x{} larger than the padded input {}x{}", ws[1], ws[2], xs[1] + 2 * pad,
           xs[2] + 2 * pad);
  ST_CHECK(pattern && pattern->rows == g.out_channels && pattern->cols == g.patch_size(),
           "sparse_conv2d: the sparsity pattern does not have the weight's shape {}", shape_string(ws));
  const bool has_bias = bias.defined();
  if (has_bias)
    ST_CHECK(bias.value().numel() == g.out_channels, "sparse_conv2d: bias {} for {} outputs", shape_string(bias.shape()),
             g.out_channels);
  ST_CHECK(detail::op_device("sparse_conv2d", {&x, &weight, &bias}) == Device::CPU,
           "sparse_conv2d: CPU tensors only (the GPU sparse kernels are later work)");
  const bool recording = should_record({&x, &weight, &bias});
  Variable y(Tensor::empty({g.batch, g.out_h(), g.out_w(), g.out_channels}), recording);
  const OpTimer timer("conv2d forward");
  auto values = std::make_shared<std::vector<float>>(static_cast<std::size_t>(pattern->nnz()));
  cpu::sparse_gather(*pattern, weight.value().data(), values->data());
  cpu::sparse_conv_forward(g, *pattern, values->data(), x.value().data(), has_bias ? bias.value().data() : nullptr,
                           y.value().data());
  detail::record_backward(recording, y, [x, weight, bias, g, pattern, values](Tensor& dy) mutable {
    const OpTimer backward_timer("conv2d backward");
    cpu::sparse_conv_backward(g, *pattern, values->data(), x.value().data(), dy.data(), detail::grad_to_write(x),
                              detail::grad_or_null(weight), detail::grad_or_null(bias));
  });
  return y;
}

}  // namespace st::ops
