#include "schedules/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/error.h"

namespace st::schedules {
namespace {

double shape_value(const LrSchedule& s, double eta, int64_t iter, int64_t total_iters) {
  const auto t = static_cast<double>(iter), T = static_cast<double>(total_iters);
  if (s.shape == "step") {
    const auto decays = std::count_if(s.milestones.begin(), s.milestones.end(), [&](int64_t m) { return m <= iter; });
    return eta * std::pow(s.gamma, static_cast<double>(decays));
  }
  if (s.shape == "cosine") {
    const double span = std::max(T - static_cast<double>(s.warmup_iters), 1.0);
    const double progress = std::clamp((t - static_cast<double>(s.warmup_iters)) / span, 0.0, 1.0);
    return s.min_lr + 0.5 * (eta - s.min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
  }
  if (s.shape == "cyclical") {
    const auto half = static_cast<double>(s.half_cycle_iters);
    const double c = std::floor(1.0 + t / (2.0 * half));
    const double x = std::fabs(t / half - 2.0 * c + 1.0);
    double scale = 1.0;
    if (s.cyclical_mode == "triangular2") scale = 1.0 / std::pow(2.0, c - 1.0);
    if (s.cyclical_mode == "exp_range") scale = std::pow(s.cyclical_gamma, t);
    return s.min_lr + (eta - s.min_lr) * std::max(0.0, 1.0 - x) * scale;
  }
  if (s.shape == "one_cycle") {
    const double start = eta / s.one_cycle_div, end = start / s.one_cycle_final_div;
    const double warm = std::max(1.0, s.one_cycle_fraction * T);
    auto anneal = [&](double from, double to, double progress) {
      progress = std::clamp(progress, 0.0, 1.0);
      if (s.one_cycle_anneal == "linear") return from + (to - from) * progress;
      return to + 0.5 * (from - to) * (1.0 + std::cos(std::numbers::pi * progress));
    };
    if (t < warm) return anneal(start, eta, t / warm);
    return anneal(eta, end, (t - warm) / std::max(1.0, T - 1.0 - warm));
  }
  if (s.shape == "exp_sine") {
    const double decay = std::exp(-s.sine_alpha * t / T);
    const auto b = static_cast<double>(s.iters_per_epoch);
    return eta * decay * (std::sin(s.sine_beta * t / (2.0 * std::numbers::pi * b)) + decay + 0.5);
  }
  return eta;
}

}  // namespace

void validate(const LrSchedule& s, int64_t total_iters) {
  static const char* const kShapes[] = {"constant", "step", "cosine", "cyclical", "one_cycle", "exp_sine"};
  if (std::find(std::begin(kShapes), std::end(kShapes), s.shape) == std::end(kShapes))
    fail("--schedule: unknown shape '{}' (known: constant, step, cosine, cyclical, one_cycle, exp_sine)", s.shape);
  if (total_iters <= 0) fail("schedule: a cycle needs at least one iteration, got {}", total_iters);
  if (!(s.max_lr > 0.0) || !std::isfinite(s.max_lr)) fail("--lr: must be a positive learning rate, got {}", s.max_lr);
  if (!(s.min_lr >= 0.0) || s.min_lr > s.max_lr) fail("--min-lr: must be in [0, lr = {}], got {}", s.max_lr, s.min_lr);
  if (s.warmup_iters < 0 || s.warmup_iters >= total_iters)
    fail("--warmup-iters: must be in [0, {}) (the iterations of a cycle), got {}", total_iters, s.warmup_iters);
  if (!(s.gamma > 0.0)) fail("--gamma: must be > 0, got {}", s.gamma);
  for (std::size_t i = 0; i < s.milestones.size(); ++i) {
    if (s.milestones[i] <= 0 || s.milestones[i] >= total_iters)
      fail("--milestones: {} is outside (0, {}) (the iterations of a cycle)", s.milestones[i], total_iters);
    if (i > 0 && s.milestones[i] <= s.milestones[i - 1])
      fail("--milestones: must be increasing, got {} after {}", s.milestones[i], s.milestones[i - 1]);
    if (s.milestones[i] < s.warmup_iters && s.shape != "step")
      fail("--milestones: {} falls inside the warmup (--warmup-iters {})", s.milestones[i], s.warmup_iters);
  }
  if (s.shape == "cyclical") {
    if (s.half_cycle_iters <= 0) fail("--half-cycle-iters: the cyclical shape needs a positive half cycle, got {}",
                                      s.half_cycle_iters);
    if (s.cyclical_mode != "triangular" && s.cyclical_mode != "triangular2" && s.cyclical_mode != "exp_range")
      fail("--cyclical-mode: must be triangular, triangular2 or exp_range, got '{}'", s.cyclical_mode);
    if (!(s.cyclical_gamma > 0.0 && s.cyclical_gamma <= 1.0))
      fail("--cyclical-gamma: must be in (0, 1], got {}", s.cyclical_gamma);
  }
  if (s.shape == "one_cycle") {
    if (!(s.one_cycle_fraction > 0.0 && s.one_cycle_fraction < 1.0))
      fail("--one-cycle-fraction: must be in (0, 1), got {}", s.one_cycle_fraction);
    if (!(s.one_cycle_div >= 1.0)) fail("--one-cycle-div: must be >= 1, got {}", s.one_cycle_div);
    if (!(s.one_cycle_final_div >= 1.0)) fail("--one-cycle-final-div: must be >= 1, got {}", s.one_cycle_final_div);
    if (s.one_cycle_anneal != "cos" && s.one_cycle_anneal != "linear")
      fail("--one-cycle-anneal: must be cos or linear, got '{}'", s.one_cycle_anneal);
  }
  if (s.shape == "exp_sine") {
    if (!(s.sine_alpha >= 0.0)) fail("--sine-alpha: must be >= 0, got {}", s.sine_alpha);
    if (!(s.sine_beta > 0.0)) fail("--sine-beta: must be > 0, got {}", s.sine_beta);
    if (s.iters_per_epoch <= 0) fail("--iters-per-epoch: the exp_sine shape needs it positive, got {}", s.iters_per_epoch);
  }
}

double learning_rate(const LrSchedule& s, double max_lr, int64_t iter, int64_t total_iters) {
  if (iter < s.warmup_iters) {
    // A step shape with a milestone inside the warmup ramps to shape(t): each such decay scales the rest of
    // the ramp (the SILO authors' scripts, whose first decay cuts the warmup short); otherwise to shape(W).
    const bool decays_inside = s.shape == "step" && !s.milestones.empty() && s.milestones.front() < s.warmup_iters;
    return shape_value(s, max_lr, decays_inside ? iter : s.warmup_iters, total_iters) * static_cast<double>(iter + 1) /
           static_cast<double>(s.warmup_iters);
  }
  return shape_value(s, max_lr, iter, total_iters);
}

}  // namespace st::schedules
