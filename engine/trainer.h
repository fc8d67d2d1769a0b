// The training run: data, model, masked optimizer and the step loop of the design, with metrics,
// progress lines and atomic checkpoints in a run directory. A run is a pure function of its config
// (and the thread count): resuming from any checkpoint reproduces the uninterrupted run bit for bit.
//
// Run directory: config.json (the resolved config), metrics.jsonl (one JSON object per event),
// summary.csv (one row per cycle), checkpoints/last.safetensors (latest position),
// checkpoints/cycle-<k>.safetensors (the network at the start of pruning cycle k, after pruning and
// rewinding) and checkpoints/final.safetensors (end of training).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/loader.h"
#include "engine/nn.h"
#include "engine/cycle_search.h"
#include "engine/learning_rate.h"
#include "engine/optim.h"
#include "engine/pruner.h"
#include "engine/rng.h"
#include "engine/sparse_kernels.h"
#include "models/registry.h"
#include "pruning/prune.h"
#include "schedules/cycles.h"
#include "schedules/lr_schedule.h"
#include "schedules/sparsity.h"
#include "pruning/scores.h"
#include "pruning/structured.h"

namespace st {
namespace io {
class MetricsLog;
}

struct TrainConfig {
  std::string model = "lenet300";
  std::string dataset = "fashion-mnist";  // fashion-mnist | mnist | cifar10 | cifar100 | imagefolder
  std::string data_dir;                   // empty: the dataset's default location
  int64_t image_size = 64;                // imagefolder: images resized to image_size^2 on load
  int64_t max_images = 200'000;           // imagefolder: refuse a split with more images (memory)
  int64_t epochs = 20;
  int64_t batch_size = 128;
  // --lr is schedule.max_lr. Defaults: the default experiment's recipe (lenet300 / Fashion-MNIST
  // reaches about 0.90 test accuracy in 20 epochs with SGD momentum 0.9, weight decay 5e-4).
  schedules::LrSchedule schedule{"cosine", 0.05, 0.0, 0, {}, 0.1};
  schedules::CyclePolicy cycles;  // across pruning cycles (driven by the pruning loop)
  int64_t iters_per_cycle = 0;    // iterations of training (a cycle); 0 = epochs x batches per epoch
  OptimizerConfig optimizer;
  float label_smoothing = 0.0f;
  int64_t val_size = 5000;      // images held out of the training set for validation
  int64_t train_limit = 0;      // use only the first N training images (0 = all); for quick runs
  bool augment = false;         // random crop (pad 4) + horizontal flip
  double density = 1.0;         // random-mask density of every prunable tensor at init (1 = dense)
  uint64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda
  std::string kernels = "ours";  // cuda: ours | vendor (cuDNN/cuBLAS) for convolution, linear, BatchNorm
  std::string sparse_kernels = "off";  // cpu: off | on | auto, masked linear and conv layers (engine/sparse_kernels.h)
  bool tf32 = true;              // cuda: TF32 tensor cores in convolution and GEMM
  int threads = 0;              // 0: OpenMP's default (all cores)
  std::string run_dir = "runs/default";
  bool overwrite = false;        // allow a fresh run in a directory that holds an earlier run
  int64_t checkpoint_every = 0;  // steps between checkpoints; 0 = at the end of every epoch / cycle
  int64_t log_every = 0;         // steps between progress lines; 0 = about 5 per epoch
  // Iterative pruning: `cycles` trainings (cycle 0 dense), each later one after pruning
  // cycles.prune_rate of the remaining weights; the LR per cycle follows `cycles` (the policy).
  int cycles_count = 1;
  pruning::PruneSpec prune;        // rate is taken from cycles.prune_rate
  int64_t score_batches = 1;       // minibatches averaged by gradient scores
  std::string control = "none";    // IMP controls: none | reinit (surviving weights re-drawn) | random_mask
  // Pruning at initialisation (one shot before training; synflow in `synflow_rounds` rounds with an
  // exponential density schedule), then the mask stays fixed.
  std::string init_score;          // empty: none
  double init_density = 0.1;
  int synflow_rounds = 100;
  // Early pruning (Lubana & Dick 2021): `early_rounds` rounds at the ends of the first epochs,
  // reaching `early_sparsity` after the last.
  int early_rounds = 0;
  double early_sparsity = 0.5;
  schedules::GmpSchedule gmp;      // gradual magnitude pruning when gmp.final_sparsity > 0
  // Dynamic sparse training (RigL / SET): a random mask at init_density with the allocation of
  // `prune` (erk or layerwise), updated every dst_interval steps until dst_end_fraction of training.
  // Structured pruning between cycles (instead of unstructured IMP): physically remove this fraction
  // of the channels of every coupled channel group, by a filter score (pruning/structured.h).
  double structured_fraction = 0.0;
  std::string structured_score = "l1";
  // Unit selection between cycles, layer by layer (pruning/greedy.h): gfs (greedy forward selection)
  // or magnitude, until the accuracy on the first select_eval training images reaches
  // (1 - select_tolerance) of the reference: with select_target "layer" the accuracy of the network
  // just before that layer's selection (Ye et al.'s released code), with "original" the trained
  // network's before any layer; select_finetune_steps of SGD after each layer.
  std::string select_method;       // empty | gfs | magnitude
  double select_tolerance = 0.02;
  std::string select_target = "layer";  // layer | original
  bool select_repeats = false;          // gfs: S a multiset (a unit may be picked again; pruning/greedy.h)
  std::string select_scale = "average";  // gfs: average (N / |S|, Ye et al.) | sum (selected units as trained)
  int select_candidates = 50;
  int64_t select_batches = 1;  // gfs: training minibatches averaged for each candidate's loss (8 measured no better)
  int64_t select_finetune_steps = 100;
  int64_t select_eval = 5000;
  std::string dst;                 // empty | rigl | set
  int64_t dst_interval = 100;
  double dst_alpha = 0.3;
  double dst_end_fraction = 0.75;
  std::vector<double> oracle_grid;  // non-empty: the oracle, one branch per max_lr per cycle
  // A fresh run starts from the weights, masks and BatchNorm statistics of this sparsetrain checkpoint
  // (of the same model; a structurally shrunk one is matched in shape) instead of a new initialisation.
  std::string init_from;
  // Console output (metrics.jsonl is the same in every mode): auto = bar on a terminal, epochs otherwise;
  // bar = one progress line per cycle redrawn in place; epochs = a line per epoch; steps = a line every
  // log_every steps; cycles = a line per cycle (pruning events in one line); quiet = the final line only.
  std::string progress = "auto";
  bool oracle_grid_requested = false;  // --oracle or --oracle-grid given (an empty grid is then an error)
};

nlohmann::json to_json(const TrainConfig& config);
TrainConfig train_config_from_json(const nlohmann::json& json);
// Refuses bad values with an st::Error naming the flag, before any data is read.
void validate(const TrainConfig& config);
std::string default_data_dir(const std::string& dataset);

struct EvalResult {
  double loss = 0.0, accuracy = 0.0;
  int64_t count = 0;
  std::vector<int64_t> class_correct, class_count;  // per label: right answers, images
};

struct CycleResult {
  int cycle = 0;
  double density = 1.0, max_lr = 0.0;
  EvalResult validation, test;
  double seconds = 0.0;
  int64_t steps = 0;
  double step_seconds = 0.0;  // time inside the training steps only (no data, evaluation or pruning)
};

struct TrainResult {
  EvalResult validation, test;  // of the last cycle
  int64_t steps = 0;
  double seconds = 0.0;
  std::vector<CycleResult> cycles;
};

// Which device a run uses, and why (printed at start): auto = cuda when a CUDA device is usable, else
// cpu; cuda without a usable device is an error naming --device. The description names the GPU and the
// process-wide kernel settings (kernels ours|vendor, tf32), so set those first.
struct DeviceChoice {
  Device device = Device::CPU;
  std::string description;
};
DeviceChoice choose_device(const std::string& requested);

class Trainer {
 public:
  explicit Trainer(TrainConfig config);

  // Trains every cycle from the beginning (fresh run directory) or, with resume, from
  // run_dir/checkpoints/last.safetensors.
  TrainResult run(bool resume);
  // Reads the config saved in a run directory's last checkpoint (for `train --resume`).
  static TrainConfig config_of_run(const std::filesystem::path& run_dir);
  // The config saved in one checkpoint, its run directory the one holding checkpoints/ (eval, prune,
  // export, and checkpoints written by `sparsetrain import` that have no last.safetensors beside them).
  static TrainConfig config_of_checkpoint(const std::filesystem::path& checkpoint);

  // One optimization step on a batch already in memory; returns the loss and counts correct answers.
  // lr: the learning rate of this step.
  // after_backward (optional) runs between the backward pass and the optimizer step (RigL's growth).
  float train_step(const std::vector<float>& images, const std::vector<int32_t>& labels, int64_t batch, float lr,
                   int64_t* correct, const std::function<void()>& after_backward = {});
  EvalResult evaluate(const data::Dataset& dataset);
  // The run's data splits by name: train, val (held out of the training images) or test; another name
  // fails naming `flag`.
  const data::Dataset& split(const std::string& name, const std::string& flag) const;

  nn::Module& model() { return *model_; }
  Device device() const { return device_.device; }  // where the steps run
  const DeviceChoice& device_choice() const { return device_; }
  const models::InputSpec& input_spec() const { return input_; }
  // Restores the model (and optimizer) from a checkpoint of this run, shrunk networks included.
  void restore(const std::filesystem::path& checkpoint) { load(checkpoint); }
  // One-shot pruning of the current model (`sparsetrain prune`): scores by spec.score (gradient scores on
  // config.score_batches training minibatches), then keep `density` of the prunable weights, or with
  // density <= 0 remove spec.rate of the remaining ones; masked weights are zeroed, the optimizer state
  // reset. Returns the per-layer changes; prints nothing.
  std::vector<pruning::LayerChange> prune_once(const pruning::PruneSpec& spec, double density);
  // Saves the model, optimizer state and config as checkpoint `name` of this run directory (a new file:
  // an existing one is refused naming `flag`), as at the start of a run (position 0).
  void save_new_checkpoint(const std::string& name, const std::string& flag);
  // Physically removes filters now (and rebuilds the optimizer for the new shapes); returns the
  // per-group channel counts. Used between cycles and by `sparsetrain bench --structured`.
  std::vector<pruning::GroupChange> prune_filters(const pruning::StructuredSpec& spec, int64_t stream);
  Optimizer& optimizer() { return *optimizer_; }
  const TrainConfig& config() const { return config_; }
  const data::BatchLoader& train_loader() const { return *train_loader_; }
  std::filesystem::path checkpoint_path(const std::string& name) const;
  int64_t total_steps() const;  // iterations of this run (one cycle)

 private:
  // Where a run is: cycle, iteration inside it, position in the data stream, steps so far.
  struct Position {
    int cycle = 0;
    int64_t step = 0, data_step = 0, global_step = 0;
    double seconds = 0.0;
  };
  // Everything a branch of the oracle restarts from.
  struct Snapshot {
    std::vector<Tensor> tensors;  // parameters, masks, buffers, optimizer state (in that order)
    std::vector<Tensor> rewind;   // the rewind point, if captured
    Rng::State rng;
    int64_t optimizer_steps = 0;
    std::map<std::string, SparseChoice> sparse_choices;  // --sparse-kernels auto: the decisions in force
  };
  // GPU runs: the training steps and evaluation run on the GPU; the cold paths (checkpoints, pruning
  // events and scores, DST updates, snapshots, rewind points, the distribution report) run on a CPU
  // copy: a HostScope moves the model (parameters, gradients, masks, buffers) and the optimizer state to
  // the CPU and back at its end. It is the simplest correct choice: these paths are rare and their code
  // (pruning/, io/) stays host-only. Nested scopes and CPU runs are no-ops.
  class HostScope {
   public:
    explicit HostScope(Trainer& trainer);
    ~HostScope() noexcept(false);  // release(), unless an exception is unwinding
    void release();                // the model back to its device now (then the destructor does nothing)
    HostScope(const HostScope&) = delete;
    HostScope& operator=(const HostScope&) = delete;

   private:
    Trainer& trainer_;
    Device previous_;
    int exceptions_;
  };
  void place_model(Device device);  // model and optimizer state to `device`

  std::vector<Tensor*> state_tensors();
  Snapshot snapshot();
  void restore(const Snapshot& snapshot);

  void save(const std::string& name, const Position& position);
  Position load(const std::filesystem::path& path);
  // Trains cycle `position.cycle` from `position.step` to its end with peak max_lr; checkpoints
  // and logs when `main_line` (not inside oracle branches).
  void train_cycle(Position& position, double max_lr, bool main_line, io::MetricsLog& metrics);
  void capture_rewind_point();
  enum class Progress { Bar, Epochs, Steps, Cycles, Quiet };
  Progress progress() const;  // config.progress, auto resolved by whether stdout is a terminal
  int64_t steps_after_cycle(int cycle) const;  // training steps of the cycles after `cycle` (for the run's ETA)
  // --init-from: weights, masks and buffers of a checkpoint of the same model (a fresh optimizer).
  void init_from_checkpoint(const std::filesystem::path& path);
  double elapsed() const;  // seconds of this run, including those before a resume
  // Between cycles: prune, rewind or keep the weights (or the controls), reset the optimizer.
  void prune_for_next_cycle(int next_cycle, io::MetricsLog& metrics);
  // The step-loop pruners' hooks (engine/pruner.h): where the loop is, and the before-step hook of every
  // pruner that acts there (with the model on the CPU for them).
  StepPoint step_point(const Position& position) const;
  void pruners_before_step(const StepPoint& at, io::MetricsLog& metrics);
  bool pruners_act_after_backward(const StepPoint& at) const;
  void pruners_after_backward(const StepPoint& at, io::MetricsLog& metrics);
  class Services;  // the PruningRun the pruners see (engine/trainer_pruning.cpp)
  // The per-cycle distribution report (engine/trainer_report.cpp).
  nlohmann::json measure_distributions(int cycle);
  void write_distribution_report(const std::filesystem::path& run_dir);
  pruning::ScoreData score_data(int64_t stream);
  std::vector<Tensor> compute_scores(const std::string& name, int64_t stream);
  void report_prune_event(const std::string& what, int cycle, int64_t step,
                          const std::vector<pruning::LayerChange>& changes, const pruning::Histogram& scores,
                          io::MetricsLog& metrics);

  TrainConfig config_;
  data::Dataset train_, validation_, test_;
  data::Normalization normalization_;
  data::AugmentOptions eval_augment_;
  std::unique_ptr<data::BatchLoader> train_loader_;
  models::InputSpec input_;
  Rng model_rng_;  // initialisation, then dropout: saved in checkpoints
  std::unique_ptr<nn::Module> model_;
  std::unique_ptr<Optimizer> optimizer_;
  // lr(cycle, iteration), each cycle's peak and length (schedules/cycles.h: the schedule and cycle policy)
  std::unique_ptr<LearningRate> learning_rate_;
  // How each cycle is trained when a search is asked for (the oracle, schedules/oracle_search.h); null:
  // once, at learning_rate_'s peak.
  std::unique_ptr<CycleSearch> cycle_search_;
  class Branches;  // the CycleBranches of one cycle (engine/trainer.cpp)
  // The pruning methods of the step loop this run's config asks for (pruning/pruners.h), in registry order.
  std::vector<std::unique_ptr<Pruner>> pruners_;
  DeviceChoice device_;                 // the run's device
  Device model_device_ = Device::CPU;   // where the model is now (the CPU inside a HostScope)
  std::vector<Tensor> rewind_point_;  // weights and buffers at iteration t_k of cycle 0 (weight_rewind)
  // The history the pruning score keeps (movement), made for --prune-score when it keeps one; told of
  // every epoch's end of the main line, saved in checkpoints as extra/score/<i>.
  std::unique_ptr<pruning::ScoreHistory> score_history_;
  std::chrono::steady_clock::time_point clock_start_;
  double seconds_before_ = 0.0;
  double step_seconds_ = 0.0;  // accumulated by train_cycle, read per cycle
};

}  // namespace st
