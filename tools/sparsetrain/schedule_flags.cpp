#include "tools/sparsetrain/schedule_flags.h"

namespace st::cli {

void add_schedule_flags(CLI::App& app, schedules::LrSchedule& s, schedules::CyclePolicy& p, ScheduleFlags& flags) {
  app.add_option("--lr", s.max_lr, "(peak) learning rate eta")->capture_default_str();
  app.add_option("--schedule", s.shape, "within-cycle shape: constant | step | cosine | cyclical | one_cycle | exp_sine")
      ->capture_default_str();
  app.add_option("--min-lr", s.min_lr, "cosine: final lr; cyclical: base lr")->capture_default_str();
  app.add_option("--warmup-iters", s.warmup_iters, "linear warmup iterations W (ramp from lr_W / W)")
      ->capture_default_str();
  app.add_option("--milestones", s.milestones, "step: iterations where lr is multiplied by gamma")->delimiter(',');
  app.add_option("--gamma", s.gamma, "step: decay factor")->capture_default_str();
  app.add_option("--half-cycle-iters", s.half_cycle_iters, "cyclical: half cycle s in iterations");
  app.add_option("--cyclical-mode", s.cyclical_mode, "cyclical: triangular | triangular2 | exp_range")
      ->capture_default_str();
  app.add_option("--cyclical-gamma", s.cyclical_gamma, "cyclical exp_range: gamma per iteration")
      ->capture_default_str();
  app.add_option("--one-cycle-fraction", s.one_cycle_fraction, "one_cycle: fraction of the cycle spent rising")
      ->capture_default_str();
  app.add_option("--one-cycle-div", s.one_cycle_div, "one_cycle: start at lr / div")->capture_default_str();
  app.add_option("--one-cycle-final-div", s.one_cycle_final_div, "one_cycle: end at lr / (div * final_div)")
      ->capture_default_str();
  app.add_option("--one-cycle-anneal", s.one_cycle_anneal, "one_cycle: cos | linear")->capture_default_str();
  app.add_option("--sine-alpha", s.sine_alpha, "exp_sine: decay alpha")->capture_default_str();
  app.add_option("--sine-beta", s.sine_beta, "exp_sine: frequency beta")->capture_default_str();
  app.add_option("--iters-per-epoch", s.iters_per_epoch, "exp_sine: iterations per epoch b (train: from the data)");
  app.add_option("--cycle-policy", p.kind, "across cycles: restart | weight_rewind | lr_rewind | finetune | silo")
      ->capture_default_str();
  app.add_option("--rewind-iter", p.rewind_iter, "weight_rewind / lr_rewind: rewind iteration t_k")
      ->capture_default_str();
  app.add_option("--prune-rate", p.prune_rate, "fraction p of the remaining weights pruned per cycle")
      ->capture_default_str();
  app.add_option("--silo-offset", p.silo_offset, "SILO: offset (max_lr of the first cycles)")->capture_default_str();
  app.add_option("--silo-alpha", p.silo_alpha, "SILO: alpha (growth of max_lr)")->capture_default_str();
  app.add_option("--silo-beta", p.silo_beta, "SILO: beta (steepness of the S curve)")->capture_default_str();
  app.add_option("--silo-delay", p.silo_delay, "SILO: delay d in cycles")->capture_default_str();
  app.add_option("--silo", flags.silo_notation,
                 "SILO(offset, alpha, W, D1, D2, T) as in the paper: step shape, warmup W, x0.1 at D1, x0.01 at D2, "
                 "cycle length T (K = 1e3)");
}

}  // namespace st::cli
