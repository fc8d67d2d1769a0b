// One pruning event: score the kept weights of every prunable tensor and remove the lowest-scored
// fraction `rate` of the REMAINING weights (so K events at rate p leave (1 - p)^K), then zero them.
//   allocation global:    one threshold over all eligible tensors (open_lth's sparse_global)
//   allocation layerwise: the same fraction removed from every eligible tensor
//   scores: magnitude |w|, random (seeded). Higher score = keep; ties are broken by index (the
//   earlier weight of equal score is removed first), so the result is deterministic.
// keep_first_dense / keep_last_dense exclude the first / last prunable tensor (in model order).
// A removal that would leave a tensor with no weight is refused with an error naming it.
#pragma once

#include <string>
#include <vector>

#include "engine/nn.h"
#include "engine/rng.h"

namespace st::pruning {

struct PruneSpec {
  double rate = 0.2;
  std::string score = "magnitude";  // magnitude | random
  std::string allocation = "global";  // global | layerwise
  bool keep_first_dense = false;
  bool keep_last_dense = false;
};

struct LayerChange {
  std::string name;
  Shape shape;
  int64_t numel = 0, kept_before = 0, kept_after = 0;
};

void validate(const PruneSpec& spec);
std::vector<LayerChange> prune(const std::vector<nn::Parameter*>& parameters, const PruneSpec& spec, Rng& rng);
// Per-layer table (shape, kept, density before/after) and the global density, for logs.
std::string format_prune_table(const std::vector<LayerChange>& changes);
double global_density(const std::vector<nn::Parameter*>& parameters);

}  // namespace st::pruning
