// The options of the pruning methods (engine/options.h), one block per family, each held by a
// TrainConfig (config.get<DstOptions>()) and described by its family's table (pruning/pruners.h):
//   prune       PruneSpec (score, allocation, first/last layer dense) and ScoringOptions, shared by every
//               event that prunes by a score
//   imp         ImpOptions: the control of iterative pruning (its rate is the cycle policy's --prune-rate)
//   init        InitOptions: pruning at initialisation, and the random mask of --density
//   early       EarlyOptions;  gmp  schedules::GmpSchedule;  structured  StructuredOptions;
//   select      SelectOptions;  dst  DstOptions
#pragma once

#include <cstdint>
#include <string>

namespace st::pruning {

struct ScoringOptions {
  int64_t batches = 1;  // minibatches averaged by gradient scores
};

struct ImpOptions {
  std::string control = "none";  // none | reinit (surviving weights re-drawn) | random_mask
};

// Pruning at initialisation (one shot before training; synflow in `synflow_rounds` rounds with an
// exponential density schedule), then the mask stays fixed. random_density: a random mask of every
// prunable tensor at initialisation (1 = dense).
struct InitOptions {
  std::string score;  // empty: none
  double density = 0.1;
  int synflow_rounds = 100;
  double random_density = 1.0;
};

// Early pruning (Lubana & Dick 2021): `rounds` rounds at the ends of the first epochs, reaching
// `sparsity` after the last.
struct EarlyOptions {
  int rounds = 0;
  double sparsity = 0.5;
};

// Structured pruning between cycles (instead of unstructured IMP): physically remove this fraction of the
// channels of every coupled channel group, by a filter score (pruning/structured.h).
struct StructuredOptions {
  double fraction = 0.0;
  std::string score = "l1";
};

// Unit selection between cycles, layer by layer (pruning/greedy.h): gfs (greedy forward selection) or
// magnitude, until the accuracy on the first `eval` training images reaches (1 - tolerance) of the
// reference: with target "layer" the accuracy of the network just before that layer's selection (Ye et
// al.'s released code), with "original" the trained network's before any layer; finetune_steps of SGD
// after each layer.
struct SelectOptions {
  std::string method;  // empty | gfs | magnitude
  double tolerance = 0.02;
  std::string target = "layer";   // layer | original
  bool repeats = false;           // gfs: S a multiset (a unit may be picked again; pruning/greedy.h)
  std::string scale = "average";  // gfs: average (N / |S|, Ye et al.) | sum (selected units as trained)
  int candidates = 50;
  int64_t batches = 1;  // gfs: training minibatches averaged for each candidate's loss (8 measured no better)
  int64_t finetune_steps = 100;
  int64_t eval = 5000;
};

// Dynamic sparse training (RigL / SET): a random mask at the init density with the allocation of the
// prune options (erk or layerwise), updated every `interval` steps until end_fraction of training.
struct DstOptions {
  std::string method;  // empty | rigl | set
  int64_t interval = 100;
  double alpha = 0.3;
  double end_fraction = 0.75;
};

}  // namespace st::pruning
