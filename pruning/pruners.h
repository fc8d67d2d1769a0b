// The pruning methods of the step loop (engine/pruner.h), one class per family, found by name in a
// registry as models are. A run's pruners are those whose factory accepts its config, called in registry
// order at every hook.
//   dst     dynamic sparse training, RigL or SET (pruning/dst_pruner.cpp)
//   init    pruning at initialisation, SynFlow in rounds (pruning/init_pruner.cpp)
//   early   early pruning in rounds at epoch ends (pruning/early_pruner.cpp)
//   gmp     gradual magnitude pruning (pruning/gmp_pruner.cpp)
//   imp     iterative magnitude pruning between cycles, with rewinding and its controls (pruning/imp_pruner.cpp)
//   structured  channels physically removed between cycles (pruning/structured_pruner.cpp)
//   select  greedy forward (or magnitude) unit selection between cycles (pruning/select_pruner.cpp)
// Between cycles one of imp, structured and select acts (select, then structured, take precedence).
// The oracle (one branch per max_lr of a grid, the best kept) is not a pruner but the trainer's cycle
// search (engine/cycle_search.h, schedules/oracle_search.h).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/options.h"
#include "engine/plugins.h"
#include "engine/pruner.h"
#include "engine/train_config.h"
#include "pruning/options.h"

namespace st::pruning {

struct PrunerEntry {
  std::string name;
  std::string description;
  // The method's pruner for a run, or null when its config does not ask for this method; refuses what does
  // not fit the run's size, naming the flag.
  std::function<std::unique_ptr<Pruner>(const TrainConfig&, const RunSize&)> make;
  // The family's options (engine/options.h), registered by install().
  std::function<Component()> options;
};

const std::vector<PrunerEntry>& pruner_registry();
// Throws st::Error naming the unknown method and listing the known ones.
const PrunerEntry& find_pruner(const std::string& name);
// The pruners a run's config asks for, in registry order.
std::vector<std::unique_ptr<Pruner>> make_pruners(const TrainConfig& config, const RunSize& size);
// Registers the options of pruning (the "prune" component and every family's) and sets pruning's entries of
// `plugins` (engine/plugins.h).
void install(Plugins& plugins);

// The families (one file each): the pruner and the options.
std::unique_ptr<Pruner> make_dst_pruner(const TrainConfig& config, const RunSize& size);
std::unique_ptr<Pruner> make_init_pruner(const TrainConfig& config, const RunSize& size);
std::unique_ptr<Pruner> make_early_pruner(const TrainConfig& config, const RunSize& size);
std::unique_ptr<Pruner> make_gmp_pruner(const TrainConfig& config, const RunSize& size);
std::unique_ptr<Pruner> make_imp_pruner(const TrainConfig& config, const RunSize& size);
std::unique_ptr<Pruner> make_structured_pruner(const TrainConfig& config, const RunSize& size);
std::unique_ptr<Pruner> make_select_pruner(const TrainConfig& config, const RunSize& size);
Component dst_options();
Component init_options();
Component early_options();
Component gmp_options();
Component imp_options();
Component structured_options();
Component select_options();

}  // namespace st::pruning
