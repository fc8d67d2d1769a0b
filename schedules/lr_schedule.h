// Within-cycle learning-rate shapes, pure functions of the iteration t in [0, T) of a training
// cycle and the cycle's peak eta = max_lr (../shared/spec/schedules.md):
//   constant:   lr = eta
//   step:       lr = eta * gamma^(number of milestones <= t)                (multistep; gamma 0.1)
//   cosine:     lr = eta_min + 1/2 (eta - eta_min) (1 + cos(pi (t - W) / (T - W)))
//   cyclical (Smith 2015), s = half cycle, b = eta_min:
//               c = floor(1 + t / 2s), x = |t / s - 2c + 1|,
//               lr = b + (eta - b) max(0, 1 - x) scale(c, t),
//               scale = 1 (triangular), 1 / 2^(c - 1) (triangular2), gamma_c^t (exp_range)
//   one_cycle (Smith & Topin 2019, PyTorch's OneCycleLR parameters): from eta / div up to eta over
//               the first fraction f of T, then down to eta / (div * final_div), cosine or linear
//   exp_sine (An et al. 2017, the form cited by later papers; the original was not readable here):
//               lr = eta e^(-alpha t / T) (sin(beta t / (2 pi b)) + e^(-alpha t / T) + 0.5),
//               b = iterations per epoch, so t / b is the epoch; note the value can exceed eta
//               (up to 2.5 eta at t = 0-ish peaks) exactly as the formula says.
// Linear warmup composes with every shape and ramps from eta_W / W, never from 0:
//   t < W:  lr = shape(W) (t + 1) / W        (shape(W) = the shape's value where warmup ends)
// except for a step shape with milestones inside the warmup (allowed for step only): there the ramp's
// target is shape(t), lr = shape(t) (t + 1) / W, so a decay inside the warmup scales the rest of the ramp
// (../shared/spec/schedules.md's eta_target(t); the SILO authors' released scripts decay before their
// ramp of max_lr / 20000 per iteration ends).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace st::schedules {

struct LrSchedule {
  std::string shape = "cosine";  // constant | step | cosine | cyclical | one_cycle | exp_sine
  double max_lr = 0.05;          // eta (cycle 0; across-cycle policies set each cycle's peak)
  double min_lr = 0.0;           // eta_min (cosine), base lr b (cyclical)
  int64_t warmup_iters = 0;      // W
  std::vector<int64_t> milestones;  // step
  double gamma = 0.1;               // step
  int64_t half_cycle_iters = 0;     // cyclical: s
  std::string cyclical_mode = "triangular";  // triangular | triangular2 | exp_range
  double cyclical_gamma = 0.9999;            // exp_range: gamma_c
  double one_cycle_fraction = 0.3;  // one_cycle: f
  double one_cycle_div = 25.0;      // one_cycle: start at eta / div
  double one_cycle_final_div = 1e4; // one_cycle: end at eta / (div * final_div)
  std::string one_cycle_anneal = "cos";  // cos | linear
  double sine_alpha = 0.5, sine_beta = 0.6;  // exp_sine (recommended alpha 0.4-0.6, beta 0.5-0.7)
  int64_t iters_per_epoch = 0;               // exp_sine: b (0: the run's batches per epoch)
};

// Refuses bad parameters with an st::Error naming the flag (T = iterations of the cycle).
void validate(const LrSchedule& schedule, int64_t total_iters);
// lr at iteration t of a cycle of T iterations whose peak is max_lr.
double learning_rate(const LrSchedule& schedule, double max_lr, int64_t iter, int64_t total_iters);
inline double learning_rate(const LrSchedule& schedule, int64_t iter, int64_t total_iters) {
  return learning_rate(schedule, schedule.max_lr, iter, total_iters);
}

}  // namespace st::schedules
