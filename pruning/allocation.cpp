#include "pruning/allocation.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace st::pruning {

double er_ratio(const Shape& shape, bool kernel_dims) {
  double sum = 0.0, product = 1.0;
  if (shape.size() == 2) {  // linear (out, in)
    sum = static_cast<double>(shape[0] + shape[1]);
    product = static_cast<double>(shape[0] * shape[1]);
  } else {  // conv (K, R, S, C)
    const auto out = static_cast<double>(shape[0]), in = static_cast<double>(shape[3]);
    const auto kh = static_cast<double>(shape[1]), kw = static_cast<double>(shape[2]);
    sum = in + out + (kernel_dims ? kh + kw : 0.0);
    product = in * out * (kernel_dims ? kh * kw : 1.0);
  }
  return sum / product;
}

std::vector<double> er_densities(const std::vector<TensorBudget>& tensors, int64_t target_kept, bool kernel_dims) {
  const std::size_t n = tensors.size();
  std::vector<bool> capped(n, false);
  std::vector<double> density(n, 0.0);
  int64_t cap_total = 0;
  for (const TensorBudget& t : tensors) cap_total += t.cap;
  if (target_kept > cap_total) fail("allocation: cannot keep {} weights in tensors that hold only {}", target_kept, cap_total);
  while (true) {
    double capped_kept = 0.0, free_weight = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      if (capped[i]) {
        capped_kept += static_cast<double>(tensors[i].cap);
      } else {
        free_weight += er_ratio(tensors[i].shape, kernel_dims) * static_cast<double>(tensors[i].numel);
      }
    }
    const double epsilon = free_weight > 0.0 ? (static_cast<double>(target_kept) - capped_kept) / free_weight : 0.0;
    bool changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (capped[i]) continue;
      const double cap_density = static_cast<double>(tensors[i].cap) / static_cast<double>(tensors[i].numel);
      if (epsilon * er_ratio(tensors[i].shape, kernel_dims) > cap_density) {
        capped[i] = true;
        changed = true;
      }
    }
    if (changed) continue;
    for (std::size_t i = 0; i < n; ++i)
      density[i] = capped[i] ? static_cast<double>(tensors[i].cap) / static_cast<double>(tensors[i].numel)
                             : epsilon * er_ratio(tensors[i].shape, kernel_dims);
    return density;
  }
}

std::vector<int64_t> er_keep_counts(const std::vector<TensorBudget>& tensors, int64_t target_kept, bool kernel_dims) {
  const std::vector<double> density = er_densities(tensors, target_kept, kernel_dims);
  std::vector<int64_t> counts;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto count = static_cast<int64_t>(std::llround(density[i] * static_cast<double>(tensors[i].numel)));
    counts.push_back(std::clamp<int64_t>(count, 1, tensors[i].cap));
  }
  return counts;
}

}  // namespace st::pruning
