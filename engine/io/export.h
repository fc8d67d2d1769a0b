// Export to PyTorch: a model's state dict as safetensors with the names of the natural PyTorch
// definition (the module names, e.g. "layer1.0.conv1.weight"), PyTorch layouts (conv OIHW instead of
// KRSC; a linear layer reading an NHWC-flattened tensor gets its columns permuted to NCHW order),
// BatchNorm's num_batches_tracked, and "<name>_mask" beside every weight that has pruned entries.
// tools/export_check.py loads such a file into PyTorch twins and compares logits.
#pragma once

#include "engine/io/safetensors.h"
#include "engine/nn.h"
#include "models/registry.h"

namespace st::io {

SafetensorsFile pytorch_state_dict(nn::Module& model, const models::InputSpec& input);

// KRSC -> OIHW for one conv weight; NHWC-flattened (positions x channels) -> NCHW for linear columns.
Tensor conv_weight_to_oihw(const Tensor& krsc);
Tensor linear_columns_to_nchw(const Tensor& weight, int64_t channels);

}  // namespace st::io
