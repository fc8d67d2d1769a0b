// Sparse compute forms of masked linear and convolution weights on the CPU (issue 17; kernels in
// kernels/cpu/sparse.h). Pointwise 1x1 stride-1 convolutions are linear layers over the pixels of an
// NHWC input and run the linear kernels; every other one-group convolution runs the sparse convolution.
//
// --sparse-kernels off | on | auto (process-wide, set by the trainer and bench):
//   off   every layer runs the dense kernels (masked weights are multiplied as stored zeros)
//   on    every masked CPU linear layer runs the sparse kernels
//   auto  per layer, at each mask change, both paths are timed on the layer's shape (the current batch,
//         3 calls of forward + both gradients each, the fastest of each) and the faster is kept
// A layer's form is keyed on its mask's storage and the parameter's mask_version (bumped by every
// writer of masks: pruning, DST updates, random masks, structured shrinking, checkpoint and snapshot
// restores); a stale form is rebuilt at the next forward.
//
// Dense gradients: RigL grows by the gradient of pruned weights, which the sparse kernels do not
// compute; a DenseGradientScope makes every layer run dense while it lives (the DST update steps).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "kernels/cpu/sparse.h"

namespace st {
namespace nn {
struct Parameter;
}

enum class SparseKernels { Off, On, Auto };
void set_sparse_kernels(SparseKernels mode);
SparseKernels sparse_kernels();
std::string sparse_kernels_name(SparseKernels mode);  // "off" | "on" | "auto"
// Fails naming `flag` unless value is off, on or auto.
SparseKernels parse_sparse_kernels(const std::string& value, const std::string& flag);

class DenseGradientScope {
 public:
  DenseGradientScope();
  ~DenseGradientScope();
  DenseGradientScope(const DenseGradientScope&) = delete;
  DenseGradientScope& operator=(const DenseGradientScope&) = delete;
};
bool dense_gradients_required();

// Auto's decision for one layer and mask: kept with checkpoints so that a resumed run computes every
// layer the way the uninterrupted run did (the two paths sum in different orders).
struct SparseChoice {
  bool use_sparse = false;
  double dense_ms = 0.0, sparse_ms = 0.0;
  int64_t timed_batch = 0;
};

struct SparseForm {
  const float* mask_data = nullptr;  // the mask storage the form was built from
  uint64_t mask_version = 0;
  SparseKernels mode = SparseKernels::Off;
  std::shared_ptr<const cpu::SparsePattern> pattern;
  bool use_sparse = false;
  double dense_ms = 0.0, sparse_ms = 0.0;  // auto: the timed step of the layer (0: not timed)
  int64_t timed_batch = 0;
  // A convolution's geometry at its largest training batch: a pruning event re-times the layer on it.
  std::optional<Conv2dGeometry> conv;
  // A restored decision, adopted instead of timing when the form for mask_version `preset_version` is built.
  std::optional<SparseChoice> preset;
  uint64_t preset_version = 0;
};

// Whether a linear or convolution layer with weight `p` given an input on the CPU may run sparse
// now (mode not off, a mask, no DenseGradientScope).
bool sparse_path_allowed(const nn::Parameter& p);
// p's compute form, rebuilt (pattern and, in auto, the timed choice at `batch` rows, or on the
// convolution `conv`) if the mask changed.
const SparseForm& refresh_sparse_form(nn::Parameter& p, int64_t batch, const Conv2dGeometry* conv = nullptr);
// Auto's decision in force for p's current mask (none: not auto, or not decided yet).
std::optional<SparseChoice> current_sparse_choice(const nn::Parameter& p);
// The next auto form of p's current mask adopts `choice` instead of timing both paths (a resume).
void preset_sparse_choice(nn::Parameter& p, const SparseChoice& choice);
// p's form if it describes p's current mask and computes sparse (the optimizer then steps the pattern
// only), else null.
const SparseForm* current_sparse_form(const nn::Parameter& p);

}  // namespace st
