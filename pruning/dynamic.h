// Dynamic sparse training: every dT steps until T_end, each prunable tensor drops its k active
// weights of smallest magnitude and grows k inactive ones, so its non-zero count is exactly constant.
//   RigL (Evci et al. 2020): grow the inactive weights of largest |dense gradient| (the gradient of
//   the loss w.r.t. the masked weights, which the engine computes for every weight)
//   SET  (Mocanu et al. 2018): grow at random
//   k = f(t) * active, f(t) = (alpha / 2)(1 + cos(pi t / T_end))   (schedules/sparsity.h)
// A weight dropped in an update may be grown again by it. Grown weights start at exactly 0 and the
// caller zeroes their optimizer state. Ties go by index (deterministic).
#pragma once

#include <string>
#include <vector>

#include "engine/nn.h"
#include "engine/rng.h"

namespace st::pruning {

struct DstUpdate {
  std::string name;
  int64_t active = 0, dropped = 0, grown = 0;
  std::vector<int64_t> changed;  // element indices whose mask changed or that were regrown (state to reset)
};

// gradients[i] belongs to the i-th prunable tensor (ignored for "set").
std::vector<DstUpdate> drop_and_grow(const std::vector<nn::Parameter*>& prunable, const std::vector<Tensor>& gradients,
                                     double fraction, const std::string& method, Rng& rng);

}  // namespace st::pruning
