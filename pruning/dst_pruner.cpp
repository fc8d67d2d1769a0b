// Dynamic sparse training (RigL, Evci et al. 2020; SET, Mocanu et al. 2018) as a step-loop pruner: a
// random mask at --init-density with the configured allocation (ERK or layerwise) before the first
// step (unless pruning at initialisation makes the mask), then every --dst-interval steps until
// --dst-end of training, after the backward: drop the cosine-decayed fraction of each layer's active
// weights by magnitude and grow as many (RigL: by |dense gradient|, SET: at random), grown weights at 0
// with their optimizer state reset. Stateless: every update is a function of the seed and the step.
#include <fmt/format.h>

#include "engine/error.h"
#include "pruning/dynamic.h"
#include "pruning/prune.h"
#include "pruning/pruners.h"
#include "schedules/sparsity.h"

namespace st::pruning {
namespace {

class DynamicSparse final : public Pruner {
 public:
  explicit DynamicSparse(const TrainConfig& config)
      : method_(config.get<DstOptions>().method),
        spec_(config.get<PruneSpec>()),
        init_density_(config.get<InitOptions>().density),
        interval_(config.get<DstOptions>().interval),
        alpha_(config.get<DstOptions>().alpha),
        end_fraction_(config.get<DstOptions>().end_fraction),
        initial_mask_(config.get<InitOptions>().score.empty()) {}

  std::string name() const override { return "dst"; }

  bool acts_before_step(const StepPoint& at) const override { return initial_mask_ && at.cycle == 0 && at.step == 0; }
  void before_step(PruningRun& run, const StepPoint& at) override {
    const std::vector<Tensor> scores = run.scores("random", 0);
    const auto changes = prune_to_density(run.model().parameters(), scores, init_density_, spec_);
    run.report("initial random mask for " + method_, at, changes, {});
  }

  bool acts_after_backward(const StepPoint& at) const override {
    return at.cycle == 0 && at.step != 0 && at.step % interval_ == 0 && at.step < end(at);
  }
  void after_backward(PruningRun& run, const StepPoint& at) override {
    const double fraction = schedules::rigl_drop_fraction(alpha_, at.step, end(at));
    const std::vector<nn::Parameter*> prunable = prunable_of(run.model().parameters());
    std::vector<Tensor> gradients;
    for (nn::Parameter* p : prunable) gradients.push_back(p->grad());
    Rng rng = Rng::derived(run.seed(), 0x647374ULL + static_cast<uint64_t>(at.step));  // "dst"
    const auto updates = drop_and_grow(prunable, gradients, fraction, method_, rng);
    int64_t moved = 0;
    nlohmann::json layers = nlohmann::json::array();
    for (std::size_t t = 0; t < prunable.size(); ++t) {
      run.optimizer().reset_state_at(*prunable[t], updates[t].changed);
      moved += updates[t].grown;
      layers.push_back({{"name", updates[t].name}, {"active", updates[t].active}, {"dropped", updates[t].dropped},
                        {"grown", updates[t].grown}});
    }
    fmt::print("{} update at step {}: drop fraction {:.4f}, {} weights moved, density {:.4f}\n", method_, at.step,
               fraction, moved, global_density(run.model().parameters()));
    run.log({{"event", "dst_update"},
             {"method", method_},
             {"step", at.step},
             {"fraction", fraction},
             {"moved", moved},
             {"layers", layers}});
  }

 private:
  // the last iteration with updates (exclusive): --dst-end of a full-length cycle
  int64_t end(const StepPoint& at) const {
    return static_cast<int64_t>(end_fraction_ * static_cast<double>(at.dense_steps));
  }

  std::string method_;
  PruneSpec spec_;
  double init_density_;
  int64_t interval_;
  double alpha_, end_fraction_;
  bool initial_mask_;
};

}  // namespace

std::unique_ptr<Pruner> make_dst_pruner(const TrainConfig& config, const RunSize&) {
  if (config.get<DstOptions>().method.empty()) return nullptr;
  return std::make_unique<DynamicSparse>(config);
}

Component dst_options() {
  using O = DstOptions;
  Component c;
  c.name = "dst";
  c.title = "Dynamic sparse training (pruning/dst_pruner.cpp)";
  c.options = {
      option<O>("dst", &O::method,
                "dynamic sparse training from a random mask at --init-density with --prune-allocation erk or "
                "layerwise (empty: off)",
                {"", "rigl", "set"}),
      option<O>("dst-interval", &O::interval, "DST: steps between mask updates (dT)"),
      option<O>("dst-alpha", &O::alpha, "DST: initial drop fraction alpha (cosine decay)"),
      option<O>("dst-end", &O::end_fraction, "DST: last update at this fraction of training (T_end)"),
  };
  c.validate = [](const TrainConfig& config) {
    const O& o = config.get<O>();
    if (o.method.empty()) return;
    if (o.interval <= 0) fail("--dst-interval: must be positive, got {}", o.interval);
    if (!(o.alpha > 0.0 && o.alpha < 1.0)) fail("--dst-alpha: must be in (0, 1), got {}", o.alpha);
    if (!(o.end_fraction > 0.0 && o.end_fraction <= 1.0)) fail("--dst-end: must be in (0, 1], got {}", o.end_fraction);
    const double density = config.get<InitOptions>().density;
    if (!(density > 0.0 && density < 1.0)) fail("--init-density: must be in (0, 1), got {}", density);
    if (config.cycles_count > 1) fail("--dst: dynamic sparse training runs one cycle (got --cycles {})", config.cycles_count);
  };
  return c;
}

}  // namespace st::pruning
