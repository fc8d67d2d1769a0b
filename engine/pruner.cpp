// See pruner.h: the engine's helpers for pruning events (densities, histograms, the per-layer table).
#include "engine/pruner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace st {

double global_density(const std::vector<nn::Parameter*>& parameters) {
  int64_t kept = 0, total = 0;
  for (nn::Parameter* p : parameters)
    if (p->prunable()) {
      kept += p->kept();
      total += p->numel();
    }
  return total == 0 ? 1.0 : static_cast<double>(kept) / static_cast<double>(total);
}

Histogram sturges_histogram(const std::vector<float>& all) {
  std::vector<float> values;
  values.reserve(all.size());
  for (float v : all)
    if (std::isfinite(v)) values.push_back(v);
  Histogram h;
  if (values.empty()) return h;
  const auto [low, high] = std::minmax_element(values.begin(), values.end());
  h.low = *low;
  h.high = *high;
  const auto bins = static_cast<std::size_t>(std::ceil(std::log2(static_cast<double>(values.size())))) + 1;
  h.counts.assign(bins, 0);
  const double width = (h.high - h.low) / static_cast<double>(bins);
  for (float v : values) {
    const auto bin = width > 0.0 ? static_cast<std::size_t>((v - h.low) / width) : 0;
    ++h.counts[std::min(bin, bins - 1)];
  }
  return h;
}

std::string format_prune_table(const std::vector<LayerChange>& changes) {
  std::string text = fmt::format("{:<28} {:>16} {:>9} {:>9} {:>8} {:>8} {:>11} {:>11}\n", "layer", "shape", "kept",
                                 "of", "before", "after", "MFLOP bef.", "MFLOP aft.");
  int64_t kept_before = 0, kept_after = 0, total = 0;
  double flops_before = 0.0, flops_after = 0.0;
  for (const LayerChange& c : changes) {
    const auto n = static_cast<double>(c.numel);
    const double before = 2e-6 * static_cast<double>(c.kept_before * c.uses_per_sample);
    const double after = 2e-6 * static_cast<double>(c.kept_after * c.uses_per_sample);
    text += fmt::format("{:<28} {:>16} {:>9} {:>9} {:>8.4f} {:>8.4f} {:>11.3f} {:>11.3f}\n", c.name,
                        shape_string(c.shape), c.kept_after, c.numel, static_cast<double>(c.kept_before) / n,
                        static_cast<double>(c.kept_after) / n, before, after);
    kept_before += c.kept_before;
    kept_after += c.kept_after;
    total += c.numel;
    flops_before += before;
    flops_after += after;
  }
  text += fmt::format("{:<28} {:>16} {:>9} {:>9} {:>8.4f} {:>8.4f} {:>11.3f} {:>11.3f}\n", "global (per sample)", "",
                      kept_after, total, static_cast<double>(kept_before) / static_cast<double>(total),
                      static_cast<double>(kept_after) / static_cast<double>(total), flops_before, flops_after);
  return text;
}

}  // namespace st
