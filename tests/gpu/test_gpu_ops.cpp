// GPU suite: our CUDA op families (kernels/cuda: batchnorm, elementwise, pooling,
// softmax_cross_entropy, optimizer, allocator) and cuDNN BatchNorm (kernels/vendor/bn.h) against the
// CPU reference (kernels/cpu), forward and backward, on shapes that do not divide the launch sizes
// (rows not a multiple of a block, channels 3, 13, 64, 1000). Gradient outputs start from random
// values on both sides, so a match also checks the ACCUMULATE (+=) contract.
//
// Error measure: normalised error = max_i |gpu_i - cpu_i| / max_i |cpu_i|. Thresholds:
//   0 (exact): copies, selects and single IEEE adds/multiplies done in the CPU's order (relu, relu6,
//              add, add_relu, accumulate, scale_by_mask, scale_forward, concat, max pool and its
//              gather backward, avg pool forward, global avg pool forward, pad shortcut, apply_mask,
//              count_correct);
//   1e-6: elementwise with a multiply-add that the compilers may fuse into an FMA, or a math-library
//         function (erf, exp): scale_backward, accumulate_scaled_by_mask, gelu, avg/global pool
//         backward, softmax probabilities and gradient, BatchNorm eval forward and eval dx, SGD;
//   1e-5: reductions (BatchNorm train forward/backward, BatchNorm eval dgamma/dbeta, column sums,
//         the mean loss), Adam and RMSProp (division by sqrt of the state);
//   1e-4: cuDNN BatchNorm (its own summation order and rsqrt).
// On a machine without a GPU every case returns at once (tests/gpu/gpu_test_helpers.h prints one line).
#include <doctest/doctest.h>

#include "tests/gpu/gpu_test_helpers.h"

#ifdef ST_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/batchnorm.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/optimizer.h"
#include "kernels/cuda/pooling.h"
#include "kernels/cuda/softmax_cross_entropy.h"
#include "kernels/vendor/bn.h"

namespace {

using st::cuda::DeviceBuffer;
using Floats = std::vector<float>;

constexpr double kExact = 0.0;
constexpr double kElementwise = 1e-6;
constexpr double kReduction = 1e-5;
constexpr double kVendor = 1e-4;

// One non-blocking stream for the whole suite (graph capture needs a stream other than the legacy
// default one); never destroyed.
cudaStream_t stream() {
  static const cudaStream_t created = [] {
    cudaStream_t s = nullptr;
    const cudaError_t status = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (status != cudaSuccess)
      throw std::runtime_error(std::string("cudaStreamCreateWithFlags failed: ") + cudaGetErrorString(status));
    return s;
  }();
  return created;
}

void cuda_ok(cudaError_t status, const char* what) {
  INFO(what << ": " << cudaGetErrorName(status) << " (" << cudaGetErrorString(status)
            << "); if a kernel faulted, rerun with CUDA_LAUNCH_BLOCKING=1 to name it");
  REQUIRE(status == cudaSuccess);
}

void synchronize() { cuda_ok(cudaStreamSynchronize(stream()), "cudaStreamSynchronize"); }

Floats random_floats(std::size_t n, st::Rng& rng, float scale = 1.0f, float offset = 0.0f) {
  Floats v(n);
  for (float& value : v) value = offset + scale * rng.normal();
  return v;
}

template <typename T>
DeviceBuffer to_device(const std::vector<T>& host) {
  return DeviceBuffer::from_host(host, stream());
}
DeviceBuffer device_floats(std::size_t n) { return DeviceBuffer::of<float>(n, stream()); }
Floats to_host(const DeviceBuffer& buffer) { return buffer.download<float>(); }
float* ptr(const DeviceBuffer& buffer) { return buffer.as<float>(); }

// max |got - want| / max |want|; infinity when got holds a NaN that want does not.
double normalised_error(const Floats& got, const Floats& want, std::size_t& worst_index) {
  double worst = 0.0, scale = 0.0;
  worst_index = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double difference = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    if (std::isnan(difference)) {
      worst_index = i;
      return std::numeric_limits<double>::infinity();
    }
    if (difference > worst) {
      worst = difference;
      worst_index = i;
    }
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  return worst == 0.0 ? 0.0 : worst / std::max(scale, 1e-30);
}

void check_close(const std::string& what, const Floats& got, const Floats& want, double tolerance) {
  REQUIRE_MESSAGE(got.size() == want.size(), what << ": sizes differ");
  std::size_t index = 0;
  const double error = normalised_error(got, want, index);
  const double got_value = got.empty() ? 0.0 : static_cast<double>(got[index]);
  const double want_value = want.empty() ? 0.0 : static_cast<double>(want[index]);
  INFO(what << ": normalised error " << error << " (tolerance " << tolerance << "), worst at index " << index
            << ": gpu " << got_value << " vs cpu " << want_value);
  CHECK(error <= tolerance);
}

std::size_t size_of(int64_t n) { return static_cast<std::size_t>(n); }

// ---- BatchNorm -----------------------------------------------------------------------------------
using BnForwardTrain = void (*)(int64_t, int64_t, const float*, const float*, const float*, float, bool, float*, float*,
                                float*, float*, cudaStream_t);
using BnForwardEval = void (*)(int64_t, int64_t, const float*, const float*, const float*, const float*, const float*,
                               float, bool, float*, cudaStream_t);
using BnBackwardTrain = void (*)(int64_t, int64_t, const float*, const float*, const float*, const float*, const float*,
                                 const float*, float*, float*, float*, cudaStream_t);

struct Backend {
  const char* name;
  BnForwardTrain forward_train;
  BnForwardEval forward_eval;
  BnBackwardTrain backward_train;
  double tolerance;       // reductions
  double eval_tolerance;  // eval forward (no reduction)
};

const Backend kBackends[] = {
    {"ours", &st::cuda::batchnorm_forward_train, &st::cuda::batchnorm_forward_eval, &st::cuda::batchnorm_backward_train,
     kReduction, kElementwise},
    {"cuDNN", &st::vendor::batchnorm_forward_train, &st::vendor::batchnorm_forward_eval,
     &st::vendor::batchnorm_backward_train, kVendor, kVendor},
};

void check_batchnorm(int64_t rows, int64_t channels, bool relu, st::Rng& rng) {
  CAPTURE(rows);
  CAPTURE(channels);
  CAPTURE(relu);
  const std::size_t n = size_of(rows * channels), c = size_of(channels);
  const float eps = 1e-5f;
  const Floats x = random_floats(n, rng, 2.0f, 0.5f), gamma = random_floats(c, rng, 0.5f, 1.0f),
               beta = random_floats(c, rng);
  const Floats dy = random_floats(n, rng), dx0 = random_floats(n, rng), dgamma0 = random_floats(c, rng),
               dbeta0 = random_floats(c, rng);
  Floats running_mean = random_floats(c, rng, 0.5f), running_var(c);
  for (float& v : running_var) v = rng.uniform(0.5f, 2.0f);

  // CPU reference
  Floats y(n), mean(c), invstd(c), var(c);
  st::cpu::batchnorm_forward_train(rows, channels, x.data(), gamma.data(), beta.data(), eps, relu, y.data(),
                                   mean.data(), invstd.data(), var.data());
  Floats dx = dx0, dgamma = dgamma0, dbeta = dbeta0;
  st::cpu::batchnorm_backward_train(rows, channels, x.data(), gamma.data(), beta.data(), mean.data(), invstd.data(),
                                    relu, dy.data(), dx.data(), dgamma.data(), dbeta.data());
  Floats y_eval(n);
  st::cpu::batchnorm_forward_eval(rows, channels, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                  running_var.data(), eps, relu, y_eval.data());
  Floats dx_eval = dx0, dgamma_eval = dgamma0, dbeta_eval = dbeta0;
  st::cpu::batchnorm_backward_eval(rows, channels, x.data(), gamma.data(), running_mean.data(), running_var.data(), eps,
                                   relu ? y_eval.data() : nullptr, dy.data(), dx_eval.data(), dgamma_eval.data(),
                                   dbeta_eval.data());

  const DeviceBuffer d_x = to_device(x), d_gamma = to_device(gamma), d_beta = to_device(beta), d_dy = to_device(dy);
  // The backward gets the CPU's statistics and output, so it is compared on its own.
  const DeviceBuffer d_mean_cpu = to_device(mean), d_invstd_cpu = to_device(invstd), d_y_cpu = to_device(y);
  const DeviceBuffer d_running_mean = to_device(running_mean), d_running_var = to_device(running_var);
  for (const Backend& backend : kBackends) {
    const std::string who = backend.name;
    {
      DeviceBuffer d_y = device_floats(n), d_mean = device_floats(c), d_invstd = device_floats(c),
                   d_var = device_floats(c);
      backend.forward_train(rows, channels, ptr(d_x), ptr(d_gamma), ptr(d_beta), eps, relu, ptr(d_y), ptr(d_mean),
                            ptr(d_invstd), ptr(d_var), stream());
      check_close(who + " forward_train y", to_host(d_y), y, backend.tolerance);
      check_close(who + " forward_train batch_mean", to_host(d_mean), mean, backend.tolerance);
      check_close(who + " forward_train batch_invstd", to_host(d_invstd), invstd, backend.tolerance);
      check_close(who + " forward_train batch_var", to_host(d_var), var, backend.tolerance);
    }
    {
      DeviceBuffer d_dx = to_device(dx0), d_dgamma = to_device(dgamma0), d_dbeta = to_device(dbeta0);
      backend.backward_train(rows, channels, ptr(d_x), ptr(d_gamma), ptr(d_mean_cpu), ptr(d_invstd_cpu),
                             relu ? ptr(d_y_cpu) : nullptr, ptr(d_dy), ptr(d_dx), ptr(d_dgamma), ptr(d_dbeta),
                             stream());
      check_close(who + " backward_train dx", to_host(d_dx), dx, backend.tolerance);
      check_close(who + " backward_train dgamma", to_host(d_dgamma), dgamma, backend.tolerance);
      check_close(who + " backward_train dbeta", to_host(d_dbeta), dbeta, backend.tolerance);
    }
    {  // null outputs are skipped; the others are unchanged
      DeviceBuffer d_dx = to_device(dx0), d_dgamma = to_device(dgamma0), d_dbeta = to_device(dbeta0);
      backend.backward_train(rows, channels, ptr(d_x), ptr(d_gamma), ptr(d_mean_cpu), ptr(d_invstd_cpu),
                             relu ? ptr(d_y_cpu) : nullptr, ptr(d_dy), ptr(d_dx), nullptr, nullptr, stream());
      backend.backward_train(rows, channels, ptr(d_x), ptr(d_gamma), ptr(d_mean_cpu), ptr(d_invstd_cpu),
                             relu ? ptr(d_y_cpu) : nullptr, ptr(d_dy), nullptr, ptr(d_dgamma), nullptr, stream());
      backend.backward_train(rows, channels, ptr(d_x), ptr(d_gamma), ptr(d_mean_cpu), ptr(d_invstd_cpu),
                             relu ? ptr(d_y_cpu) : nullptr, ptr(d_dy), nullptr, nullptr, ptr(d_dbeta), stream());
      check_close(who + " backward_train dx alone", to_host(d_dx), dx, backend.tolerance);
      check_close(who + " backward_train dgamma alone", to_host(d_dgamma), dgamma, backend.tolerance);
      check_close(who + " backward_train dbeta alone", to_host(d_dbeta), dbeta, backend.tolerance);
    }
    {
      DeviceBuffer d_y = device_floats(n);
      backend.forward_eval(rows, channels, ptr(d_x), ptr(d_gamma), ptr(d_beta), ptr(d_running_mean), ptr(d_running_var),
                           eps, relu, ptr(d_y), stream());
      check_close(who + " forward_eval y", to_host(d_y), y_eval, backend.eval_tolerance);
    }
  }
  // evaluation-mode backward: ours only (cuDNN has none)
  const DeviceBuffer d_y_eval_cpu = to_device(y_eval);
  DeviceBuffer d_dx = to_device(dx0), d_dgamma = to_device(dgamma0), d_dbeta = to_device(dbeta0);
  st::cuda::batchnorm_backward_eval(rows, channels, ptr(d_x), ptr(d_gamma), ptr(d_running_mean), ptr(d_running_var),
                                    eps, relu ? ptr(d_y_eval_cpu) : nullptr, ptr(d_dy), ptr(d_dx), ptr(d_dgamma),
                                    ptr(d_dbeta), stream());
  check_close("ours backward_eval dx", to_host(d_dx), dx_eval, kElementwise);
  check_close("ours backward_eval dgamma", to_host(d_dgamma), dgamma_eval, kReduction);
  check_close("ours backward_eval dbeta", to_host(d_dbeta), dbeta_eval, kReduction);
}

// ---- optimizer -------------------------------------------------------------------------------------
enum class Optimizer { kSgd, kAdam, kRmsProp };
enum class Scalars { kByValue, kDevice, kGraph };

struct OptimizerCase {
  const char* name;
  Optimizer kind;
  st::cpu::SgdHyper sgd;
  st::cpu::AdamHyper adam;
  st::cpu::RmsPropHyper rmsprop;
  bool state0, state1;  // whether the slots carry state arrays
  double tolerance;
};

const st::cpu::SgdHyper kNoSgd{0.0f, 0.0f, 0.0f, 0.0f, false};
const st::cpu::AdamHyper kNoAdam{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, false, 0};
const st::cpu::RmsPropHyper kNoRmsProp{0.0f, 0.0f, 0.0f, 0.0f, 0.0f};

const OptimizerCase kOptimizerCases[] = {
    {"sgd momentum", Optimizer::kSgd, {0.1f, 0.9f, 0.0f, 5e-4f, false}, kNoAdam, kNoRmsProp, true, false, kElementwise},
    {"sgd nesterov dampening",
     Optimizer::kSgd,
     {0.1f, 0.9f, 0.1f, 1e-3f, true},
     kNoAdam,
     kNoRmsProp,
     true,
     false,
     kElementwise},
    {"sgd plain (no velocity)",
     Optimizer::kSgd,
     {0.1f, 0.0f, 0.0f, 0.0f, false},
     kNoAdam,
     kNoRmsProp,
     false,
     false,
     kElementwise},
    {"adam l2",
     Optimizer::kAdam,
     kNoSgd,
     {1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, false, 1},
     kNoRmsProp,
     true,
     true,
     kReduction},
    {"adamw",
     Optimizer::kAdam,
     kNoSgd,
     {1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, true, 1},
     kNoRmsProp,
     true,
     true,
     kReduction},
    {"rmsprop", Optimizer::kRmsProp, kNoSgd, kNoAdam, {1e-2f, 0.99f, 1e-8f, 1e-4f, 0.0f}, true, false, kReduction},
    {"rmsprop momentum",
     Optimizer::kRmsProp,
     kNoSgd,
     kNoAdam,
     {1e-2f, 0.99f, 1e-8f, 1e-4f, 0.9f},
     true,
     true,
     kReduction},
};

// Tensor sizes around the 4096-element chunk of a block; tensor 2 has no mask.
const int64_t kTensorSizes[] = {1, 3, 4095, 4096, 4097, 10000};
constexpr int kSteps = 3;
const float kLrFactors[kSteps] = {1.0f, 0.5f, 0.2f};  // the LR changes from step to step

void run_optimizer_case(const OptimizerCase& oc, Scalars scalars_mode, st::Rng& rng) {
  CAPTURE(oc.name);
  CAPTURE(static_cast<int>(scalars_mode));
  const std::size_t tensors = std::size(kTensorSizes);
  struct Host {
    Floats w, state0, state1, mask;
    std::vector<Floats> grads;  // one per step
  };
  std::vector<Host> host(tensors);
  for (std::size_t t = 0; t < tensors; ++t) {
    const std::size_t n = size_of(kTensorSizes[t]);
    Host& h = host[t];
    h.w = random_floats(n, rng);
    // state starts non-zero everywhere (also where masked): the step must zero it there
    h.state0 = random_floats(n, rng, 0.1f);
    h.state1 = random_floats(n, rng, 0.1f);
    if (oc.kind == Optimizer::kAdam)
      for (float& v : h.state1) v = std::fabs(v);  // Adam's v >= 0
    if (oc.kind == Optimizer::kRmsProp)
      for (float& v : h.state0) v = std::fabs(v);  // RMSProp's square average >= 0
    if (t != 2) {
      h.mask.resize(n);
      for (float& m : h.mask) m = rng.uniform() < 0.5f ? 0.0f : 1.0f;
    }
    for (int s = 0; s < kSteps; ++s) h.grads.push_back(random_floats(n, rng));
  }

  // device copies and the tensor list
  struct Device {
    DeviceBuffer w, g, state0, state1, mask;
  };
  std::vector<Device> device(tensors);
  std::vector<st::cuda::TensorSlot> slots(tensors);
  for (std::size_t t = 0; t < tensors; ++t) {
    Device& d = device[t];
    d.w = to_device(host[t].w);
    d.g = to_device(host[t].grads[0]);
    if (oc.state0) d.state0 = to_device(host[t].state0);
    if (oc.state1) d.state1 = to_device(host[t].state1);
    if (!host[t].mask.empty()) d.mask = to_device(host[t].mask);
    slots[t] = st::cuda::TensorSlot{ptr(d.w),
                                    ptr(d.g),
                                    oc.state0 ? ptr(d.state0) : nullptr,
                                    oc.state1 ? ptr(d.state1) : nullptr,
                                    host[t].mask.empty() ? nullptr : ptr(d.mask),
                                    kTensorSizes[t]};
  }
  const st::cuda::TensorList list(slots, stream());
  CHECK(list.blocks() == 1 + 1 + 1 + 1 + 2 + 3);  // ceil(n / 4096) per tensor

  DeviceBuffer d_scalars = DeviceBuffer::of<st::cuda::StepScalars>(1, stream());
  const auto* device_scalars = scalars_mode == Scalars::kByValue ? nullptr : d_scalars.as<st::cuda::StepScalars>();
  // The hyperparameters the GPU step gets: with device scalars, lr and step are deliberately wrong
  // by value, so a kernel that read them instead of the device scalars would fail the comparison.
  auto gpu_hypers = [&](int step, st::cpu::SgdHyper& sgd, st::cpu::AdamHyper& adam, st::cpu::RmsPropHyper& rms) {
    sgd = oc.sgd;
    adam = oc.adam;
    rms = oc.rmsprop;
    sgd.lr = oc.sgd.lr * kLrFactors[step];
    adam.lr = oc.adam.lr * kLrFactors[step];
    adam.step = step + 1;
    rms.lr = oc.rmsprop.lr * kLrFactors[step];
    if (scalars_mode != Scalars::kByValue) {
      const float lr = oc.kind == Optimizer::kSgd ? sgd.lr : oc.kind == Optimizer::kAdam ? adam.lr : rms.lr;
      std::vector<st::cuda::StepScalars> value{oc.kind == Optimizer::kAdam ? st::cuda::step_scalars(adam)
                                                                           : st::cuda::step_scalars(lr)};
      d_scalars.upload(value);
      sgd.lr = adam.lr = rms.lr = 1e6f;
      adam.step = 1000;
    }
  };
  auto launch = [&](const st::cpu::SgdHyper& sgd, const st::cpu::AdamHyper& adam, const st::cpu::RmsPropHyper& rms) {
    switch (oc.kind) {
      case Optimizer::kSgd:
        st::cuda::sgd_step(list, sgd, device_scalars, stream());
        break;
      case Optimizer::kAdam:
        st::cuda::adam_step(list, adam, device_scalars, stream());
        break;
      case Optimizer::kRmsProp:
        st::cuda::rmsprop_step(list, rms, device_scalars, stream());
        break;
    }
  };

  cudaGraphExec_t graph_exec = nullptr;
  if (scalars_mode == Scalars::kGraph) {  // capture one step; replayed below with new scalars and grads
    st::cpu::SgdHyper sgd{};
    st::cpu::AdamHyper adam{};
    st::cpu::RmsPropHyper rms{};
    gpu_hypers(0, sgd, adam, rms);
    cudaGraph_t graph = nullptr;
    cuda_ok(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    launch(sgd, adam, rms);
    cuda_ok(cudaStreamEndCapture(stream(), &graph), "cudaStreamEndCapture");
    cuda_ok(cudaGraphInstantiate(&graph_exec, graph, 0), "cudaGraphInstantiate");
    cuda_ok(cudaGraphDestroy(graph), "cudaGraphDestroy");
  }

  for (int step = 0; step < kSteps; ++step) {
    // CPU step with this step's LR (and t = step + 1)
    for (std::size_t t = 0; t < tensors; ++t) {
      Host& h = host[t];
      const int64_t n = kTensorSizes[t];
      const float* mask = h.mask.empty() ? nullptr : h.mask.data();
      const float* g = h.grads[static_cast<std::size_t>(step)].data();
      switch (oc.kind) {
        case Optimizer::kSgd: {
          st::cpu::SgdHyper hyper = oc.sgd;
          hyper.lr = oc.sgd.lr * kLrFactors[step];
          st::cpu::sgd_step(n, h.w.data(), g, oc.state0 ? h.state0.data() : nullptr, mask, hyper);
          break;
        }
        case Optimizer::kAdam: {
          st::cpu::AdamHyper hyper = oc.adam;
          hyper.lr = oc.adam.lr * kLrFactors[step];
          hyper.step = step + 1;
          st::cpu::adam_step(n, h.w.data(), g, h.state0.data(), h.state1.data(), mask, hyper);
          break;
        }
        case Optimizer::kRmsProp: {
          st::cpu::RmsPropHyper hyper = oc.rmsprop;
          hyper.lr = oc.rmsprop.lr * kLrFactors[step];
          st::cpu::rmsprop_step(n, h.w.data(), g, h.state0.data(), oc.state1 ? h.state1.data() : nullptr, mask, hyper);
          break;
        }
      }
    }
    // GPU step: this step's gradients into the same buffers, then one multi-tensor launch
    for (std::size_t t = 0; t < tensors; ++t) device[t].g.upload(host[t].grads[static_cast<std::size_t>(step)]);
    st::cpu::SgdHyper sgd{};
    st::cpu::AdamHyper adam{};
    st::cpu::RmsPropHyper rms{};
    gpu_hypers(step, sgd, adam, rms);
    if (scalars_mode == Scalars::kGraph) {
      cuda_ok(cudaGraphLaunch(graph_exec, stream()), "cudaGraphLaunch");
    } else {
      launch(sgd, adam, rms);
    }
    synchronize();
  }
  if (graph_exec != nullptr) cuda_ok(cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy");

  for (std::size_t t = 0; t < tensors; ++t) {
    CAPTURE(t);
    const Host& h = host[t];
    const Floats w = to_host(device[t].w);
    check_close(std::string(oc.name) + " w", w, h.w, oc.tolerance);
    Floats s0, s1;
    if (oc.state0) {
      s0 = to_host(device[t].state0);
      check_close(std::string(oc.name) + " state0", s0, h.state0, oc.tolerance);
    }
    if (oc.state1) {
      s1 = to_host(device[t].state1);
      check_close(std::string(oc.name) + " state1", s1, h.state1, oc.tolerance);
    }
    // the invariant: masked-out weights and their state are exactly 0
    std::size_t nonzero = 0, masked = 0;
    for (std::size_t i = 0; i < h.mask.size(); ++i) {
      if (h.mask[i] != 0.0f) continue;
      ++masked;
      if (w[i] != 0.0f || (oc.state0 && s0[i] != 0.0f) || (oc.state1 && s1[i] != 0.0f)) ++nonzero;
    }
    INFO(oc.name << ": " << nonzero << " of " << masked << " masked positions hold a non-zero weight or state");
    CHECK(nonzero == 0);
  }
}

}  // namespace
#endif  // ST_HAVE_CUDA

TEST_SUITE("gpu") {
  TEST_CASE("gpu ops: BatchNorm (ours and cuDNN) matches the CPU, train and eval, forward and backward") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(101);
    // rows: tiny, not a multiple of any block, and 70001 = several row chunks (pass 1 has <= 512)
    const int64_t shapes[][2] = {{2, 3}, {7, 13}, {1000, 13}, {4099, 64}, {257, 1000}, {70001, 16}};
    for (const auto& shape : shapes)
      for (const bool relu : {false, true}) check_batchnorm(shape[0], shape[1], relu, rng);
#endif
  }

  TEST_CASE("gpu ops: BatchNorm is deterministic (bit-identical on repeat)") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(102);
    const int64_t rows = 70001, channels = 64;
    const std::size_t n = size_of(rows * channels), c = size_of(channels);
    const DeviceBuffer x = to_device(random_floats(n, rng, 3.0f, 1.0f)), gamma = to_device(random_floats(c, rng)),
                       beta = to_device(random_floats(c, rng)), dy = to_device(random_floats(n, rng));
    std::vector<Floats> results[2];
    for (auto& result : results) {
      DeviceBuffer y = device_floats(n), mean = device_floats(c), invstd = device_floats(c), var = device_floats(c);
      st::cuda::batchnorm_forward_train(rows, channels, ptr(x), ptr(gamma), ptr(beta), 1e-5f, true, ptr(y), ptr(mean),
                                        ptr(invstd), ptr(var), stream());
      DeviceBuffer dx = to_device(Floats(n, 0.0f)), dgamma = to_device(Floats(c, 0.0f)),
                   dbeta = to_device(Floats(c, 0.0f));
      st::cuda::batchnorm_backward_train(rows, channels, ptr(x), ptr(gamma), ptr(mean), ptr(invstd), ptr(y), ptr(dy),
                                         ptr(dx), ptr(dgamma), ptr(dbeta), stream());
      for (const DeviceBuffer* b : {&y, &mean, &invstd, &var, &dx, &dgamma, &dbeta}) result.push_back(to_host(*b));
    }
    for (std::size_t i = 0; i < results[0].size(); ++i) {
      CAPTURE(i);
      CHECK(results[0][i] == results[1][i]);
    }
#endif
  }

  TEST_CASE("gpu ops: elementwise ops, column sums and concatenation match the CPU") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(103);
    for (const int64_t count : {int64_t{1}, int64_t{1000}, int64_t{262147}}) {
      CAPTURE(count);
      const std::size_t n = size_of(count);
      const Floats x = random_floats(n, rng, 4.0f), b = random_floats(n, rng), dy = random_floats(n, rng),
                   dx0 = random_floats(n, rng);
      Floats keep(n);  // dropout-style scale: 0 or 1 / (1 - p)
      for (float& k : keep) k = rng.uniform() < 0.3f ? 0.0f : 1.0f / 0.7f;
      const DeviceBuffer d_x = to_device(x), d_b = to_device(b), d_dy = to_device(dy), d_keep = to_device(keep);

      auto forward = [&](const char* name, double tolerance, auto cpu_op, auto gpu_op) {
        Floats want(n);
        cpu_op(want.data());
        DeviceBuffer got = device_floats(n);
        gpu_op(ptr(got));
        check_close(name, to_host(got), want, tolerance);
      };
      auto backward = [&](const char* name, double tolerance, auto cpu_op, auto gpu_op) {
        Floats want = dx0;
        cpu_op(want.data());
        DeviceBuffer got = to_device(dx0);
        gpu_op(ptr(got));
        check_close(name, to_host(got), want, tolerance);
      };
      cudaStream_t s = stream();
      Floats relu_y(n), relu6_y(n), add_relu_y(n);
      st::cpu::relu_forward(count, x.data(), relu_y.data());
      st::cpu::relu6_forward(count, x.data(), relu6_y.data());
      st::cpu::add_relu_forward(count, x.data(), b.data(), add_relu_y.data());
      const DeviceBuffer d_relu_y = to_device(relu_y), d_relu6_y = to_device(relu6_y),
                         d_add_relu_y = to_device(add_relu_y);

      forward(
          "relu_forward", kExact, [&](float* y) { st::cpu::relu_forward(count, x.data(), y); },
          [&](float* y) { st::cuda::relu_forward(count, ptr(d_x), y, s); });
      backward(
          "relu_backward", kExact, [&](float* dx) { st::cpu::relu_backward(count, relu_y.data(), dy.data(), dx); },
          [&](float* dx) { st::cuda::relu_backward(count, ptr(d_relu_y), ptr(d_dy), dx, s); });
      forward(
          "relu6_forward", kExact, [&](float* y) { st::cpu::relu6_forward(count, x.data(), y); },
          [&](float* y) { st::cuda::relu6_forward(count, ptr(d_x), y, s); });
      backward(
          "relu6_backward", kExact, [&](float* dx) { st::cpu::relu6_backward(count, relu6_y.data(), dy.data(), dx); },
          [&](float* dx) { st::cuda::relu6_backward(count, ptr(d_relu6_y), ptr(d_dy), dx, s); });
      forward(
          "add_forward", kExact, [&](float* y) { st::cpu::add_forward(count, x.data(), b.data(), y); },
          [&](float* y) { st::cuda::add_forward(count, ptr(d_x), ptr(d_b), y, s); });
      forward(
          "add_relu_forward", kExact, [&](float* y) { st::cpu::add_relu_forward(count, x.data(), b.data(), y); },
          [&](float* y) { st::cuda::add_relu_forward(count, ptr(d_x), ptr(d_b), y, s); });
      backward(
          "add_relu_backward da (db null)", kExact,
          [&](float* dx) { st::cpu::add_relu_backward(count, add_relu_y.data(), dy.data(), dx, nullptr); },
          [&](float* dx) { st::cuda::add_relu_backward(count, ptr(d_add_relu_y), ptr(d_dy), dx, nullptr, s); });
      backward(
          "add_relu_backward db (da null)", kExact,
          [&](float* dx) { st::cpu::add_relu_backward(count, add_relu_y.data(), dy.data(), nullptr, dx); },
          [&](float* dx) { st::cuda::add_relu_backward(count, ptr(d_add_relu_y), ptr(d_dy), nullptr, dx, s); });
      {  // both gradients
        Floats want_a = dx0, want_b = dx0;
        std::reverse(want_b.begin(), want_b.end());
        DeviceBuffer got_a = to_device(want_a), got_b = to_device(want_b);
        st::cpu::add_relu_backward(count, add_relu_y.data(), dy.data(), want_a.data(), want_b.data());
        st::cuda::add_relu_backward(count, ptr(d_add_relu_y), ptr(d_dy), ptr(got_a), ptr(got_b), s);
        check_close("add_relu_backward da", to_host(got_a), want_a, kExact);
        check_close("add_relu_backward db", to_host(got_b), want_b, kExact);
      }
      backward(
          "accumulate", kExact, [&](float* dx) { st::cpu::accumulate(count, dy.data(), dx); },
          [&](float* dx) { st::cuda::accumulate(count, ptr(d_dy), dx, s); });
      forward(
          "scale_by_mask", kExact, [&](float* y) { st::cpu::scale_by_mask(count, x.data(), keep.data(), y); },
          [&](float* y) { st::cuda::scale_by_mask(count, ptr(d_x), ptr(d_keep), y, s); });
      forward(
          "scale_forward", kExact, [&](float* y) { st::cpu::scale_forward(count, x.data(), 0.37f, y); },
          [&](float* y) { st::cuda::scale_forward(count, ptr(d_x), 0.37f, y, s); });
      backward(
          "scale_backward", kElementwise, [&](float* dx) { st::cpu::scale_backward(count, dy.data(), 0.37f, dx); },
          [&](float* dx) { st::cuda::scale_backward(count, ptr(d_dy), 0.37f, dx, s); });
      backward(
          "accumulate_scaled_by_mask", kElementwise,
          [&](float* dx) { st::cpu::accumulate_scaled_by_mask(count, dy.data(), keep.data(), dx); },
          [&](float* dx) { st::cuda::accumulate_scaled_by_mask(count, ptr(d_dy), ptr(d_keep), dx, s); });
      forward(
          "gelu_forward (inference)", kElementwise,
          [&](float* y) { st::cpu::gelu_forward(count, x.data(), y, nullptr); },
          [&](float* y) { st::cuda::gelu_forward(count, ptr(d_x), y, nullptr, s); });
      {  // training: y and dy/dx; the backward multiplies by the saved derivative
        Floats want_y(n), want_derivative(n), want_dx = dx0;
        st::cpu::gelu_forward(count, x.data(), want_y.data(), want_derivative.data());
        st::cpu::gelu_backward(count, want_derivative.data(), dy.data(), want_dx.data());
        DeviceBuffer got_y = device_floats(n), got_derivative = device_floats(n), got_dx = to_device(dx0);
        st::cuda::gelu_forward(count, ptr(d_x), ptr(got_y), ptr(got_derivative), s);
        check_close("gelu_forward (training) y", to_host(got_y), want_y, kElementwise);
        check_close("gelu_forward (training) derivative", to_host(got_derivative), want_derivative, kElementwise);
        const DeviceBuffer d_derivative = to_device(want_derivative);  // the backward on its own
        st::cuda::gelu_backward(count, ptr(d_derivative), ptr(d_dy), ptr(got_dx), s);
        check_close("gelu_backward", to_host(got_dx), want_dx, kElementwise);
      }
    }

    // column sums: accumulate into random sums; 70001 rows span several row chunks
    const int64_t shapes[][2] = {{1, 3}, {7, 13}, {4099, 64}, {257, 1000}, {70001, 5}};
    for (const auto& shape : shapes) {
      const int64_t rows = shape[0], cols = shape[1];
      CAPTURE(rows);
      CAPTURE(cols);
      const Floats x = random_floats(size_of(rows * cols), rng, 1.0f, 0.3f);
      Floats want = random_floats(size_of(cols), rng);
      DeviceBuffer got = to_device(want);
      const DeviceBuffer d_x = to_device(x);
      st::cpu::column_sums(rows, cols, x.data(), want.data());
      st::cuda::column_sums(rows, cols, ptr(d_x), ptr(got), stream());
      check_close("column_sums", to_host(got), want, kReduction);
    }

    // concatenation along channels (one empty input), backward with one gradient not wanted
    const int64_t rows = 1001;
    const std::vector<int64_t> widths{3, 13, 0, 64};
    int64_t total = 0;
    for (int64_t w : widths) total += w;
    std::vector<Floats> inputs;
    std::vector<DeviceBuffer> d_inputs;
    std::vector<const float*> cpu_inputs, gpu_inputs;
    for (int64_t w : widths) {
      inputs.push_back(random_floats(size_of(rows * w), rng));
      d_inputs.push_back(to_device(inputs.back()));
    }
    for (std::size_t i = 0; i < widths.size(); ++i) {
      cpu_inputs.push_back(inputs[i].data());
      gpu_inputs.push_back(ptr(d_inputs[i]));
    }
    Floats y(size_of(rows * total));
    st::cpu::concat_channels_forward(rows, cpu_inputs, widths, y.data());
    DeviceBuffer d_y = device_floats(y.size());
    st::cuda::concat_channels_forward(rows, gpu_inputs, widths, ptr(d_y), stream());
    check_close("concat_channels_forward", to_host(d_y), y, kExact);

    const Floats dy = random_floats(y.size(), rng);
    const DeviceBuffer d_dy = to_device(dy);
    std::vector<Floats> grads;
    std::vector<DeviceBuffer> d_grads;
    std::vector<float*> cpu_grads, gpu_grads;
    for (int64_t w : widths) {
      grads.push_back(random_floats(size_of(rows * w), rng));
      d_grads.push_back(to_device(grads.back()));
    }
    for (std::size_t i = 0; i < widths.size(); ++i) {
      cpu_grads.push_back(i == 1 ? nullptr : grads[i].data());
      gpu_grads.push_back(i == 1 ? nullptr : ptr(d_grads[i]));
    }
    const Floats untouched = grads[1];
    st::cpu::concat_channels_backward(rows, widths, dy.data(), cpu_grads);
    st::cuda::concat_channels_backward(rows, widths, ptr(d_dy), gpu_grads, stream());
    for (std::size_t i = 0; i < widths.size(); ++i) {
      CAPTURE(i);
      check_close("concat_channels_backward", to_host(d_grads[i]), grads[i], kExact);
    }
    check_close("concat_channels_backward: null gradient left alone", to_host(d_grads[1]), untouched, kExact);
#endif
  }

  TEST_CASE("gpu ops: pooling (max with argmax, avg, global avg, pad shortcut) matches the CPU") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(104);
    // {batch, in_h, in_w, channels, kernel, stride, pad}: ResNet stem, odd input with an unused last
    // row/column, stride 1 padded, kernel 1 stride 2 (inputs no window covers), a larger odd image.
    const st::Pool2dGeometry geometries[] = {{2, 7, 7, 3, 3, 2, 1},
                                             {3, 9, 7, 13, 2, 2, 0},
                                             {2, 8, 8, 64, 3, 1, 1},
                                             {2, 5, 5, 13, 1, 2, 0},
                                             {1, 33, 31, 3, 3, 2, 1}};
    for (const st::Pool2dGeometry& g : geometries) {
      CAPTURE(g.in_h);
      CAPTURE(g.in_w);
      CAPTURE(g.channels);
      CAPTURE(g.kernel);
      CAPTURE(g.stride);
      CAPTURE(g.pad);
      const std::size_t in_size = size_of(g.batch * g.in_h * g.in_w * g.channels);
      const std::size_t out_size = size_of(g.batch * g.out_h() * g.out_w() * g.channels);
      for (const bool ties : {false, true}) {
        CAPTURE(ties);
        // with ties: values in {-2, ..., 2}, so windows often hold several maxima (first one wins)
        Floats x = random_floats(in_size, rng);
        if (ties)
          for (float& v : x) v = std::round(std::clamp(v * 1.5f, -2.0f, 2.0f));
        const Floats dy = random_floats(out_size, rng), dx0 = random_floats(in_size, rng);
        const DeviceBuffer d_x = to_device(x), d_dy = to_device(dy);

        Floats y(out_size), dx = dx0;
        std::vector<int32_t> argmax(out_size);
        st::cpu::max_pool_forward(g, x.data(), y.data(), argmax.data());
        st::cpu::max_pool_backward(g, argmax.data(), dy.data(), dx.data());
        DeviceBuffer d_y = device_floats(out_size), d_argmax = DeviceBuffer::of<int32_t>(out_size, stream()),
                     d_dx = to_device(dx0);
        st::cuda::max_pool_forward(g, ptr(d_x), ptr(d_y), d_argmax.as<int32_t>(), stream());
        st::cuda::max_pool_backward(g, d_argmax.as<int32_t>(), ptr(d_dy), ptr(d_dx), stream());
        check_close("max_pool_forward", to_host(d_y), y, kExact);
        CHECK_MESSAGE(d_argmax.download<int32_t>() == argmax, "max_pool_forward argmax differs from the CPU");
        check_close("max_pool_backward", to_host(d_dx), dx, kExact);

        Floats y_avg(out_size), dx_avg = dx0;
        st::cpu::avg_pool_forward(g, x.data(), y_avg.data());
        st::cpu::avg_pool_backward(g, dy.data(), dx_avg.data());
        DeviceBuffer d_y_avg = device_floats(out_size), d_dx_avg = to_device(dx0);
        st::cuda::avg_pool_forward(g, ptr(d_x), ptr(d_y_avg), stream());
        st::cuda::avg_pool_backward(g, ptr(d_dy), ptr(d_dx_avg), stream());
        check_close("avg_pool_forward", to_host(d_y_avg), y_avg, kExact);
        check_close("avg_pool_backward", to_host(d_dx_avg), dx_avg, kElementwise);
      }
    }

    const int64_t global_shapes[][3] = {{2, 49, 64}, {3, 1, 13}, {2, 64, 1000}, {5, 7, 3}};  // batch, pixels, channels
    for (const auto& shape : global_shapes) {
      const int64_t batch = shape[0], pixels = shape[1], channels = shape[2];
      CAPTURE(batch);
      CAPTURE(pixels);
      CAPTURE(channels);
      const Floats x = random_floats(size_of(batch * pixels * channels), rng),
                   dy = random_floats(size_of(batch * channels), rng),
                   dx0 = random_floats(size_of(batch * pixels * channels), rng);
      Floats y(size_of(batch * channels)), dx = dx0;
      st::cpu::global_avg_pool_forward(batch, pixels, channels, x.data(), y.data());
      st::cpu::global_avg_pool_backward(batch, pixels, channels, dy.data(), dx.data());
      const DeviceBuffer d_x = to_device(x), d_dy = to_device(dy);
      DeviceBuffer d_y = device_floats(y.size()), d_dx = to_device(dx0);
      st::cuda::global_avg_pool_forward(batch, pixels, channels, ptr(d_x), ptr(d_y), stream());
      st::cuda::global_avg_pool_backward(batch, pixels, channels, ptr(d_dy), ptr(d_dx), stream());
      check_close("global_avg_pool_forward", to_host(d_y), y, kExact);
      check_close("global_avg_pool_backward", to_host(d_dx), dx, kElementwise);
    }

    // {batch, in_h, in_w, in_channels, out_channels, stride}
    const st::PadShortcutGeometry shortcuts[] = {{2, 8, 8, 16, 32, 2}, {2, 7, 7, 3, 13, 2}, {1, 5, 5, 13, 13, 1}};
    for (const st::PadShortcutGeometry& g : shortcuts) {
      CAPTURE(g.in_h);
      CAPTURE(g.in_channels);
      CAPTURE(g.out_channels);
      CAPTURE(g.stride);
      const std::size_t in_size = size_of(g.batch * g.in_h * g.in_w * g.in_channels);
      const std::size_t out_size = size_of(g.batch * g.out_h() * g.out_w() * g.out_channels);
      const Floats x = random_floats(in_size, rng), dy = random_floats(out_size, rng),
                   dx0 = random_floats(in_size, rng);
      Floats y(out_size), dx = dx0;
      st::cpu::pad_shortcut_forward(g, x.data(), y.data());
      st::cpu::pad_shortcut_backward(g, dy.data(), dx.data());
      const DeviceBuffer d_x = to_device(x), d_dy = to_device(dy);
      DeviceBuffer d_y = device_floats(out_size), d_dx = to_device(dx0);
      st::cuda::pad_shortcut_forward(g, ptr(d_x), ptr(d_y), stream());
      st::cuda::pad_shortcut_backward(g, ptr(d_dy), ptr(d_dx), stream());
      check_close("pad_shortcut_forward", to_host(d_y), y, kExact);
      check_close("pad_shortcut_backward", to_host(d_dx), dx, kExact);
    }
#endif
  }

  TEST_CASE("gpu ops: softmax cross entropy and count_correct match the CPU") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(105);
    struct Case {
      int64_t batch, classes;
      float smoothing;
    };
    const Case cases[] = {{1, 3, 0.0f}, {7, 10, 0.1f}, {64, 1000, 0.1f}, {300, 13, 0.0f}};
    for (const Case& k : cases) {
      CAPTURE(k.batch);
      CAPTURE(k.classes);
      CAPTURE(k.smoothing);
      const std::size_t n = size_of(k.batch * k.classes);
      const Floats logits = random_floats(n, rng, 3.0f);
      std::vector<int32_t> labels(size_of(k.batch));
      for (int32_t& label : labels)
        label = static_cast<int32_t>(rng.uniform_int(static_cast<std::uint64_t>(k.classes)));
      Floats probabilities(n);
      const double loss = st::cpu::softmax_cross_entropy_forward(k.batch, k.classes, logits.data(), labels.data(),
                                                                 k.smoothing, probabilities.data());
      const DeviceBuffer d_logits = to_device(logits), d_labels = to_device(labels);
      DeviceBuffer d_probabilities = device_floats(n), d_loss = DeviceBuffer::of<double>(1, stream());
      st::cuda::softmax_cross_entropy_forward(k.batch, k.classes, ptr(d_logits), d_labels.as<int32_t>(), k.smoothing,
                                              ptr(d_probabilities), d_loss.as<double>(), stream());
      const double gpu_loss = st::cuda::read_device_scalar(d_loss.as<double>(), stream());
      INFO("mean loss: gpu " << gpu_loss << " vs cpu " << loss);
      CHECK(std::fabs(gpu_loss - loss) <= kReduction * std::max(std::fabs(loss), 1e-30));
      check_close("softmax probabilities", to_host(d_probabilities), probabilities, kElementwise);

      // backward from the CPU's probabilities, accumulated into random values
      const Floats dlogits0 = random_floats(n, rng);
      Floats dlogits = dlogits0;
      st::cpu::softmax_cross_entropy_backward(k.batch, k.classes, probabilities.data(), labels.data(), k.smoothing,
                                              0.5f, dlogits.data());
      const DeviceBuffer d_probabilities_cpu = to_device(probabilities);
      DeviceBuffer d_dlogits = to_device(dlogits0);
      st::cuda::softmax_cross_entropy_backward(k.batch, k.classes, ptr(d_probabilities_cpu), d_labels.as<int32_t>(),
                                               k.smoothing, 0.5f, ptr(d_dlogits), stream());
      check_close("softmax_cross_entropy_backward", to_host(d_dlogits), dlogits, kElementwise);

      // count_correct on logits with many ties (integers in [-2, 2]); the first maximum counts
      Floats tied = logits;
      for (float& v : tied) v = std::round(std::clamp(v / 2.0f, -2.0f, 2.0f));
      for (std::size_t i = 0; i < labels.size(); i += 3) labels[i] = 0;  // ties at class 0 are common
      int64_t expected = 0;
      for (int64_t s = 0; s < k.batch; ++s) {
        const float* row = tied.data() + s * k.classes;
        int64_t best = 0;
        for (int64_t c = 1; c < k.classes; ++c)
          if (row[c] > row[best]) best = c;
        if (best == labels[size_of(s)]) ++expected;
      }
      const DeviceBuffer d_tied = to_device(tied), d_tied_labels = to_device(labels);
      DeviceBuffer d_correct = DeviceBuffer::of<unsigned long long>(1, stream());
      cuda_ok(cudaMemsetAsync(d_correct.data(), 0, sizeof(unsigned long long), stream()), "cudaMemsetAsync");
      st::cuda::count_correct(k.batch, k.classes, ptr(d_tied), d_tied_labels.as<int32_t>(),
                              d_correct.as<unsigned long long>(), stream());
      st::cuda::count_correct(k.batch, k.classes, ptr(d_tied), d_tied_labels.as<int32_t>(),
                              d_correct.as<unsigned long long>(), stream());  // accumulates
      const unsigned long long correct = st::cuda::read_device_scalar(d_correct.as<unsigned long long>(), stream());
      CHECK(correct == static_cast<unsigned long long>(2 * expected));
    }
#endif
  }

  TEST_CASE("gpu ops: masked multi-tensor SGD/Adam/RMSProp match the CPU over 3 steps; masked entries stay 0") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(106);
    for (const OptimizerCase& oc : kOptimizerCases) run_optimizer_case(oc, Scalars::kByValue, rng);
    // lr (and Adam's bias corrections) from a device StepScalars, eagerly and replayed from a CUDA graph
    for (const OptimizerCase& oc : kOptimizerCases) run_optimizer_case(oc, Scalars::kDevice, rng);
    for (const OptimizerCase& oc : kOptimizerCases) run_optimizer_case(oc, Scalars::kGraph, rng);
#endif
  }

  TEST_CASE("gpu ops: multi-tensor apply_mask matches the CPU; bad tensor lists are refused") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    st::Rng rng(107);
    std::vector<Floats> weights, masks;
    std::vector<DeviceBuffer> d_weights, d_masks;
    std::vector<st::cuda::TensorSlot> slots;
    for (const int64_t n : kTensorSizes) {
      weights.push_back(random_floats(size_of(n), rng));
      Floats mask(size_of(n));
      for (float& m : mask) m = rng.uniform() < 0.4f ? 0.0f : 1.0f;
      masks.push_back(mask);
      d_weights.push_back(to_device(weights.back()));
      d_masks.push_back(to_device(mask));
    }
    for (std::size_t t = 0; t < weights.size(); ++t) {
      st::cuda::TensorSlot slot;
      slot.w = ptr(d_weights[t]);
      slot.mask = t == 2 ? nullptr : ptr(d_masks[t]);  // tensor 2: dense, left alone
      slot.n = kTensorSizes[t];
      slots.push_back(slot);
      if (t != 2) st::cpu::apply_mask(kTensorSizes[t], weights[t].data(), masks[t].data());
    }
    const st::cuda::TensorList list(slots, stream());
    st::cuda::apply_mask(list, stream());
    for (std::size_t t = 0; t < weights.size(); ++t) {
      CAPTURE(t);
      check_close("apply_mask", to_host(d_weights[t]), weights[t], kExact);
    }
    // an optimizer step on a list without gradients is refused with the tensor named
    CHECK_THROWS_WITH_AS(st::cuda::sgd_step(list, st::cpu::SgdHyper{0.1f, 0.0f, 0.0f, 0.0f, false}, nullptr, stream()),
                         doctest::Contains("tensor 0"), std::invalid_argument);
    st::cuda::TensorSlot no_weight;
    no_weight.n = 10;
    CHECK_THROWS_AS(st::cuda::TensorList({no_weight}, stream()), std::invalid_argument);
#endif
  }

  TEST_CASE("gpu ops: bad arguments are refused before any launch") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    float* none = nullptr;
    CHECK_THROWS_AS(
        st::cuda::batchnorm_forward_train(0, 3, none, none, none, 1e-5f, false, none, none, none, none, stream()),
        std::invalid_argument);
    CHECK_THROWS_AS(st::cuda::relu_forward(-1, none, none, stream()), std::invalid_argument);
    CHECK_THROWS_AS(st::cuda::relu_forward(10, none, none, stream()), std::invalid_argument);
    st::cuda::relu_forward(0, none, none, stream());          // empty: nothing to do, no error
    const st::Pool2dGeometry too_small{1, 2, 2, 3, 3, 1, 0};  // a 3x3 window does not fit a 2x2 image
    CHECK_THROWS_AS(st::cuda::max_pool_forward(too_small, none, none, nullptr, stream()), std::invalid_argument);
    CHECK_THROWS_AS(
        st::vendor::batchnorm_forward_train(1, 3, none, none, none, 1e-5f, false, none, none, none, none, stream()),
        std::invalid_argument);
    synchronize();
#endif
  }

  TEST_CASE("gpu ops: caching allocator: steady-state steps make no cudaMalloc") {
    if (!st::test::gpu_available()) return;
#ifdef ST_HAVE_CUDA
    using st::cuda::device_size_class;
    CHECK(device_size_class(0) == 0);
    CHECK(device_size_class(1) == 512);
    CHECK(device_size_class(512) == 512);
    CHECK(device_size_class(513) == 1024);
    CHECK(device_size_class(std::size_t{1} << 20) == std::size_t{1} << 20);
    CHECK(device_size_class((std::size_t{1} << 20) + 1) == (std::size_t{1} << 20) + (std::size_t{1} << 17));
    CHECK(device_size_class(std::size_t{3} << 20) == std::size_t{3} << 20);
    CHECK(device_size_class((std::size_t{3} << 20) + 1) == (std::size_t{3} << 20) + (std::size_t{1} << 18));

    const std::size_t sizes[] = {
        1, 100, 4096, std::size_t{1} << 20, (std::size_t{1} << 20) + 1, std::size_t{3} << 20, std::size_t{50} << 20};
    auto pattern = [&] {
      std::vector<DeviceBuffer> live;
      for (const std::size_t bytes : sizes) live.emplace_back(bytes, stream());
      for (const std::size_t bytes : sizes) live.emplace_back(bytes, stream());  // two of each alive at once
      live.erase(live.begin(), live.begin() + 3);
      for (const std::size_t bytes : sizes) live.emplace_back(bytes / 2 + 1, stream());
    };
    const st::cuda::DeviceAllocatorStats before = st::cuda::device_allocator_stats();
    pattern();
    pattern();
    const st::cuda::DeviceAllocatorStats warm = st::cuda::device_allocator_stats();
    CHECK(warm.bytes_in_use == before.bytes_in_use);
    for (int i = 0; i < 10; ++i) pattern();
    const st::cuda::DeviceAllocatorStats after = st::cuda::device_allocator_stats();
    INFO("cudaMalloc calls: " << warm.cuda_malloc_calls << " after warm-up, " << after.cuda_malloc_calls
                              << " after 10 more repetitions");
    CHECK(after.cuda_malloc_calls == warm.cuda_malloc_calls);
    CHECK(after.bytes_in_use == before.bytes_in_use);
    CHECK(after.allocations > warm.allocations);

    // A "step" of kernels that take scratch from the cache (BatchNorm train forward + backward, column
    // sums, softmax cross entropy): after one warm-up step, further steps make no cudaMalloc.
    st::Rng rng(108);
    const int64_t rows = 4099, channels = 64;
    const std::size_t n = size_of(rows * channels), c = size_of(channels);
    const DeviceBuffer x = to_device(random_floats(n, rng)), gamma = to_device(random_floats(c, rng)),
                       beta = to_device(random_floats(c, rng)), dy = to_device(random_floats(n, rng));
    DeviceBuffer y = device_floats(n), mean = device_floats(c), invstd = device_floats(c), var = device_floats(c),
                 dx = device_floats(n), dgamma = device_floats(c), dbeta = device_floats(c);
    std::vector<int32_t> labels(size_of(rows) / 64);
    for (int32_t& label : labels) label = static_cast<int32_t>(rng.uniform_int(10));
    const DeviceBuffer d_labels = to_device(labels);
    DeviceBuffer probabilities = device_floats(n), loss = DeviceBuffer::of<double>(1, stream());
    auto step = [&] {
      st::cuda::batchnorm_forward_train(rows, channels, ptr(x), ptr(gamma), ptr(beta), 1e-5f, true, ptr(y), ptr(mean),
                                        ptr(invstd), ptr(var), stream());
      st::cuda::batchnorm_backward_train(rows, channels, ptr(x), ptr(gamma), ptr(mean), ptr(invstd), ptr(y), ptr(dy),
                                         ptr(dx), ptr(dgamma), ptr(dbeta), stream());
      st::cuda::batchnorm_backward_eval(rows, channels, ptr(x), ptr(gamma), ptr(mean), ptr(var), 1e-5f, ptr(y), ptr(dy),
                                        ptr(dx), ptr(dgamma), ptr(dbeta), stream());
      st::cuda::column_sums(rows, channels, ptr(dy), ptr(dgamma), stream());
      st::cuda::softmax_cross_entropy_forward(static_cast<int64_t>(labels.size()), 10, ptr(x), d_labels.as<int32_t>(),
                                              0.1f, ptr(probabilities), loss.as<double>(), stream());
    };
    step();
    synchronize();
    const std::uint64_t mallocs = st::cuda::device_allocator_stats().cuda_malloc_calls;
    for (int i = 0; i < 5; ++i) step();
    synchronize();
    CHECK(st::cuda::device_allocator_stats().cuda_malloc_calls == mallocs);

    // misuse is reported, not silently accepted
    void* block = st::cuda::device_allocate(1000, stream());
    st::cuda::device_free(block);
    CHECK_THROWS_AS(st::cuda::device_free(block), std::invalid_argument);
    int on_stack = 0;
    CHECK_THROWS_AS(st::cuda::device_free(&on_stack), std::invalid_argument);
#endif
  }
}
