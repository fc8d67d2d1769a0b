#include <fmt/format.h>

#include <ctime>
#include <filesystem>

#include "engine/error.h"
#include "schedules/oracle.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

void add_train_flags(CLI::App& app, TrainOptions& options) {
  TrainConfig& c = options.config;
  app.add_option("--model", c.model, "model name (see `sparsetrain models`)")->capture_default_str();
  app.add_option("--data", c.dataset, "dataset: fashion-mnist | mnist | cifar10 | cifar100")->capture_default_str();
  app.add_option("--data-dir", c.data_dir, "dataset directory (default: /usr/share/datasets/fashion-mnist, data/<name>)");
  app.add_option("--epochs", c.epochs, "training epochs")->capture_default_str();
  app.add_option("--batch", c.batch_size, "batch size")->capture_default_str();
  app.add_option("--optimizer", c.optimizer.name, "sgd | adam | adamw | rmsprop")->capture_default_str();
  add_schedule_flags(app, c.schedule, c.cycles, options.schedule_flags);
  app.add_option("--iters", c.iters_per_cycle, "iterations of a dense cycle; 0 = epochs x batches per epoch");
  app.add_option("--cycles", c.cycles_count, "training cycles: 1 = dense; K + 1 = dense + K pruning cycles (IMP)")
      ->capture_default_str();
  app.add_option("--prune-score", c.prune.score, "pruning score: magnitude | random")->capture_default_str();
  app.add_option("--prune-allocation", c.prune.allocation, "global (one threshold) | layerwise (same fraction)")
      ->capture_default_str();
  app.add_flag("--keep-first-dense", c.prune.keep_first_dense, "never prune the first prunable tensor");
  app.add_flag("--keep-last-dense", c.prune.keep_last_dense, "never prune the last prunable tensor");
  app.add_flag("--oracle", options.oracle, "the oracle: per cycle, one branch per max_lr of the grid; keep the best "
                                           "on validation (grid: --oracle-grid or --oracle-min/max/size)");
  app.add_option("--oracle-grid", c.oracle_grid, "explicit max_lr values of the oracle")->delimiter(',');
  app.add_option("--oracle-min", options.oracle_min, "oracle grid: smallest max_lr")->capture_default_str();
  app.add_option("--oracle-max", options.oracle_max, "oracle grid: largest max_lr")->capture_default_str();
  app.add_option("--oracle-size", options.oracle_size, "oracle grid: number of log-spaced values")
      ->capture_default_str();
  app.add_option("--momentum", c.optimizer.momentum, "momentum (sgd, rmsprop)")->capture_default_str();
  app.add_flag("--nesterov", c.optimizer.nesterov, "Nesterov momentum (sgd)");
  app.add_option("--weight-decay", c.optimizer.weight_decay, "L2 weight decay (decoupled for adamw)")
      ->capture_default_str();
  app.add_option("--beta1", c.optimizer.beta1, "Adam beta1")->capture_default_str();
  app.add_option("--beta2", c.optimizer.beta2, "Adam beta2")->capture_default_str();
  app.add_option("--eps", c.optimizer.eps, "Adam / RMSProp epsilon")->capture_default_str();
  app.add_option("--alpha", c.optimizer.alpha, "RMSProp smoothing constant")->capture_default_str();
  app.add_option("--label-smoothing", c.label_smoothing, "label smoothing of the cross-entropy")->capture_default_str();
  app.add_option("--val-size", c.val_size, "training images held out for validation")->capture_default_str();
  app.add_option("--train-limit", c.train_limit, "use only the first N training images (0 = all)");
  app.add_flag("--augment", c.augment, "random crop (pad 4) and horizontal flip");
  app.add_option("--density", c.density, "random-mask density of every prunable tensor at init")
      ->capture_default_str();
  app.add_option("--seed", c.seed, "random seed (init, data order, masks)")->capture_default_str();
  app.add_option("--device", c.device, "auto | cpu | cuda")->capture_default_str();
  app.add_option("--threads", c.threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--run-dir", c.run_dir, "run directory (config, metrics, checkpoints)")->capture_default_str();
  app.add_flag("--overwrite", c.overwrite, "start afresh in a run directory that holds an earlier run");
  app.add_option("--checkpoint-every", c.checkpoint_every, "steps between checkpoints (0 = every epoch end)")
      ->capture_default_str();
  app.add_option("--log-every", c.log_every, "steps between progress lines (0 = 5 per epoch)");
  app.add_option("--resume", options.resume, "continue the run in this directory from its last checkpoint");
}

int run_train(TrainOptions options) {
  TrainConfig& c = options.config;
  if (options.oracle || !c.oracle_grid.empty()) {
    c.oracle_grid_requested = true;
    if (c.oracle_grid.empty()) c.oracle_grid = schedules::log_grid(options.oracle_min, options.oracle_max, options.oracle_size);
  }
  if (!options.schedule_flags.silo_notation.empty()) {
    const int64_t total = schedules::apply_silo_notation(options.schedule_flags.silo_notation, options.config.cycles,
                                                         options.config.schedule);
    options.config.iters_per_cycle = total;
  }
  if (!options.resume.empty()) {
    Trainer trainer(Trainer::config_of_run(options.resume));
    trainer.run(true);
    return 0;
  }
  Trainer trainer(options.config);
  trainer.run(false);
  return 0;
}

int run_default_experiment() {
  fmt::print(
      "sparsetrain default experiment: lenet300 on Fashion-MNIST, SGD momentum 0.9, cosine lr 0.05, 20 epochs "
      "(becomes IMP + SILO with the pruning and schedule work)\n");
  TrainOptions options;
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  options.config.run_dir = std::string("runs/default-") + stamp;
  Trainer trainer(options.config);
  trainer.run(false);
  return 0;
}

}  // namespace st::cli
