#include "pruning/dynamic.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace st::pruning {

std::vector<DstUpdate> drop_and_grow(const std::vector<nn::Parameter*>& prunable, const std::vector<Tensor>& gradients,
                                     double fraction, const std::string& method, Rng& rng) {
  if (method != "rigl" && method != "set") fail("--dst: unknown method '{}' (known: rigl, set)", method);
  std::vector<DstUpdate> updates;
  for (std::size_t t = 0; t < prunable.size(); ++t) {
    nn::Parameter* p = prunable[t];
    float* w = p->value().data();
    float* mask = p->mask.data();
    const int64_t n = p->numel();
    std::vector<int64_t> active, inactive;
    for (int64_t i = 0; i < n; ++i) (mask[i] != 0.0f ? active : inactive).push_back(i);
    DstUpdate u{p->name, static_cast<int64_t>(active.size()), 0, 0, {}};
    auto k = static_cast<int64_t>(std::llround(fraction * static_cast<double>(active.size())));
    k = std::min<int64_t>(k, static_cast<int64_t>(active.size()));
    if (k == 0) {
      updates.push_back(u);
      continue;
    }
    // Drop: the k active weights of smallest |w| (earlier index first among equals).
    std::nth_element(active.begin(), active.begin() + k, active.end(), [&](int64_t a, int64_t b) {
      const float wa = std::fabs(w[a]), wb = std::fabs(w[b]);
      return wa < wb || (wa == wb && a < b);
    });
    std::vector<int64_t> dropped(active.begin(), active.begin() + k);
    // Grow among everything inactive after the drop (the just-dropped weights included).
    std::vector<int64_t> candidates = inactive;
    candidates.insert(candidates.end(), dropped.begin(), dropped.end());
    std::vector<float> grow_score(candidates.size());
    const float* g = method == "rigl" ? gradients[t].data() : nullptr;
    for (std::size_t c = 0; c < candidates.size(); ++c)
      grow_score[c] = method == "rigl" ? std::fabs(g[candidates[c]]) : rng.uniform();
    std::vector<std::size_t> order(candidates.size());
    for (std::size_t c = 0; c < order.size(); ++c) order[c] = c;
    std::nth_element(order.begin(), order.begin() + k, order.end(), [&](std::size_t a, std::size_t b) {
      return grow_score[a] > grow_score[b] || (grow_score[a] == grow_score[b] && candidates[a] < candidates[b]);
    });
    for (int64_t i : dropped) mask[i] = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = candidates[order[static_cast<std::size_t>(j)]];
      mask[i] = 1.0f;
      w[i] = 0.0f;  // grown weights start at exactly 0
      u.changed.push_back(i);
    }
    for (int64_t i : dropped) {
      w[i] = 0.0f;  // dropped (or regrown) weights are 0 either way
      u.changed.push_back(i);
    }
    p->mask_changed();
    u.dropped = k;
    u.grown = k;
    updates.push_back(u);
  }
  return updates;
}

}  // namespace st::pruning
