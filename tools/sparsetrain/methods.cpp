// `sparsetrain methods`: the pruning methods of the step loop and the pruning scores, from their
// registries (pruning/pruners.h, pruning/scores.h).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "pruning/pruners.h"
#include "pruning/scores.h"
#include "tools/sparsetrain/commands.h"

namespace st::cli {

int run_methods(bool json) {
  nlohmann::json methods = nlohmann::json::array(), scores = nlohmann::json::array();
  for (const pruning::PrunerEntry& entry : pruning::pruner_registry())
    methods.push_back({{"name", entry.name}, {"description", entry.description}});
  for (const pruning::ScoreMethod& score : pruning::score_methods())
    scores.push_back({{"name", score.name},
                      {"description", score.help},
                      {"needs_data", score.needs_data},
                      {"keeps_history", static_cast<bool>(score.make_history)}});
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"methods", methods}, {"scores", scores}}.dump(2));
    return 0;
  }
  fmt::print("pruning methods (pruning/pruner_registry.cpp):\n");
  for (const auto& m : methods)
    fmt::print("  {:<12} {}\n", m["name"].get<std::string>(), m["description"].get<std::string>());
  fmt::print("\npruning scores (--prune-score, --prune-at-init; pruning/score_registry.cpp):\n");
  for (const auto& s : scores)
    fmt::print("  {:<12} {}{}\n", s["name"].get<std::string>(), s["description"].get<std::string>(),
               s["needs_data"].get<bool>() ? " [training minibatches]" : "");
  return 0;
}

}  // namespace st::cli
