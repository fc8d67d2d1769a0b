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

#include "engine/cycle_search.h"
#include "engine/data/dataset.h"
#include "engine/data/loader.h"
#include "engine/input_spec.h"
#include "engine/learning_rate.h"
#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/plugins.h"
#include "engine/pruner.h"
#include "engine/rng.h"
#include "engine/sparse_kernels.h"
#include "engine/train_config.h"

namespace st {
namespace io {
class MetricsLog;
struct CheckpointContents;
}

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
  const InputSpec& input_spec() const { return input_; }
  // Restores the model (and optimizer) from a checkpoint of this run, shrunk networks included.
  void restore(const std::filesystem::path& checkpoint) { load(checkpoint); }
  // A change of the model outside training (one-shot pruning by `sparsetrain prune`, structured shrinking
  // by `sparsetrain bench`): `change` runs with the model on the CPU and this run's pruning services (its
  // events printed, not logged); it resets or rebuilds the optimizer through them as its change requires.
  void change_model(const std::function<void(PruningRun&)>& change);
  // Saves the model, optimizer state and config as checkpoint `name` of this run directory (a new file:
  // an existing one is refused naming `flag`), as at the start of a run (position 0).
  void save_new_checkpoint(const std::string& name, const std::string& flag);
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

  // What a checkpoint of this run holds besides the position: model, optimizer, rng, rewind point, the score
  // history and the pruners' state.
  io::CheckpointContents checkpoint_contents();
  void save(const std::string& name, const Position& position);
  Position load(const std::filesystem::path& path);
  // Trains cycle `position.cycle` from `position.step` to its end with peak max_lr; checkpoints
  // and logs when `main_line` (not inside oracle branches).
  void train_cycle(Position& position, double max_lr, bool main_line, io::MetricsLog& metrics);
  void capture_rewind_point();
  enum class Progress { Bar, Epochs, Steps, Cycles, Quiet };
  Progress progress() const;  // config.progress, auto resolved by whether stdout is a terminal
  int64_t steps_after_cycle(int cycle) const;  // training steps of the cycles after `cycle` (for the run's ETA)
  // Resizes the model's parameters to a structurally shrunk checkpoint's shapes (and remakes the score history
  // and pruners for them); false when the shapes are the model's already. The optimizer is the caller's.
  bool shrink_to_checkpoint(const std::filesystem::path& path);
  // --init-from: weights, masks and buffers of a checkpoint of the same model (a fresh optimizer).
  void init_from_checkpoint(const std::filesystem::path& path);
  double elapsed() const;  // seconds of this run, including those before a resume
  // Between cycles: prune, rewind or keep the weights (or the controls), reset the optimizer.
  void prune_for_next_cycle(int next_cycle, io::MetricsLog& metrics);
  // The step-loop pruners' hooks (engine/pruner.h): where the loop is; whether some pruner acts at a point
  // (acts: &Pruner::acts_before_step, ...); and the hook of every pruner that acts there, with the model on
  // the CPU while one does.
  using PrunerActs = bool (Pruner::*)(const StepPoint&) const;
  using PrunerHook = void (Pruner::*)(PruningRun&, const StepPoint&);
  StepPoint step_point(const Position& position) const;
  bool pruners_act(PrunerActs acts, const StepPoint& at) const;
  void run_pruners(PrunerActs acts, PrunerHook hook, const StepPoint& at, io::MetricsLog& metrics);
  class Services;  // the PruningRun the pruners see (engine/trainer_pruning.cpp)
  // The per-cycle distribution report (engine/trainer_report.cpp).
  nlohmann::json measure_distributions(int cycle);
  void write_distribution_report(const std::filesystem::path& run_dir);
  ScoreData score_data(int64_t stream);
  std::vector<Tensor> compute_scores(const std::string& name, int64_t stream);
  // metrics: null to print the event only
  void report_prune_event(const std::string& what, int cycle, int64_t step, const std::vector<LayerChange>& changes,
                          const Histogram& scores, io::MetricsLog* metrics);

  TrainConfig config_;
  data::Dataset train_, validation_, test_;
  data::Normalization normalization_;
  data::AugmentOptions eval_augment_;
  std::unique_ptr<data::BatchLoader> train_loader_;
  InputSpec input_;
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
  std::unique_ptr<TrainingHistory> score_history_;
  std::chrono::steady_clock::time_point clock_start_;
  double seconds_before_ = 0.0;
  double step_seconds_ = 0.0;  // accumulated by train_cycle, read per cycle
};

}  // namespace st
