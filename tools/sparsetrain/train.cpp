#include <fmt/format.h>

#include <ctime>
#include <cstdio>
#include <unistd.h>
#include <filesystem>

#include "engine/error.h"
#include "engine/io/metrics.h"
#include "schedules/oracle.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

void add_train_flags(CLI::App& app, TrainOptions& options) {
  TrainConfig& c = options.config;
  app.add_option("--model", c.model, "model name (see `sparsetrain models`)")->capture_default_str();
  app.add_option("--data", c.dataset, "dataset: fashion-mnist | mnist | cifar10 | cifar100 | imagefolder")
      ->capture_default_str();
  app.add_option("--data-dir", c.data_dir, "dataset directory (default: /usr/share/datasets/fashion-mnist, data/<name>); "
                                           "imagefolder: ROOT with train/<class>/ and val/ (ImageNet or Tiny-ImageNet)");
  app.add_option("--image-size", c.image_size, "imagefolder: shorter side resized to N, then center-cropped to N x N")
      ->capture_default_str();
  app.add_option("--max-images", c.max_images, "imagefolder: refuse a split with more images (held in memory as "
                                               "N x size x size x 3 bytes)")
      ->capture_default_str();
  app.add_option("--epochs", c.epochs, "training epochs")->capture_default_str();
  app.add_option("--batch", c.batch_size, "batch size")->capture_default_str();
  app.add_option("--optimizer", c.optimizer.name, "sgd | adam | adamw | rmsprop")->capture_default_str();
  add_schedule_flags(app, c.schedule, c.cycles, options.schedule_flags);
  app.add_option("--iters", c.iters_per_cycle, "iterations of a dense cycle; 0 = epochs x batches per epoch");
  app.add_option("--cycles", c.cycles_count, "training cycles: 1 = dense; K + 1 = dense + K pruning cycles (IMP)")
      ->capture_default_str();
  app.add_option("--prune-score", c.prune.score,
                 "score (higher = keep): " + pruning::score_names())
      ->capture_default_str();
  app.add_option("--prune-allocation", c.prune.allocation,
                 "global (one threshold) | layerwise (same fraction) | er | erk (Evci et al. 2020)")
      ->capture_default_str();
  app.add_option("--score-batches", c.score_batches, "minibatches averaged by gradient scores")->capture_default_str();
  app.add_option("--control", c.control, "IMP control: none | reinit (re-draw surviving weights) | random_mask "
                                         "(same per-layer densities)")
      ->capture_default_str();
  app.add_option("--prune-at-init", c.init_score, "pruning at initialisation with this score (snip, grasp, synflow, "
                                                  "random, ...), then a fixed mask");
  app.add_option("--init-density", c.init_density, "density after pruning at initialisation")->capture_default_str();
  app.add_option("--synflow-rounds", c.synflow_rounds, "SynFlow rounds (exponential density schedule)")
      ->capture_default_str();
  app.add_option("--early-rounds", c.early_rounds, "early pruning: rounds at the ends of the first epochs (0 = off)")
      ->capture_default_str();
  app.add_option("--early-sparsity", c.early_sparsity, "early pruning: sparsity after the last round")
      ->capture_default_str();
  app.add_option("--gmp-final-sparsity", c.gmp.final_sparsity, "gradual magnitude pruning: final sparsity (0 = off)")
      ->capture_default_str();
  app.add_option("--gmp-initial-sparsity", c.gmp.initial_sparsity, "GMP: initial sparsity")->capture_default_str();
  app.add_option("--gmp-start", c.gmp.start_iter, "GMP: first pruning iteration t0")->capture_default_str();
  app.add_option("--gmp-interval", c.gmp.interval_iters, "GMP: iterations between pruning steps")
      ->capture_default_str();
  app.add_option("--gmp-steps", c.gmp.steps, "GMP: pruning steps n after t0")->capture_default_str();
  app.add_option("--structured-prune", c.structured_fraction,
                 "between cycles, physically remove this fraction of the channels of every channel group");
  app.add_option("--structured-score", c.structured_score,
                 "filter score: l1 | l2 | snip | lp_biased | hg | abs_hg | taylor")->capture_default_str();
  app.add_option("--select", c.select_method, "between cycles, select units layer by layer: gfs (greedy forward "
                                             "selection, Ye et al. 2020) | magnitude");
  app.add_option("--select-tolerance", c.select_tolerance, "selection stops at (1 - tol) of the trained accuracy")
      ->capture_default_str();
  app.add_option("--select-target", c.select_target,
                 "what the tolerance is relative to: layer (the accuracy before each layer's selection, Ye et "
                 "al.'s code) | original (the trained network's)")
      ->capture_default_str();
  app.add_flag("--select-repeats", c.select_repeats,
               "gfs: a unit may be picked again (S a multiset, each pick weighted N / |S|)");
  app.add_option("--select-scale", c.select_scale,
                 "gfs: average (the selected units' outputs times N / |S|, Ye et al.) | sum (as trained)")
      ->capture_default_str();
  app.add_option("--select-candidates", c.select_candidates, "gfs: units sampled per step")->capture_default_str();
  app.add_option("--select-batches", c.select_batches,
                 "gfs: fresh training minibatches averaged for each candidate's loss")->capture_default_str();
  app.add_option("--select-finetune-steps", c.select_finetune_steps, "SGD steps after each layer's selection")
      ->capture_default_str();
  app.add_option("--select-eval", c.select_eval, "training images the selection's accuracy is measured on")
      ->capture_default_str();
  app.add_option("--dst", c.dst, "dynamic sparse training: rigl | set (random mask at --init-density with "
                                 "--prune-allocation erk|layerwise)");
  app.add_option("--dst-interval", c.dst_interval, "DST: steps between mask updates (dT)")->capture_default_str();
  app.add_option("--dst-alpha", c.dst_alpha, "DST: initial drop fraction alpha (cosine decay)")->capture_default_str();
  app.add_option("--dst-end", c.dst_end_fraction, "DST: last update at this fraction of training (T_end)")
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
  app.add_flag("--lr-search", options.lr_search,
               "baseline LR grid search (the SILO paper's protocol): one whole run per lr of the oracle grid flags, "
               "best mean validation accuracy over the cycles wins");
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
  app.add_option("--device", c.device, "auto | cpu | cuda (auto: cuda when a GPU is usable)")->capture_default_str();
  app.add_option("--sparse-kernels", c.sparse_kernels,
                 "cpu: off | on | auto: masked linear and conv layers run sparse kernels (auto: the faster, timed per layer at "
                 "each mask change)")
      ->capture_default_str();
  app.add_option("--kernels", c.kernels, "cuda: ours | vendor (cuDNN/cuBLAS for convolution, linear, BatchNorm)")
      ->capture_default_str();
  app.add_option("--tf32", c.tf32, "cuda: TF32 tensor cores in convolution and GEMM (on | off)")->capture_default_str();
  app.add_option("--threads", c.threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--run-dir", c.run_dir, "run directory (config, metrics, checkpoints)")->capture_default_str();
  app.add_flag("--overwrite", c.overwrite, "start afresh in a run directory that holds an earlier run");
  app.add_option("--init-from", c.init_from, "start from the weights, masks and BatchNorm statistics of this "
                                            "checkpoint of the same model (e.g. one written by `sparsetrain prune`)");
  app.add_option("--checkpoint-every", c.checkpoint_every, "steps between checkpoints (0 = every epoch end)")
      ->capture_default_str();
  app.add_option("--log-every", c.log_every, "steps between progress lines and metrics.jsonl train events "
                                             "(0 = 5 per epoch)");
  app.add_option("--progress", c.progress, "console output: auto (a bar on a terminal, else a line per epoch) | bar | "
                                           "epochs | steps (every --log-every steps) | cycles | quiet")
      ->capture_default_str();
  app.add_flag_callback("--quiet", [&c] { c.progress = "quiet"; }, "print only the final line (and errors)");
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
  if (base.oracle_grid_requested)
    fail("--lr-search: takes its grid from --oracle-min/--oracle-max/--oracle-size; do not combine it with --oracle");
  const std::vector<double> grid = schedules::log_grid(options.oracle_min, options.oracle_max, options.oracle_size);
  schedules::validate_grid(grid);
  struct Row {
    double lr, mean_val, last_val, last_test;
  };
  std::vector<Row> rows;
  for (double lr : grid) {
    TrainConfig c = base;
    c.schedule.max_lr = lr;
    c.cycles.silo_offset = lr;  // SILO's base peak follows the searched lr
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
  config.cycles.prune_rate = 0.2;
  std::vector<std::pair<std::string, TrainResult>> results;
  for (const std::string policy : {"lr_rewind", "silo"}) {
    TrainConfig c = config;
    c.cycles.kind = policy;
    c.cycles.silo_offset = 0.05;
    c.cycles.silo_alpha = 0.05;
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
