// sparsetrain: the command-line interface (one binary, subcommands).
//   sparsetrain                 the default experiment (lenet300 on Fashion-MNIST)
//   sparsetrain train ...       train a model (flags below; --resume RUN_DIR continues a run)
//   sparsetrain models [--json] every model with its parameter count and prunable tensors
//   sparsetrain methods [--json] the pruning methods and scores of the registries
//   sparsetrain bench ...       time the training step (used by tools/bench against PyTorch)
//   sparsetrain schedule ...    a learning-rate schedule across cycles as CSV or PNG
//   sparsetrain export ...      a checkpoint as PyTorch-loadable safetensors
//   sparsetrain eval ...        a checkpoint on a data split: accuracy, loss, per class, per-layer density
//   sparsetrain prune ...       one-shot pruning of a checkpoint into a new checkpoint of the run
//   sparsetrain import ...      a PyTorch state dict (safetensors) into a sparsetrain checkpoint
// Every user error is one line on stderr naming the flag/file and the problem, and a non-zero exit.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>
#include <exception>

#include "components/install.h"
#include "engine/error.h"
#include "tools/sparsetrain/commands.h"
#include "tools/sparsetrain/config_file.h"

int main(int argc, char** argv) {
  st::install_components();
  CLI::App app{"sparsetrain: sparse training engine (pruning, schedules, masked optimizers)", "sparsetrain"};
  app.require_subcommand(0, 1);
  // Flag errors are one line like every other error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return fmt::format("sparsetrain: error: {} (see --help)\n", e.what());
  });
  st::cli::TrainOptions train_options;
  st::cli::BenchOptions bench_options;
  bool models_json = false, methods_json = false;

  CLI::App* train = app.add_subcommand("train", "train a model");
  st::cli::add_train_flags(*train, train_options);
  CLI::App* models = app.add_subcommand("models", "list the models with parameter counts and prunable tensors");
  models->add_flag("--json", models_json, "print JSON instead of a table");
  CLI::App* methods = app.add_subcommand("methods", "list the pruning methods and scores");
  methods->add_flag("--json", methods_json, "print JSON instead of a table");
  CLI::App* bench = app.add_subcommand("bench", "time the training step on real data (images/s)");
  st::cli::add_bench_flags(*bench, bench_options);
  st::cli::ScheduleOptions schedule_options;
  CLI::App* schedule = app.add_subcommand("schedule", "print (--csv) or draw (--png) a learning-rate schedule");
  st::cli::add_schedule_command_flags(*schedule, schedule_options);
  st::cli::ExportOptions export_options;
  CLI::App* export_command = app.add_subcommand("export", "a run's checkpoint as PyTorch-loadable safetensors");
  st::cli::add_export_flags(*export_command, export_options);
  st::cli::EvalOptions eval_options;
  CLI::App* eval = app.add_subcommand("eval", "a run's checkpoint on a data split: accuracy, loss, per class, density");
  st::cli::add_eval_flags(*eval, eval_options);
  st::cli::PruneOptions prune_options;
  CLI::App* prune = app.add_subcommand("prune", "one-shot pruning of a run's checkpoint into a new checkpoint");
  st::cli::add_prune_flags(*prune, prune_options);
  st::cli::ImportOptions import_options;
  CLI::App* import = app.add_subcommand("import", "a PyTorch state dict (safetensors) into a sparsetrain checkpoint");
  st::cli::add_import_flags(*import, import_options);

  // `train --config FILE`: the file's keys become flags before the command line's (config_file.h)
  std::map<std::string, st::cli::ConfigOrigin> origins;
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (!args.empty() && args.front() == "train") {
      std::vector<std::string> rest(args.begin() + 1, args.end());
      rest = st::cli::expand_config(*train, rest, origins);
      args.resize(1);
      args.insert(args.end(), rest.begin(), rest.end());
    }
  } catch (const st::Error& e) {
    fmt::print(stderr, "sparsetrain: error: {}\n", e.what());
    return 2;
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes a vector last argument first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (!origins.empty() && e.get_exit_code() != 0) {
      fmt::print(stderr, "sparsetrain: error: {} (see --help)\n", st::cli::locate(e.what(), origins));
      return e.get_exit_code();
    }
    return app.exit(e);
  }
  try {
    if (train->parsed() && train_options.print_config) {
      fmt::print("{}", st::cli::resolved_config(*train));
      return 0;
    }
    if (train->parsed()) return st::cli::run_train(train_options);
    if (models->parsed()) return st::cli::run_models(models_json);
    if (methods->parsed()) return st::cli::run_methods(methods_json);
    if (bench->parsed()) return st::cli::run_bench(bench_options);
    if (schedule->parsed()) return st::cli::run_schedule(schedule_options);
    if (export_command->parsed()) return st::cli::run_export(export_options);
    if (eval->parsed()) return st::cli::run_eval(eval_options);
    if (prune->parsed()) return st::cli::run_prune(prune_options);
    if (import->parsed()) return st::cli::run_import(import_options);
    return st::cli::run_default_experiment();
  } catch (const st::Error& e) {
    fmt::print(stderr, "sparsetrain: error: {}\n", st::cli::locate(e.what(), origins));
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "sparsetrain: error: {}\n", e.what());
    return 1;
  }
}
