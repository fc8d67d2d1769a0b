// Sparsity schedules (../shared/spec/schedules.md, "Sparsity schedules"), pure functions:
//   IMP geometric:  density after k cycles = (1 - p)^k
//   GMP (Zhu & Gupta 2017): s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3 for t in [t0, t0 + n dt],
//                   pruning every dt steps (s_i before t0, s_f after)
//   early pruning in rounds (Lubana & Dick 2021): n rounds removing the same fraction r of the
//                   remaining weights each, r = 1 - (1 - P)^(1/n), so the total after round n is exactly P
#pragma once

#include <cstdint>

namespace st::schedules {

double imp_density(double prune_rate, int cycle);

struct GmpSchedule {
  double initial_sparsity = 0.0;  // s_i
  double final_sparsity = 0.0;    // s_f (0: GMP off)
  int64_t start_iter = 0;         // t0
  int64_t interval_iters = 100;   // dt
  int64_t steps = 10;             // n (pruning events after the first)
};
void validate(const GmpSchedule& gmp, int64_t total_iters);
bool is_gmp_step(const GmpSchedule& gmp, int64_t iter);
double gmp_sparsity(const GmpSchedule& gmp, int64_t iter);

double early_round_rate(int rounds, double final_sparsity);

// RigL's drop fraction (Evci et al. 2020): f(t) = (alpha / 2)(1 + cos(pi t / T_end)), 0 from T_end on.
double rigl_drop_fraction(double alpha, int64_t iter, int64_t end_iter);

}  // namespace st::schedules
