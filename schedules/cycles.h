// Learning rates across pruning cycles: lr(k, t) for cycle k (k = 0 is dense training) and
// iteration t of that cycle, built on the within-cycle shapes of lr_schedule.h.
//   restart        every cycle runs the whole shape from t = 0 with the same peak (Frankle & Carbin
//                  2019's "LR warmup" when the shape has a warmup, e.g. ResNet-20 eta 0.03, W 20K)
//   weight_rewind  (Frankle et al. 2020) cycles k >= 1 run T - t_k iterations with the schedule
//                  from iteration t_k: lr(k, t) = shape(t_k + t); the pruner rewinds the weights too
//   lr_rewind      (Renda et al. 2020) the same learning rates; the weights keep their values
//   finetune       cycles k >= 1 use the constant final lr of the original schedule, shape(T - 1)
//   silo           (Liu, Ghosh, Tan, Motani, arXiv 2212.06144, TMLR 2023) every cycle runs the whole
//                  shape with the peak max_lr(k) = offset + alpha S(x_k), where
//                    x_k = 1 - (1 - p)^(k - d) for k > d, else 0     (sparsity reached since cycle d)
//                    S(x) = x^beta / (x^beta + (1 - x)^beta)         (S(0) = 0, S(1/2) = 1/2, S(1) = 1)
//                  Authors' defaults: beta 5, d 1, p 0.2; ResNet-20: offset 0.03, alpha 0.04.
// The paper writes a configuration as SILO(offset, alpha, W, D1, D2, T): a step shape with warmup W,
// x0.1 at D1, x0.01 at D2, cycle length T (reading inferred from the released code).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/learning_rate.h"
#include "schedules/lr_schedule.h"

namespace st::schedules {

struct CyclePolicy {
  std::string kind = "restart";  // restart | weight_rewind | lr_rewind | finetune | silo
  int64_t rewind_iter = 0;       // t_k (weight_rewind, lr_rewind)
  double silo_offset = 0.03, silo_alpha = 0.04, silo_beta = 5.0;
  int silo_delay = 1;            // d
  double prune_rate = 0.2;       // p: fraction of the remaining weights pruned per cycle
};

double silo_sparsity_since_delay(const CyclePolicy& policy, int cycle);  // x_k
double silo_s_curve(double x, double beta);                               // S(x)
double silo_max_lr(const CyclePolicy& policy, int cycle);
// The peak learning rate of cycle k (SILO's max_lr(k), else the shape's max_lr).
double cycle_max_lr(const CyclePolicy& policy, const LrSchedule& shape, int cycle);
// Iterations of cycle k, for a dense cycle of T iterations.
int64_t cycle_iters(const CyclePolicy& policy, int cycle, int64_t total_iters);
double cycle_learning_rate(const CyclePolicy& policy, const LrSchedule& shape, int cycle, int64_t iter,
                           int64_t total_iters);

// Refuses bad parameters (naming the flag) before any training starts.
void validate(const CyclePolicy& policy, const LrSchedule& shape, int64_t total_iters);

// The step loop's learning rate (engine/learning_rate.h) of this policy and shape, for dense cycles of
// total_iters iterations: the three functions above.
std::unique_ptr<LearningRate> make_learning_rate(const CyclePolicy& policy, const LrSchedule& shape,
                                                 int64_t total_iters);

// Applies "SILO(offset, alpha, W, D1, D2, T)" as written in the paper (numbers may use K = 1e3 and
// M = 1e6 suffixes): policy silo with offset and alpha, a step shape with warmup W, milestones D1, D2
// and gamma 0.1. Returns T. Throws naming --silo on anything malformed.
int64_t apply_silo_notation(const std::string& text, CyclePolicy& policy, LrSchedule& shape);

}  // namespace st::schedules
