// See pruners.h.
#include <fmt/format.h>

#include "engine/error.h"
#include "pruning/pruners.h"

namespace st::pruning {

const std::vector<PrunerEntry>& pruner_registry() {
  static const std::vector<PrunerEntry> entries = {
      {"dst", "dynamic sparse training: RigL or SET drop-and-grow every --dst-interval steps (--dst)",
       make_dst_pruner},
      {"init", "pruning at initialisation by a score, SynFlow in rounds (--prune-at-init)", make_init_pruner},
      {"early", "early pruning in rounds at the ends of the first epochs (--early-rounds)", make_early_pruner},
      {"gmp", "gradual magnitude pruning (--gmp-final-sparsity)", make_gmp_pruner},
      {"imp", "iterative pruning between cycles by a score, with rewinding and controls (--cycles > 1)",
       make_imp_pruner},
      {"structured", "channels physically removed between cycles (--structured-prune)", make_structured_pruner},
      {"select", "greedy forward or magnitude unit selection between cycles (--select)", make_select_pruner},
  };
  return entries;
}

const PrunerEntry& find_pruner(const std::string& name) {
  std::string known;
  for (const PrunerEntry& entry : pruner_registry()) {
    if (entry.name == name) return entry;
    known += (known.empty() ? "" : ", ") + entry.name;
  }
  fail("unknown pruning method '{}' (known: {})", name, known);
}

std::vector<std::unique_ptr<Pruner>> make_pruners(const TrainConfig& config) {
  std::vector<std::unique_ptr<Pruner>> pruners;
  for (const PrunerEntry& entry : pruner_registry())
    if (auto pruner = entry.make(config)) pruners.push_back(std::move(pruner));
  return pruners;
}

}  // namespace st::pruning
