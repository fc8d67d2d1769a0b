// Selecting the units (neurons / filters) of one channel group, layer by layer:
//   greedy forward selection (Ye, Gong, Nie, Zhu, Klivans, Liu, "Good Subnetworks Provably Exist:
//   Pruning via Greedy Forward Selection", ICML 2020): start from no unit; repeatedly sample up to
//   `candidates` unselected units and add the one whose addition gives the lowest loss on a fresh
//   minibatch, with the layer's output rescaled as an average of the selected units (the next
//   layer's weights of the selected units times N / |S|); stop when the accuracy on the selection
//   set reaches (1 - tolerance) of the original network's. The sum form (GreedyOptions::average
//   false) leaves the selected units' weights as trained: the subnetwork is the full network with
//   the other units removed, the form magnitude pruning compares against.
//   magnitude (the baseline): units ordered by the L1 norm of their weights, the fewest leading units
//   that reach the same accuracy, without rescaling.
// A subset is tried by rewriting the consumers' weights (0 for unselected units), so the network
// keeps its shape during the search; the caller then shrinks the group to the selection.
#pragma once

#include <functional>
#include <vector>

#include "engine/nn.h"
#include "engine/rng.h"

namespace st::pruning {

// Rewrites the consumer weights of a group for a subset of its units; restores them on destruction
// unless commit() was called.
class UnitSubset {
 public:
  explicit UnitSubset(const nn::ChannelGroup& group);
  ~UnitSubset();
  UnitSubset(const UnitSubset&) = delete;
  UnitSubset& operator=(const UnitSubset&) = delete;
  void apply(const std::vector<int64_t>& selected, double scale);
  void commit() { committed_ = true; }

 private:
  const nn::ChannelGroup& group_;
  std::vector<Tensor> original_;  // one per consumer slice; undefined for BatchNorms (left as they are)
  bool committed_ = false;
};

struct SelectionHooks {
  std::function<double(int64_t iteration)> minibatch_loss;  // loss on training minibatch `iteration`
  std::function<double()> accuracy;                         // accuracy on the selection set
};

struct Selection {
  std::vector<int64_t> units;  // ascending
  double scale = 1.0;          // applied to the consumers per pick (N / |S| for GFS, |S| counting repeats)
  int64_t picks = 0;           // GFS: |S| with repeats (= units.size() without)
  double accuracy = 0.0;
  int64_t evaluations = 0;     // minibatch losses computed
};

struct GreedyOptions {
  int candidates = 50;  // units sampled per step
  // S is a multiset (the candidates are drawn from every unit, and a unit picked k times carries
  // k N / |S|), the Frank-Wolfe form of the selection in Ye et al.'s analysis; without, each unit is
  // picked at most once (their released code). Needs `average`.
  bool repeats = false;
  // The selected units' consumer weights times N / |S| (Ye et al.), or left as trained (the sum form).
  bool average = true;
};

// If the target is not reached (n picks without repeats, 4n with), the layer is kept whole and
// unscaled.
Selection greedy_forward_selection(const nn::ChannelGroup& group, const SelectionHooks& hooks, double target_accuracy,
                                   const GreedyOptions& options, Rng& rng);
Selection magnitude_selection(const nn::ChannelGroup& group, const SelectionHooks& hooks, double target_accuracy);

}  // namespace st::pruning
