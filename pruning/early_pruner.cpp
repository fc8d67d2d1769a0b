// Early pruning (Lubana & Dick 2021) as a step-loop pruner: --early-rounds rounds at the ends of the
// first epochs of the first cycle, each removing the same fraction of the remaining weights by
// --prune-score, so that --early-sparsity is reached after the last round.
#include <fmt/format.h>

#include "pruning/prune.h"
#include "pruning/pruners.h"
#include "schedules/sparsity.h"

namespace st::pruning {
namespace {

class EarlyPruning final : public Pruner {
 public:
  explicit EarlyPruning(const TrainConfig& config) : rounds_(config.early_rounds), spec_(config.prune) {
    spec_.rate = schedules::early_round_rate(config.early_rounds, config.early_sparsity);
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

std::unique_ptr<Pruner> make_early_pruner(const TrainConfig& config) {
  if (config.early_rounds <= 0) return nullptr;
  return std::make_unique<EarlyPruning>(config);
}

}  // namespace st::pruning
