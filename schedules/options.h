// The options of the schedules (engine/options.h): the learning-rate shape within a cycle
// (schedules::LrSchedule, lr_schedule.h), the policy across cycles (schedules::CyclePolicy, cycles.h) and
// the oracle's grid (OracleOptions), each an option block of a TrainConfig; and the schedules' plug-ins of
// the trainer (engine/plugins.h): the learning rate and the cycle search.
#pragma once

#include <memory>
#include <vector>

#include "engine/plugins.h"
#include "engine/train_config.h"

namespace st::schedules {

struct OracleOptions {
  std::vector<double> grid;  // non-empty: the oracle, one branch per max_lr per cycle
  bool requested = false;    // --oracle or --oracle-grid given (an empty grid is then an error); not saved
};

// Registers the components "schedule" and "oracle" and sets the schedules' entries of `plugins`.
void install(Plugins& plugins);

}  // namespace st::schedules
