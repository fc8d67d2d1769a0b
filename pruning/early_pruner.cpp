// Early pruning (Lubana & Dick 2021) as a step-loop pruner: --early-rounds rounds at the ends of the
// first epochs of the first cycle, each removing the same fraction of the remaining weights by
// --prune-score, so that --early-sparsity is reached after the last round.
#include <fmt/format.h>

#include "engine/error.h"
#include "pruning/prune.h"
#include "pruning/pruners.h"
#include "schedules/sparsity.h"

namespace st::pruning {
namespace {

class EarlyPruning final : public Pruner {
 public:
  explicit EarlyPruning(const TrainConfig& config)
      : rounds_(config.get<EarlyOptions>().rounds), spec_(config.get<PruneSpec>()) {
    spec_.rate = schedules::early_round_rate(rounds_, config.get<EarlyOptions>().sparsity);
  }

  std::string name() const override { return "early"; }

  bool acts_before_step(const StepPoint& at) const override {
    return at.cycle == 0 && at.step > 0 && at.step % at.batches_per_epoch == 0 &&
           at.step / at.batches_per_epoch <= rounds_;
  }
  void before_step(PruningRun& run, const StepPoint& at) override {
    const auto round = static_cast<int>(at.step / at.batches_per_epoch);
    const std::vector<Tensor> scores = run.scores(spec_.score, 100 + round);
    const Histogram histogram = score_histogram(run.model().parameters(), scores);
    const auto changes = prune_fraction(run.model().parameters(), scores, spec_);
    run.report(fmt::format("early pruning round {}/{}: {}", round, rounds_, spec_.score), at, changes, histogram);
  }

 private:
  int rounds_;
  PruneSpec spec_;
};

}  // namespace

std::unique_ptr<Pruner> make_early_pruner(const TrainConfig& config, const RunSize& size) {
  const int rounds = config.get<EarlyOptions>().rounds;
  if (rounds <= 0) return nullptr;
  if (rounds * size.batches_per_epoch >= size.dense_steps)
    fail("--early-rounds: {} rounds of one epoch each do not fit in the {} iterations of training", rounds,
         size.dense_steps);
  return std::make_unique<EarlyPruning>(config);
}

Component early_options() {
  Component c;
  c.name = "early";
  c.title = "Early pruning (pruning/early_pruner.cpp)";
  c.options = {
      option<EarlyOptions>("early-rounds", &EarlyOptions::rounds,
                           "early pruning: rounds at the ends of the first epochs (0 = off)"),
      option<EarlyOptions>("early-sparsity", &EarlyOptions::sparsity, "early pruning: sparsity after the last round"),
  };
  c.validate = [](const TrainConfig& config) {
    const EarlyOptions& o = config.get<EarlyOptions>();
    if (o.rounds > 0) schedules::early_round_rate(o.rounds, o.sparsity);
  };
  return c;
}

}  // namespace st::pruning
