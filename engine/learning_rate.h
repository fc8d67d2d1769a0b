// The learning rate of the step loop as a function of (cycle, iteration): the engine's view of the
// schedules. schedules/ implements it (the LR schedule inside a cycle and the cycle policy across
// cycles, SILO among them: schedules/cycles.h); the trainer only asks it.
#pragma once

#include <cstdint>
#include <string>

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
  // The iteration of cycle 0 whose weights and buffers later cycles rewind to (weight rewinding: the
  // trainer captures them there, a pruner copies them back); -1 for none.
  virtual int64_t rewind_iteration() const { return -1; }
  // One line for the start of a multi-cycle run ("policy silo, prune 20% of the remaining weights per cycle").
  virtual std::string describe() const = 0;
};

}  // namespace st
