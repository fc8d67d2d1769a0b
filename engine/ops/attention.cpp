// Softmax over the last dimension and fused multi-head self-attention (kernels/cpu/softmax.cpp,
// kernels/cpu/attention.cpp; on CUDA tensors kernels/cuda/softmax.cu, attention.cu or cuDNN's).
// On the CPU attention keeps its probabilities [B, H, T, T] for the backward; on the GPU one
// log-sum-exp per query row [B, H, T] and the output, from which the backward recomputes them.
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable softmax(const Variable& x) {
  ST_CHECK(x.value().ndim() >= 1 && x.shape().back() > 0, "softmax: input {} has no last dimension",
           shape_string(x.shape()));
  const int64_t cols = x.shape().back(), rows = x.value().numel() / cols;
  const Device device = detail::op_device("softmax", {&x});
  const bool recording = should_record({&x});
  Variable y(Tensor::empty(x.shape(), device), recording);
  if (device == Device::CUDA) {
    gpu::softmax_forward(rows, cols, x.value().data(), y.value().data());
  } else {
    cpu::softmax_forward(rows, cols, x.value().data(), y.value().data());
  }
  detail::record_backward(recording, y, [x, y_value = y.value(), rows, cols, device](Tensor& dy) mutable {
    if (device == Device::CUDA) {
      gpu::softmax_backward(rows, cols, y_value.data(), dy.data(), x.grad_buffer().data());
      return;
    }
    cpu::softmax_backward(rows, cols, y_value.data(), dy.data(), x.grad_buffer().data());
  });
  return y;
}

Variable attention(const Variable& qkv, int64_t heads) {
  const Shape& s = qkv.shape();
  ST_CHECK(s.size() == 3 && s[2] % 3 == 0, "attention: input {} must be [batch, tokens, 3 * dim]", shape_string(s));
  const int64_t batch = s[0], tokens = s[1], dim = s[2] / 3;
  ST_CHECK(heads >= 1 && dim % heads == 0, "attention: {} features do not split into {} heads", dim, heads);
  const Device device = detail::op_device("attention", {&qkv});
  const bool recording = should_record({&qkv});
  Variable y(Tensor::empty({batch, tokens, dim}, device), recording);
  if (device == Device::CUDA) {
    Tensor lse = Tensor::empty({batch, heads, tokens}, device);
    gpu::attention_forward(batch, tokens, dim, heads, qkv.value().data(), y.value().data(), lse.data());
    detail::record_backward(recording, y, [qkv, y_value = y.value(), lse, batch, tokens, dim, heads](Tensor& dy) mutable {
      gpu::attention_backward(batch, tokens, dim, heads, qkv.value().data(), y_value.data(), lse.data(), dy.data(),
                              qkv.grad_buffer().data());
    });
    return y;
  }
  Tensor probabilities = Tensor::empty({batch, heads, tokens, tokens});
  cpu::attention_forward(batch, tokens, dim, heads, qkv.value().data(), y.value().data(), probabilities.data());
  detail::record_backward(recording, y, [qkv, probabilities, batch, tokens, dim, heads](Tensor& dy) mutable {
    cpu::attention_backward(batch, tokens, dim, heads, qkv.value().data(), probabilities.data(), dy.data(),
                            qkv.grad_buffer().data());
  });
  return y;
}

}  // namespace st::ops
