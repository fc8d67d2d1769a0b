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
  explicit GradualMagnitude(const TrainConfig& config)
      : gmp_(config.get<schedules::GmpSchedule>()), spec_(config.get<PruneSpec>()) {}

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

std::unique_ptr<Pruner> make_gmp_pruner(const TrainConfig& config, const RunSize& size) {
  const schedules::GmpSchedule& gmp = config.get<schedules::GmpSchedule>();
  if (gmp.final_sparsity <= 0.0) return nullptr;
  schedules::validate(gmp, size.dense_steps);
  return std::make_unique<GradualMagnitude>(config);
}

Component gmp_options() {
  using G = schedules::GmpSchedule;
  Component c;
  c.name = "gmp";
  c.title = "Gradual magnitude pruning (pruning/gmp_pruner.cpp)";
  c.options = {
      option<G>("gmp-final-sparsity", &G::final_sparsity, "gradual magnitude pruning: final sparsity (0 = off)"),
      option<G>("gmp-initial-sparsity", &G::initial_sparsity, "GMP: initial sparsity"),
      option<G>("gmp-start", &G::start_iter, "GMP: first pruning iteration t0"),
      option<G>("gmp-interval", &G::interval_iters, "GMP: iterations between pruning steps"),
      option<G>("gmp-steps", &G::steps, "GMP: pruning steps n after t0"),
  };
  return c;
}

}  // namespace st::pruning
