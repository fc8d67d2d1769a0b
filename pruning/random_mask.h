// Random masks with a given density in every prunable tensor (layerwise uniform, seeded): the
// "random pruning" control and the benchmark's 50% masks. The kept count per tensor is exactly
// round(density * numel). Weights outside the mask are zeroed at once.
#pragma once

#include <vector>

#include "engine/nn.h"
#include "engine/rng.h"

namespace st::pruning {

void apply_random_masks(const std::vector<nn::Parameter*>& parameters, double density, Rng& rng);

}  // namespace st::pruning
