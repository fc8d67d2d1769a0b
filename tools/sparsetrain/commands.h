// The subcommands of the sparsetrain CLI, each a function of its parsed options.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "engine/trainer.h"

namespace st::cli {

struct TrainOptions {
  TrainConfig config;
  std::string resume;  // run directory to continue
};
void add_train_flags(CLI::App& app, TrainOptions& options);
int run_train(TrainOptions options);
int run_default_experiment();

int run_models(bool json);

struct BenchOptions {
  std::string model = "lenet300";
  int64_t batch = 128, steps = 50, warmup = 5;
  double density = 0.5;
  int threads = 0;
  float lr = 0.05f;
  bool json = false;
};
void add_bench_flags(CLI::App& app, BenchOptions& options);
int run_bench(const BenchOptions& options);

}  // namespace st::cli
