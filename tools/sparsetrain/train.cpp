#include <fmt/format.h>

#include <ctime>
#include <cstdio>
#include <unistd.h>
#include <filesystem>

#include "engine/error.h"
#include "engine/io/metrics.h"
#include "schedules/cycles.h"
#include "schedules/lr_schedule.h"
#include "schedules/options.h"
#include "schedules/oracle.h"
#include "tools/sparsetrain/option_flags.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

void add_train_flags(CLI::App& app, TrainOptions& options) {
  TrainConfig& c = options.config;
  add_option_flags(app, c);  // every component's options (engine/options.h)
  add_silo_flag(app, options.schedule_flags);
  const std::string search = "Oracle (schedules/oracle_search.h)";
  app.add_flag("--oracle", options.oracle, "the oracle: per cycle, one branch per max_lr of the grid; keep the best "
                                           "on validation (grid: --oracle-grid or --oracle-min/max/size)")
      ->group(search);
  app.add_option("--oracle-min", options.oracle_min, "oracle grid: smallest max_lr")->capture_default_str()->group(search);
  app.add_option("--oracle-max", options.oracle_max, "oracle grid: largest max_lr")->capture_default_str()->group(search);
  app.add_option("--oracle-size", options.oracle_size, "oracle grid: number of log-spaced values")
      ->capture_default_str()
      ->group(search);
  app.add_flag("--lr-search", options.lr_search,
               "baseline LR grid search (the SILO paper's protocol): one whole run per lr of the oracle grid flags, "
               "best mean validation accuracy over the cycles wins")
      ->group(search);
  app.add_flag_callback("--quiet", [&c] { c.progress = "quiet"; }, "print only the final line (and errors)")
      ->group("Run");
  app.add_option("--config", options.config_file, "a TOML file of these flags (keys without '--'); flags given "
                                                  "here override its keys");
  app.add_flag("--print-config", options.print_config, "print every flag resolved as TOML (for --config) and stop");
  app.add_option("--resume", options.resume, "continue the run in this directory from its last checkpoint");
}

namespace {

// One complete run per learning rate, each in run_dir/lr-<lr>/; the lr with the best mean validation
// accuracy over the cycles is reported (test accuracy is shown, never used to choose).
int run_lr_search(TrainOptions& options) {
  const TrainConfig base = options.config;
  if (base.get<schedules::OracleOptions>().requested)
    fail("--lr-search: takes its grid from --oracle-min/--oracle-max/--oracle-size; do not combine it with --oracle");
  const std::vector<double> grid = schedules::log_grid(options.oracle_min, options.oracle_max, options.oracle_size);
  schedules::validate_grid(grid);
  struct Row {
    double lr, mean_val, last_val, last_test;
  };
  std::vector<Row> rows;
  for (double lr : grid) {
    TrainConfig c = base;
    c.get<schedules::LrSchedule>().max_lr = lr;
    c.get<schedules::CyclePolicy>().silo_offset = lr;  // SILO's base peak follows the searched lr
    c.run_dir = (std::filesystem::path(base.run_dir) / fmt::format("lr-{:.3g}", lr)).string();
    fmt::print("\n=== lr search: lr {:.4g} -> {}\n", lr, c.run_dir);
    Trainer trainer(c);
    const TrainResult result = trainer.run(false);
    double sum = 0.0;
    for (const CycleResult& cycle : result.cycles) sum += cycle.validation.accuracy;
    rows.push_back({lr, sum / static_cast<double>(result.cycles.size()), result.validation.accuracy,
                    result.test.accuracy});
  }
  const Row* best = &rows.front();
  for (const Row& r : rows)
    if (r.mean_val > best->mean_val) best = &r;
  std::string table = "| lr | mean val acc over cycles | last-cycle val acc | last-cycle test acc |\n|---:|---:|---:|---:|\n";
  for (const Row& r : rows)
    table += fmt::format("| {:.4g}{} | {:.4f} | {:.4f} | {:.4f} |\n", r.lr, &r == best ? " (best)" : "", r.mean_val,
                         r.last_val, r.last_test);
  io::write_text_atomic(std::filesystem::path(base.run_dir) / "lr_search.md",
                        "# Learning-rate grid search (validation accuracy)\n\n" + table);
  fmt::print("\nlr search: best lr {:.4g} (mean validation accuracy {:.4f}); table in {}/lr_search.md\n{}", best->lr,
             best->mean_val, base.run_dir, table);
  return 0;
}

}  // namespace

int run_train(TrainOptions options) {
  TrainConfig& c = options.config;
  schedules::OracleOptions& oracle = c.get<schedules::OracleOptions>();
  if (options.oracle || !oracle.grid.empty()) {
    oracle.requested = true;
    if (oracle.grid.empty()) oracle.grid = schedules::log_grid(options.oracle_min, options.oracle_max, options.oracle_size);
  }
  if (!options.schedule_flags.silo_notation.empty())
    c.iters_per_cycle = schedules::apply_silo_notation(options.schedule_flags.silo_notation,
                                                       c.get<schedules::CyclePolicy>(), c.get<schedules::LrSchedule>());
  if (!options.resume.empty()) {
    TrainConfig resumed = Trainer::config_of_run(options.resume);
    // the console output is the resuming command's choice (it does not change what is computed)
    if (options.config.progress != "auto") resumed.progress = options.config.progress;
    Trainer trainer(resumed);
    trainer.run(true);
    return 0;
  }
  if (options.lr_search) return run_lr_search(options);
  Trainer trainer(options.config);
  trainer.run(false);
  return 0;
}

int run_default_experiment() {
  // lenet300 on Fashion-MNIST, IMP removing 20% of the remaining weights per cycle for 5 cycles, with
  // LR rewinding (the cosine schedule restarts every cycle) against SILO (the same shape, peak
  // max_lr(k) = 0.05 + 0.05 S(x_k)); 10 epochs per cycle; test accuracy against sparsity for both.
  fmt::print(
      "sparsetrain default experiment: lenet300 on Fashion-MNIST, IMP at 20% per cycle (5 pruning cycles, 10 epochs "
      "each), LR rewinding vs SILO\n");
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  const std::filesystem::path base = std::filesystem::path("runs") / (std::string("default-") + stamp);
  TrainConfig config;
  config.epochs = 10;
  config.cycles_count = 6;
  // On a terminal a bar per cycle; to a pipe a line per cycle and per pruning event (about 50 lines in all)
  config.progress = isatty(fileno(stdout)) != 0 ? "bar" : "cycles";
  config.get<schedules::CyclePolicy>().prune_rate = 0.2;
  std::vector<std::pair<std::string, TrainResult>> results;
  for (const std::string policy : {"lr_rewind", "silo"}) {
    TrainConfig c = config;
    schedules::CyclePolicy& cycles = c.get<schedules::CyclePolicy>();
    cycles.kind = policy;
    cycles.silo_offset = 0.05;
    cycles.silo_alpha = 0.05;
    c.run_dir = (base / policy).string();
    fmt::print("\n=== {} -> {}\n", policy == "silo" ? "SILO" : "LR rewinding", c.run_dir);
    Trainer trainer(c);
    results.emplace_back(policy, trainer.run(false));
  }
  const auto& rewinding = results[0].second.cycles;
  const auto& silo = results[1].second.cycles;
  std::string table = "| cycle | density | sparsity | LR rewinding test acc | SILO max_lr | SILO test acc |\n"
                      "|---:|---:|---:|---:|---:|---:|\n";
  for (std::size_t k = 0; k < rewinding.size() && k < silo.size(); ++k)
    table += fmt::format("| {} | {:.4f} | {:.1f}% | {:.4f} | {:.4f} | {:.4f} |\n", k, rewinding[k].density,
                         100.0 * (1.0 - rewinding[k].density), rewinding[k].test.accuracy, silo[k].max_lr,
                         silo[k].test.accuracy);
  io::write_text_atomic(base / "table.md",
                        "# Default experiment: lenet300 / Fashion-MNIST, IMP 20% per cycle\n\n" + table);
  fmt::print("\ntest accuracy vs sparsity (also in {}):\n{}", (base / "table.md").string(), table);
  return 0;
}

}  // namespace st::cli
