// Reshape and the token plumbing of vision transformers (kernels/cpu/tokens.cpp, kernels/cuda/tokens.cu).
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/gpu_kernels.h"
#include "engine/ops/record.h"
#include "kernels/cpu/kernels.h"

namespace st::ops {

Variable reshape(const Variable& x, const Shape& shape) {
  ST_CHECK(shape_numel(shape) == x.value().numel(), "reshape: {} cannot become {}", shape_string(x.shape()),
           shape_string(shape));
  const Device device = detail::op_device("reshape", {&x});
  const bool recording = should_record({&x});
  // The output shares storage with the input; its gradient is a separate buffer added back.
  Variable y(x.value().reshape(shape), recording);
  detail::record_backward(recording, y, [x, device](Tensor& dy) mutable {
    const auto accumulate = device == Device::CUDA ? gpu::accumulate : cpu::accumulate;
    accumulate(dy.numel(), dy.data(), x.grad_buffer().data());
  });
  return y;
}

Variable prepend_token(const Variable& x, const Variable& token) {
  const Shape& s = x.shape();
  ST_CHECK(s.size() == 3 && token.value().numel() == s[2], "prepend_token: input {} must be [batch, tokens, dim] "
           "and the token {} one row of dim values", shape_string(s), shape_string(token.shape()));
  const int64_t batch = s[0], tokens = s[1], dim = s[2];
  const Device device = detail::op_device("prepend_token", {&x, &token});
  const bool recording = should_record({&x, &token});
  Variable y(Tensor::empty({batch, tokens + 1, dim}, device), recording);
  const auto forward = device == Device::CUDA ? gpu::prepend_token_forward : cpu::prepend_token_forward;
  forward(batch, tokens, dim, x.value().data(), token.value().data(), y.value().data());
  detail::record_backward(recording, y, [x, token, batch, tokens, dim, device](Tensor& dy) mutable {
    const auto backward = device == Device::CUDA ? gpu::prepend_token_backward : cpu::prepend_token_backward;
    backward(batch, tokens, dim, dy.data(), detail::grad_or_null(x), detail::grad_or_null(token));
  });
  return y;
}

Variable add_batch_broadcast(const Variable& x, const Variable& e) {
  Shape sample = x.shape(), broadcast = e.shape();
  ST_CHECK(!sample.empty() && !broadcast.empty() && broadcast[0] == 1, "add_batch_broadcast: {} + {}: the second "
           "must be [1, ...]", shape_string(x.shape()), shape_string(e.shape()));
  sample.erase(sample.begin());
  broadcast.erase(broadcast.begin());
  ST_CHECK(sample == broadcast, "add_batch_broadcast: a sample of {} does not match {}", shape_string(x.shape()),
           shape_string(e.shape()));
  const int64_t batch = x.shape()[0], per_sample = shape_numel(sample);
  const Device device = detail::op_device("add_batch_broadcast", {&x, &e});
  const bool recording = should_record({&x, &e});
  Variable y(Tensor::empty(x.shape(), device), recording);
  const auto forward = device == Device::CUDA ? gpu::add_batch_broadcast_forward : cpu::add_batch_broadcast_forward;
  forward(batch, per_sample, x.value().data(), e.value().data(), y.value().data());
  detail::record_backward(recording, y, [x, e, batch, per_sample, device](Tensor& dy) mutable {
    const auto backward =
        device == Device::CUDA ? gpu::add_batch_broadcast_backward : cpu::add_batch_broadcast_backward;
    backward(batch, per_sample, dy.data(), detail::grad_or_null(x), detail::grad_or_null(e));
  });
  return y;
}

Variable select_token(const Variable& x, int64_t index) {
  const Shape& s = x.shape();
  ST_CHECK(s.size() == 3 && index >= 0 && index < s[1], "select_token: token {} of input {} ([batch, tokens, dim])",
           index, shape_string(s));
  const int64_t batch = s[0], tokens = s[1], dim = s[2];
  const Device device = detail::op_device("select_token", {&x});
  const bool recording = should_record({&x});
  Variable y(Tensor::empty({batch, dim}, device), recording);
  const auto forward = device == Device::CUDA ? gpu::select_token_forward : cpu::select_token_forward;
  forward(batch, tokens, dim, index, x.value().data(), y.value().data());
  detail::record_backward(recording, y, [x, batch, tokens, dim, index, device](Tensor& dy) mutable {
    const auto backward = device == Device::CUDA ? gpu::select_token_backward : cpu::select_token_backward;
    backward(batch, tokens, dim, index, dy.data(), x.grad_buffer().data());
  });
  return y;
}

}  // namespace st::ops
