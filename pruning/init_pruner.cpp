// Pruning at initialisation as a step-loop pruner: before the first step, one shot by --prune-at-init's
// score down to --init-density; SynFlow iteratively in --synflow-rounds rounds with the exponential
// schedule density_r = D^(r / R), r = 1..R (Tanaka et al. 2020). The mask then stays fixed.
#include <cmath>

#include "engine/error.h"
#include "pruning/prune.h"
#include "pruning/pruners.h"
#include "pruning/scores.h"

namespace st::pruning {
namespace {

class PruneAtInit final : public Pruner {
 public:
  explicit PruneAtInit(const TrainConfig& config)
      : score_(config.get<InitOptions>().score),
        spec_(config.get<PruneSpec>()),
        density_(config.get<InitOptions>().density),
        rounds_(score_ == "synflow" ? config.get<InitOptions>().synflow_rounds : 1) {}

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

std::unique_ptr<Pruner> make_init_pruner(const TrainConfig& config, const RunSize&) {
  if (config.get<InitOptions>().score.empty()) return nullptr;
  return std::make_unique<PruneAtInit>(config);
}

Component init_options() {
  using O = InitOptions;
  Component c;
  c.name = "init";
  c.title = "Pruning at initialisation (pruning/init_pruner.cpp)";
  c.options = {
      option<O>("prune-at-init", &O::score,
                "pruning at initialisation with this score (snip, grasp, synflow, random, ...), then a fixed mask"),
      option<O>("init-density", &O::density, "density after pruning at initialisation (and of --dst's mask)"),
      option<O>("synflow-rounds", &O::synflow_rounds, "SynFlow rounds (exponential density schedule)"),
      option<O>("density", &O::random_density, "random-mask density of every prunable tensor at init"),
  };
  c.validate = [](const TrainConfig& config) {
    const O& o = config.get<O>();
    if (!(o.random_density > 0.0 && o.random_density <= 1.0))
      fail("--density: must be in (0, 1], got {}", o.random_density);
    if (o.score.empty()) return;
    if (!is_known_score(o.score)) fail("--prune-at-init: unknown score '{}' (known: {})", o.score, score_names());
    if (find_score(o.score)->make_history)
      fail("--prune-at-init: {} scores the history of training, which pruning at initialisation has not had",
           o.score);
    if (!(o.density > 0.0 && o.density < 1.0)) fail("--init-density: must be in (0, 1), got {}", o.density);
    if (o.synflow_rounds < 1) fail("--synflow-rounds: must be at least 1, got {}", o.synflow_rounds);
  };
  return c;
}

}  // namespace st::pruning
