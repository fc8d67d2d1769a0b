#include "pruning/random_mask.h"

#include <cmath>
#include <numeric>

#include "engine/error.h"

namespace st::pruning {

void apply_random_masks(const std::vector<nn::Parameter*>& parameters, double density, Rng& rng) {
  if (!(density > 0.0 && density <= 1.0)) fail("--density: must be in (0, 1], got {}", density);
  for (nn::Parameter* p : parameters) {
    if (!p->prunable()) continue;
    const int64_t n = p->numel();
    const auto keep = static_cast<int64_t>(std::llround(density * static_cast<double>(n)));
    std::vector<int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    rng.shuffle(order);
    float* mask = p->mask.data();
    for (int64_t i = 0; i < n; ++i) mask[i] = 0.0f;
    for (int64_t i = 0; i < keep; ++i) mask[order[static_cast<std::size_t>(i)]] = 1.0f;
    p->mask_changed();
    p->apply_mask();
  }
}

}  // namespace st::pruning
