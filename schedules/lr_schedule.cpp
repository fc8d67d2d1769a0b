#include "schedules/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/error.h"

namespace st::schedules {
namespace {

double shape_value(const LrSchedule& s, int64_t iter, int64_t total_iters) {
  if (s.shape == "step") {
    const auto decays = std::count_if(s.milestones.begin(), s.milestones.end(), [&](int64_t m) { return m <= iter; });
    return s.max_lr * std::pow(s.gamma, static_cast<double>(decays));
  }
  if (s.shape == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(total_iters - s.warmup_iters, 1));
    const double progress = std::clamp(static_cast<double>(iter - s.warmup_iters) / span, 0.0, 1.0);
    return s.min_lr + 0.5 * (s.max_lr - s.min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
  }
  return s.max_lr;
}

}  // namespace

void validate(const LrSchedule& s, int64_t total_iters) {
  if (s.shape != "constant" && s.shape != "step" && s.shape != "cosine")
    fail("--schedule: unknown shape '{}' (known: constant, step, cosine)", s.shape);
  if (!(s.max_lr > 0.0) || !std::isfinite(s.max_lr)) fail("--lr: must be a positive learning rate, got {}", s.max_lr);
  if (s.min_lr < 0.0 || s.min_lr > s.max_lr) fail("--min-lr: must be in [0, lr = {}], got {}", s.max_lr, s.min_lr);
  if (s.warmup_iters < 0 || s.warmup_iters >= std::max<int64_t>(total_iters, 1))
    fail("--warmup-iters: must be in [0, {}) (the iterations of training), got {}", total_iters, s.warmup_iters);
  if (!(s.gamma > 0.0)) fail("--gamma: must be > 0, got {}", s.gamma);
  for (std::size_t i = 0; i < s.milestones.size(); ++i) {
    if (s.milestones[i] <= 0 || s.milestones[i] >= total_iters)
      fail("--milestones: {} is outside (0, {}) (the iterations of training)", s.milestones[i], total_iters);
    if (i > 0 && s.milestones[i] <= s.milestones[i - 1])
      fail("--milestones: must be increasing, got {} after {}", s.milestones[i], s.milestones[i - 1]);
  }
}

double learning_rate(const LrSchedule& s, int64_t iter, int64_t total_iters) {
  if (iter < s.warmup_iters)
    return shape_value(s, s.warmup_iters, total_iters) * static_cast<double>(iter + 1) /
           static_cast<double>(s.warmup_iters);
  return shape_value(s, iter, total_iters);
}

}  // namespace st::schedules
