// How many weights each prunable tensor keeps (../shared/spec/pruning.md, "Allocation"):
//   global     one threshold over all eligible tensors (open_lth's sparse_global): decided by the
//              scores together, see select.cpp
//   layerwise  every eligible tensor keeps the same fraction
//   er / erk   (Evci et al. 2020, RigL) density_l = eps * (sum of dims_l) / (product of dims_l),
//              dims = (n_in, n_out) for linear weights and conv weights under ER, (n_in, n_out, kh, kw)
//              for conv weights under ERK; eps is solved so the total kept count is the target; a layer
//              whose density would exceed its cap (1, or its current density when pruning further)
//              keeps its cap and eps is re-solved over the others until none exceeds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace st::pruning {

struct TensorBudget {
  Shape shape;          // linear [out, in], conv [K, R, S, C]
  int64_t numel = 0;
  int64_t cap = 0;      // the most it may keep (numel at initialisation, its current kept count later)
};

// ER(K) raw density ratio (sum of dims) / (product of dims) of one tensor.
double er_ratio(const Shape& shape, bool kernel_dims);
// Per-tensor densities (not yet rounded) whose kept total is `target_kept`; every density <= cap/numel.
std::vector<double> er_densities(const std::vector<TensorBudget>& tensors, int64_t target_kept, bool kernel_dims);
// Kept counts: round(density * numel), each clamped to [1, cap].
std::vector<int64_t> er_keep_counts(const std::vector<TensorBudget>& tensors, int64_t target_kept, bool kernel_dims);

}  // namespace st::pruning
