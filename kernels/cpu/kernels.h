// The CPU backend: the reference implementation of every op (plain C++, OpenMP, OpenBLAS sgemm).
// Every function works on raw contiguous fp32 arrays. Backward functions ACCUMULATE (+=) into the
// gradients they are given; a null gradient pointer means "not needed". The hot activation gradients
// (convolution, BatchNorm, residual join) are GradOut: with `overwrite` they write instead of add,
// into a buffer that holds no gradient yet (so it need not be zero-filled first). Parallel loops use static
// OpenMP schedules and fixed-order reductions, so results are bit-identical from run to run with the
// same thread count (resuming from a checkpoint relies on this).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/geometry.h"

namespace st::cpu {

// A gradient output: data null = not needed; overwrite = data is uninitialised, write every element.
// A plain pointer converts to the accumulating form.
struct GradOut {
  float* data = nullptr;
  bool overwrite = false;
  GradOut() = default;
  GradOut(float* p) : data(p) {}  // NOLINT(google-explicit-constructor): accumulate, as every backward
  GradOut(float* p, bool write) : data(p), overwrite(write) {}
  explicit operator bool() const { return data != nullptr; }
};

// out[i] = v into a fresh buffer (Overwrite), else out[i] += v: a template argument, so a loop over a
// fresh buffer never reads it.
template <bool Overwrite>
inline void store_gradient(float* out, int64_t i, float v) {
  if constexpr (Overwrite) {
    out[i] = v;
  } else {
    out[i] += v;
  }
}

// ---- gemm.cpp: row-major C = alpha * op(A) * op(B) + beta * C --------------------------------------
// gemm runs on the calling thread; parallel_gemm splits C into per-thread blocks (no reduction).
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void parallel_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
int thread_count();

// ---- linear.cpp: y[batch, out] = x[batch, in] * w[out, in]^T + b ---------------------------------
void linear_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y);
void linear_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* dy,
                     float* dx, float* dw, float* db);

// ---- conv2d.cpp: NHWC x KRSC, stride, padding, groups (im2col + sgemm; direct loops for grouped) ----
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y);
void conv2d_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, GradOut dx,
                     float* dw, float* db);

// conv2d_direct.cpp: the AVX-512 direct kernel behind conv2d_forward (and the stride-1 data
// gradient) where supported: one group (an output channel count that is not a multiple of 8 is computed
// padded to one), not 1x1/stride 1/unpadded, and not rows narrower than 8 pixels with weights past 512 KiB
// (those stream the weights per output row: im2col + sgemm).
// accumulate: y += conv(x, w) (b must then be null).
bool conv2d_direct_supported(const Conv2dGeometry& g);
bool conv2d_direct_weight_gradient_supported(const Conv2dGeometry& g);  // also out_channels % 8 == 0
void conv2d_forward_direct(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y,
                           bool accumulate);
void conv2d_weight_gradient_direct(const Conv2dGeometry& g, const float* x, const float* dy, float* dw);  // dw +=

// conv2d_planar.cpp: first layers (at most 4 input channels, stride 1, one group, output channels not
// a multiple of 8, kernels at most 7 wide) vectorised over output pixels; taken before the direct
// kernel. accumulate: y += conv(x, w) (b must then be null).
bool conv2d_planar_supported(const Conv2dGeometry& g);
void conv2d_forward_planar(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y,
                           bool accumulate);
void conv2d_weight_gradient_planar(const Conv2dGeometry& g, const float* x, const float* dy, float* dw);  // dw +=

// conv2d_depthwise.cpp: groups == in_channels == out_channels, channels as vector lanes.
bool conv2d_depthwise_supported(const Conv2dGeometry& g);
void conv2d_depthwise_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y);
void conv2d_depthwise_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx,
                               float* dw, float* db);

// ---- batchnorm.cpp: per-channel normalisation of [rows, channels] (rows = N*H*W) ------------------
// relu: the ReLU that follows BatchNorm in conv-BN-ReLU is fused in: y = max(0, bn(x)) in the forward.
// The training backward gates dy by y > 0, recomputing y's sign from x, gamma, beta and the batch
// statistics exactly as the forward computed y; the evaluation backward takes the output y
// (relu_output, null: no ReLU).
void batchnorm_forward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                             float eps, bool relu, float* y, float* batch_mean, float* batch_invstd, float* batch_var);
void batchnorm_forward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, float eps, bool relu, float* y);
void batchnorm_backward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                              const float* batch_mean, const float* batch_invstd, bool relu, const float* dy, GradOut dx,
                              float* dgamma, float* dbeta);
// Evaluation-mode backward (running statistics are constants): used by pruning scores on a frozen net.
void batchnorm_backward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma,
                             const float* running_mean, const float* running_var, float eps,
                             const float* relu_output, const float* dy, float* dx, float* dgamma, float* dbeta);

// ---- elementwise.cpp -----------------------------------------------------------------------------
void relu_forward(int64_t n, const float* x, float* y);
void relu_backward(int64_t n, const float* y, const float* dy, float* dx);  // uses the output
// ReLU6 (MobileNet): y = min(max(x, 0), 6); the gradient passes where 0 < y < 6.
void relu6_forward(int64_t n, const float* x, float* y);
void relu6_backward(int64_t n, const float* y, const float* dy, float* dx);
void add_forward(int64_t n, const float* a, const float* b, float* y);
// Residual join: y = max(0, a + b); backward: g = y > 0 ? dy : 0 accumulated into da and db.
void add_relu_forward(int64_t n, const float* a, const float* b, float* y);
void add_relu_backward(int64_t n, const float* y, const float* dy, GradOut da, GradOut db);
void accumulate(int64_t n, const float* source, float* destination);       // destination += source
// sums[c] += sum over rows of x[row, c] (deterministic: per-thread row ranges, combined in order)
void column_sums(int64_t rows, int64_t cols, const float* x, float* sums);
void scale_by_mask(int64_t n, const float* x, const float* scale, float* y);  // y = x * scale (dropout)
void scale_forward(int64_t n, const float* x, float factor, float* y);            // y = factor x
void scale_backward(int64_t n, const float* dy, float factor, float* dx);         // dx += factor dy
void accumulate_scaled_by_mask(int64_t n, const float* dy, const float* scale, float* dx);

// ---- concat.cpp: along the channel axis; rows = N*H*W, widths = channels of each input ------------
void concat_channels_forward(int64_t rows, const std::vector<const float*>& inputs,
                             const std::vector<int64_t>& widths, float* y);
void concat_channels_backward(int64_t rows, const std::vector<int64_t>& widths, const float* dy,
                              const std::vector<float*>& dx);  // dx[i] += slice i (null: skipped)

// ---- transformer ops (vision transformer) ---------------------------------------------------------
// layernorm.cpp: over the last dimension of [rows, dim], affine gamma/beta; keeps mean and 1/std per row.
void layernorm_forward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* beta, float eps,
                       float* y, float* mean, float* invstd);
void layernorm_backward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* mean,
                        const float* invstd, const float* dy, float* dx, float* dgamma, float* dbeta);
// gelu.cpp: exact GELU x * Phi(x) (erf form, torch.nn.GELU's default). The forward also writes dy/dx
// when `derivative` is not null (training); the backward reads it: dx += dy * derivative.
void gelu_forward(int64_t n, const float* x, float* y, float* derivative);
void gelu_backward(int64_t n, const float* derivative, const float* dy, float* dx);
// softmax.cpp: over the last dimension of [rows, cols] (forward may be in place); backward reads y.
void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y);
void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx);
void softmax_row_forward(int64_t cols, const float* x, float* y);  // one row, on the calling thread
void softmax_row_backward(int64_t cols, const float* y, const float* dy, float* dx);
// attention.cpp: fused multi-head self-attention. qkv [batch, tokens, 3 * dim] = [q | k | v], heads
// split dim; y [batch, tokens, dim] = concat over heads of softmax(Q K^T / sqrt(dim / heads)) V;
// probabilities [batch, heads, tokens, tokens] are written by the forward and read by the backward.
void attention_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, float* y,
                       float* probabilities);
void attention_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv,
                        const float* probabilities, const float* dy, float* dqkv);
// tokens.cpp: [batch, tokens, dim] plumbing: prepend one token row to every sample (class token),
// add a per-sample array to every sample (position embedding; its gradient sums over the batch),
// pick one token per sample.
void prepend_token_forward(int64_t batch, int64_t tokens, int64_t dim, const float* x, const float* token, float* y);
void prepend_token_backward(int64_t batch, int64_t tokens, int64_t dim, const float* dy, float* dx, float* dtoken);
void add_batch_broadcast_forward(int64_t batch, int64_t per_sample, const float* x, const float* e, float* y);
void add_batch_broadcast_backward(int64_t batch, int64_t per_sample, const float* dy, float* dx, float* de);
void select_token_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* x, float* y);
void select_token_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* dy, float* dx);

// ---- pooling.cpp (average pooling counts padded zeros, as PyTorch's default) ---------------------
void max_pool_forward(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax);
void max_pool_backward(const Pool2dGeometry& g, const int32_t* argmax, const float* dy, float* dx);
void avg_pool_forward(const Pool2dGeometry& g, const float* x, float* y);
void avg_pool_backward(const Pool2dGeometry& g, const float* dy, float* dx);
void global_avg_pool_forward(int64_t batch, int64_t pixels, int64_t channels, const float* x, float* y);
void global_avg_pool_backward(int64_t batch, int64_t pixels, int64_t channels, const float* dy, float* dx);
void pad_shortcut_forward(const PadShortcutGeometry& g, const float* x, float* y);
void pad_shortcut_backward(const PadShortcutGeometry& g, const float* dy, float* dx);

// ---- softmax_cross_entropy.cpp: mean over the batch of -sum_c q_c log softmax(z)_c with label
// smoothing q = (1 - s) onehot + s / classes. Writes the softmax probabilities for the backward.
double softmax_cross_entropy_forward(int64_t batch, int64_t classes, const float* logits, const int32_t* labels,
                                     float smoothing, float* probabilities);
void softmax_cross_entropy_backward(int64_t batch, int64_t classes, const float* probabilities,
                                    const int32_t* labels, float smoothing, float loss_grad, float* dlogits);

// ---- optimizer.cpp: one fused pass per tensor; mask (nullable) applied inside the step so a
// masked-out weight and its optimizer state are exactly 0 afterwards -------------------------------
struct SgdHyper { float lr, momentum, dampening, weight_decay; bool nesterov; };
void sgd_step(int64_t n, float* w, const float* g, float* velocity, const float* mask, const SgdHyper& h);
// The same step at the kept entries of a [rows, cols] weight only (a CSR pattern: row_start, col_index),
// for a weight whose pruned entries and their state are already exactly 0 (a dense masked step has run
// since the mask last changed): the kept entries come out bit-identical to sgd_step's.
void sgd_step_pattern(int64_t rows, int64_t cols, const int64_t* row_start, const int32_t* col_index, float* w,
                      const float* g, float* velocity, const SgdHyper& h);
struct AdamHyper { float lr, beta1, beta2, eps, weight_decay; bool decoupled; int64_t step; };
void adam_step(int64_t n, float* w, const float* g, float* m, float* v, const float* mask, const AdamHyper& h);
void adam_step_pattern(int64_t rows, int64_t cols, const int64_t* row_start, const int32_t* col_index, float* w,
                       const float* g, float* m, float* v, const AdamHyper& h);  // as sgd_step_pattern
struct RmsPropHyper { float lr, alpha, eps, weight_decay, momentum; };
void rmsprop_step(int64_t n, float* w, const float* g, float* square_avg, float* momentum_buffer,
                  const float* mask, const RmsPropHyper& h);
void rmsprop_step_pattern(int64_t rows, int64_t cols, const int64_t* row_start, const int32_t* col_index, float* w,
                          const float* g, float* square_avg, float* momentum_buffer, const RmsPropHyper& h);
void apply_mask(int64_t n, float* w, const float* mask);

}  // namespace st::cpu
