// See gpu_kernels.h. Every function runs its st::cuda (or st::vendor) call on the engine stream inside
// guarded(), which turns the backend's std::exception into an st::Error naming the engine function.
#include "engine/ops/gpu_kernels.h"

#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "engine/device.h"
#include "engine/error.h"

#ifdef ST_HAVE_CUDA
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/batchnorm.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/optimizer.h"
#include "kernels/cuda/pooling.h"
#include "kernels/cuda/softmax_cross_entropy.h"
#include "kernels/cuda/transformer.h"
#include "kernels/vendor/bn.h"
#include "kernels/vendor/vendor.h"
#else
// Without CUDA every body below is one fail(): the parameters are unused by design.
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif

namespace st::ops::gpu {
namespace {

#ifdef ST_HAVE_CUDA
template <typename Call>
void guarded(const char* name, Call&& call) {
  try {
    call();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(
        "gpu::{}: {} (kernels {}, tf32 {}; a kernel fault is reported by a later call: rerun with "
        "CUDA_LAUNCH_BLOCKING=1 to name it)",
        name, e.what(), kernel_source_name(kernel_source()), tf32() ? "on" : "off");
  }
}
bool vendor() { return kernel_source() == KernelSource::Vendor; }
#define ST_GPU(name, ...) guarded(name, [&] { __VA_ARGS__; })
#else
[[noreturn]] void unavailable(const char* name) {
  fail("gpu::{}: a cuda tensor reached an op, but {}", name, cuda_status().reason);
}
#define ST_GPU(name, ...) unavailable(name)
#endif

}  // namespace

// ---- DeviceInts ----------------------------------------------------------------------------------

DeviceInts::DeviceInts(int64_t count) : count_(count) {
  ST_CHECK(count >= 0, "DeviceInts of {} elements", count);
  require_cuda("gpu::DeviceInts");
  ST_GPU("DeviceInts", data_ = static_cast<int32_t*>(
                           cuda::device_allocate(static_cast<std::size_t>(count) * sizeof(int32_t), engine_stream())));
}

DeviceInts::DeviceInts(const std::vector<int32_t>& values) : DeviceInts(static_cast<int64_t>(values.size())) {
  ST_GPU("DeviceInts upload",
         cuda::copy_to_device(data_, values.data(), values.size() * sizeof(int32_t), engine_stream()));
}

DeviceInts::~DeviceInts() {
#ifdef ST_HAVE_CUDA
  if (data_ != nullptr) cuda::device_free(data_);
#endif
}

// ---- linear / conv2d -----------------------------------------------------------------------------

void linear_forward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y) {
  ST_GPU("linear_forward", vendor() ? vendor::linear_forward(batch, in, out, x, w, b, y, engine_stream())
                                    : cuda::linear_forward(batch, in, out, x, w, b, y, engine_stream()));
}

void linear_backward(int64_t batch, int64_t in, int64_t out, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db) {
  ST_GPU("linear_backward", vendor() ? vendor::linear_backward(batch, in, out, x, w, dy, dx, dw, db, engine_stream())
                                     : cuda::linear_backward(batch, in, out, x, w, dy, dx, dw, db, engine_stream()));
}

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) {
  ST_GPU("conv2d_forward", vendor() ? vendor::conv2d_forward(g, x, w, b, y, engine_stream())
                                    : cuda::conv2d_forward(g, x, w, b, y, engine_stream()));
}

void conv2d_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db) {
  ST_GPU("conv2d_backward", vendor() ? vendor::conv2d_backward(g, x, w, dy, dx, dw, db, engine_stream())
                                     : cuda::conv2d_backward(g, x, w, dy, dx, dw, db, engine_stream()));
}

// ---- batchnorm -----------------------------------------------------------------------------------

void batchnorm_forward_train(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                             float eps, bool relu, float* y, float* batch_mean, float* batch_invstd, float* batch_var) {
  ST_GPU("batchnorm_forward_train",
         vendor() ? vendor::batchnorm_forward_train(rows, channels, x, gamma, beta, eps, relu, y, batch_mean,
                                                    batch_invstd, batch_var, engine_stream())
                  : cuda::batchnorm_forward_train(rows, channels, x, gamma, beta, eps, relu, y, batch_mean,
                                                  batch_invstd, batch_var, engine_stream()));
}

void batchnorm_forward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, float eps, bool relu, float* y) {
  ST_GPU("batchnorm_forward_eval", vendor()
                                       ? vendor::batchnorm_forward_eval(rows, channels, x, gamma, beta, running_mean,
                                                                        running_var, eps, relu, y, engine_stream())
                                       : cuda::batchnorm_forward_eval(rows, channels, x, gamma, beta, running_mean,
                                                                      running_var, eps, relu, y, engine_stream()));
}

void batchnorm_backward_train(int64_t rows, int64_t channels, const float* x, const float* gamma,
                              const float* batch_mean, const float* batch_invstd, const float* relu_output,
                              const float* dy, float* dx, float* dgamma, float* dbeta) {
  ST_GPU("batchnorm_backward_train",
         vendor() ? vendor::batchnorm_backward_train(rows, channels, x, gamma, batch_mean, batch_invstd, relu_output,
                                                     dy, dx, dgamma, dbeta, engine_stream())
                  : cuda::batchnorm_backward_train(rows, channels, x, gamma, batch_mean, batch_invstd, relu_output, dy,
                                                   dx, dgamma, dbeta, engine_stream()));
}

void batchnorm_backward_eval(int64_t rows, int64_t channels, const float* x, const float* gamma,
                             const float* running_mean, const float* running_var, float eps, const float* relu_output,
                             const float* dy, float* dx, float* dgamma, float* dbeta) {
  // cuDNN has no evaluation-mode backward (kernels/vendor/bn.h): ours for both kernel sources.
  ST_GPU("batchnorm_backward_eval",
         cuda::batchnorm_backward_eval(rows, channels, x, gamma, running_mean, running_var, eps, relu_output, dy, dx,
                                       dgamma, dbeta, engine_stream()));
}

void batchnorm_update_running_stats(int64_t channels, const float* batch_mean, const float* batch_var, float momentum,
                                    float unbiased, float* running_mean, float* running_var) {
  ST_GPU("batchnorm_update_running_stats",
         cuda::batchnorm_update_running_stats(channels, batch_mean, batch_var, momentum, unbiased, running_mean,
                                              running_var, engine_stream()));
}

// ---- elementwise, concat -------------------------------------------------------------------------

void relu_forward(int64_t n, const float* x, float* y) {
  ST_GPU("relu_forward", cuda::relu_forward(n, x, y, engine_stream()));
}
void relu_backward(int64_t n, const float* y, const float* dy, float* dx) {
  ST_GPU("relu_backward", cuda::relu_backward(n, y, dy, dx, engine_stream()));
}
void relu6_forward(int64_t n, const float* x, float* y) {
  ST_GPU("relu6_forward", cuda::relu6_forward(n, x, y, engine_stream()));
}
void relu6_backward(int64_t n, const float* y, const float* dy, float* dx) {
  ST_GPU("relu6_backward", cuda::relu6_backward(n, y, dy, dx, engine_stream()));
}
void add_forward(int64_t n, const float* a, const float* b, float* y) {
  ST_GPU("add_forward", cuda::add_forward(n, a, b, y, engine_stream()));
}
void add_relu_forward(int64_t n, const float* a, const float* b, float* y) {
  ST_GPU("add_relu_forward", cuda::add_relu_forward(n, a, b, y, engine_stream()));
}
void add_relu_backward(int64_t n, const float* y, const float* dy, float* da, float* db) {
  ST_GPU("add_relu_backward", cuda::add_relu_backward(n, y, dy, da, db, engine_stream()));
}
// ---- transformer ops ------------------------------------------------------------------------------

void layernorm_forward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* beta, float eps,
                       float* y, float* mean, float* invstd) {
  ST_GPU("layernorm_forward",
         cuda::layernorm_forward(rows, dim, x, gamma, beta, eps, y, mean, invstd, engine_stream()));
}
void layernorm_backward(int64_t rows, int64_t dim, const float* x, const float* gamma, const float* mean,
                        const float* invstd, const float* dy, float* dx, float* dgamma, float* dbeta) {
  ST_GPU("layernorm_backward",
         cuda::layernorm_backward(rows, dim, x, gamma, mean, invstd, dy, dx, dgamma, dbeta, engine_stream()));
}
void gelu_forward(int64_t n, const float* x, float* y, float* derivative) {
  ST_GPU("gelu_forward", cuda::gelu_forward(n, x, y, derivative, engine_stream()));
}
void gelu_backward(int64_t n, const float* derivative, const float* dy, float* dx) {
  ST_GPU("gelu_backward", cuda::gelu_backward(n, derivative, dy, dx, engine_stream()));
}
void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) {
  ST_GPU("softmax_forward", cuda::softmax_forward(rows, cols, x, y, engine_stream()));
}
void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx) {
  ST_GPU("softmax_backward", cuda::softmax_backward(rows, cols, y, dy, dx, engine_stream()));
}
void attention_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, float* y,
                       float* lse) {
  ST_GPU("attention_forward", vendor() ? vendor::attention_forward(batch, tokens, dim, heads, qkv, y, engine_stream())
                                       : cuda::attention_forward(batch, tokens, dim, heads, qkv, y, lse, engine_stream()));
}
void attention_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t heads, const float* qkv, const float* y,
                        const float* lse, const float* dy, float* dqkv) {
  ST_GPU("attention_backward",
         vendor() ? vendor::attention_backward(batch, tokens, dim, heads, qkv, dy, dqkv, engine_stream())
                  : cuda::attention_backward(batch, tokens, dim, heads, qkv, y, lse, dy, dqkv, engine_stream()));
}
void prepend_token_forward(int64_t batch, int64_t tokens, int64_t dim, const float* x, const float* token, float* y) {
  ST_GPU("prepend_token_forward", cuda::prepend_token_forward(batch, tokens, dim, x, token, y, engine_stream()));
}
void prepend_token_backward(int64_t batch, int64_t tokens, int64_t dim, const float* dy, float* dx, float* dtoken) {
  ST_GPU("prepend_token_backward", cuda::prepend_token_backward(batch, tokens, dim, dy, dx, dtoken, engine_stream()));
}
void add_batch_broadcast_forward(int64_t batch, int64_t per_sample, const float* x, const float* e, float* y) {
  ST_GPU("add_batch_broadcast_forward", cuda::add_batch_broadcast_forward(batch, per_sample, x, e, y, engine_stream()));
}
void add_batch_broadcast_backward(int64_t batch, int64_t per_sample, const float* dy, float* dx, float* de) {
  ST_GPU("add_batch_broadcast_backward",
         cuda::add_batch_broadcast_backward(batch, per_sample, dy, dx, de, engine_stream()));
}
void select_token_forward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* x, float* y) {
  ST_GPU("select_token_forward", cuda::select_token_forward(batch, tokens, dim, index, x, y, engine_stream()));
}
void select_token_backward(int64_t batch, int64_t tokens, int64_t dim, int64_t index, const float* dy, float* dx) {
  ST_GPU("select_token_backward", cuda::select_token_backward(batch, tokens, dim, index, dy, dx, engine_stream()));
}

void accumulate(int64_t n, const float* source, float* destination) {
  ST_GPU("accumulate", cuda::accumulate(n, source, destination, engine_stream()));
}
void scale_by_mask(int64_t n, const float* x, const float* scale, float* y) {
  ST_GPU("scale_by_mask", cuda::scale_by_mask(n, x, scale, y, engine_stream()));
}
void scale_forward(int64_t n, const float* x, float factor, float* y) {
  ST_GPU("scale_forward", cuda::scale_forward(n, x, factor, y, engine_stream()));
}
void scale_backward(int64_t n, const float* dy, float factor, float* dx) {
  ST_GPU("scale_backward", cuda::scale_backward(n, dy, factor, dx, engine_stream()));
}
void accumulate_scaled_by_mask(int64_t n, const float* dy, const float* scale, float* dx) {
  ST_GPU("accumulate_scaled_by_mask", cuda::accumulate_scaled_by_mask(n, dy, scale, dx, engine_stream()));
}
void concat_channels_forward(int64_t rows, const std::vector<const float*>& inputs, const std::vector<int64_t>& widths,
                             float* y) {
  ST_GPU("concat_channels_forward", cuda::concat_channels_forward(rows, inputs, widths, y, engine_stream()));
}
void concat_channels_backward(int64_t rows, const std::vector<int64_t>& widths, const float* dy,
                              const std::vector<float*>& dx) {
  ST_GPU("concat_channels_backward", cuda::concat_channels_backward(rows, widths, dy, dx, engine_stream()));
}

// ---- pooling -------------------------------------------------------------------------------------

void max_pool_forward(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax) {
  ST_GPU("max_pool_forward", cuda::max_pool_forward(g, x, y, argmax, engine_stream()));
}
void max_pool_backward(const Pool2dGeometry& g, const int32_t* argmax, const float* dy, float* dx) {
  ST_GPU("max_pool_backward", cuda::max_pool_backward(g, argmax, dy, dx, engine_stream()));
}
void avg_pool_forward(const Pool2dGeometry& g, const float* x, float* y) {
  ST_GPU("avg_pool_forward", cuda::avg_pool_forward(g, x, y, engine_stream()));
}
void avg_pool_backward(const Pool2dGeometry& g, const float* dy, float* dx) {
  ST_GPU("avg_pool_backward", cuda::avg_pool_backward(g, dy, dx, engine_stream()));
}
void global_avg_pool_forward(int64_t batch, int64_t pixels, int64_t channels, const float* x, float* y) {
  ST_GPU("global_avg_pool_forward", cuda::global_avg_pool_forward(batch, pixels, channels, x, y, engine_stream()));
}
void global_avg_pool_backward(int64_t batch, int64_t pixels, int64_t channels, const float* dy, float* dx) {
  ST_GPU("global_avg_pool_backward", cuda::global_avg_pool_backward(batch, pixels, channels, dy, dx, engine_stream()));
}
void pad_shortcut_forward(const PadShortcutGeometry& g, const float* x, float* y) {
  ST_GPU("pad_shortcut_forward", cuda::pad_shortcut_forward(g, x, y, engine_stream()));
}
void pad_shortcut_backward(const PadShortcutGeometry& g, const float* dy, float* dx) {
  ST_GPU("pad_shortcut_backward", cuda::pad_shortcut_backward(g, dy, dx, engine_stream()));
}

// ---- softmax cross-entropy -----------------------------------------------------------------------

void softmax_cross_entropy_forward(int64_t batch, int64_t classes, const float* logits, const int32_t* labels,
                                   float smoothing, float* probabilities, float* loss) {
  ST_GPU("softmax_cross_entropy_forward", {
    // The mean loss in double (as the CPU computes it), then rounded into the float loss tensor.
    const cuda::DeviceBuffer mean_loss = cuda::DeviceBuffer::of<double>(1, engine_stream());
    cuda::softmax_cross_entropy_forward(batch, classes, logits, labels, smoothing, probabilities,
                                        mean_loss.as<double>(), engine_stream());
    cuda::store_loss_as_float(mean_loss.as<double>(), loss, engine_stream());
  });
}

void softmax_cross_entropy_backward(int64_t batch, int64_t classes, const float* probabilities, const int32_t* labels,
                                    float smoothing, const float* loss_grad, float* dlogits) {
  ST_GPU("softmax_cross_entropy_backward",
         cuda::softmax_cross_entropy_backward_device_grad(batch, classes, probabilities, labels, smoothing, loss_grad,
                                                          dlogits, engine_stream()));
}

int64_t count_correct(int64_t batch, int64_t classes, const float* logits, const int32_t* labels) {
  int64_t correct = 0;
  ST_GPU("count_correct", {
    const cuda::DeviceBuffer counter = cuda::DeviceBuffer::of<unsigned long long>(1, engine_stream());
    ST_CUDA_CHECK(cudaMemsetAsync(counter.data(), 0, sizeof(unsigned long long), engine_stream()));
    cuda::count_correct(batch, classes, logits, labels, counter.as<unsigned long long>(), engine_stream());
    correct = static_cast<int64_t>(cuda::read_device_scalar(counter.as<unsigned long long>(), engine_stream()));
  });
  return correct;
}

// ---- optimizer -----------------------------------------------------------------------------------

struct OptimizerGroup::Impl {
  std::vector<OptimizerSlot> slots;
  int64_t rebuilds = 0;
#ifdef ST_HAVE_CUDA
  std::unique_ptr<cuda::TensorList> list;

  const cuda::TensorList& list_for(const std::vector<OptimizerSlot>& wanted) {
    if (list != nullptr && wanted == slots) return *list;
    list.reset();  // its device arrays go back to the cache first (stream-ordered)
    list = std::make_unique<cuda::TensorList>(wanted, engine_stream());
    slots = wanted;
    ++rebuilds;
    return *list;
  }
#endif
};

OptimizerGroup::OptimizerGroup() : impl_(std::make_unique<Impl>()) {}
OptimizerGroup::~OptimizerGroup() = default;
int64_t OptimizerGroup::rebuilds() const { return impl_->rebuilds; }

void OptimizerGroup::sgd_step(const std::vector<OptimizerSlot>& slots, const cpu::SgdHyper& h) {
  ST_GPU("sgd_step", cuda::sgd_step(impl_->list_for(slots), h, nullptr, engine_stream()));
}

void OptimizerGroup::adam_step(const std::vector<OptimizerSlot>& slots, const cpu::AdamHyper& h) {
  ST_GPU("adam_step", cuda::adam_step(impl_->list_for(slots), h, nullptr, engine_stream()));
}

void OptimizerGroup::rmsprop_step(const std::vector<OptimizerSlot>& slots, const cpu::RmsPropHyper& h) {
  ST_GPU("rmsprop_step", cuda::rmsprop_step(impl_->list_for(slots), h, nullptr, engine_stream()));
}

void apply_mask(int64_t n, float* w, const float* mask) {
  ST_GPU("apply_mask", {
    const cuda::TensorList list({cuda::TensorSlot{w, nullptr, nullptr, nullptr, mask, n}}, engine_stream());
    cuda::apply_mask(list, engine_stream());
  });
}

}  // namespace st::ops::gpu
