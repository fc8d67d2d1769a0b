// See options.h.
#include "schedules/options.h"

#include <cmath>

#include "engine/error.h"
#include "schedules/cycles.h"
#include "schedules/lr_schedule.h"
#include "schedules/oracle.h"
#include "schedules/oracle_search.h"

namespace st::schedules {
namespace {

Component schedule_component() {
  using S = LrSchedule;
  using P = CyclePolicy;
  Component c;
  c.name = "schedule";
  c.title = "Learning rate (schedules/)";
  c.options = {
      option<S>("lr", &S::max_lr, "(peak) learning rate eta"),
      option<S>("schedule", &S::shape, "within-cycle shape",
                {"constant", "step", "cosine", "cyclical", "one_cycle", "exp_sine"}),
      option<S>("min-lr", &S::min_lr, "cosine: final lr; cyclical: base lr"),
      option<S>("warmup-iters", &S::warmup_iters, "linear warmup iterations W (ramp from lr_W / W)"),
      option<S>("milestones", &S::milestones, "step: iterations where lr is multiplied by gamma"),
      option<S>("gamma", &S::gamma, "step: decay factor"),
      option<S>("half-cycle-iters", &S::half_cycle_iters, "cyclical: half cycle s in iterations"),
      option<S>("cyclical-mode", &S::cyclical_mode, "cyclical: the amplitude's decay",
                {"triangular", "triangular2", "exp_range"}),
      option<S>("cyclical-gamma", &S::cyclical_gamma, "cyclical exp_range: gamma per iteration"),
      option<S>("one-cycle-fraction", &S::one_cycle_fraction, "one_cycle: fraction of the cycle spent rising"),
      option<S>("one-cycle-div", &S::one_cycle_div, "one_cycle: start at lr / div"),
      option<S>("one-cycle-final-div", &S::one_cycle_final_div, "one_cycle: end at lr / (div * final_div)"),
      option<S>("one-cycle-anneal", &S::one_cycle_anneal, "one_cycle: the annealing", {"cos", "linear"}),
      option<S>("sine-alpha", &S::sine_alpha, "exp_sine: decay alpha"),
      option<S>("sine-beta", &S::sine_beta, "exp_sine: frequency beta"),
      option<S>("iters-per-epoch", &S::iters_per_epoch, "exp_sine: iterations per epoch b (0: from the data)"),
      option<P>("cycle-policy", &P::kind, "across cycles",
                {"restart", "weight_rewind", "lr_rewind", "finetune", "silo"}),
      option<P>("rewind-iter", &P::rewind_iter, "weight_rewind / lr_rewind: rewind iteration t_k"),
      option<P>("prune-rate", &P::prune_rate, "fraction p of the remaining weights pruned per cycle"),
      option<P>("silo-offset", &P::silo_offset, "SILO: offset (max_lr of the first cycles)"),
      option<P>("silo-alpha", &P::silo_alpha, "SILO: alpha (growth of max_lr)"),
      option<P>("silo-beta", &P::silo_beta, "SILO: beta (steepness of the S curve)"),
      option<P>("silo-delay", &P::silo_delay, "SILO: delay d in cycles"),
  };
  c.validate = [](const TrainConfig& config) {
    const double lr = config.get<LrSchedule>().max_lr;
    if (!(lr > 0.0) || !std::isfinite(lr)) fail("--lr: must be a positive learning rate, got {}", lr);
  };
  return c;
}

Component oracle_component() {
  Component c;
  c.name = "oracle";
  c.title = "Oracle (schedules/oracle_search.h)";
  c.options = {option<OracleOptions>("oracle-grid", &OracleOptions::grid, "explicit max_lr values of the oracle")};
  c.validate = [](const TrainConfig& config) {
    const OracleOptions& o = config.get<OracleOptions>();
    if (o.requested || !o.grid.empty()) validate_grid(o.grid);
  };
  return c;
}

}  // namespace

void install(Plugins& plugins) {
  register_component(schedule_component());
  register_component(oracle_component());
  plugins.learning_rate = [](const TrainConfig& config, const RunSize& size) {
    LrSchedule shape = config.get<LrSchedule>();
    if (shape.iters_per_epoch == 0) shape.iters_per_epoch = size.batches_per_epoch;
    const CyclePolicy& policy = config.get<CyclePolicy>();
    validate(policy, shape, size.dense_steps);
    return make_learning_rate(policy, shape, size.dense_steps);
  };
  plugins.cycle_search = [](const TrainConfig& config) { return make_cycle_search(config); };
}

}  // namespace st::schedules
