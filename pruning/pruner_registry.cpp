// See pruners.h.
#include <fmt/format.h>

#include "engine/error.h"
#include "pruning/prune.h"
#include "pruning/pruners.h"
#include "pruning/random_mask.h"
#include "pruning/scores.h"
#include "pruning/structured.h"
#include "schedules/cycles.h"
#include "schedules/options.h"

namespace st::pruning {

const std::vector<PrunerEntry>& pruner_registry() {
  static const std::vector<PrunerEntry> entries = {
      {"dst", "dynamic sparse training: RigL or SET drop-and-grow every --dst-interval steps (--dst)",
       make_dst_pruner, dst_options},
      {"init", "pruning at initialisation by a score, SynFlow in rounds (--prune-at-init)", make_init_pruner, init_options},
      {"early", "early pruning in rounds at the ends of the first epochs (--early-rounds)", make_early_pruner, early_options},
      {"gmp", "gradual magnitude pruning (--gmp-final-sparsity)", make_gmp_pruner, gmp_options},
      {"imp", "iterative pruning between cycles by a score, with rewinding and controls (--cycles > 1)",
       make_imp_pruner, imp_options},
      {"structured", "channels physically removed between cycles (--structured-prune)", make_structured_pruner, structured_options},
      {"select", "greedy forward or magnitude unit selection between cycles (--select)", make_select_pruner, select_options},
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

std::vector<std::unique_ptr<Pruner>> make_pruners(const TrainConfig& config, const RunSize& size) {
  std::vector<std::unique_ptr<Pruner>> pruners;
  for (const PrunerEntry& entry : pruner_registry())
    if (auto pruner = entry.make(config, size)) pruners.push_back(std::move(pruner));
  return pruners;
}

namespace {

// The options every event that prunes by a score shares.
Component prune_options() {
  Component c;
  c.name = "prune";
  c.title = "Pruning scores and allocation (pruning/)";
  c.options = {
      option<PruneSpec>("prune-score", &PruneSpec::score, "score (higher = keep): " + score_names()),
      option<PruneSpec>("prune-allocation", &PruneSpec::allocation,
                        "global: one threshold; layerwise: the same fraction per layer; er, erk: Evci et al. 2020",
                        {"global", "layerwise", "er", "erk"}),
      option<PruneSpec>("keep-first-dense", &PruneSpec::keep_first_dense, "never prune the first prunable tensor"),
      option<PruneSpec>("keep-last-dense", &PruneSpec::keep_last_dense, "never prune the last prunable tensor"),
      option<ScoringOptions>("score-batches", &ScoringOptions::batches, "minibatches averaged by gradient scores"),
  };
  c.validate = [](const TrainConfig& config) {
    const PruneSpec& spec = config.get<PruneSpec>();
    if (config.cycles_count > 1) {
      PruneSpec with_rate = spec;
      with_rate.rate = config.get<schedules::CyclePolicy>().prune_rate;
      validate(with_rate);
    }
    if (!is_known_score(spec.score))
      fail("--prune-score: unknown score '{}' (known: {})", spec.score, score_names());
    const int64_t batches = config.get<ScoringOptions>().batches;
    if (batches < 1) fail("--score-batches: must be at least 1, got {}", batches);
    if (find_score(spec.score)->make_history) {
      // scores of the history of training (movement) hear the epochs of the main line only
      const schedules::OracleOptions& oracle = config.get<schedules::OracleOptions>();
      if (!oracle.grid.empty() || oracle.requested)
        fail("--prune-score {}: the oracle trains every cycle as branches, which give this score no history; use "
             "another score",
             spec.score);
      if (config.get<EarlyOptions>().rounds > 0)
        fail("--prune-score {}: early pruning scores at the end of the first epoch, before there is a last "
             "epoch's movement; use another score",
             spec.score);
    }
  };
  return c;
}

}  // namespace

void install(Plugins& plugins) {
  register_component(prune_options());
  for (const PrunerEntry& entry : pruner_registry()) register_component(entry.options());
  plugins.pruners = make_pruners;
  plugins.initial_masks = [](const TrainConfig& config, nn::Module& model) {
    const double density = config.get<InitOptions>().random_density;
    if (density >= 1.0) return;
    Rng mask_rng = Rng::derived(config.seed, 0x6d61736b);  // "mask"
    apply_random_masks(model.parameters(), density, mask_rng);
  };
  plugins.training_history = [](const TrainConfig& config, nn::Module& model) {
    return make_score_history(config.get<PruneSpec>().score, model);
  };
  plugins.scores = [](const TrainConfig& config, nn::Module& model, const std::string& name, const ScoreData& data,
                      Rng& rng, TrainingHistory* history) {
    ScoreOptions options;
    options.name = name;
    options.batches = config.get<ScoringOptions>().batches;
    return compute_scores(model, options, data, rng, name == config.get<PruneSpec>().score ? history : nullptr);
  };
  plugins.resize_to_shapes = resize_to_shapes;
}

}  // namespace st::pruning
