// The differentiable ops: each computes its forward on the tensor's device and, when a tape is
// active and an input requires a gradient, records its backward (see engine/autograd.h). Backend
// code lives in kernels/<backend>/; these functions only check shapes, allocate, dispatch and record.
// Layouts: activations NHWC, conv weights KRSC, linear weights (out, in).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/autograd.h"
#include "engine/rng.h"

namespace st::cpu {
struct SparsePattern;
}

namespace st::ops {

// y[N, out] = x[N, in] W[out, in]^T + b[out]   (b may be an undefined Variable: no bias)
Variable linear(const Variable& x, const Variable& weight, const Variable& bias);
// The same over the weight's sparsity pattern only (kernels/cpu/sparse.h; CPU tensors): the values are
// gathered from `weight` at the call, the weight gradient is accumulated at the pattern's entries only.
Variable sparse_linear(const Variable& x, const Variable& weight, const Variable& bias,
                       std::shared_ptr<const cpu::SparsePattern> pattern);

// x [N, H, W, C], weight [K, R, S, C / groups], bias [K] or undefined
Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias, int64_t stride, int64_t pad,
                int64_t groups = 1);
// The same (one group) over the pattern of the weight viewed as [K, R*S*C] only (kernels/cpu/sparse.h;
// CPU tensors), as sparse_linear.
Variable sparse_conv2d(const Variable& x, const Variable& weight, const Variable& bias, int64_t stride, int64_t pad,
                       std::shared_ptr<const cpu::SparsePattern> pattern);

// Batch normalisation over N*H*W per channel (x may be [N, C] too). In training mode uses the batch
// statistics and updates the running ones (unbiased variance, PyTorch's convention):
//   running = (1 - momentum) * running + momentum * batch
// relu = true fuses the following ReLU: y = max(0, bn(x)) in one pass, one buffer, one backward.
Variable batchnorm(const Variable& x, const Variable& gamma, const Variable& beta, Tensor& running_mean,
                   Tensor& running_var, bool training, float momentum, float eps, bool relu = false);

Variable relu(const Variable& x);
Variable relu6(const Variable& x);  // min(max(x, 0), 6) (MobileNet)
Variable add(const Variable& a, const Variable& b);
Variable add_relu(const Variable& a, const Variable& b);  // max(0, a + b): the residual join, fused
Variable max_pool2d(const Variable& x, int64_t kernel, int64_t stride, int64_t pad = 0);
Variable avg_pool2d(const Variable& x, int64_t kernel, int64_t stride, int64_t pad = 0);
Variable global_avg_pool(const Variable& x);  // [N, H, W, C] -> [N, C]
Variable flatten(const Variable& x);
// Concatenation along the channel (last) axis; every input has the same leading dimensions (DenseNet).
Variable concat_channels(const std::vector<Variable>& inputs);
Variable scale(const Variable& x, float factor);  // factor * x (e.g. logits / temperature)          // [N, ...] -> [N, prod(...)] (NHWC order)
// Inverted dropout: in training, zero each element with probability p and scale survivors by 1/(1-p).
Variable dropout(const Variable& x, float p, bool training, Rng& rng);
// Option-A ResNet shortcut: x[:, ::stride, ::stride, :] with channels zero-padded to out_channels.
Variable pad_shortcut(const Variable& x, int64_t stride, int64_t out_channels);

// ---- transformer ops (vision transformer) ---------------------------------------------------------
// Same values in a new shape (no copy; the gradient is reshaped back), e.g. [B, T, D] <-> [B*T, D].
Variable reshape(const Variable& x, const Shape& shape);
// Layer normalisation over the last dimension with affine weight/bias (torch.nn.LayerNorm).
Variable layernorm(const Variable& x, const Variable& weight, const Variable& bias, float eps = 1e-5f);
Variable gelu(const Variable& x);     // exact GELU, x Phi(x) (torch.nn.GELU's default)
Variable softmax(const Variable& x);  // over the last dimension
// Fused multi-head self-attention: qkv [B, T, 3D] (q | k | v, each D split into `heads` heads) ->
// [B, T, D] = concat over heads of softmax(Q K^T / sqrt(D / heads)) V. Keeps the probabilities.
Variable attention(const Variable& qkv, int64_t heads);
// [B, N, D] with token [1, 1, D] -> [B, N + 1, D], the token first in every sample (ViT's class token).
Variable prepend_token(const Variable& x, const Variable& token);
// x [B, ...] + e [1, ...] broadcast over the batch (ViT's position embedding).
Variable add_batch_broadcast(const Variable& x, const Variable& e);
// [B, T, D] -> [B, D]: token `index` of every sample.
Variable select_token(const Variable& x, int64_t index);

// Mean softmax cross-entropy over the batch with label smoothing; returns a one-element Variable.
Variable softmax_cross_entropy(const Variable& logits, const std::vector<int32_t>& labels, float smoothing = 0.0f);
// Number of rows whose arg-max equals the label (ties: the first maximum).
int64_t count_correct(const Tensor& logits, const std::vector<int32_t>& labels);
// The arg-max of every row of [B, classes] logits (ties: the first maximum), on the host (logits on the
// GPU are copied).
std::vector<int32_t> argmax_rows(const Tensor& logits);

}  // namespace st::ops
