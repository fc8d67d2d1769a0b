// The subcommands of the sparsetrain CLI, each a function of its parsed options.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "engine/trainer.h"
#include "tools/sparsetrain/option_flags.h"

namespace st::cli {

struct TrainOptions {
  TrainConfig config;
  ScheduleFlags schedule_flags;
  std::string resume;  // run directory to continue
  bool oracle = false;
  double oracle_min = 1e-4, oracle_max = 1e-1;  // the SILO paper's default grid: 10 log-spaced values
  int oracle_size = 10;
  bool lr_search = false;
  std::string config_file;    // --config: a TOML file of flags (read before parsing: config_file.h)
  bool print_config = false;  // --print-config: print the resolved TOML and stop
};
void add_train_flags(CLI::App& app, TrainOptions& options);
int run_train(TrainOptions options);
int run_default_experiment();

int run_models(bool json);
// The pruning methods and scores of the registries, as a table or JSON.
int run_methods(bool json);

struct BenchOptions {
  std::string model = "lenet300";
  int64_t batch = 128, steps = 50, warmup = 5;
  double density = 0.5;
  int threads = 0;
  float lr = 0.05f;
  bool json = false;
  double structured = 0.0;
  bool op_times = false;
  std::string device = "auto", kernels = "ours", sparse_kernels = "off", data_dir;
  bool tf32 = true;
};
void add_bench_flags(CLI::App& app, BenchOptions& options);
int run_bench(const BenchOptions& options);

struct ScheduleOptions {
  TrainConfig config;  // the learning rate's options (schedules::LrSchedule, schedules::CyclePolicy)
  ScheduleFlags flags;
  int cycles = 1;
  int64_t iters = 8600;  // iterations of a dense cycle T (default: the default experiment's 20 x 430)
  int64_t every = 1;     // print every N-th iteration (the last of each cycle always)
  bool csv = false;
  std::string png;
};
void add_schedule_command_flags(CLI::App& app, ScheduleOptions& options);
int run_schedule(ScheduleOptions options);

struct ExportOptions {
  std::string run_dir, checkpoint = "final", out;
  bool check = false;
};
void add_export_flags(CLI::App& app, ExportOptions& options);
int run_export(const ExportOptions& options);

struct PruneOptions {
  std::string run_dir, checkpoint = "final", out_checkpoint;
  double density = 0.0, rate = 0.0;
  TrainConfig pruning;  // the "prune" component's options (score, allocation, first/last dense, score batches)
  std::string device = "cpu";
};
void add_prune_flags(CLI::App& app, PruneOptions& options);
int run_prune(const PruneOptions& options);

struct ImportOptions {
  TrainConfig config;  // model, data set, run directory
  std::string state, checkpoint = "imported";
};
void add_import_flags(CLI::App& app, ImportOptions& options);
int run_import(ImportOptions options);

struct EvalOptions {
  std::string run_dir, checkpoint = "final", split = "test", device = "cpu";
  bool json = false;
};
void add_eval_flags(CLI::App& app, EvalOptions& options);
int run_eval(const EvalOptions& options);

}  // namespace st::cli
