// The pruning scores by name: the one list `--prune-score`, `--prune-at-init`, `sparsetrain prune` and their
// help texts and error messages read. A new score is a function (its own file in pruning/) and one entry here.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "pruning/movement.h"
#include "pruning/scores.h"

namespace st::pruning {
namespace {

ScoreMethod builtin(const char* name, const char* help, bool needs_data) {
  return {name, help, needs_data,
          [](nn::Module& model, const ScoreOptions& options, const ScoreData& data, Rng& rng, ScoreHistory*) {
            return builtin_scores(model, options, data, rng);
          },
          {}};
}

}  // namespace

const std::vector<ScoreMethod>& score_methods() {
  static const std::vector<ScoreMethod> methods = {
      builtin("magnitude", "|w|", false),
      builtin("random", "uniform in [0, 1), seeded", false),
      builtin("snip", "|w g| (SNIP; loss preservation)", true),
      builtin("lp_biased", "|w^2 g|", true),
      builtin("grasp", "w Hg on logits / 200, 10 samples per class (GraSP)", true),
      builtin("hg", "w Hg", true),
      builtin("abs_hg", "|w Hg|", true),
      builtin("synflow", "|w dR/dw| of the all-positive network (SynFlow; data-free)", false),
      builtin("lap", "lookahead pruning: |w| times the neighbouring layers' unit norms", false),
      builtin("wg", "w g (the first-order Taylor term)", true),
      movement_score(),
      movement_magnitude_score(),
  };
  return methods;
}

const ScoreMethod* find_score(const std::string& name) {
  for (const ScoreMethod& method : score_methods())
    if (method.name == name) return &method;
  return nullptr;
}

std::string score_names() {
  std::vector<std::string> names;
  for (const ScoreMethod& method : score_methods()) names.push_back(method.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

bool is_known_score(const std::string& name) { return find_score(name) != nullptr; }

bool score_needs_data(const std::string& name) {
  const ScoreMethod* method = find_score(name);
  return method != nullptr && method->needs_data;
}

std::unique_ptr<ScoreHistory> make_score_history(const std::string& name, nn::Module& model) {
  const ScoreMethod* method = find_score(name);
  if (method == nullptr || !method->make_history) return nullptr;
  return method->make_history(model);
}

}  // namespace st::pruning
