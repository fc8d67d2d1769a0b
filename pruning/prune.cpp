#include "pruning/prune.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"
#include "pruning/allocation.h"

namespace st::pruning {
namespace {

struct Candidate {
  float score;
  int64_t position;  // global index over the prunable tensors, for deterministic ties
  std::size_t tensor;
  int64_t element;
};

bool kept_first(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.position > b.position);
}

// Keeps `target_eligible` weights among the eligible tensors' kept weights.
std::vector<LayerChange> select(const std::vector<nn::Parameter*>& parameters, const std::vector<Tensor>& scores,
                                int64_t target_eligible, const PruneSpec& spec) {
  const std::vector<nn::Parameter*> prunable = prunable_of(parameters);
  ST_CHECK(scores.size() == prunable.size(), "{} score tensors for {} prunable tensors", scores.size(),
           prunable.size());
  std::vector<LayerChange> changes;
  std::vector<bool> eligible(prunable.size());
  std::vector<std::vector<Candidate>> per_tensor(prunable.size());
  std::vector<TensorBudget> budgets;
  int64_t position = 0;
  for (std::size_t t = 0; t < prunable.size(); ++t) {
    nn::Parameter* p = prunable[t];
    ST_CHECK(scores[t].numel() == p->numel(), "score tensor {} has {} values for {} weights", t, scores[t].numel(),
             p->numel());
    changes.push_back({p->name, p->value().shape(), p->numel(), p->kept(), p->kept(), p->uses_per_sample});
    eligible[t] = !((spec.keep_first_dense && t == 0) || (spec.keep_last_dense && t + 1 == prunable.size()));
    const float* mask = p->mask.data();
    const float* score = scores[t].data();
    for (int64_t i = 0; i < p->numel(); ++i, ++position) {
      if (!eligible[t] || mask[i] == 0.0f) continue;
      const float s = std::isnan(score[i]) ? -std::numeric_limits<float>::infinity() : score[i];
      per_tensor[t].push_back({s, position, t, i});
    }
    if (eligible[t]) budgets.push_back({p->value().shape(), p->numel(), static_cast<int64_t>(per_tensor[t].size())});
  }
  int64_t eligible_kept = 0;
  for (const auto& list : per_tensor) eligible_kept += static_cast<int64_t>(list.size());
  target_eligible = std::clamp<int64_t>(target_eligible, 0, eligible_kept);
  std::vector<std::size_t> keep_count(prunable.size(), 0);
  if (spec.allocation == "global") {
    std::vector<Candidate> all;
    for (const auto& list : per_tensor) all.insert(all.end(), list.begin(), list.end());
    std::nth_element(all.begin(), all.begin() + target_eligible, all.end(), kept_first);
    for (int64_t i = 0; i < target_eligible; ++i) ++keep_count[all[static_cast<std::size_t>(i)].tensor];
  } else if (spec.allocation == "layerwise") {
    const double ratio = eligible_kept == 0 ? 0.0 : static_cast<double>(target_eligible) / static_cast<double>(eligible_kept);
    for (std::size_t t = 0; t < prunable.size(); ++t)
      keep_count[t] = static_cast<std::size_t>(std::llround(ratio * static_cast<double>(per_tensor[t].size())));
  } else {
    const std::vector<int64_t> counts = er_keep_counts(budgets, target_eligible, spec.allocation == "erk");
    std::size_t b = 0;
    for (std::size_t t = 0; t < prunable.size(); ++t)
      if (eligible[t]) keep_count[t] = static_cast<std::size_t>(counts[b++]);
  }
  for (std::size_t t = 0; t < prunable.size(); ++t) {
    if (!eligible[t]) continue;
    changes[t].kept_after = static_cast<int64_t>(keep_count[t]);
    if (changes[t].kept_before > 0 && keep_count[t] == 0)
      fail("--prune-rate/--density: pruning would remove every weight of {} (shape {}); prune less or keep the layer "
           "dense (--keep-first-dense / --keep-last-dense)",
           changes[t].name, shape_string(changes[t].shape));
  }
  for (std::size_t t = 0; t < prunable.size(); ++t) {
    if (!eligible[t]) continue;
    auto& list = per_tensor[t];
    const auto keep = static_cast<std::ptrdiff_t>(keep_count[t]);
    std::nth_element(list.begin(), list.begin() + keep, list.end(), kept_first);
    float* mask = prunable[t]->mask.data();
    for (auto it = list.begin() + keep; it != list.end(); ++it) mask[it->element] = 0.0f;
    prunable[t]->mask_changed();
    prunable[t]->apply_mask();
  }
  return changes;
}

}  // namespace

void validate(const PruneSpec& s) {
  if (!(s.rate > 0.0 && s.rate < 1.0)) fail("--prune-rate: must be in (0, 1), got {}", s.rate);
  if (s.allocation != "global" && s.allocation != "layerwise" && s.allocation != "er" && s.allocation != "erk")
    fail("--prune-allocation: unknown allocation '{}' (known: global, layerwise, er, erk)", s.allocation);
}

std::vector<nn::Parameter*> prunable_of(const std::vector<nn::Parameter*>& parameters) {
  std::vector<nn::Parameter*> prunable;
  for (nn::Parameter* p : parameters)
    if (p->prunable()) prunable.push_back(p);
  return prunable;
}

std::vector<LayerChange> prune_fraction(const std::vector<nn::Parameter*>& parameters,
                                        const std::vector<Tensor>& scores, const PruneSpec& spec) {
  validate(spec);
  const std::vector<nn::Parameter*> prunable = prunable_of(parameters);
  int64_t eligible_kept = 0;
  for (std::size_t t = 0; t < prunable.size(); ++t)
    if (!((spec.keep_first_dense && t == 0) || (spec.keep_last_dense && t + 1 == prunable.size())))
      eligible_kept += prunable[t]->kept();
  const int64_t removed = std::llround(spec.rate * static_cast<double>(eligible_kept));
  return select(parameters, scores, eligible_kept - removed, spec);
}

std::vector<LayerChange> prune_to_density(const std::vector<nn::Parameter*>& parameters,
                                          const std::vector<Tensor>& scores, double density, const PruneSpec& spec) {
  if (!(density > 0.0 && density <= 1.0)) fail("--density: must be in (0, 1], got {}", density);
  const std::vector<nn::Parameter*> prunable = prunable_of(parameters);
  int64_t eligible_numel = 0;
  for (std::size_t t = 0; t < prunable.size(); ++t)
    if (!((spec.keep_first_dense && t == 0) || (spec.keep_last_dense && t + 1 == prunable.size())))
      eligible_numel += prunable[t]->numel();
  return select(parameters, scores, std::llround(density * static_cast<double>(eligible_numel)), spec);
}

Histogram score_histogram(const std::vector<nn::Parameter*>& parameters, const std::vector<Tensor>& scores) {
  const std::vector<nn::Parameter*> prunable = prunable_of(parameters);
  std::vector<float> values;
  for (std::size_t t = 0; t < prunable.size() && t < scores.size(); ++t)
    for (int64_t i = 0; i < prunable[t]->numel(); ++i)
      if (prunable[t]->mask.data()[i] != 0.0f) values.push_back(scores[t].data()[i]);
  return sturges_histogram(values);
}

}  // namespace st::pruning
