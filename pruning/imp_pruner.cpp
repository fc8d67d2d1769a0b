// Iterative magnitude pruning (Frankle & Carbin 2019; Renda et al. 2020) between cycles, as a pruner:
// before cycle k + 1, remove the cycle policy's --prune-rate of the remaining weights by --prune-score
// with the configured allocation, then start the next cycle from the weights the policy says
// (weight_rewind: the rewind point of cycle 0; otherwise the trained ones), optimizer state reset.
// Controls (--control): random_mask re-draws a random mask with the per-layer densities IMP just found;
// reinit re-draws the surviving weights from the initialisation distribution.
#include <fmt/format.h>

#include "engine/error.h"

#include "pruning/prune.h"
#include "pruning/pruners.h"
#include "pruning/random_mask.h"
#include "pruning/scores.h"
#include "schedules/cycles.h"

namespace st::pruning {
namespace {

class IterativeMagnitude final : public Pruner {
 public:
  explicit IterativeMagnitude(const TrainConfig& config)
      : spec_(config.get<PruneSpec>()),
        control_(config.get<ImpOptions>().control),
        rewind_(config.get<schedules::CyclePolicy>().kind == "weight_rewind") {
    spec_.rate = config.get<schedules::CyclePolicy>().prune_rate;
  }

  std::string name() const override { return "imp"; }

  bool acts_at_cycle_end(int) const override { return true; }
  void at_cycle_end(PruningRun& run, int next_cycle) override {
    nn::Module& model = run.model();
    const std::vector<Tensor> scores = run.scores(spec_.score, 1000 + next_cycle);
    const Histogram histogram = score_histogram(model.parameters(), scores);
    const auto changes = prune_fraction(model.parameters(), scores, spec_);
    if (control_ == "random_mask") {
      Rng rng = Rng::derived(run.seed(), 0x72616e646f6dULL + static_cast<uint64_t>(next_cycle));  // "random"
      std::size_t t = 0;
      for (nn::Parameter* p : prunable_of(model.parameters()))
        apply_random_masks({p}, static_cast<double>(changes[t++].kept_after) / static_cast<double>(p->numel()), rng);
    }
    run.report(fmt::format("IMP, {} {} {:.0f}% of the remaining{}", spec_.allocation, spec_.score, 100.0 * spec_.rate,
                           control_ == "none" ? "" : ", control " + control_),
               {next_cycle, 0, 0, 0}, changes, histogram);
    if (rewind_) run.rewind_weights();
    if (control_ == "reinit") {
      Rng rng = Rng::derived(run.seed(), 0x7265696e6974ULL + static_cast<uint64_t>(next_cycle));  // "reinit"
      const auto fresh = run.fresh_model(rng);
      const auto fresh_parameters = fresh->parameters();
      const auto parameters = model.parameters();
      for (std::size_t i = 0; i < parameters.size(); ++i) parameters[i]->value().copy_from(fresh_parameters[i]->value());
    }
    for (nn::Parameter* p : model.parameters()) p->apply_mask();
    run.optimizer().reset_state();
  }

 private:
  PruneSpec spec_;
  std::string control_;
  bool rewind_;
};

}  // namespace

std::unique_ptr<Pruner> make_imp_pruner(const TrainConfig& config, const RunSize& size) {
  if (config.cycles_count <= 1 || !config.get<SelectOptions>().method.empty() ||
      config.get<StructuredOptions>().fraction > 0.0)
    return nullptr;
  const std::string& score = config.get<PruneSpec>().score;
  if (const ScoreMethod* method = find_score(score);
      method != nullptr && method->make_history && size.dense_steps < 2 * size.batches_per_epoch)
    fail("--prune-score {}: scores the change over the last epoch of a cycle, so cycles need 2 epochs or more "
         "(--epochs {})",
         score, config.epochs);
  return std::make_unique<IterativeMagnitude>(config);
}

Component imp_options() {
  Component c;
  c.name = "imp";
  c.title = "Iterative pruning between cycles (pruning/imp_pruner.cpp)";
  c.options = {option<ImpOptions>("control", &ImpOptions::control,
                                  "IMP control: reinit re-draws the surviving weights, random_mask a mask of "
                                  "the same per-layer densities",
                                  {"none", "reinit", "random_mask"})};
  return c;
}

}  // namespace st::pruning
