// The learning-rate schedule flags, shared by `sparsetrain train` and `sparsetrain schedule` so both
// accept exactly the same schedule.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "schedules/cycles.h"
#include "schedules/lr_schedule.h"

namespace st::cli {

struct ScheduleFlags {
  std::string silo_notation;  // "SILO(offset, alpha, W, D1, D2, T)"
};

void add_schedule_flags(CLI::App& app, schedules::LrSchedule& shape, schedules::CyclePolicy& policy,
                        ScheduleFlags& flags);

}  // namespace st::cli
