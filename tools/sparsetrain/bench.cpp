// `sparsetrain bench`: the training step alone (data already in memory), timed after a warmup, on
// real Fashion-MNIST batches with random masks — the sparsetrain half of tools/bench/cpu_vs_pytorch.py
// (and, with --device cuda, of tools/bench/gpu_vs_pytorch.py). On the GPU each step uploads its batch
// and reads the loss back (one synchronisation per step), as training does.
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/op_times.h"
#include "pruning/options.h"
#include "pruning/structured.h"
#include "schedules/lr_schedule.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

void add_bench_flags(CLI::App& app, BenchOptions& o) {
  app.add_option("--model", o.model, "model name")->capture_default_str();
  app.add_option("--batch", o.batch, "batch size")->capture_default_str();
  app.add_option("--steps", o.steps, "timed steps")->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed steps first")->capture_default_str();
  app.add_option("--density", o.density, "random-mask density of every prunable tensor")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--lr", o.lr, "SGD learning rate (momentum 0.9, weight decay 5e-4)")->capture_default_str();
  app.add_flag("--json", o.json, "print one JSON line");
  app.add_option("--device", o.device, "auto | cpu | cuda (auto: cuda when a GPU is usable)")->capture_default_str();
  app.add_option("--sparse-kernels", o.sparse_kernels, "cpu: off | on | auto (masked linear and conv layers)")
      ->capture_default_str();
  app.add_option("--kernels", o.kernels, "cuda: ours | vendor (cuDNN/cuBLAS for convolution, linear, BatchNorm)")
      ->capture_default_str();
  app.add_option("--tf32", o.tf32, "cuda: TF32 tensor cores in convolution and GEMM (on | off)")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "Fashion-MNIST directory (default: /usr/share/datasets/fashion-mnist)");
  app.add_option("--structured", o.structured,
                 "also time the step after physically removing this fraction of the channels of every group (l1)");
  app.add_flag("--op-times", o.op_times,
               "CPU: also report the time per step of conv2d, batchnorm and add_relu (forward, backward) and the rest");
}

namespace {

// Milliseconds per step of each timed op and of the rest of the step ("other"), in the JSON result.
nlohmann::json op_times_per_step(const OpTimes& times, double step_seconds, int64_t steps) {
  nlohmann::json result = nlohmann::json::object();
  double timed = 0.0;
  for (const auto& [key, seconds] : times) {
    result[key] = 1e3 * seconds / static_cast<double>(steps);
    timed += seconds;
  }
  result["other"] = 1e3 * (step_seconds * static_cast<double>(steps) - timed) / static_cast<double>(steps);
  result["step"] = 1e3 * step_seconds;
  return result;
}

void print_op_times(const nlohmann::json& dense, const nlohmann::json* shrunk) {
  fmt::print("time per step (ms){}\n", shrunk != nullptr ? ": dense | channel-pruned | ratio" : "");
  for (const auto& [key, value] : dense.items()) {
    const double ms = value.get<double>();
    if (shrunk == nullptr) {
      fmt::print("  {:<20} {:8.2f}\n", key, ms);
      continue;
    }
    const double after = shrunk->value(key, 0.0);
    fmt::print("  {:<20} {:8.2f} | {:8.2f} | {:5.2f}x\n", key, ms, after, after > 0.0 ? ms / after : 0.0);
  }
}

}  // namespace

int run_bench(const BenchOptions& o) {
  if (o.steps <= 0) fail("--steps: must be positive, got {}", o.steps);
  if (o.warmup < 0) fail("--warmup: must be >= 0, got {}", o.warmup);
  TrainConfig config;
  config.model = o.model;
  config.batch_size = o.batch;
  config.get<pruning::InitOptions>().random_density = o.density;
  config.threads = o.threads;
  config.get<schedules::LrSchedule>().max_lr = o.lr;
  config.optimizer.momentum = 0.9f;
  config.optimizer.weight_decay = 5e-4f;
  config.run_dir = "runs/bench";
  config.device = o.device;
  config.kernels = o.kernels;
  config.sparse_kernels = o.sparse_kernels;
  config.tf32 = o.tf32;
  config.data_dir = o.data_dir;
  Trainer trainer(config);
  const data::BatchLoader& loader = trainer.train_loader();
  const int64_t total = o.warmup + o.steps;
  std::vector<std::vector<float>> images(static_cast<std::size_t>(total));
  std::vector<std::vector<int32_t>> labels(static_cast<std::size_t>(total));
  std::vector<int64_t> sizes(static_cast<std::size_t>(total));
  for (int64_t s = 0; s < total; ++s) {
    const auto i = static_cast<std::size_t>(s);
    sizes[i] = loader.fill_batch(s / loader.batches_per_epoch(), s % loader.batches_per_epoch(), images[i], labels[i]);
  }
  if (o.op_times && trainer.device() != Device::CPU)
    fail("--op-times: CPU only (GPU kernels run asynchronously; profile them with nsys), got --device {}", o.device);
  float loss = 0.0f;
  OpTimes op_times;
  double step_seconds = 0.0;
  // Warmup steps, then the timed ones (inside the op-time profile with --op-times); returns images per second.
  auto time_steps = [&]() {
    op_times.clear();
    for (int64_t s = 0; s < o.warmup; ++s) {
      const auto i = static_cast<std::size_t>(s);
      loss = trainer.train_step(images[i], labels[i], sizes[i], o.lr, nullptr);
    }
    int64_t timed_images = 0;
    synchronize_device();
    const auto start = std::chrono::steady_clock::now();
    {
      std::optional<OpTimeScope> scope;  // without --op-times no profile is installed: the ops skip their timers
      if (o.op_times) scope.emplace(op_times);
      for (int64_t s = o.warmup; s < total; ++s) {
        const auto i = static_cast<std::size_t>(s);
        loss = trainer.train_step(images[i], labels[i], sizes[i], o.lr, nullptr);
        timed_images += sizes[i];
      }
    }
    synchronize_device();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    step_seconds = seconds / static_cast<double>(o.steps);
    return static_cast<double>(timed_images) / seconds;
  };
  const double images_per_second = time_steps();
  nlohmann::json result{{"model", o.model},     {"batch", o.batch},         {"steps", o.steps},
                        {"device", device_name(trainer.device())},
                        {"device_description", trainer.device_choice().description},
                        {"kernels", o.kernels},  {"tf32", o.tf32}, {"sparse_kernels", o.sparse_kernels},
                        {"images_per_s", images_per_second}, {"final_loss", loss},
                        {"parameters", trainer.model().parameter_count()},
                        {"flops_per_sample", pruning::flops_per_sample(trainer.model())}};
  if (o.op_times) result["op_ms_per_step"] = op_times_per_step(op_times, step_seconds, o.steps);
  if (o.structured > 0.0) {
    trainer.change_model([&](PruningRun& run) {
      pruning::prune_filters(run.model(), {o.structured, "l1"}, run.score_data(0));
      run.rebuild_optimizer();  // state tensors of the new shapes
    });
    const double shrunk = time_steps();
    result["structured"] = {{"fraction", o.structured},
                            {"images_per_s", shrunk},
                            {"parameters", trainer.model().parameter_count()},
                            {"flops_per_sample", pruning::flops_per_sample(trainer.model())},
                            {"speedup", shrunk / images_per_second}};
    if (o.op_times) result["structured"]["op_ms_per_step"] = op_times_per_step(op_times, step_seconds, o.steps);
  }
  if (o.json) {
    fmt::print("{}\n", result.dump());
    return 0;
  }
  fmt::print("{} on {}: batch {}, {} steps: {:.1f} images/s (loss {:.4f}), {} parameters, {:.3f} MFLOPs per sample\n",
             o.model, trainer.device_choice().description, o.batch, o.steps, images_per_second, loss,
             result["parameters"].get<int64_t>(),
             1e-6 * result["flops_per_sample"].get<double>());
  if (o.structured > 0.0) {
    const auto& st = result["structured"];
    fmt::print("after removing {} of the channels of every group: {:.1f} images/s ({:.2f}x), {} parameters ({:.2f}x "
               "fewer), {:.3f} MFLOPs per sample ({:.2f}x fewer)\n",
               o.structured, st["images_per_s"].get<double>(), st["speedup"].get<double>(),
               st["parameters"].get<int64_t>(),
               result["parameters"].get<double>() / st["parameters"].get<double>(),
               1e-6 * st["flops_per_sample"].get<double>(),
               result["flops_per_sample"].get<double>() / st["flops_per_sample"].get<double>());
  }
  if (o.op_times)
    print_op_times(result["op_ms_per_step"],
                   o.structured > 0.0 ? &result["structured"]["op_ms_per_step"] : nullptr);
  return 0;
}

}  // namespace st::cli
