// The one place that plugs models/, schedules/ and pruning/ into the engine (engine/plugins.h,
// engine/options.h). Every program's main calls st::install_components() once, before it parses flags or
// makes a Trainer; calling it again changes nothing.
#pragma once

namespace st {

void install_components();

}  // namespace st
