// One pruning event: given a score per weight of every prunable tensor (higher = keep; see
// scores.h), keep the target number of weights according to the allocation (allocation.h) and zero
// the rest. Only weights still kept compete; ties are broken by index (the earlier weight of equal
// score goes first), so the result is deterministic.
//   prune_fraction:    remove `rate` of the REMAINING weights (K events at rate p leave (1 - p)^K)
//   prune_to_density:  keep `density` of all weights of the eligible tensors (pruning at init, GMP)
// keep_first_dense / keep_last_dense exclude the first / last prunable tensor (in model order).
// A selection that would leave a tensor with no weight is refused with an error naming it.
#pragma once

#include <string>
#include <vector>

#include "engine/nn.h"
#include "engine/pruner.h"
#include "engine/rng.h"

namespace st::pruning {

struct PruneSpec {
  double rate = 0.2;
  std::string score = "magnitude";    // see scores.h
  std::string allocation = "global";  // global | layerwise | er | erk
  bool keep_first_dense = false;
  bool keep_last_dense = false;
};

using LayerChange = st::LayerChange;  // (engine/pruner.h)

void validate(const PruneSpec& spec);
std::vector<nn::Parameter*> prunable_of(const std::vector<nn::Parameter*>& parameters);

// scores[i] belongs to prunable_of(parameters)[i].
std::vector<LayerChange> prune_fraction(const std::vector<nn::Parameter*>& parameters,
                                        const std::vector<Tensor>& scores, const PruneSpec& spec);
std::vector<LayerChange> prune_to_density(const std::vector<nn::Parameter*>& parameters,
                                          const std::vector<Tensor>& scores, double density, const PruneSpec& spec);

using st::format_prune_table;  // (engine/pruner.h)
using st::global_density;

// Histogram of the scores of the weights still kept (before an event), bins by Sturges' rule
// (ceil(log2 n) + 1 equal-width bins over [min, max]).
using Histogram = st::Histogram;  // (engine/pruner.h)
Histogram score_histogram(const std::vector<nn::Parameter*>& parameters, const std::vector<Tensor>& scores);
using st::sturges_histogram;  // (engine/pruner.h)

}  // namespace st::pruning
