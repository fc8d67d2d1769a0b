#include "components/install.h"

#include "engine/plugins.h"
#include "models/registry.h"
#include "pruning/pruners.h"
#include "schedules/options.h"

namespace st {

void install_components() {
  Plugins plugins;
  models::install(plugins);
  schedules::install(plugins);  // the schedule's options before pruning's (the order of --help and config.json)
  pruning::install(plugins);
  install_plugins(std::move(plugins));
}

}  // namespace st
