#include "schedules/sparsity.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace st::schedules {

double imp_density(double prune_rate, int cycle) { return std::pow(1.0 - prune_rate, cycle); }

void validate(const GmpSchedule& g, int64_t total_iters) {
  if (!(g.final_sparsity > 0.0 && g.final_sparsity < 1.0))
    fail("--gmp-final-sparsity: must be in (0, 1), got {}", g.final_sparsity);
  if (!(g.initial_sparsity >= 0.0 && g.initial_sparsity <= g.final_sparsity))
    fail("--gmp-initial-sparsity: must be in [0, final sparsity {}], got {}", g.final_sparsity, g.initial_sparsity);
  if (g.interval_iters <= 0) fail("--gmp-interval: must be positive, got {}", g.interval_iters);
  if (g.steps <= 0) fail("--gmp-steps: must be positive, got {}", g.steps);
  if (g.start_iter < 0 || g.start_iter + g.steps * g.interval_iters >= total_iters)
    fail("--gmp-start/--gmp-steps/--gmp-interval: the schedule ends at iteration {}, beyond the {} iterations of "
         "training",
         g.start_iter + g.steps * g.interval_iters, total_iters);
}

bool is_gmp_step(const GmpSchedule& g, int64_t iter) {
  return g.final_sparsity > 0.0 && iter >= g.start_iter && iter <= g.start_iter + g.steps * g.interval_iters &&
         (iter - g.start_iter) % g.interval_iters == 0;
}

double gmp_sparsity(const GmpSchedule& g, int64_t iter) {
  const double span = static_cast<double>(g.steps * g.interval_iters);
  const double progress = std::clamp(static_cast<double>(iter - g.start_iter) / span, 0.0, 1.0);
  return g.final_sparsity + (g.initial_sparsity - g.final_sparsity) * std::pow(1.0 - progress, 3.0);
}

double early_round_rate(int rounds, double final_sparsity) {
  if (rounds < 1) fail("--early-rounds: must be at least 1, got {}", rounds);
  if (!(final_sparsity > 0.0 && final_sparsity < 1.0))
    fail("--early-sparsity: must be in (0, 1), got {}", final_sparsity);
  return 1.0 - std::pow(1.0 - final_sparsity, 1.0 / rounds);
}

double rigl_drop_fraction(double alpha, int64_t iter, int64_t end_iter) {
  if (iter >= end_iter || end_iter <= 0) return 0.0;
  return 0.5 * alpha * (1.0 + std::cos(3.14159265358979323846 * static_cast<double>(iter) / static_cast<double>(end_iter)));
}

}  // namespace st::schedules
