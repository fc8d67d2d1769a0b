#include "pruning/prune.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace st::pruning {
namespace {

struct Candidate {
  float score;
  int64_t position;  // global index over the eligible tensors, for deterministic ties
  std::size_t tensor;
  int64_t element;
};

bool removed_first(const Candidate& a, const Candidate& b) {
  return a.score < b.score || (a.score == b.score && a.position < b.position);
}

}  // namespace

void validate(const PruneSpec& s) {
  if (!(s.rate > 0.0 && s.rate < 1.0)) fail("--prune-rate: must be in (0, 1), got {}", s.rate);
  if (s.score != "magnitude" && s.score != "random")
    fail("--prune-score: unknown score '{}' (known: magnitude, random)", s.score);
  if (s.allocation != "global" && s.allocation != "layerwise")
    fail("--prune-allocation: unknown allocation '{}' (known: global, layerwise)", s.allocation);
}

std::vector<LayerChange> prune(const std::vector<nn::Parameter*>& parameters, const PruneSpec& spec, Rng& rng) {
  validate(spec);
  std::vector<nn::Parameter*> prunable;
  for (nn::Parameter* p : parameters)
    if (p->prunable()) prunable.push_back(p);
  std::vector<LayerChange> changes;
  std::vector<std::vector<Candidate>> per_tensor(prunable.size());
  int64_t position = 0;
  for (std::size_t t = 0; t < prunable.size(); ++t) {
    nn::Parameter* p = prunable[t];
    changes.push_back({p->name, p->value().shape(), p->numel(), p->kept(), p->kept()});
    const bool dense = (spec.keep_first_dense && t == 0) || (spec.keep_last_dense && t + 1 == prunable.size());
    const float* w = p->value().data();
    const float* mask = p->mask.data();
    for (int64_t i = 0; i < p->numel(); ++i, ++position) {
      if (dense || mask[i] == 0.0f) continue;
      const float score = spec.score == "random" ? rng.uniform() : std::fabs(w[i]);
      per_tensor[t].push_back({score, position, t, i});
    }
  }
  std::vector<Candidate> removed;
  if (spec.allocation == "global") {
    std::vector<Candidate> all;
    for (auto& list : per_tensor) all.insert(all.end(), list.begin(), list.end());
    const auto count = static_cast<std::size_t>(std::llround(spec.rate * static_cast<double>(all.size())));
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(count), all.end(), removed_first);
    removed.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(count));
  } else {
    for (auto& list : per_tensor) {
      const auto count = static_cast<std::size_t>(std::llround(spec.rate * static_cast<double>(list.size())));
      std::nth_element(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(count), list.end(), removed_first);
      removed.insert(removed.end(), list.begin(), list.begin() + static_cast<std::ptrdiff_t>(count));
    }
  }
  for (const Candidate& c : removed) --changes[c.tensor].kept_after;
  for (const LayerChange& change : changes)
    if (change.kept_before > 0 && change.kept_after == 0)
      fail("--prune-rate: pruning at {} would remove every weight of {} (shape {}); lower the rate or keep the layer "
           "dense (--keep-first-dense / --keep-last-dense)",
           spec.rate, change.name, shape_string(change.shape));
  for (const Candidate& c : removed) prunable[c.tensor]->mask.data()[c.element] = 0.0f;
  for (nn::Parameter* p : prunable) p->apply_mask();
  return changes;
}

double global_density(const std::vector<nn::Parameter*>& parameters) {
  int64_t kept = 0, total = 0;
  for (nn::Parameter* p : parameters)
    if (p->prunable()) {
      kept += p->kept();
      total += p->numel();
    }
  return total == 0 ? 1.0 : static_cast<double>(kept) / static_cast<double>(total);
}

std::string format_prune_table(const std::vector<LayerChange>& changes) {
  std::string text = fmt::format("{:<28} {:>16} {:>10} {:>10} {:>9} {:>9}\n", "layer", "shape", "kept", "of",
                                 "before", "after");
  int64_t kept_before = 0, kept_after = 0, total = 0;
  for (const LayerChange& c : changes) {
    const auto n = static_cast<double>(c.numel);
    text += fmt::format("{:<28} {:>16} {:>10} {:>10} {:>9.4f} {:>9.4f}\n", c.name, shape_string(c.shape), c.kept_after,
                        c.numel, static_cast<double>(c.kept_before) / n, static_cast<double>(c.kept_after) / n);
    kept_before += c.kept_before;
    kept_after += c.kept_after;
    total += c.numel;
  }
  text += fmt::format("{:<28} {:>16} {:>10} {:>10} {:>9.4f} {:>9.4f}\n", "global", "", kept_after, total,
                      static_cast<double>(kept_before) / static_cast<double>(total),
                      static_cast<double>(kept_after) / static_cast<double>(total));
  return text;
}

}  // namespace st::pruning
