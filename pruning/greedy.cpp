#include "pruning/greedy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/error.h"

namespace st::pruning {
namespace {

// The unit (channel) of the group an element of a consumer slice reads; -1 for an element of another
// group's slice of a concatenation.
int64_t channel_of(const nn::ChannelSlice& slice, const Shape& shape, int64_t channels, int64_t element) {
  if (slice.flattened) return (element % shape[1]) % channels;
  int64_t inner = 1;
  for (std::size_t i = static_cast<std::size_t>(slice.axis) + 1; i < shape.size(); ++i) inner *= shape[i];
  const int64_t channel = (element / inner) % shape[static_cast<std::size_t>(slice.axis)] - slice.offset;
  return channel >= 0 && channel < channels ? channel : -1;
}

// The consumers a subset rewrites: the weights that read the units. Pre-activation BatchNorms also
// read them, but a unit is silenced (or scaled) by the conv/linear weights after them alone.
bool rewritten(const nn::ChannelSlice& slice) { return slice.parameter != nullptr && slice.parameter->prunable(); }

}  // namespace

UnitSubset::UnitSubset(const nn::ChannelGroup& group) : group_(group) {
  for (const nn::ChannelSlice& slice : group.consumers)
    original_.push_back(rewritten(slice) ? slice.parameter->value().clone() : Tensor());
}

UnitSubset::~UnitSubset() {
  if (committed_) return;
  for (std::size_t i = 0; i < original_.size(); ++i)
    if (original_[i].defined()) group_.consumers[i].parameter->value().copy_from(original_[i]);
}

void UnitSubset::apply(const std::vector<int64_t>& selected, double scale) {
  std::vector<float> factor(static_cast<std::size_t>(group_.channels), 0.0f);
  for (int64_t unit : selected) factor[static_cast<std::size_t>(unit)] += static_cast<float>(scale);  // a repeat counts twice
  for (std::size_t i = 0; i < original_.size(); ++i) {
    if (!original_[i].defined()) continue;
    const nn::ChannelSlice& slice = group_.consumers[i];
    Tensor& w = slice.parameter->value();
    const float* base = original_[i].data();
    for (int64_t e = 0; e < w.numel(); ++e) {
      const int64_t unit = channel_of(slice, w.shape(), group_.channels, e);
      w.data()[e] = unit < 0 ? base[e] : base[e] * factor[static_cast<std::size_t>(unit)];
    }
  }
}

Selection greedy_forward_selection(const nn::ChannelGroup& group, const SelectionHooks& hooks, double target_accuracy,
                                   const GreedyOptions& options, Rng& rng) {
  if (options.candidates < 1) fail("--select-candidates: must be at least 1, got {}", options.candidates);
  if (options.repeats && !options.average)
    fail("--select-repeats: needs --select-scale average (a repeated pick counts through its weight k N / |S|)");
  const bool repeats = options.repeats;
  UnitSubset subset(group);
  const int64_t n = group.channels;
  Selection result;
  std::vector<int64_t> picks;  // the multiset S (a unit appears once per pick)
  std::vector<char> chosen(static_cast<std::size_t>(n), 0);
  // The candidate pool: the unselected units, or every unit when repeats are allowed.
  std::vector<int64_t> pool(static_cast<std::size_t>(n));
  std::iota(pool.begin(), pool.end(), int64_t{0});
  // With repeats the multiset can grow past n; give up (keep the whole layer) after 4n picks.
  const int64_t max_picks = repeats ? 4 * n : n;
  // The consumers' factor for a selection of `size` picks.
  const auto scale_for = [&](std::size_t size) {
    return options.average ? static_cast<double>(n) / static_cast<double>(size) : 1.0;
  };
  bool reached = false;
  while (!pool.empty() && static_cast<int64_t>(picks.size()) < max_picks) {
    // Sample up to `candidates` units of the pool (a partial Fisher-Yates shuffle).
    const auto count = std::min<std::size_t>(static_cast<std::size_t>(options.candidates), pool.size());
    for (std::size_t i = 0; i < count; ++i) std::swap(pool[i], pool[i + rng.uniform_int(pool.size() - i)]);
    double best_loss = std::numeric_limits<double>::infinity();
    std::size_t best = 0;
    const int64_t iteration = static_cast<int64_t>(picks.size());
    std::vector<int64_t> trial = picks;
    trial.push_back(0);
    for (std::size_t i = 0; i < count; ++i) {
      trial.back() = pool[i];
      subset.apply(trial, scale_for(trial.size()));
      const double loss = hooks.minibatch_loss(iteration);  // the same fresh minibatch for every candidate
      ++result.evaluations;
      if (loss < best_loss) {
        best_loss = loss;
        best = i;
      }
    }
    const int64_t unit = pool[best];
    picks.push_back(unit);
    if (!chosen[static_cast<std::size_t>(unit)]) {
      chosen[static_cast<std::size_t>(unit)] = 1;
      result.units.push_back(unit);
    }
    if (!repeats) pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(best));
    result.scale = scale_for(picks.size());
    subset.apply(picks, result.scale);
    result.accuracy = hooks.accuracy();
    if (result.accuracy >= target_accuracy) {
      reached = true;
      break;
    }
  }
  result.picks = static_cast<int64_t>(picks.size());
  if (!reached) {
    // The target is out of reach: the layer stays whole and unscaled (as Ye et al.'s code does).
    picks.resize(static_cast<std::size_t>(n));
    std::iota(picks.begin(), picks.end(), int64_t{0});
    result.units = picks;
    result.scale = 1.0;
    subset.apply(picks, 1.0);
    result.accuracy = hooks.accuracy();
  }
  std::sort(result.units.begin(), result.units.end());
  subset.commit();
  return result;
}

Selection magnitude_selection(const nn::ChannelGroup& group, const SelectionHooks& hooks, double target_accuracy) {
  UnitSubset subset(group);
  const int64_t n = group.channels;
  std::vector<double> norm(static_cast<std::size_t>(n), 0.0);
  for (const nn::ChannelSlice& slice : group.producers) {
    if (slice.parameter == nullptr || !slice.parameter->prunable()) continue;
    const Tensor& w = slice.parameter->value();
    const int64_t per_unit = w.numel() / n;
    for (int64_t e = 0; e < w.numel(); ++e) norm[static_cast<std::size_t>(e / per_unit)] += std::fabs(w.data()[e]);
  }
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return norm[static_cast<std::size_t>(a)] > norm[static_cast<std::size_t>(b)];
  });
  Selection result;
  for (int64_t k = 1; k <= n; ++k) {
    result.units.assign(order.begin(), order.begin() + k);
    subset.apply(result.units, 1.0);
    result.accuracy = hooks.accuracy();
    if (result.accuracy >= target_accuracy) break;
  }
  std::sort(result.units.begin(), result.units.end());
  subset.apply(result.units, 1.0);
  subset.commit();
  return result;
}

}  // namespace st::pruning
