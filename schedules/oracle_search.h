// The oracle as the trainer's cycle search (engine/cycle_search.h): every max_lr of --oracle-grid trains
// the cycle from the same state, the best on validation continues, and oracle.md (rewritten after every
// cycle) lists the branches, the interval of good max_lr and where SILO's max_lr(k) falls (schedules/oracle.h).
#pragma once

#include <memory>

#include "engine/cycle_search.h"
#include "engine/train_config.h"

namespace st::schedules {

// The oracle of a run, or null when its config asks for none (an empty --oracle-grid).
std::unique_ptr<CycleSearch> make_cycle_search(const TrainConfig& config);

}  // namespace st::schedules
