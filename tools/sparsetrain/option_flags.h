// The CLI11 flags of the option tables (engine/options.h): one --KEY per option of the components named,
// bound to the TrainConfig's field, its help and default from the table, its --help section the
// component's title. `train` binds every component, `schedule` the learning rate's; the SILO paper's
// notation (--silo) is a flag of both that sets several of those options at once.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "engine/train_config.h"

namespace st::cli {

// components: names (engine/options.h), empty = all; keys: only these options of them (empty = all).
void add_option_flags(CLI::App& app, TrainConfig& config, const std::vector<std::string>& components = {},
                      const std::vector<std::string>& keys = {});

struct ScheduleFlags {
  std::string silo_notation;  // "SILO(offset, alpha, W, D1, D2, T)"
};
void add_silo_flag(CLI::App& app, ScheduleFlags& flags);

}  // namespace st::cli
