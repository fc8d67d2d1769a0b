// GPU suite: the engine on CUDA tensors — every engine op (forward and backward through the tape) on the
// GPU against the same op on the CPU, with our kernels and with the vendor ones; a few masked SGD steps
// of lenet5, resnet20 and vit-tiny on the GPU against the CPU from the same initial weights; the
// steady-state step makes no cudaMalloc; Tensor and Module device round trips; the clear error of an op
// given tensors of two devices.
//
// Error measure: normalised error = max_i |gpu_i - cpu_i| / max_i |cpu_i| over a whole tensor.
// Thresholds (TF32 off unless said; chosen before the first GPU run — every case prints what it measured,
// so they can be tightened from the log):
//   1e-6  elementwise ops, pooling, shortcut, concat, dropout (same host-drawn mask), scale: one IEEE
//         operation per element, possibly an FMA;
//   1e-5  reductions: BatchNorm (ours), softmax cross-entropy, global average pooling;
//   1e-5  also layernorm, softmax and the position embedding's batch sum;
//   1e-4  our convolution, linear and attention (fp32 sums in another order than the CPU's; attention's
//         online softmax), cuDNN BatchNorm;
//   1e-3  cuDNN/cuBLAS convolution and linear (cuDNN may pick Winograd/FFT transforms), cuDNN attention;
//   2e-2  TF32 on (inputs rounded to 10 mantissa bits);
//   training steps: weights 1e-4, weight updates (w_after - w_before) 5e-3 — three steps through BatchNorm
//         and 20 layers amplify the per-op differences; masked weights must be exactly 0.
// On a machine without a GPU every case returns at once (tests/gpu/gpu_test_helpers.h prints one line).
#include <doctest/doctest.h>

#include "tests/gpu/gpu_test_helpers.h"

#ifdef ST_HAVE_CUDA
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/nn.h"
#include "engine/ops.h"
#include "engine/ops/record.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "kernels/cuda/allocator.h"
#include "models/registry.h"
#include "pruning/random_mask.h"

namespace {

using st::Device;
using st::Shape;
using st::Tensor;
using st::Variable;
using Floats = std::vector<float>;

// Sets the process-wide GPU settings for one test and restores the defaults (ours, TF32 on) after.
struct BackendSettings {
  BackendSettings(st::KernelSource source, bool tf32) {
    st::set_kernel_source(source);
    st::set_tf32(tf32);
  }
  ~BackendSettings() {
    st::set_kernel_source(st::KernelSource::Ours);
    st::set_tf32(true);
  }
  BackendSettings(const BackendSettings&) = delete;
  BackendSettings& operator=(const BackendSettings&) = delete;
};

Tensor random_tensor(const Shape& shape, st::Rng& rng, float scale = 1.0f, float offset = 0.0f) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = offset + scale * rng.normal();
  return t;
}

using st::test::normalised_error;

void check_close(const std::string& what, const Floats& got, const Floats& want, double tolerance) {
  REQUIRE_MESSAGE(got.size() == want.size(),
                  what << ": " << got.size() << " values on the GPU, " << want.size() << " on the CPU");
  const double error = normalised_error(got, want);
  INFO(what << ": normalised error " << error << " (tolerance " << tolerance << ")");
  CHECK(error <= tolerance);
  if (error > tolerance / 10) MESSAGE(what << ": normalised error " << error << " (tolerance " << tolerance << ")");
}

// ---- (a) every op, CPU vs GPU ---------------------------------------------------------------------

struct OpResult {
  Floats output;
  std::vector<Floats> input_grads;  // of the inputs that require a gradient, in order
  std::vector<Floats> extra;        // state the op updates (BatchNorm running statistics)
};

// Runs `op` on copies of `inputs` placed on `device` (all requiring a gradient), then the backward with
// the seed `seed` (a CPU tensor of the output's shape; copied onto the device by Tape::backward).
using OpRun = std::function<Variable(const std::vector<Variable>&, Device, std::vector<Tensor>& extra)>;

OpResult run_op(const OpRun& op, const std::vector<Tensor>& inputs, Device device, uint64_t seed_stream) {
  std::vector<Variable> variables;
  for (const Tensor& t : inputs) variables.emplace_back(t.to(device), true);
  std::vector<Tensor> extra;
  st::Tape tape;
  Variable y;
  {
    st::TapeScope scope(tape);
    y = op(variables, device, extra);
  }
  REQUIRE(y.value().device() == device);
  st::Rng rng(1000 + seed_stream);
  const Tensor seed = y.value().numel() == 1 ? Tensor::full(y.shape(), 0.7f) : random_tensor(y.shape(), rng);
  tape.backward(y, seed);
  OpResult result;
  result.output = y.value().to_vector();
  for (const Variable& v : variables)
    if (v.has_grad()) {
      REQUIRE(v.grad().device() == device);
      result.input_grads.push_back(v.grad().to_vector());
    } else {
      result.input_grads.emplace_back();
    }
  for (const Tensor& t : extra) result.extra.push_back(t.to_vector());
  return result;
}

struct OpCase {
  std::string name;
  std::vector<Tensor> inputs;  // CPU
  OpRun run;
  double tolerance;
};

void compare_op(const OpCase& c, uint64_t stream) {
  const OpResult cpu = run_op(c.run, c.inputs, Device::CPU, stream);
  const OpResult gpu = run_op(c.run, c.inputs, Device::CUDA, stream);
  check_close(c.name + " forward", gpu.output, cpu.output, c.tolerance);
  REQUIRE(gpu.input_grads.size() == cpu.input_grads.size());
  for (std::size_t i = 0; i < cpu.input_grads.size(); ++i) {
    REQUIRE_MESSAGE(gpu.input_grads[i].empty() == cpu.input_grads[i].empty(),
                    c.name << ": input " << i << " has a gradient on one device only");
    check_close(c.name + " gradient of input " + std::to_string(i), gpu.input_grads[i], cpu.input_grads[i],
                c.tolerance);
  }
  REQUIRE(gpu.extra.size() == cpu.extra.size());
  for (std::size_t i = 0; i < cpu.extra.size(); ++i)
    check_close(c.name + " state " + std::to_string(i), gpu.extra[i], cpu.extra[i], c.tolerance);
}

// BatchNorm with its running statistics created on the op's device from fixed CPU values.
OpRun batchnorm_run(bool training, bool relu, const Tensor& running_mean, const Tensor& running_var) {
  return [=](const std::vector<Variable>& v, Device device, std::vector<Tensor>& extra) {
    Tensor mean = running_mean.to(device).clone(), var = running_var.to(device).clone();
    Variable y = st::ops::batchnorm(v[0], v[1], v[2], mean, var, training, 0.1f, 1e-5f, relu);
    extra = {mean, var};
    return y;
  };
}

std::vector<OpCase> op_cases(bool vendor, bool tf32) {
  st::Rng rng(42);
  const double matmul = tf32 ? 2e-2 : vendor ? 1e-3 : 1e-4;
  const double norm = vendor ? 1e-4 : 1e-5;
  std::vector<OpCase> cases;
  auto add_case = [&](std::string name, std::vector<Tensor> inputs, OpRun run, double tolerance) {
    cases.push_back({std::move(name), std::move(inputs), std::move(run), tolerance});
  };
  using V = const std::vector<Variable>&;
  using E = std::vector<Tensor>&;
  add_case(
      "linear", {random_tensor({5, 13}, rng), random_tensor({7, 13}, rng), random_tensor({7}, rng)},
      [](V v, Device, E) { return st::ops::linear(v[0], v[1], v[2]); }, matmul);
  add_case(
      "linear without bias", {random_tensor({33, 70}, rng), random_tensor({10, 70}, rng)},
      [](V v, Device, E) { return st::ops::linear(v[0], v[1], Variable()); }, matmul);
  add_case(
      "conv2d 3x3 stride 2 pad 1",
      {random_tensor({2, 9, 9, 5}, rng), random_tensor({8, 3, 3, 5}, rng), random_tensor({8}, rng)},
      [](V v, Device, E) { return st::ops::conv2d(v[0], v[1], v[2], 2, 1); }, matmul);
  add_case(
      "conv2d 1x1 no bias", {random_tensor({2, 6, 6, 5}, rng), random_tensor({16, 1, 1, 5}, rng)},
      [](V v, Device, E) { return st::ops::conv2d(v[0], v[1], Variable(), 1, 0); }, matmul);
  add_case(
      "conv2d depthwise", {random_tensor({2, 8, 8, 6}, rng), random_tensor({6, 3, 3, 1}, rng)},
      [](V v, Device, E) { return st::ops::conv2d(v[0], v[1], Variable(), 1, 1, 6); }, matmul);
  const Tensor running_mean = random_tensor({6}, rng, 0.1f), running_var = random_tensor({6}, rng, 0.1f, 1.0f);
  for (bool relu : {false, true}) {
    const char* suffix = relu ? " with ReLU" : "";
    add_case(fmt::format("batchnorm train{}", suffix),
             {random_tensor({4, 5, 5, 6}, rng, 2.0f, 0.5f), random_tensor({6}, rng, 0.2f, 1.0f),
              random_tensor({6}, rng, 0.2f)},
             batchnorm_run(true, relu, running_mean, running_var), norm);
    add_case(fmt::format("batchnorm eval{}", suffix),
             {random_tensor({4, 5, 5, 6}, rng, 2.0f, 0.5f), random_tensor({6}, rng, 0.2f, 1.0f),
              random_tensor({6}, rng, 0.2f)},
             batchnorm_run(false, relu, running_mean, running_var), norm);
  }
  add_case("batchnorm train on [N, C]",
           {random_tensor({16, 6}, rng), random_tensor({6}, rng, 0.2f, 1.0f), random_tensor({6}, rng, 0.2f)},
           batchnorm_run(true, false, running_mean, running_var), norm);
  add_case(
      "relu", {random_tensor({3, 4, 5, 6}, rng)}, [](V v, Device, E) { return st::ops::relu(v[0]); }, 1e-6);
  add_case(
      "relu6", {random_tensor({3, 4, 5, 6}, rng, 5.0f)}, [](V v, Device, E) { return st::ops::relu6(v[0]); }, 1e-6);
  add_case(
      "add", {random_tensor({3, 7}, rng), random_tensor({3, 7}, rng)},
      [](V v, Device, E) { return st::ops::add(v[0], v[1]); }, 1e-6);
  add_case(
      "add_relu", {random_tensor({2, 3, 3, 4}, rng), random_tensor({2, 3, 3, 4}, rng)},
      [](V v, Device, E) { return st::ops::add_relu(v[0], v[1]); }, 1e-6);
  add_case(
      "flatten", {random_tensor({2, 3, 3, 4}, rng)}, [](V v, Device, E) { return st::ops::flatten(v[0]); }, 1e-6);
  add_case(
      "concat_channels", {random_tensor({2, 3, 3, 4}, rng), random_tensor({2, 3, 3, 5}, rng)},
      [](V v, Device, E) {
        return st::ops::concat_channels({v[0], v[1]});
      },
      1e-6);
  add_case(
      "scale", {random_tensor({4, 10}, rng)}, [](V v, Device, E) { return st::ops::scale(v[0], 0.37f); }, 1e-6);
  add_case(
      "dropout", {random_tensor({4, 50}, rng)},
      [](V v, Device, E) {
        st::Rng dropout_rng(7);  // the same mask on both devices (drawn on the host)
        return st::ops::dropout(v[0], 0.3f, true, dropout_rng);
      },
      1e-6);
  add_case(
      "pad_shortcut", {random_tensor({2, 8, 8, 6}, rng)},
      [](V v, Device, E) { return st::ops::pad_shortcut(v[0], 2, 12); }, 1e-6);
  add_case(
      "max_pool2d 3/2/1", {random_tensor({2, 9, 9, 5}, rng)},
      [](V v, Device, E) { return st::ops::max_pool2d(v[0], 3, 2, 1); }, 1e-6);
  add_case(
      "avg_pool2d 2/2", {random_tensor({2, 8, 8, 5}, rng)},
      [](V v, Device, E) { return st::ops::avg_pool2d(v[0], 2, 2); }, 1e-6);
  add_case(
      "global_avg_pool", {random_tensor({3, 7, 7, 10}, rng)},
      [](V v, Device, E) { return st::ops::global_avg_pool(v[0]); }, 1e-5);
  // The vision-transformer ops. Attention: ours are fp32 sums in another order than the CPU's (1e-4);
  // cuDNN's multi-head attention 1e-3 (FMA math with TF32 off; 2e-2 with it on).
  const double attention = tf32 ? 2e-2 : vendor ? 1e-3 : 1e-4;
  add_case(
      "layernorm", {random_tensor({2, 5, 24}, rng, 2.0f, 0.5f), random_tensor({24}, rng, 0.2f, 1.0f),
                    random_tensor({24}, rng, 0.2f)},
      [](V v, Device, E) { return st::ops::layernorm(v[0], v[1], v[2], 1e-6f); }, 1e-5);
  add_case(
      "layernorm 192 features over 130 rows", {random_tensor({130, 192}, rng), random_tensor({192}, rng, 0.2f, 1.0f),
                                               random_tensor({192}, rng, 0.2f)},
      [](V v, Device, E) { return st::ops::layernorm(v[0], v[1], v[2], 1e-6f); }, 1e-5);
  add_case(
      "gelu", {random_tensor({3, 7, 11}, rng, 2.0f)}, [](V v, Device, E) { return st::ops::gelu(v[0]); }, 1e-6);
  add_case(
      "softmax", {random_tensor({9, 37}, rng, 3.0f)}, [](V v, Device, E) { return st::ops::softmax(v[0]); }, 1e-5);
  struct AttentionShape {
    int64_t batch, tokens, dim, heads;
  };
  // vit-tiny (65 tokens, 3 heads of 64), Fashion-MNIST's 50 tokens, head dims 16, 32 and 128, one token,
  // and 97 tokens (two key tiles and a remainder).
  for (const AttentionShape& a : {AttentionShape{2, 65, 192, 3}, AttentionShape{3, 50, 192, 3},
                                  AttentionShape{2, 17, 48, 3}, AttentionShape{2, 33, 64, 2},
                                  AttentionShape{1, 40, 256, 2}, AttentionShape{2, 1, 32, 1},
                                  AttentionShape{1, 97, 64, 1}}) {
    const int64_t heads = a.heads;
    add_case(fmt::format("attention B{} T{} D{} H{}", a.batch, a.tokens, a.dim, a.heads),
             {random_tensor({a.batch, a.tokens, 3 * a.dim}, rng, 1.5f)},
             [heads](V v, Device, E) { return st::ops::attention(v[0], heads); }, attention);
  }
  add_case(
      "reshape", {random_tensor({4, 6}, rng)},
      [](V v, Device, E) { return st::ops::reshape(v[0], {2, 3, 4}); }, 1e-6);
  add_case(
      "prepend_token", {random_tensor({3, 5, 8}, rng), random_tensor({1, 1, 8}, rng)},
      [](V v, Device, E) { return st::ops::prepend_token(v[0], v[1]); }, 1e-6);
  add_case(
      "add_batch_broadcast", {random_tensor({70, 6, 8}, rng), random_tensor({1, 6, 8}, rng)},
      [](V v, Device, E) { return st::ops::add_batch_broadcast(v[0], v[1]); }, 1e-5);
  add_case(
      "select_token", {random_tensor({4, 6, 8}, rng)},
      [](V v, Device, E) { return st::ops::select_token(v[0], 0); }, 1e-6);
  add_case(
      "softmax_cross_entropy (smoothing 0.1)", {random_tensor({6, 10}, rng, 3.0f)},
      [](V v, Device, E) {
        return st::ops::softmax_cross_entropy(v[0], {0, 9, 3, 3, 7, 1}, 0.1f);
      },
      1e-5);
  return cases;
}

void compare_all_ops(st::KernelSource source, bool tf32) {
  const BackendSettings settings(source, tf32);
  uint64_t stream = 0;
  for (const OpCase& c : op_cases(source == st::KernelSource::Vendor, tf32)) {
    CAPTURE(c.name);
    compare_op(c, stream++);
  }
}

// ---- (b) training steps, CPU vs GPU ---------------------------------------------------------------

struct StepData {
  std::vector<Tensor> images;
  std::vector<std::vector<int32_t>> labels;
};

StepData random_batches(const st::models::InputSpec& input, int64_t batch, int steps) {
  st::Rng rng(99);
  StepData data;
  for (int s = 0; s < steps; ++s) {
    data.images.push_back(random_tensor({batch, input.height, input.width, input.channels}, rng));
    std::vector<int32_t> labels;
    for (int64_t i = 0; i < batch; ++i)
      labels.push_back(static_cast<int32_t>(rng.uniform_int(static_cast<uint64_t>(input.num_classes))));
    data.labels.push_back(labels);
  }
  return data;
}

struct Trained {
  std::vector<Floats> before, after, masks, buffers;
  std::vector<std::string> names;
  std::vector<float> losses;
};

// Builds `model` from a fixed seed, masks it at density 0.5, moves it to `device`, and takes `steps` masked
// SGD steps (momentum 0.9, weight decay 5e-4, lr 0.05).
Trained train_steps(const std::string& model, Device device, const StepData& data) {
  const st::models::InputSpec input = st::models::find_model(model).reference_input;
  st::Rng rng(2024);
  auto net = st::models::build_model(model, input, rng);
  st::Rng mask_rng(77);
  st::pruning::apply_random_masks(net->parameters(), 0.5, mask_rng);
  Trained result;
  for (st::nn::Parameter* p : net->parameters()) {
    result.names.push_back(p->name);
    result.before.push_back(p->value().to_vector());
  }
  net->to(device);
  st::OptimizerConfig config;
  config.momentum = 0.9f;
  config.weight_decay = 5e-4f;
  auto optimizer = st::make_optimizer(config, net->parameters());
  net->train(true);
  for (std::size_t s = 0; s < data.images.size(); ++s) {
    optimizer->zero_grad();
    st::Tape tape;
    Variable loss;
    {
      st::TapeScope scope(tape);
      const Variable logits = net->forward(Variable(data.images[s].to(device)));
      loss = st::ops::softmax_cross_entropy(logits, data.labels[s], 0.0f);
    }
    tape.backward(loss);
    optimizer->step(0.05f);
    result.losses.push_back(loss.value().item());
  }
  for (st::nn::Parameter* p : net->parameters()) {
    REQUIRE(p->value().device() == device);
    result.after.push_back(p->value().to_vector());
    result.masks.push_back(p->mask.defined() ? p->mask.to_vector() : Floats());
  }
  for (const st::nn::NamedBuffer& b : net->buffers()) result.buffers.push_back(b.tensor->to_vector());
  return result;
}

Floats difference(const Floats& a, const Floats& b) {
  Floats d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

void compare_training(const std::string& model, const StepData& data, const Trained& cpu, st::KernelSource source) {
  const BackendSettings settings(source, false);
  const Trained gpu = train_steps(model, Device::CUDA, data);
  REQUIRE(cpu.after.size() == gpu.after.size());
  for (std::size_t s = 0; s < cpu.losses.size(); ++s) {
    INFO("loss of step " << s << ": gpu " << gpu.losses[s] << " cpu " << cpu.losses[s]);
    CHECK(std::fabs(gpu.losses[s] - cpu.losses[s]) <= 1e-4 * std::max(1.0f, std::fabs(cpu.losses[s])));
  }
  int64_t masked = 0;
  for (std::size_t i = 0; i < cpu.after.size(); ++i) {
    CAPTURE(cpu.names[i]);
    REQUIRE(gpu.before[i] == cpu.before[i]);  // the same initial weights
    check_close(model + " " + cpu.names[i] + " after 3 steps", gpu.after[i], cpu.after[i], 1e-4);
    check_close(model + " " + cpu.names[i] + " update", difference(gpu.after[i], gpu.before[i]),
                difference(cpu.after[i], cpu.before[i]), 5e-3);
    const Floats& mask = gpu.masks[i];
    for (std::size_t j = 0; j < mask.size(); ++j)
      if (mask[j] == 0.0f) {
        ++masked;
        if (gpu.after[i][j] != 0.0f) {
          FAIL_CHECK(cpu.names[i] << "[" << j << "] is masked but " << gpu.after[i][j] << " on the GPU");
          break;
        }
      }
  }
  CHECK(masked > 0);
  REQUIRE(cpu.buffers.size() == gpu.buffers.size());
  for (std::size_t i = 0; i < cpu.buffers.size(); ++i)
    check_close(model + " buffer " + std::to_string(i), gpu.buffers[i], cpu.buffers[i], 1e-4);
}

}  // namespace

TEST_SUITE("gpu") {
  TEST_CASE("engine ops on CUDA tensors match the CPU ops, forward and backward (ours, TF32 off)") {
    if (!st::test::gpu_available()) return;
    compare_all_ops(st::KernelSource::Ours, false);
  }

  TEST_CASE("engine ops on CUDA tensors match the CPU ops, forward and backward (vendor, TF32 off)") {
    if (!st::test::gpu_available()) return;
    compare_all_ops(st::KernelSource::Vendor, false);
  }

  TEST_CASE("engine ops on CUDA tensors match the CPU ops within the TF32 tolerance (ours and vendor, TF32 on)") {
    if (!st::test::gpu_available()) return;
    compare_all_ops(st::KernelSource::Ours, true);
    compare_all_ops(st::KernelSource::Vendor, true);
  }

  TEST_CASE("count_correct on the GPU equals the CPU count, ties to the first maximum") {
    if (!st::test::gpu_available()) return;
    st::Rng rng(5);
    Tensor logits = random_tensor({37, 13}, rng);
    for (int64_t c = 0; c < 13; ++c) logits.data()[2 * 13 + c] = 1.0f;  // row 2: all tied -> class 0
    std::vector<int32_t> labels;
    for (int64_t i = 0; i < 37; ++i) labels.push_back(static_cast<int32_t>(rng.uniform_int(13)));
    labels[2] = 0;
    const int64_t cpu = st::ops::count_correct(logits, labels);
    CHECK(cpu >= 1);
    CHECK(st::ops::count_correct(logits.to(Device::CUDA), labels) == cpu);
  }

  TEST_CASE("three masked SGD steps of lenet5, resnet20 and vit-tiny on the GPU match the CPU") {
    if (!st::test::gpu_available()) return;
    for (const std::string model : {"lenet5", "resnet20", "vit-tiny"}) {
      CAPTURE(model);
      const StepData data = random_batches(st::models::find_model(model).reference_input, 16, 3);
      const Trained cpu = train_steps(model, Device::CPU, data);
      for (st::KernelSource source : {st::KernelSource::Ours, st::KernelSource::Vendor}) {
        CAPTURE(st::kernel_source_name(source));
        compare_training(model, data, cpu, source);
      }
    }
  }

  TEST_CASE("the steady-state training step on the GPU makes no cudaMalloc") {
    if (!st::test::gpu_available()) return;
    for (st::KernelSource source : {st::KernelSource::Ours, st::KernelSource::Vendor}) {
      CAPTURE(st::kernel_source_name(source));
      const BackendSettings settings(source, true);
      const st::models::InputSpec input = st::models::find_model("resnet20").reference_input;
      const StepData data = random_batches(input, 32, 6);
      st::Rng rng(3);
      auto net = st::models::build_model("resnet20", input, rng);
      net->to(Device::CUDA);
      st::OptimizerConfig config;
      auto optimizer = st::make_optimizer(config, net->parameters());
      uint64_t mallocs_after_warmup = 0;
      for (std::size_t s = 0; s < data.images.size(); ++s) {
        if (s == 2) mallocs_after_warmup = st::cuda::device_allocator_stats().cuda_malloc_calls;
        optimizer->zero_grad();
        st::Tape tape;
        Variable logits, loss;
        {
          st::TapeScope scope(tape);
          logits = net->forward(Variable(data.images[s].to(Device::CUDA)));
          loss = st::ops::softmax_cross_entropy(logits, data.labels[s]);
        }
        tape.backward(loss);
        optimizer->step(0.05f);
        CHECK(std::isfinite(loss.value().item()));
        st::ops::count_correct(logits.value(), data.labels[s]);
      }
      st::synchronize_device();
      const st::cuda::DeviceAllocatorStats stats = st::cuda::device_allocator_stats();
      INFO("cudaMalloc calls: " << mallocs_after_warmup << " after 2 steps, " << stats.cuda_malloc_calls
                                << " after 6; in use " << stats.bytes_in_use << " bytes");
      CHECK(stats.cuda_malloc_calls == mallocs_after_warmup);
    }
  }

  TEST_CASE("Tensor::to, fill, clone, copy_from and item on CUDA tensors") {
    if (!st::test::gpu_available()) return;
    st::Rng rng(11);
    const Tensor host = random_tensor({3, 5, 7}, rng);
    const Tensor device = host.to(Device::CUDA);
    CHECK(device.device() == Device::CUDA);
    CHECK(device.shape() == host.shape());
    CHECK(device.to(Device::CUDA).same_storage(device));  // already there: no copy
    CHECK(device.to(Device::CPU).to_vector() == host.to_vector());
    CHECK(device.to_vector() == host.to_vector());

    Tensor copy = device.clone();
    CHECK_FALSE(copy.same_storage(device));
    copy.fill(2.5f);
    CHECK(copy.to_vector() == Floats(static_cast<std::size_t>(host.numel()), 2.5f));
    CHECK(device.to_vector() == host.to_vector());  // the clone was deep
    copy.zero();
    CHECK(copy.to_vector() == Floats(static_cast<std::size_t>(host.numel()), 0.0f));
    copy.fill(-0.0f);
    const Floats negative_zero = copy.to_vector();
    CHECK(std::signbit(negative_zero.front()));
    copy.copy_from(device);  // device to device
    CHECK(copy.to_vector() == host.to_vector());
    Tensor back = Tensor::empty(host.shape());
    back.copy_from(copy);  // device to host
    CHECK(back.to_vector() == host.to_vector());
    copy.copy_from(Tensor::full(host.shape(), 4.0f));  // host to device
    CHECK(copy.to_vector() == Floats(static_cast<std::size_t>(host.numel()), 4.0f));

    const Tensor one = Tensor::full({1}, -3.25f, Device::CUDA);
    CHECK(one.item() == -3.25f);
    const Tensor reshaped = device.reshape({15, 7});
    CHECK(reshaped.same_storage(device));
    CHECK(Tensor::zeros({0}, Device::CUDA).to_vector().empty());
  }

  TEST_CASE("Module::to moves parameters, masks, gradients and buffers and back unchanged") {
    if (!st::test::gpu_available()) return;
    const st::models::InputSpec input = st::models::find_model("resnet20").reference_input;
    st::Rng rng(8);
    auto net = st::models::build_model("resnet20", input, rng);
    st::Rng mask_rng(9);
    st::pruning::apply_random_masks(net->parameters(), 0.3, mask_rng);
    std::vector<Floats> values, masks, buffers;
    for (st::nn::Parameter* p : net->parameters()) {
      values.push_back(p->value().to_vector());
      masks.push_back(p->mask.defined() ? p->mask.to_vector() : Floats());
      p->variable.grad_buffer().fill(0.5f);
    }
    for (const st::nn::NamedBuffer& b : net->buffers()) buffers.push_back(b.tensor->to_vector());
    net->to(Device::CUDA);
    for (st::nn::Parameter* p : net->parameters()) {
      CHECK(p->value().device() == Device::CUDA);
      CHECK(p->variable.grad().device() == Device::CUDA);
      if (p->mask.defined()) CHECK(p->mask.device() == Device::CUDA);
    }
    for (const st::nn::NamedBuffer& b : net->buffers()) CHECK(b.tensor->device() == Device::CUDA);
    int64_t kept = 0;
    for (st::nn::Parameter* p : net->parameters()) kept += p->kept();  // counted from the device masks
    net->to(Device::CPU);
    std::size_t i = 0;
    int64_t kept_host = 0;
    for (st::nn::Parameter* p : net->parameters()) {
      CHECK(p->value().device() == Device::CPU);
      CHECK(p->value().to_vector() == values[i]);
      if (p->mask.defined()) CHECK(p->mask.to_vector() == masks[i]);
      CHECK(p->variable.grad().to_vector() == Floats(static_cast<std::size_t>(p->numel()), 0.5f));
      kept_host += p->kept();
      ++i;
    }
    CHECK(kept == kept_host);
    i = 0;
    for (const st::nn::NamedBuffer& b : net->buffers()) CHECK(b.tensor->to_vector() == buffers[i++]);
  }

  TEST_CASE("Parameter::apply_mask on the GPU zeroes exactly the masked weights") {
    if (!st::test::gpu_available()) return;
    st::nn::Parameter p;
    p.name = "w";
    p.kind = st::nn::ParameterKind::ConvWeight;
    st::Rng rng(4);
    p.variable = Variable(random_tensor({4, 3, 3, 2}, rng), true);
    Tensor mask = Tensor::empty({4, 3, 3, 2});
    for (int64_t j = 0; j < mask.numel(); ++j) mask.data()[j] = j % 3 == 0 ? 0.0f : 1.0f;
    p.mask = mask;
    const Floats before = p.value().to_vector();
    p.variable.value() = p.value().to(Device::CUDA);
    p.mask = p.mask.to(Device::CUDA);
    p.apply_mask();
    const Floats after = p.value().to_vector();
    for (std::size_t j = 0; j < after.size(); ++j) CHECK(after[j] == (j % 3 == 0 ? 0.0f : before[j]));
    CHECK(p.kept() == 48);  // 72 weights, every third masked
  }

  TEST_CASE("mixed devices are clear errors naming the op") {
    if (!st::test::gpu_available()) return;
    st::Rng rng(6);
    const Variable on_cpu(random_tensor({2, 3}, rng));
    const Variable on_gpu(random_tensor({2, 3}, rng).to(Device::CUDA));
    CHECK_THROWS_WITH_AS(st::ops::add(on_cpu, on_gpu), doctest::Contains("op add: inputs on different devices"),
                         st::Error);
    const Variable weight(random_tensor({4, 3}, rng));
    CHECK_THROWS_WITH_AS(st::ops::linear(on_gpu, weight, Variable()), doctest::Contains("op linear"), st::Error);
    CHECK_THROWS_WITH_AS(st::ops::layernorm(on_gpu, Variable(random_tensor({3}, rng)), Variable(random_tensor({3}, rng)),
                                            1e-5f),
                         doctest::Contains("op layernorm: inputs on different devices"), st::Error);
  }
}

#else

TEST_SUITE("gpu") {
  TEST_CASE("engine on CUDA tensors") {
    if (!st::test::gpu_available()) return;
  }
}

#endif
