#include "engine/plugins.h"

#include "engine/error.h"

namespace st {
namespace {

Plugins& installed() {
  static Plugins table;
  return table;
}

}  // namespace

void install_plugins(Plugins plugins) { installed() = std::move(plugins); }

const Plugins& plugins() {
  const Plugins& table = installed();
  ST_CHECK(table.build_model && table.learning_rate && table.pruners && table.scores,
           "no components installed: the program's main must call st::install_components() (components/install.h)");
  return table;
}

}  // namespace st
