// Export to PyTorch: a model's state dict as safetensors with the names of the natural PyTorch
// definition (the module names, e.g. "layer1.0.conv1.weight"), PyTorch layouts (conv OIHW instead of
// KRSC; a linear layer reading an NHWC-flattened tensor gets its columns permuted to NCHW order),
// BatchNorm's num_batches_tracked, and "<name>_mask" beside every weight that has pruned entries.
// tools/export_check.py loads such a file into PyTorch twins and compares logits.
#pragma once

#include "engine/input_spec.h"
#include "engine/io/safetensors.h"
#include "engine/nn.h"

namespace st::io {

SafetensorsFile pytorch_state_dict(nn::Module& model, const InputSpec& input);

// The inverse (`sparsetrain import`): every parameter, mask ("<name>_mask", else all kept) and buffer of
// `model` from a PyTorch state dict in those names and layouts, converted back. Strict, as PyTorch's
// load_state_dict(strict=True): a missing tensor, a shape that differs from the model's, a tensor that
// is not F32, a pruned entry whose weight is not 0, or a tensor the model has no place for (other than
// BatchNorm's num_batches_tracked) is an st::Error naming the file and the tensor.
void load_pytorch_state_dict(nn::Module& model, const InputSpec& input, const SafetensorsFile& file);

// KRSC -> OIHW for one conv weight; NHWC-flattened (positions x channels) -> NCHW for linear columns;
// and back.
Tensor conv_weight_to_oihw(const Tensor& krsc);
Tensor linear_columns_to_nchw(const Tensor& weight, int64_t channels);
Tensor conv_weight_from_oihw(const Tensor& oihw);
Tensor linear_columns_from_nchw(const Tensor& weight, int64_t channels);

}  // namespace st::io
