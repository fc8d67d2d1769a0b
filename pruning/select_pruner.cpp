// Unit selection between cycles (pruning/greedy.h), as a pruner: before cycle k + 1, layer by layer
// (channel group by group), keep the units that greedy forward selection (Ye et al. 2020) or magnitude
// picks until the accuracy on the first --select-eval training images reaches (1 - --select-tolerance)
// of the reference (target layer: the network just before that layer's selection, as Ye et al.'s code;
// original: the trained network), shrink the layer physically, and fine-tune --select-finetune-steps SGD
// steps at a tenth of the peak learning rate (Ye et al.).
#include <fmt/format.h>

#include <algorithm>

#include "engine/error.h"
#include "engine/ops.h"
#include "pruning/greedy.h"
#include "pruning/model_size.h"
#include "pruning/pruners.h"
#include "pruning/structured.h"
#include "schedules/cycles.h"
#include "schedules/lr_schedule.h"

namespace st::pruning {
namespace {

class UnitSelection final : public Pruner {
 public:
  explicit UnitSelection(const TrainConfig& config)
      : UnitSelection(config.get<SelectOptions>(), config.get<schedules::LrSchedule>().max_lr) {}
  UnitSelection(const SelectOptions& o, double max_lr)
      : method_(o.method),
        tolerance_(o.tolerance),
        per_layer_(o.target == "layer"),
        target_name_(o.target),
        scale_(o.scale),
        options_{o.candidates, o.repeats, o.scale == "average"},
        batches_(o.batches),
        finetune_steps_(o.finetune_steps),
        eval_count_(o.eval),
        finetune_lr_(static_cast<float>(0.1 * max_lr)) {}

  std::string name() const override { return "select"; }

  bool acts_at_cycle_end(int) const override { return true; }
  void at_cycle_end(PruningRun& run, int next_cycle) override {
    nn::Module& model = run.model();
    // The selection set: the first select_eval training images (accuracy), and fresh training minibatches
    // from a stream of their own (losses of the candidates).
    const int64_t count = std::min<int64_t>(eval_count_, run.training_images());
    const ScoreData data = run.score_data(2000 + next_cycle);
    model.train(false);
    const ModelSize size_before = model_size(model);
    const double original = run.training_prefix_accuracy(count);
    // The candidates of one GFS step are all scored on the same fresh minibatches (select_batches of
    // them, loaded once per step; averaging 8 instead of 1 did not select fewer units on lenet300, see
    // bench/results/2026-11-21-gfs-lenet300.md).
    struct Minibatch {
      Tensor images;
      std::vector<int32_t> labels;
    };
    std::vector<Minibatch> fresh;
    int64_t fresh_iteration = -1;
    const SelectionHooks hooks{
        [&](int64_t iteration) {
          if (iteration != fresh_iteration) {
            fresh.assign(static_cast<std::size_t>(batches_), Minibatch{});
            for (int64_t b = 0; b < batches_; ++b)
              data.batch(iteration * batches_ + b, fresh[static_cast<std::size_t>(b)].images,
                         fresh[static_cast<std::size_t>(b)].labels);
            fresh_iteration = iteration;
          }
          model.train(false);
          double sum = 0.0;
          for (const Minibatch& m : fresh)
            sum += static_cast<double>(
                ops::softmax_cross_entropy(model.forward(Variable(m.images)), m.labels).value().item());
          return sum / static_cast<double>(fresh.size());
        },
        [&] { return run.training_prefix_accuracy(count); }};
    Rng rng = Rng::derived(run.seed(), 0x676673ULL + static_cast<uint64_t>(next_cycle));  // "gfs"
    fmt::print("unit selection ({}) before cycle {}: accuracy on {} training images {:.4f}; each layer stops at "
               "(1 - {}) of {}\n",
               method_ == "gfs" ? fmt::format("gfs, {} form", scale_) : method_, next_cycle, count, original,
               tolerance_, per_layer_ ? "the accuracy before its selection" : "this");
    fmt::print("{:<28} {:>7} {:>8} {:>9} {:>12} {:>14} {:>12}\n", "layer", "units", "selected", "target",
               "acc selected", "acc finetuned", "loss evals");
    nlohmann::json layers = nlohmann::json::array();
    const std::size_t group_count = model.channel_groups().size();
    if (group_count == 0) fail("--select: this model describes no channel groups");
    int64_t finetune_batch = 0;
    for (std::size_t g = 0; g < group_count; ++g) {
      const std::vector<nn::ChannelGroup> groups = model.channel_groups();
      const nn::ChannelGroup& group = groups[g];
      double reference = original;
      if (per_layer_ && g > 0) {
        model.train(false);
        reference = run.training_prefix_accuracy(count);
      }
      const double target = (1.0 - tolerance_) * reference;
      const Selection chosen = method_ == "gfs" ? greedy_forward_selection(group, hooks, target, options_, rng)
                                                : magnitude_selection(group, hooks, target);
      std::vector<std::vector<int64_t>> keep(groups.size());
      for (std::size_t i = 0; i < groups.size(); ++i) {
        keep[i].resize(static_cast<std::size_t>(groups[i].channels));
        for (int64_t c = 0; c < groups[i].channels; ++c) keep[i][static_cast<std::size_t>(c)] = c;
      }
      keep[g] = chosen.units;
      shrink(groups, keep);  // the consumers already carry the selection's scale
      run.rebuild_optimizer();
      // Brief fine-tuning after each layer (Ye et al.), at a tenth of the peak learning rate.
      for (int64_t step = 0; step < finetune_steps_; ++step, ++finetune_batch) {
        Tensor images;
        std::vector<int32_t> labels;
        data.batch(100000 + finetune_batch, images, labels);
        run.train_step(images, labels, finetune_lr_);
      }
      model.train(false);
      const double finetuned = run.training_prefix_accuracy(count);
      fmt::print("{:<28} {:>7} {:>8} {:>9.4f} {:>12.4f} {:>14.4f} {:>12}\n", group.name, group.channels,
                 chosen.units.size(), target, chosen.accuracy, finetuned, chosen.evaluations);
      layers.push_back({{"name", group.name},
                        {"units", group.channels},
                        {"selected", chosen.units.size()},
                        {"target_accuracy", target},
                        {"accuracy_selected", chosen.accuracy},
                        {"accuracy_finetuned", finetuned},
                        {"scale", chosen.scale},
                        {"picks", chosen.picks}});
    }
    const ModelSize size_after = model_size(model);
    fmt::print("{}", size_table(size_before, size_after));
    std::fflush(stdout);
    run.rebuild_optimizer();
    run.log({{"event", "select_units"},
             {"method", method_},
             {"scale", method_ == "gfs" ? scale_ : "sum"},
             {"cycle", next_cycle},
             {"original_accuracy", original},
             {"target", target_name_},
             {"tolerance", tolerance_},
             {"parameters", size_after.parameters},
             {"parameters_before", size_before.parameters},
             {"flops_before", size_before.flops},
             {"flops_after", size_after.flops},
             {"layers", layers}});
  }

 private:
  std::string method_;
  double tolerance_;
  bool per_layer_;
  std::string target_name_, scale_;
  GreedyOptions options_;
  int64_t batches_, finetune_steps_, eval_count_;
  float finetune_lr_;
};

}  // namespace

std::unique_ptr<Pruner> make_select_pruner(const TrainConfig& config, const RunSize&) {
  if (config.get<SelectOptions>().method.empty()) return nullptr;
  return std::make_unique<UnitSelection>(config);
}

Component select_options() {
  using O = SelectOptions;
  Component c;
  c.name = "select";
  c.title = "Unit selection between cycles (pruning/select_pruner.cpp)";
  c.options = {
      option<O>("select", &O::method,
                "between cycles, select units layer by layer: gfs (greedy forward selection, Ye et al. 2020) or "
                "magnitude (empty: off)",
                {"", "gfs", "magnitude"}),
      option<O>("select-tolerance", &O::tolerance, "selection stops at (1 - tol) of the trained accuracy"),
      option<O>("select-target", &O::target,
                "what the tolerance is relative to: the accuracy before each layer's selection (layer, Ye et al.'s "
                "code) or the trained network's (original)",
                {"layer", "original"}),
      option<O>("select-repeats", &O::repeats,
                "gfs: a unit may be picked again (S a multiset, each pick weighted N / |S|)"),
      option<O>("select-scale", &O::scale,
                "gfs: the selected units' outputs times N / |S| (average, Ye et al.) or as trained (sum)",
                {"average", "sum"}),
      option<O>("select-candidates", &O::candidates, "gfs: units sampled per step"),
      option<O>("select-batches", &O::batches, "gfs: fresh training minibatches averaged for each candidate's loss"),
      option<O>("select-finetune-steps", &O::finetune_steps, "SGD steps after each layer's selection"),
      option<O>("select-eval", &O::eval, "training images the selection's accuracy is measured on"),
  };
  c.validate = [](const TrainConfig& config) {
    const O& o = config.get<O>();
    if (o.method.empty()) return;
    if (!(o.tolerance >= 0.0 && o.tolerance < 1.0)) fail("--select-tolerance: must be in [0, 1), got {}", o.tolerance);
    if (o.repeats && o.scale != "average")
      fail("--select-repeats: needs --select-scale average (a repeated pick counts through its weight k N / |S|)");
    if (o.candidates < 1) fail("--select-candidates: must be at least 1, got {}", o.candidates);
    if (o.batches < 1) fail("--select-batches: must be at least 1, got {}", o.batches);
    if (o.finetune_steps < 0) fail("--select-finetune-steps: must be >= 0, got {}", o.finetune_steps);
    if (o.eval < 1) fail("--select-eval: must be at least 1 image, got {}", o.eval);
    if (config.cycles_count < 2) fail("--select: needs --cycles 2 or more (selection happens between cycles)");
    if (config.get<schedules::CyclePolicy>().kind == "weight_rewind")
      fail("--select: use lr_rewind or finetune, not weight rewinding");
  };
  return c;
}

}  // namespace st::pruning
