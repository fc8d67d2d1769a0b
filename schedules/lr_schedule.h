// Within-cycle learning-rate shapes as pure functions of the iteration t in [0, T) (see
// ../shared/spec/schedules.md). Linear warmup composes with every shape and ramps from eta/W:
//   warmup (t < W):  lr = shape(W) * (t + 1) / W
//   constant:        lr = eta
//   step:            lr = eta * gamma^(number of milestones <= t)
//   cosine:          lr = eta_min + 1/2 (eta - eta_min) (1 + cos(pi (t - W) / (T - W)))
// The across-cycle schedules (rewinding, SILO, oracle) build on these in the pruning work.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace st::schedules {

struct LrSchedule {
  std::string shape = "constant";  // constant | step | cosine
  double max_lr = 0.1;             // eta
  double min_lr = 0.0;             // eta_min (cosine)
  int64_t warmup_iters = 0;        // W
  std::vector<int64_t> milestones; // step: iterations where lr is multiplied by gamma
  double gamma = 0.1;
};

// Refuses bad parameters with an st::Error naming the flag (T = iterations of the cycle).
void validate(const LrSchedule& schedule, int64_t total_iters);
double learning_rate(const LrSchedule& schedule, int64_t iter, int64_t total_iters);

}  // namespace st::schedules
