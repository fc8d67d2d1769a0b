// The step loop's pruning hooks (../shared/design.md, "The step loop"). A pruning method is a Pruner:
// the trainer calls it at fixed points of every training step, and it acts on the run through the
// services of PruningRun. engine/ defines these interfaces only; the methods live in pruning/, found by
// name in its registry (pruning/pruners.h), so the trainer compares no method names.
//
// Hooks of a step (cycle c, iteration t; the model and its optimizer state are on the CPU while a hook
// acts, moved there and back by the trainer only when some pruner acts at that point):
//   before_step     before the data of step t is read (pruning at initialisation, early pruning, GMP,
//                   a dynamic sparse run's initial mask)
//   after_backward  after step t's backward, before its optimizer step; the step's gradients are dense
//                   (every weight's, pruned ones included) when some pruner acts there (RigL, SET)
//   after_step      after step t's optimizer step
//   at_cycle_end    after cycle c's last step and evaluation, before cycle c + 1 (IMP and its controls,
//                   structured shrinking, greedy unit selection)
// The hooks are pure functions of (config, position, model state, the pruner's own checkpointed state): a
// resumed run calls them at the same points with the same state, so resuming stays bit-identical.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace st {

// Where the step loop is when a hook runs.
struct StepPoint {
  int cycle = 0;
  int64_t step = 0;               // iteration within the cycle: the step about to run (before_step) or running
  int64_t dense_steps = 0;        // iterations of a full-length cycle (the run's epochs x batches)
  int64_t batches_per_epoch = 0;
};

// One prunable tensor's change in a pruning event.
struct LayerChange {
  std::string name;
  Shape shape;
  int64_t numel = 0, kept_before = 0, kept_after = 0;
  int64_t uses_per_sample = 1;  // for FLOPs: 2 * kept * uses_per_sample per sample
};

// The data gradient-based scores are computed on (from the run's training images, in a deterministic
// order of their own).
struct ScoreData {
  // Training minibatch number `index` (0, 1, ...): images NHWC and labels.
  std::function<void(int64_t index, Tensor& images, std::vector<int32_t>& labels)> batch;
  // A batch holding `per_class` images of every class (GraSP).
  std::function<void(int64_t per_class, Tensor& images, std::vector<int32_t>& labels)> balanced_batch;
  Shape sample_shape;  // [1, H, W, C] (SynFlow's all-ones input)
};

// A histogram of scores (Sturges binning); empty counts for none.
struct Histogram {
  double low = 0.0, high = 0.0;
  std::vector<int64_t> counts;
};

// A history of training that a pruning score keeps (movement: the weights at the last epoch ends). Made
// for the run's score by the pruning plug-in, it hears the end of every training epoch of the main line
// (not the oracle's branches) and its tensors are saved in the run's checkpoints.
class TrainingHistory {
 public:
  virtual ~TrainingHistory() = default;
  virtual void on_epoch_end(nn::Module& model) = 0;
  // The tensors to checkpoint (CPU; their number and shapes fixed by the model when the history is made).
  virtual std::vector<Tensor*> state() = 0;
};

// Per-layer table (shape, kept, density and FLOPs before/after) and the global density, for logs.
std::string format_prune_table(const std::vector<LayerChange>& changes);
// Kept weights over all weights of the prunable tensors (1 when there are none).
double global_density(const std::vector<nn::Parameter*>& parameters);
// Sturges binning (ceil(log2 n) + 1 equal-width bins over [min, max]) of any values (NaN/inf skipped);
// empty counts for no values.
Histogram sturges_histogram(const std::vector<float>& values);

// What a pruning method may use of the run (the trainer implements it).
class PruningRun {
 public:
  virtual ~PruningRun() = default;
  virtual nn::Module& model() = 0;
  virtual Optimizer& optimizer() = 0;
  // Scores of every prunable weight by a registered score name (pruning/scores.h), on the run's score
  // minibatches; `stream` picks the minibatches and the random numbers (a pure function of seed and stream).
  virtual std::vector<Tensor> scores(const std::string& name, int64_t stream) = 0;
  // Prints (by the run's --progress) and logs one pruning event: its per-layer table, the score histogram
  // and each sparse-capable layer's compute form.
  virtual void report(const std::string& what, const StepPoint& at, const std::vector<LayerChange>& changes,
                      const Histogram& histogram) = 0;
  // The minibatches of score stream `stream` (as scores() uses them).
  virtual ScoreData score_data(int64_t stream) = 0;
  // One event object appended to metrics.jsonl.
  virtual void log(const nlohmann::json& event) = 0;
  virtual uint64_t seed() const = 0;
  // The weights and buffers of the rewind point (captured by the cycle policy, weight_rewind, in the first
  // cycle) copied back into the model; an error when none was captured.
  virtual void rewind_weights() = 0;
  // A freshly initialised network of the run's model and input (controls that re-draw weights).
  virtual std::unique_ptr<nn::Module> fresh_model(Rng& rng) = 0;
  // A new optimizer (zero state) for the model's current parameters, after their shapes changed.
  virtual void rebuild_optimizer() = 0;
  // The model's accuracy (evaluation mode) on the first `count` training images (fewer when the split is
  // smaller), and the training split's size.
  virtual double training_prefix_accuracy(int64_t count) = 0;
  virtual int64_t training_images() const = 0;
  // One SGD step of the run's optimizer on this batch at this learning rate (fine-tuning); the loss.
  virtual float train_step(const Tensor& images, const std::vector<int32_t>& labels, float lr) = 0;
};

// A pruning method in the step loop. acts_*(at) say whether the method acts at that point (cheap, called
// every step); the hook itself then runs with the model on the CPU.
class Pruner {
 public:
  virtual ~Pruner() = default;
  virtual std::string name() const = 0;
  virtual bool acts_before_step(const StepPoint&) const { return false; }
  virtual void before_step(PruningRun&, const StepPoint&) {}
  virtual bool acts_after_backward(const StepPoint&) const { return false; }
  virtual void after_backward(PruningRun&, const StepPoint&) {}
  // After step t's optimizer step (the weights of step t + 1 in place).
  virtual bool acts_after_step(const StepPoint&) const { return false; }
  virtual void after_step(PruningRun&, const StepPoint&) {}
  // Between cycles, before cycle `next_cycle` (1, 2, ...) starts: the new masks or shapes, and the weights
  // that cycle starts from.
  virtual bool acts_at_cycle_end(int /*next_cycle*/) const { return false; }
  virtual void at_cycle_end(PruningRun&, int /*next_cycle*/) {}
  // The method's own state, saved in the run's checkpoints (as extra/pruner/<name>/<i>) and in the oracle's
  // snapshots, restored before a resumed run's first hook: CPU tensors whose number and shapes are fixed
  // when the pruner is made. Stateless methods (every one today: their decisions are functions of the
  // seed, the position and the model) keep none.
  virtual std::vector<Tensor*> state() { return {}; }
};

}  // namespace st
