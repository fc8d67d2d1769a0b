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

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  ST_CHECK(x.value().ndim() == 2 && weight.value().ndim() == 2 && x.shape()[1] == weight.shape()[1],
           "linear: input {} and weight {} do not match", shape_string(x.shape()), shape_string(weight.shape()));
  const int64_t batch = x.shape()[0], in = x.shape()[1], out = weight.shape()[0];
  const bool has_bias = bias.defined();
  if (has_bias) ST_CHECK(bias.value().numel() == out, "linear: bias {} for {} outputs", shape_string(bias.shape()), out);
  const Device device = detail::op_device("linear", {&x, &weight, &bias});
  const bool recording = should_record({&x, &weight, &bias});
  Variable y(Tensor::empty({batch, out}, device), recording);
  const OpTimer timer("linear forward");
  if (device == Device::CUDA) {
    gpu::linear_forward(batch, in, out, x.value().data(), weight.value().data(),
                        has_bias ? bias.value().data() : nullptr, y.value().data());
  } else {
    cpu::linear_forward(batch, in, out, x.value().data(), weight.value().data(),
                        has_bias ? bias.value().data() : nullptr, y.value().data());
  }
  detail::record_backward(recording, y, [x, weight, bias, batch, in, out, device](Tensor& dy) mutable {
    const OpTimer backward_timer("linear backward");
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

Variable sparse_linear(const Variable& x, const Variable& weight, const Variable& bias,
                       std::shared_ptr<const cpu::SparsePattern> pattern) {
  ST_CHECK(x.value().ndim() == 2 && weight.value().ndim() == 2 && x.shape()[1] == weight.shape()[1],
           "sparse_linear: input {} and weight {} do not match", shape_string(x.shape()), shape_string(weight.shape()));
  const int64_t batch = x.shape()[0], out = weight.shape()[0];
  ST_CHECK(pattern && pattern->rows == out && pattern->cols == x.shape()[1],
           "sparse_linear: the sparsity pattern does not have the weight's shape {}", shape_string(weight.shape()));
  const bool has_bias = bias.defined();
  if (has_bias) ST_CHECK(bias.value().numel() == out, "sparse_linear: bias {} for {} outputs", shape_string(bias.shape()),
                         out);
  ST_CHECK(detail::op_device("sparse_linear", {&x, &weight, &bias}) == Device::CPU,
           "sparse_linear: CPU tensors only (the GPU sparse kernels are later work)");
  const bool recording = should_record({&x, &weight, &bias});
  const OpTimer timer("linear forward");
  auto values = std::make_shared<std::vector<float>>(static_cast<std::size_t>(pattern->nnz()));
  cpu::sparse_gather(*pattern, weight.value().data(), values->data());
  Variable y(Tensor::empty({batch, out}), recording);
  // the input in the products' blocked layout, kept for the weight gradient when one will be computed
  Tensor xt = recording && weight.requires_grad()
                  ? Tensor::empty({cpu::sparse_linear_blocked_size(batch, x.shape()[1])})
                  : Tensor();
  cpu::sparse_linear_forward(batch, *pattern, values->data(), x.value().data(), has_bias ? bias.value().data() : nullptr,
                             y.value().data(), xt.defined() ? xt.data() : nullptr);
  detail::record_backward(recording, y, [x, weight, bias, batch, pattern, values, xt](Tensor& dy) mutable {
    const OpTimer backward_timer("linear backward");
    cpu::sparse_linear_backward(batch, *pattern, values->data(), x.value().data(), dy.data(), detail::grad_or_null(x),
                                detail::grad_or_null(weight), detail::grad_or_null(bias),
                                xt.defined() ? xt.data() : nullptr);
  });
  return y;
}

}  // namespace st::ops
