// Pruning at initialisation as a step-loop pruner: before the first step, one shot by --prune-at-init's
// score down to --init-density; SynFlow iteratively in --synflow-rounds rounds with the exponential
// schedule density_r = D^(r / R), r = 1..R (Tanaka et al. 2020). The mask then stays fixed.
#include <cmath>

#include "pruning/prune.h"
#include "pruning/pruners.h"

namespace st::pruning {
namespace {

class PruneAtInit final : public Pruner {
 public:
  explicit PruneAtInit(const TrainConfig& config)
      : score_(config.init_score),
        spec_(config.prune),
        density_(config.init_density),
        rounds_(config.init_score == "synflow" ? config.synflow_rounds : 1) {}

  std::string name() const override { return "init"; }

  bool acts_before_step(const StepPoint& at) const override { return at.cycle == 0 && at.step == 0; }
  void before_step(PruningRun& run, const StepPoint& at) override {
    std::vector<LayerChange> first;
    Histogram histogram;
    for (int r = 1; r <= rounds_; ++r) {
      const double density = std::pow(density_, static_cast<double>(r) / rounds_);
      const std::vector<Tensor> scores = run.scores(score_, r);
      if (r == 1) histogram = score_histogram(run.model().parameters(), scores);
      auto changes = prune_to_density(run.model().parameters(), scores, density, spec_);
      if (r == 1) first = changes;
      for (std::size_t i = 0; i < changes.size() && r == rounds_; ++i) first[i].kept_after = changes[i].kept_after;
    }
    run.report("pruning at initialisation: " + score_, at, first, histogram);
  }

 private:
  std::string score_;
  PruneSpec spec_;
  double density_;
  int rounds_;
};

}  // namespace

std::unique_ptr<Pruner> make_init_pruner(const TrainConfig& config) {
  if (config.init_score.empty()) return nullptr;
  return std::make_unique<PruneAtInit>(config);
}

}  // namespace st::pruning
