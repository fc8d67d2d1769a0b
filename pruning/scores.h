// Pruning scores, one value per weight of every prunable tensor; HIGHER = KEEP (../shared/spec/pruning.md).
//   magnitude      |w|
//   random         uniform in [0, 1), seeded
//   snip           |w * g| (SNIP, Lee et al. 2019; "loss preservation" of Lubana & Dick 2021; the
//                  "global gradient" score): g is the loss gradient averaged over `batches` minibatches
//   lp_biased      |w^2 * g|          (Lubana & Dick's biased loss preservation)
//   grasp          GraSP (Wang et al. 2020): S = -w * (H g) for the loss on logits / T (T = 200) over a
//                  batch with 10 samples per class; the weights of HIGHEST S are removed, so the keep
//                  score is -S = w * Hg
//   hg             w * Hg, signed (Lubana & Dick's GraSP-like measure; plain loss and minibatches)
//   abs_hg         |w * Hg|           (Lubana & Dick's gradient-norm preservation)
//   synflow        |w * dR/dw| with every parameter replaced by its absolute value, an all-ones input
//                  and R = sum of the outputs (Tanaka et al. 2020; data-free; BatchNorm in eval mode).
//                  The iterative 100-round schedule is the caller's (pruning at initialisation).
//   wg             w * g, signed (the first-order Taylor term; Taylor filter scores are |sum of w g|)
//   lap            lookahead pruning (Park et al. 2020): |w| * ||weights feeding w's input unit in the
//                  previous layer|| * ||weights reading w's output unit in the next layer|| (channel
//                  norms for conv; a missing or shape-mismatched neighbour counts as 1)
// Hessian-vector products are a central finite difference of two gradients:
//   Hv ~ (grad L(theta + h v) - grad L(theta - h v)) / (2 h),   h = hvp_step / ||v||
// (so the perturbation has norm hvp_step = 1e-2 by default), on the same batches for both gradients.
// Scoring never changes the model: weights, BatchNorm statistics and modes are restored.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "engine/pruner.h"
#include "engine/rng.h"

namespace st::pruning {

using ScoreData = st::ScoreData;  // (engine/pruner.h)

struct ScoreOptions {
  std::string name = "magnitude";
  int64_t batches = 1;  // minibatches averaged for g
  float grasp_temperature = 200.0f;
  int64_t grasp_per_class = 10;
  double hvp_step = 1e-2;
};

// A score that looks at training, not only at the weights now (movement), keeps a history
// (engine/pruner.h's TrainingHistory).
using ScoreHistory = st::TrainingHistory;

// The scores by name (pruning/score_registry.cpp; adding one there is all a new score takes).
struct ScoreMethod {
  std::string name, help;
  bool needs_data = false;  // minibatches of training data (gradient scores)
  std::function<std::vector<Tensor>(nn::Module& model, const ScoreOptions& options, const ScoreData& data, Rng& rng,
                                    ScoreHistory* history)>
      compute;
  std::function<std::unique_ptr<ScoreHistory>(nn::Module& model)> make_history;  // empty: none
};
const std::vector<ScoreMethod>& score_methods();
const ScoreMethod* find_score(const std::string& name);  // nullptr when unknown
std::string score_names();                               // "magnitude, random, ..." for help and errors
bool is_known_score(const std::string& name);
bool score_needs_data(const std::string& name);
// The history the score keeps for this model, or null for a score that keeps none.
std::unique_ptr<ScoreHistory> make_score_history(const std::string& name, nn::Module& model);

// One score tensor per prunable tensor (same order as prunable_of(model.parameters())). history: the run's
// history of this score (required by the scores that keep one).
std::vector<Tensor> compute_scores(nn::Module& model, const ScoreOptions& options, const ScoreData& data, Rng& rng,
                                   ScoreHistory* history = nullptr);
// The scores of this file (every name in the header comment above), by options.name.
std::vector<Tensor> builtin_scores(nn::Module& model, const ScoreOptions& options, const ScoreData& data, Rng& rng);

// The finite-difference Hessian-vector product of the loss given by `loss` w.r.t. all parameters.
using LossFunction = std::function<Variable()>;
std::vector<Tensor> gradient(nn::Module& model, const LossFunction& loss);
std::vector<Tensor> hessian_vector_product(nn::Module& model, const LossFunction& loss, const std::vector<Tensor>& v,
                                           double hvp_step);

}  // namespace st::pruning
