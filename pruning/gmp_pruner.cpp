// Gradual magnitude pruning (Zhu & Gupta 2017) as a step-loop pruner: at t0 and every dt steps for n
// steps of the first cycle, prune by magnitude to the cubic schedule's sparsity
// s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3 (schedules/sparsity.h).
#include <fmt/format.h>

#include "pruning/prune.h"
#include "pruning/pruners.h"
#include "schedules/sparsity.h"

namespace st::pruning {
namespace {

class GradualMagnitude final : public Pruner {
 public:
  explicit GradualMagnitude(const TrainConfig& config) : gmp_(config.gmp), spec_(config.prune) {}

  std::string name() const override { return "gmp"; }

  bool acts_before_step(const StepPoint& at) const override {
    return at.cycle == 0 && schedules::is_gmp_step(gmp_, at.step) && schedules::gmp_sparsity(gmp_, at.step) > 0.0;
  }
  void before_step(PruningRun& run, const StepPoint& at) override {
    const double sparsity = schedules::gmp_sparsity(gmp_, at.step);
    const std::vector<Tensor> scores = run.scores("magnitude", 0);
    const Histogram histogram = score_histogram(run.model().parameters(), scores);
    const auto changes = prune_to_density(run.model().parameters(), scores, 1.0 - sparsity, spec_);
    run.report(fmt::format("gradual magnitude pruning to sparsity {:.4f}", sparsity), at, changes, histogram);
  }

 private:
  schedules::GmpSchedule gmp_;
  PruneSpec spec_;
};

}  // namespace

std::unique_ptr<Pruner> make_gmp_pruner(const TrainConfig& config) {
  if (config.gmp.final_sparsity <= 0.0) return nullptr;
  return std::make_unique<GradualMagnitude>(config);
}

}  // namespace st::pruning
