// The learning rate of the step loop as a function of (cycle, iteration): the engine's view of the
// schedules. schedules/ implements it (the LR schedule inside a cycle and the cycle policy across
// cycles, SILO among them: schedules/cycles.h); the trainer only asks it.
#pragma once

#include <cstdint>

namespace st {

class LearningRate {
 public:
  virtual ~LearningRate() = default;
  // Iterations of cycle `cycle` (0, 1, ...).
  virtual int64_t cycle_iters(int cycle) const = 0;
  // The peak learning rate of cycle `cycle`.
  virtual double max_lr(int cycle) const = 0;
  // The learning rate of iteration `iteration` of cycle `cycle`.
  virtual double lr(int cycle, int64_t iteration) const = 0;
};

}  // namespace st
